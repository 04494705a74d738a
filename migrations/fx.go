package migrations

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.uber.org/fx"

	"github.com/insien/orchestrator/internal/platform/health"
	"github.com/insien/orchestrator/providers"
)

// Module refuses to serve on a schema older than the binary: checked as soon as Postgres answers
// (see providers.DBReadyHook) and reported by readiness until then.
var Module = fx.Module("migrations",
	fx.Provide(New),
	fx.Provide(newSchemaGate),
	fx.Provide(fx.Annotate((*schemaGate).readyHook, fx.ResultTags(`group:"db_ready"`))),
	fx.Provide(fx.Annotate((*schemaGate).check, fx.ResultTags(`group:"health_checks"`))),
)

// schemaGate remembers whether the schema was found current, for the readiness probe.
type schemaGate struct {
	migrator *Migrator
	current  atomic.Bool
}

func newSchemaGate(m *Migrator) *schemaGate { return &schemaGate{migrator: m} }

func (g *schemaGate) readyHook() providers.DBReadyHook { return g.verify }

func (g *schemaGate) check() health.Check { return health.Check{Name: "schema", Probe: g.probe} }

func (g *schemaGate) verify(ctx context.Context) error {
	if err := g.migrator.CheckCurrent(ctx); err != nil {
		return fmt.Errorf("check the schema: %w", err)
	}
	g.current.Store(true)
	return nil
}

func (g *schemaGate) probe(context.Context) error {
	if g.current.Load() {
		return nil
	}
	return errors.New("schema not verified")
}
