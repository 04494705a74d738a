package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/insien/orchestrator/internal/sandbox/pool"
	"github.com/insien/orchestrator/repositories"
)

// poolCommand reports the warm pools from Postgres, whichever replicas maintain them.
func poolCommand(g globalFlags, args []string) int {
	if len(args) != 1 || args[0] != "status" {
		fmt.Fprint(os.Stderr, "usage: orchestrator pool status\n")
		return 2
	}
	cfg, db, ok := openDB(g)
	if !ok {
		return 1
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	pools, err := pool.Status(ctx, repositories.NewSandboxes(db), cfg.Sandbox)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pool status:", err)
		return 1
	}
	if len(pools) == 0 {
		fmt.Println("no warm pools (sandbox.warm_pool is off or every size is 0)")
		return 0
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tTARGET\tREADY\tSTARTING\tLAST ERROR")
	for _, p := range pools {
		last := "-"
		if p.LastErrorAt != nil {
			last = p.LastErrorAt.Format(time.RFC3339) + " " + p.LastError
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", p.Image, p.Target, p.Ready, p.Starting, last)
	}
	_ = w.Flush()
	return 0
}
