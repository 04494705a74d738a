package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/insien/orchestrator/migrations"
)

// migrateCommand runs `migrate up|down|status|create NAME` without starting the service.
func migrateCommand(g globalFlags, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, "usage: orchestrator migrate up|down|status|create NAME\n")
		return 2
	}
	if args[0] == "create" {
		if len(args) != 2 {
			fmt.Fprint(os.Stderr, "usage: orchestrator migrate create NAME\n")
			return 2
		}
		paths, err := migrations.Create("migrations", args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "migrate create:", err)
			return 1
		}
		for _, p := range paths {
			fmt.Println("created", p)
		}
		return 0
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

	switch args[0] {
	case "up":
		applied, err := m.Up(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "migrate up:", err)
			return 1
		}
		if len(applied) == 0 {
			fmt.Println("database is up to date")
		}
		for _, name := range applied {
			fmt.Println("applied", name)
		}
	case "down":
		rolled, err := m.Down(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "migrate down:", err)
			return 1
		}
		if len(rolled) == 0 {
			fmt.Println("nothing to roll back")
		}
		for _, name := range rolled {
			fmt.Println("rolled back", name)
		}
	case "status":
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
	default:
		fmt.Fprintf(os.Stderr, "unknown migrate command %q (up, down, status, create NAME)\n", args[0])
		return 2
	}
	return 0
}
