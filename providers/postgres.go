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
	// Bun sends every query with its arguments formatted in, so no two texts repeat: pgx's
	// default (prepare and cache each new text) would cost every query a second round trip, a
	// server-side plan kept for nothing and, once its cache is full, a DEALLOCATE. One round trip
	// with an unnamed statement instead.
	connCfg.DefaultQueryExecMode = pgx.QueryExecModeExec
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

// dbReady runs the DBReadyHooks once Postgres answers, and stops the process when they fail late.
type dbReady struct {
	hooks []DBReadyHook
	stop  fx.Shutdowner
}

func watchDB(p dbParams) {
	r := &dbReady{hooks: p.Hooks, stop: p.Stop}
	w := watchDependency(p.LC, dbCheck(p.DB), p.DB.Close, p.Health, p.Log)
	w.onReady, w.onLateFailure = r.run, r.exit
}

func (r *dbReady) run(ctx context.Context) error {
	for _, hook := range r.hooks {
		if err := hook(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *dbReady) exit() { _ = r.stop.Shutdown(fx.ExitCode(1)) }

func dbCheck(db *bun.DB) health.Check {
	return health.Check{Name: "postgres", Probe: db.PingContext}
}
