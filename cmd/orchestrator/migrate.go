package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/insien/orchestrator/migrations"
)

// direction is `migrate up` or `migrate down`: what it runs and how it reports the migrations
// it touched.
type direction struct {
	run  func(*migrations.Migrator, context.Context) ([]string, error)
	none string // printed when it touched none
	verb string // printed before the name of each one it touched
}

var directions = map[string]direction{
	"up":   {run: (*migrations.Migrator).Up, none: "database is up to date", verb: "applied"},
	"down": {run: (*migrations.Migrator).Down, none: "nothing to roll back", verb: "rolled back"},
}

// migrateCommand runs `migrate up|down|status|create NAME` without starting the service.
func migrateCommand(g globalFlags, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, "usage: orchestrator migrate up|down|status|create NAME\n")
		return 2
	}
	if args[0] == "create" {
		return migrateCreate(args[1:])
	}
	_, db, ok := openDB(g)
	if !ok {
		return 1
	}
	defer db.Close()
	m, err := migrations.New(db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if d, ok := directions[args[0]]; ok {
		return migrateDirection(ctx, m, args[0], d)
	}
	if args[0] == "status" {
		return migrateStatus(ctx, m)
	}
	fmt.Fprintf(os.Stderr, "unknown migrate command %q (up, down, status, create NAME)\n", args[0])
	return 2
}

// migrateCreate writes an empty migration pair into ./migrations.
func migrateCreate(args []string) int {
	if len(args) != 1 {
		fmt.Fprint(os.Stderr, "usage: orchestrator migrate create NAME\n")
		return 2
	}
	paths, err := migrations.Create("migrations", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate create:", err)
		return 1
	}
	for _, p := range paths {
		fmt.Println("created", p)
	}
	return 0
}

func migrateDirection(ctx context.Context, m *migrations.Migrator, name string, d direction) int {
	touched, err := d.run(m, ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "migrate %s: %v\n", name, err)
		return 1
	}
	if len(touched) == 0 {
		fmt.Println(d.none)
	}
	for _, migration := range touched {
		fmt.Println(d.verb, migration)
	}
	return 0
}

func migrateStatus(ctx context.Context, m *migrations.Migrator) int {
	statuses, err := m.Status(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate status:", err)
		return 1
	}
	for _, s := range statuses {
		state := "pending"
		if s.Applied {
			state = "applied " + s.AppliedAt.Format("2006-01-02 15:04:05Z07:00")
		}
		fmt.Printf("%-50s %s\n", s.Name, state)
	}
	return 0
}
