package providers

import (
	"fmt"

	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/insien/orchestrator/internal/platform/config"
)

// NewLogger builds zap: JSON in production for log pipelines, console in development for people.
func NewLogger(cfg config.Log, app config.App) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, &config.Error{Key: "log.level", Reason: err.Error()}
	}
	zc := zap.NewProductionConfig()
	if app.Development() {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.DisableStacktrace = true // stacks are attached explicitly where they help (panics)
	switch cfg.Format {
	case "json":
		zc.Encoding = "json"
		zc.EncoderConfig = zap.NewProductionEncoderConfig()
	case "console":
		zc.Encoding = "console"
	}
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	log, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("logger: %w", err)
	}
	return log, nil
}

// NewFxLogger routes Fx's own events through zap at debug level, so they stay out of production logs.
func NewFxLogger(log *zap.Logger) fxevent.Logger {
	l := &fxevent.ZapLogger{Logger: log.Named("fx")}
	l.UseLogLevel(zapcore.DebugLevel)
	return l
}
