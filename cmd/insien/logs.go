package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/insien/orchestrator/sdk/go/client"
)

func (c *cli) logsCommand() *cobra.Command {
	var (
		follow, timestamps bool
		tail               int
		since              string
	)
	cmd := &cobra.Command{
		Use:   "logs [flags] <id>",
		Short: "Print a sandbox's main process output; -f follows it until the sandbox stops",
		Long: `logs prints what the sandbox's main process wrote, its stdout lines on stdout and its stderr lines
on stderr. With -f it keeps printing new lines until the sandbox stops (or Ctrl-C). With --json
each line is one JSON object (at, stream, text) on stdout.`,
		Example: `  insien logs $id
  insien logs -f --tail 20 $id
  insien logs --since 10m -t $id`,
		Args:              exactArgs(1, "a sandbox id"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := client.LogOptions{Tail: tail, Follow: follow}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return usageError{fmt.Errorf("--since: %w", err)}
				}
				opts.Since = t
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			sb := cl.Sandboxes.Connect(args[0])
			enc := json.NewEncoder(c.stdout)
			enc.SetEscapeHTML(false)
			for line, err := range sb.Logs(cmd.Context(), opts) {
				if err != nil {
					return fmt.Errorf("reading the logs of %s: %w", args[0], err)
				}
				if c.json {
					if err := enc.Encode(line); err != nil {
						return fmt.Errorf("writing JSON: %w", err)
					}
					continue
				}
				w := c.stdout
				if line.Stream != nil && *line.Stream == "stderr" {
					w = c.stderr
				}
				text := ""
				if line.Text != nil {
					text = *line.Text
				}
				if timestamps && line.At != nil {
					text = line.At.Local().Format(time.RFC3339Nano) + " " + text
				}
				if _, err := fmt.Fprintln(w, text); err != nil {
					return fmt.Errorf("writing the logs: %w", err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the sandbox stops")
	f.IntVar(&tail, "tail", 0, "only the last N lines (default all)")
	f.StringVar(&since, "since", "", "only lines since a time (RFC 3339, Unix seconds) or a duration ago (10m)")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with when it was written")
	return cmd
}

// parseSince reads --since: RFC 3339, Unix seconds, or a duration back from now.
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339 or Unix seconds) or a duration (10m)", s)
}
