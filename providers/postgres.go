package providers

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/health"
)

// NewDB opens a lazily connecting Bun client over pgx; nothing is dialled until first use, so the
// service can start before Postgres does.
func NewDB(cfg config.Database) (*bun.DB, error) {
	connCfg, err := pgx.ParseConfig(cfg.URL.Reveal())
	if err != nil {
		// pgx echoes the DSN (with its password) in parse errors; say only which key is wrong.
		return nil, fmt.Errorf("config: database.url: not a valid Postgres URL")
	}
	connCfg.ConnectTimeout = cfg.ConnectTimeout
	sqldb := stdlib.OpenDB(*connCfg)
	sqldb.SetMaxOpenConns(cfg.MaxOpenConns)
	sqldb.SetMaxIdleConns(cfg.MaxIdleConns)
	sqldb.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	sqldb.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	return bun.NewDB(sqldb, pgdialect.New(), bun.WithDiscardUnknownColumns()), nil
}

// DBReadyHook runs once Postgres first answers (the schema check hangs here). An error fails
// start-up when Postgres answered at once, and shuts the process down (exit code 1) when it
// answered later: either way the service never serves on a database it cannot use.
type DBReadyHook func(context.Context) error

type dbParams struct {
	fx.In
	LC     fx.Lifecycle
	DB     *bun.DB
	Health config.Health
	Log    *zap.Logger
	Stop   fx.Shutdowner
	Hooks  []DBReadyHook `group:"db_ready"`
}

func watchDB(p dbParams) {
	w := &watchDependency{
		name: "postgres", probe: p.DB.PingContext, timeout: p.Health.CheckTimeout,
		interval: p.Health.RetryInterval, log: p.Log,
		onLateFailure: func() { _ = p.Stop.Shutdown(fx.ExitCode(1)) },
		onReady: func(ctx context.Context) error {
			for _, hook := range p.Hooks {
				if err := hook(ctx); err != nil {
					return err
				}
			}
			return nil
		},
	}
	// Fx stops hooks in reverse order: the pool closes after the watcher and every later-started user.
	p.LC.Append(fx.StopHook(p.DB.Close))
	p.LC.Append(fx.StartStopHook(w.Start, w.Stop))
}

func dbCheck(db *bun.DB) health.Check {
	return health.Check{Name: "postgres", Probe: db.PingContext}
}
