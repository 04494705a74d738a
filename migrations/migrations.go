// Package migrations holds the SQL schema, embedded in the binary, and applies it with Bun's
// migrator under a Postgres advisory lock so concurrent runs are safe.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// advisoryLockKey serializes migrations across processes (an arbitrary, fixed 64-bit key).
const advisoryLockKey int64 = 0x6f72636865737472 // "orchestr"

// ErrSchemaBehind means the database lacks migrations this binary needs.
var ErrSchemaBehind = errors.New("database schema is behind this binary: run `orchestrator migrate up`")

// Migrator applies and inspects the embedded migrations.
type Migrator struct {
	db       *bun.DB
	migrator *migrate.Migrator
}

// New builds a Migrator over db.
func New(db *bun.DB) (*Migrator, error) {
	set := migrate.NewMigrations()
	if err := set.Discover(files); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &Migrator{db: db, migrator: migrate.NewMigrator(db, set, migrate.WithMarkAppliedOnSuccess(true))}, nil
}

// Up applies every pending migration and returns the names applied. Two processes running it at
// once are serialized by an advisory lock, so the second finds nothing left to do.
func (m *Migrator) Up(ctx context.Context) ([]string, error) {
	return m.run(ctx, "apply migrations", m.migrator.Migrate)
}

// Down rolls back the last applied group and returns the names rolled back.
func (m *Migrator) Down(ctx context.Context) ([]string, error) {
	return m.run(ctx, "roll back migrations", m.migrator.Rollback)
}

// run applies one direction under the lock and returns the names of the migrations it touched.
func (m *Migrator) run(ctx context.Context, op string,
	apply func(context.Context, ...migrate.MigrationOption) (*migrate.MigrationGroup, error)) ([]string, error) {
	var names []string
	err := m.locked(ctx, func() error {
		group, err := apply(ctx)
		if err != nil {
			return fmt.Errorf("migrations: %s: %w", op, err)
		}
		for _, mig := range group.Migrations {
			names = append(names, mig.Name)
		}
		return nil
	})
	return names, err
}

// Status is one migration and whether it is applied.
type Status struct {
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// Status lists every known migration with its state.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	if err := m.locked(ctx, func() error { return nil }); err != nil {
		return nil, err
	}
	ms, err := m.migrator.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: read status: %w", err)
	}
	out := make([]Status, 0, len(ms))
	for _, mig := range ms {
		out = append(out, Status{Name: mig.Name, Applied: mig.IsApplied(), AppliedAt: mig.MigratedAt})
	}
	return out, nil
}

// CheckCurrent returns ErrSchemaBehind when any embedded migration is not applied. It only reads.
func (m *Migrator) CheckCurrent(ctx context.Context) error {
	var exists bool
	if err := m.db.NewRaw("SELECT to_regclass('bun_migrations') IS NOT NULL").Scan(ctx, &exists); err != nil {
		return fmt.Errorf("migrations: look for bun_migrations: %w", err)
	}
	if !exists {
		return ErrSchemaBehind
	}
	ms, err := m.migrator.MigrationsWithStatus(ctx)
	if err != nil {
		return fmt.Errorf("migrations: read status: %w", err)
	}
	if pending := ms.Unapplied(); len(pending) > 0 {
		return fmt.Errorf("%w (%d pending, first %s)", ErrSchemaBehind, len(pending), pending[0].Name)
	}
	return nil
}

// locked runs fn while holding the migration advisory lock on one dedicated connection, after
// making sure Bun's bookkeeping tables exist (creating them concurrently would race too).
func (m *Migrator) locked(ctx context.Context, fn func() error) (err error) {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", advisoryLockKey); err != nil {
		return fmt.Errorf("migrations: taking the advisory lock: %w", err)
	}
	defer func() {
		// Unlock with a fresh context: the caller's may be cancelled, and a leaked session lock
		// would block every later migration until this connection dies.
		unlockCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, uerr := conn.ExecContext(unlockCtx, "SELECT pg_advisory_unlock(?)", advisoryLockKey); uerr != nil && err == nil {
			err = fmt.Errorf("migrations: releasing the advisory lock: %w", uerr)
		}
	}()
	if err := m.migrator.Init(ctx); err != nil {
		return fmt.Errorf("migrations: create bun's tables: %w", err)
	}
	return fn()
}

var nameRE = regexp.MustCompile(`^[0-9a-z_]+$`)

// Create writes an empty pair of transactional migration files into dir and returns their paths.
func Create(dir, name string) ([]string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("migration name %q: use lowercase letters, digits and _", name)
	}
	base := time.Now().UTC().Format("20060102150405") + "_" + name
	var paths []string
	for _, direction := range []string{"up", "down"} {
		path := filepath.Join(dir, base+".tx."+direction+".sql")
		body := fmt.Sprintf("-- %s: %s migration. Separate statements with a line --bun:split\n", name, direction)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}
