package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"github.com/insien/orchestrator/app"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/providers"
)

type globalFlags struct {
	configFile string
}

// parseGlobal reads flags that precede the command (e.g. --config FILE).
func parseGlobal(args []string) (globalFlags, []string, error) {
	var g globalFlags
	fs := flag.NewFlagSet("orchestrator", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&g.configFile, "config", "", "config file (default: $CONFIG_FILE or ./config.yaml)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if err := fs.Parse(args); err != nil {
		return g, nil, err
	}
	return g, fs.Args(), nil
}

func loadConfig(g globalFlags) (*config.Config, bool) {
	cfg, err := config.Load(config.Options{File: g.configFile})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, false
	}
	return cfg, true
}

// openDB loads the configuration and opens Postgres, for the commands that need only the database.
func openDB(g globalFlags) (*config.Config, *bun.DB, bool) {
	cfg, ok := loadConfig(g)
	if !ok {
		return nil, nil, false
	}
	db, err := providers.NewDB(cfg.Database)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, nil, false
	}
	return cfg, db, true
}

// serve runs the service until SIGTERM/SIGINT, then shuts down gracefully. Exit codes: 0 after a
// clean stop, 1 when start-up or shutdown fails (or the service asked to stop with an error).
func serve(g globalFlags) int {
	cfg, ok := loadConfig(g)
	if !ok {
		return 1
	}
	application := fx.New(app.Options(cfg))
	if err := application.Err(); err != nil {
		// A configuration mistake found while building the graph reads like any other: one line
		// naming the key, not Fx's dependency trace.
		var cfgErr *config.Error
		if errors.As(err, &cfgErr) {
			err = cfgErr
		}
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		return 1
	}
	startCtx, cancel := context.WithTimeout(context.Background(), application.StartTimeout())
	defer cancel()
	if err := application.Start(startCtx); err != nil {
		fmt.Fprintln(os.Stderr, "orchestrator: start-up failed:", err)
		return 1
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	code := 0
	select {
	case <-signals:
	case sig := <-application.Wait():
		code = sig.ExitCode
	}
	signal.Stop(signals)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), application.StopTimeout())
	defer cancelStop()
	if err := application.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "orchestrator: shutdown:", err)
		return 1
	}
	return code
}
