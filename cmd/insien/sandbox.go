package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/insien/orchestrator/sdk/go/api"
	"github.com/insien/orchestrator/sdk/go/client"
)

func (c *cli) sandboxCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "sandbox",
		Aliases: []string{"sandboxes", "sb"},
		Short:   "Create, list, inspect, pause, resume and remove sandboxes",
	})
	cmd.AddCommand(c.sandboxCreate(), c.sandboxList(), c.sandboxGet(), c.sandboxRemove(),
		c.sandboxPause(), c.sandboxResume(), c.sandboxTimeout())
	return cmd
}

func (c *cli) sandboxCreate() *cobra.Command {
	var (
		image, template, timeout string
		cpu                      float64
		memoryMB, diskMB         int
		env, metadata            []string
		autoExtend, quiet        bool
	)
	cmd := &cobra.Command{
		Use:   "create [flags] [-- command args...]",
		Short: "Create a sandbox and wait until it runs",
		Long: `create starts a sandbox and prints it once it runs. Everything is optional: the service's default
image, its timeout (300 s) and its limits apply. A command after -- replaces the image's main process.`,
		Example: `  insien sandbox create
  id=$(insien sandbox create -q --timeout 30m -e TOKEN=s3cret -m team=ml)
  insien sandbox create --image insien/sandbox:busybox --cpu 0.5 --memory 256 -- sh -c 'sleep infinity'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var p client.CreateSandboxParams
			set := cmd.Flags().Changed
			if set("image") {
				p.Image = &image
			}
			if set("template") {
				p.Template = &template
			}
			if set("timeout") {
				secs, err := parseSeconds(timeout)
				if err != nil {
					return usageError{fmt.Errorf("--timeout: %w", err)}
				}
				p.TimeoutSeconds = &secs
			}
			if set("cpu") {
				v := float32(cpu)
				p.Cpu = &v
			}
			if set("memory") {
				p.MemoryMb = &memoryMB
			}
			if set("disk") {
				p.DiskMb = &diskMB
			}
			if set("auto-extend") {
				p.AutoExtend = &autoExtend
			}
			if len(env) > 0 {
				m, err := parsePairs(env, true)
				if err != nil {
					return usageError{fmt.Errorf("--env: %w", err)}
				}
				p.Env = &m
			}
			if len(metadata) > 0 {
				m, err := parsePairs(metadata, false)
				if err != nil {
					return usageError{fmt.Errorf("--metadata: %w", err)}
				}
				p.Metadata = &m
			}
			if len(args) > 0 {
				p.Command = &args
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			spin := c.startSpinner("Creating sandbox")
			sb, err := cl.Sandboxes.Create(cmd.Context(), p)
			spin.Stop()
			if err != nil {
				return fmt.Errorf("creating the sandbox: %w", err)
			}
			switch {
			case c.json:
				return c.printJSON(sb.Raw)
			case quiet:
				_, err := fmt.Fprintln(c.stdout, sb.ID)
				return err
			}
			return c.sandboxDetail(sb)
		},
	}
	f := cmd.Flags()
	f.StringVar(&image, "image", "", "image to run (one the service allows; default its default image)")
	f.StringVar(&template, "template", "", "id or name of one of your ready templates, instead of --image")
	f.StringVar(&timeout, "timeout", "", "lifetime before it expires, e.g. 10m or 600 (seconds; default 300)")
	f.Float64Var(&cpu, "cpu", 0, "CPU cores, e.g. 0.5")
	f.IntVar(&memoryMB, "memory", 0, "memory limit in MiB")
	f.IntVar(&diskMB, "disk", 0, "disk limit in MiB")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable NAME=value, or NAME to pass the local value (repeatable)")
	f.StringArrayVarP(&metadata, "metadata", "m", nil, "metadata key=value to find it by later (repeatable)")
	f.BoolVar(&autoExtend, "auto-extend", true, "activity (exec, files, connections) pushes its expiry forward")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the sandbox's id")
	return cmd
}

func (c *cli) sandboxList() *cobra.Command {
	var (
		status   string
		metadata []string
		limit    int
		quiet    bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List your sandboxes, newest first",
		Example: `  insien sandbox ls
  insien sandbox ls --status running -m team=ml
  insien sandbox ls -q | xargs -r insien sandbox rm`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := client.ListSandboxesOptions{Status: status, Limit: limit}
			if len(metadata) > 0 {
				m, err := parsePairs(metadata, false)
				if err != nil {
					return usageError{fmt.Errorf("--metadata: %w", err)}
				}
				opts.Metadata = m
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			var list []*client.Sandbox
			for sb, err := range cl.Sandboxes.List(cmd.Context(), opts) {
				if err != nil {
					return fmt.Errorf("listing sandboxes: %w", err)
				}
				list = append(list, sb)
			}
			switch {
			case c.json:
				raw := make([]api.Sandbox, 0, len(list))
				for _, sb := range list {
					raw = append(raw, sb.Raw)
				}
				return c.printJSON(raw)
			case quiet:
				for _, sb := range list {
					fmt.Fprintln(c.stdout, sb.ID)
				}
				return nil
			}
			rows := make([][]string, 0, len(list))
			for _, sb := range list {
				rows = append(rows, []string{sb.ID, sb.Status, sb.Image, ago(sb.CreatedAt), expiry(sb), first(pairs(sb.Metadata), "-")})
			}
			return c.table([]string{"ID", "STATUS", "IMAGE", "CREATED", "EXPIRES", "METADATA"}, rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only sandboxes in this state: pending, running, paused, stopping, stopped, failed, expired")
	f.StringArrayVarP(&metadata, "metadata", "m", nil, "only sandboxes whose metadata has key=value (repeatable)")
	f.IntVar(&limit, "limit", 0, "at most this many (default all)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the ids")
	return cmd
}

func (c *cli) sandboxGet() *cobra.Command {
	return &cobra.Command{
		Use:               "get <id>",
		Aliases:           []string{"inspect", "show"},
		Short:             "Show one sandbox",
		Args:              exactArgs(1, "a sandbox id"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			sb, err := cl.Sandboxes.Get(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("getting sandbox %s: %w", args[0], err)
			}
			if c.json {
				return c.printJSON(sb.Raw)
			}
			return c.sandboxDetail(sb)
		},
	}
}

func (c *cli) sandboxRemove() *cobra.Command {
	return &cobra.Command{
		Use:               "rm <id>...",
		Aliases:           []string{"delete", "kill"},
		Short:             "Remove sandboxes (their processes are killed, their files gone)",
		Args:              minArgs(1, "at least one sandbox id"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			removed := []string{}
			var failed error
			for _, id := range args {
				spin := c.startSpinner("Removing " + id)
				err := cl.Sandboxes.Connect(id).Delete(cmd.Context())
				spin.Stop()
				if err != nil {
					// go on with the others, as rm does; the first failure decides the exit code
					fmt.Fprintf(c.stderr, "insien: removing %s: %s\n", id, describe(err))
					failed = exitError{exitFailure}
					continue
				}
				removed = append(removed, id)
				if !c.json {
					fmt.Fprintln(c.stdout, id)
				}
			}
			if c.json {
				if err := c.printJSON(map[string]any{"removed": removed}); err != nil {
					return err
				}
			}
			return failed
		},
	}
}

// sandboxAction is pause, resume and timeout: one call on a sandbox, then the sandbox as it is now.
func (c *cli) sandboxAction(use, short, doing, done string, args cobra.PositionalArgs,
	act func(ctx context.Context, sb *client.Sandbox, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              args,
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			sb := cl.Sandboxes.Connect(args[0])
			spin := c.startSpinner(strings.ToUpper(doing[:1]) + doing[1:] + " " + args[0])
			err = act(cmd.Context(), sb, args)
			spin.Stop()
			if err != nil {
				return fmt.Errorf("%s %s: %w", doing, args[0], err)
			}
			if sb.Status == "" { // the answer carried no sandbox: read it
				if err := sb.Refresh(cmd.Context()); err != nil {
					return fmt.Errorf("reading sandbox %s: %w", args[0], err)
				}
			}
			if c.json {
				return c.printJSON(sb.Raw)
			}
			_, err = fmt.Fprintf(c.stdout, "%s %s (%s, expires %s)\n", done, sb.ID, sb.Status, expiry(sb))
			return err
		},
	}
}

func (c *cli) sandboxPause() *cobra.Command {
	return c.sandboxAction("pause <id>", "Freeze every process of a sandbox", "pausing", "Paused", exactArgs(1, "a sandbox id"),
		func(ctx context.Context, sb *client.Sandbox, _ []string) error { return sb.Pause(ctx) })
}

func (c *cli) sandboxResume() *cobra.Command {
	return c.sandboxAction("resume <id>", "Resume a paused sandbox", "resuming", "Resumed", exactArgs(1, "a sandbox id"),
		func(ctx context.Context, sb *client.Sandbox, _ []string) error { return sb.Resume(ctx) })
}

func (c *cli) sandboxTimeout() *cobra.Command {
	args := func(cmd *cobra.Command, args []string) error {
		if err := exactArgs(2, "a sandbox id and a duration")(cmd, args); err != nil {
			return err
		}
		if _, err := parseSeconds(args[1]); err != nil {
			return usageError{fmt.Errorf("duration: %w", err)}
		}
		return nil
	}
	cmd := c.sandboxAction("timeout <id> <duration>", "Set when a sandbox expires: this long from now", "setting the timeout of", "Timeout set:", args,
		func(ctx context.Context, sb *client.Sandbox, args []string) error {
			secs, _ := parseSeconds(args[1]) // checked by Args
			return sb.SetTimeout(ctx, time.Duration(secs)*time.Second)
		})
	cmd.Long = `timeout moves the sandbox's expiry to now + the duration (e.g. 30m, 2h, or 600 seconds), at most
the service's maximum lifetime counted from the sandbox's creation.`
	cmd.Example = "  insien sandbox timeout $id 1h"
	return cmd
}

// sandboxDetail prints one sandbox as "field: value" lines.
func (c *cli) sandboxDetail(sb *client.Sandbox) error {
	rows := [][]string{
		{"ID:", sb.ID},
		{"Status:", sb.Status},
		{"Image:", sb.Image},
	}
	add := func(name, value string) {
		if value != "" {
			rows = append(rows, []string{name + ":", value})
		}
	}
	add("Command", strings.Join(sb.Command, " "))
	add("Start", sb.Start)
	add("CPU", strconv.FormatFloat(sb.CPU, 'f', -1, 64))
	if sb.MemoryMB > 0 {
		add("Memory", fmt.Sprintf("%d MiB", sb.MemoryMB))
	}
	if sb.DiskMB > 0 {
		add("Disk", fmt.Sprintf("%d MiB", sb.DiskMB))
	}
	add("Timeout", (time.Duration(sb.TimeoutSeconds) * time.Second).String())
	add("Auto extend", strconv.FormatBool(sb.AutoExtend))
	add("Env", strings.Join(sb.EnvNames, " "))
	add("Metadata", pairs(sb.Metadata))
	add("Created", stamp(sb.CreatedAt))
	if sb.StartedAt != nil {
		add("Started", stamp(*sb.StartedAt))
	}
	if sb.PausedAt != nil {
		add("Paused", stamp(*sb.PausedAt))
	}
	if sb.EndedAt == nil {
		add("Expires", stamp(sb.ExpiresAt))
	} else {
		add("Ended", stamp(*sb.EndedAt))
		add("End reason", sb.EndReason)
	}
	if sb.ExitCode != nil {
		add("Exit code", strconv.Itoa(*sb.ExitCode))
	}
	if sb.Raw.ActiveConnections != nil {
		add("Connections", strconv.Itoa(*sb.Raw.ActiveConnections))
	}
	w := tabwriterFor(c.stdout)
	for _, row := range rows {
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the sandbox: %w", err)
	}
	return nil
}

// expiry is when a sandbox expires, or how it ended.
func expiry(sb *client.Sandbox) string {
	if sb.EndedAt != nil {
		return "ended " + ago(*sb.EndedAt)
	}
	return until(sb.ExpiresAt)
}

// stamp is a time in the local zone with how far it is from now.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	rel := ago(t)
	if t.After(time.Now()) {
		rel = until(t)
	}
	return t.Local().Format(time.DateTime) + " (" + rel + ")"
}

// pairs is metadata as sorted key=value words.
func pairs(m map[string]string) string {
	words := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		words = append(words, k+"="+m[k])
	}
	return strings.Join(words, ",")
}

// parsePairs reads repeated NAME=value flags; with fromEnv, a bare NAME takes the local
// environment's value (as docker run -e does).
func parsePairs(list []string, fromEnv bool) (map[string]string, error) {
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok && fromEnv {
			v, ok = os.LookupEnv(k)
			if !ok {
				return nil, fmt.Errorf("%s is not set here (write %s=value)", k, k)
			}
		}
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

// parseSeconds reads a duration as Go writes them (90s, 10m, 1h30m) or as whole seconds.
func parseSeconds(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("%q is not a positive number of seconds", s)
		}
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d%time.Second != 0 {
		return 0, fmt.Errorf("%q is not a duration in whole seconds (e.g. 90s, 10m, 1h, 600)", s)
	}
	return int(d / time.Second), nil
}

// completeSandboxes completes a sandbox id with the caller's live sandboxes (status and image as
// the description); no completion when the API cannot be reached.
func (c *cli) completeSandboxes(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if cmd.Name() != "rm" && len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := c.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var ids []string
	for sb, err := range cl.Sandboxes.List(cmd.Context(), client.ListSandboxesOptions{Limit: 100}) {
		if err != nil {
			break
		}
		if sb.EndedAt == nil {
			ids = append(ids, sb.ID+"\t"+sb.Status+" "+sb.Image)
		}
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}
