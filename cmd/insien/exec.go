package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/insien/orchestrator/sdk/go/client"
)

// maxExecStdin is what the API accepts as a command's standard input.
const maxExecStdin = 1 << 20

func (c *cli) execCommand() *cobra.Command {
	var (
		env          []string
		cwd, timeout string
		stdin        bool
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] <id> [--] command [args...]",
		Short: "Run a command in a sandbox, streaming its output; exits with its exit code",
		Long: `exec runs a command (an argv, no shell unless you ask for one) in a running sandbox. Its stdout and
stderr reach yours as they are written, and insien exits with the command's exit code. Flags go
before the sandbox id; everything after the id is the command. With --json the output is
collected and printed as one JSON object instead.`,
		Example: `  insien exec $id -- echo hello
  insien exec $id -- sh -c 'echo out; echo err >&2; exit 3'; echo $?   # 3
  insien exec -w /tmp -e DEBUG=1 --timeout 5m $id -- make test
  echo data | insien exec -i $id -- wc -c`,
		Args:              minArgs(2, "a sandbox id and a command"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, argv := args[0], args[1:]
			if argv[0] == "--" {
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return usagef("no command after %s", id)
			}
			var opts []client.ExecOption
			if len(env) > 0 {
				m, err := parsePairs(env, true)
				if err != nil {
					return usageError{fmt.Errorf("--env: %w", err)}
				}
				opts = append(opts, client.WithEnv(m))
			}
			if cwd != "" {
				opts = append(opts, client.WithCwd(cwd))
			}
			if timeout != "" {
				secs, err := parseSeconds(timeout)
				if err != nil {
					return usageError{fmt.Errorf("--timeout: %w", err)}
				}
				opts = append(opts, client.WithTimeout(time.Duration(secs)*time.Second))
			}
			if stdin {
				data, err := io.ReadAll(io.LimitReader(c.stdin, maxExecStdin+1))
				if err != nil {
					return fmt.Errorf("reading standard input: %w", err)
				}
				if len(data) > maxExecStdin {
					return fmt.Errorf("standard input is larger than %s, the most exec takes: copy it in with 'insien cp' first", humanBytes(maxExecStdin))
				}
				opts = append(opts, client.WithStdin(string(data)))
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			sb := cl.Sandboxes.Connect(id)
			var result *client.ExecResult
			if c.json {
				result, err = sb.Exec(cmd.Context(), argv, opts...)
				if err != nil {
					return fmt.Errorf("running %s in %s: %w", argv[0], id, err)
				}
				if err := c.printJSON(execJSON(result)); err != nil {
					return err
				}
			} else if result, err = c.streamExec(cmd, sb, argv, opts); err != nil {
				return fmt.Errorf("running %s in %s: %w", argv[0], id, err)
			}
			return c.execExit(result)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // everything after the id belongs to the command
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable NAME=value, or NAME to pass the local value (repeatable)")
	f.StringVarP(&cwd, "workdir", "w", "", "directory to run in (absolute)")
	f.StringVar(&timeout, "timeout", "", "kill the command after this long, e.g. 30s, 5m (default the service's, 60 s)")
	f.BoolVarP(&stdin, "stdin", "i", false, "send standard input to the command (at most 1 MiB)")
	return cmd
}

// streamExec copies the command's output to stdout and stderr as its events arrive.
func (c *cli) streamExec(cmd *cobra.Command, sb *client.Sandbox, argv []string, opts []client.ExecOption) (*client.ExecResult, error) {
	var result *client.ExecResult
	for ev, err := range sb.ExecStream(cmd.Context(), argv, opts...) {
		if err != nil {
			return nil, err
		}
		switch ev.Stream {
		case client.StreamStdout:
			if _, err := c.stdout.Write(ev.Data); err != nil {
				return nil, fmt.Errorf("writing stdout: %w", err)
			}
		case client.StreamStderr:
			if _, err := c.stderr.Write(ev.Data); err != nil {
				return nil, fmt.Errorf("writing stderr: %w", err)
			}
		case client.StreamExit:
			result = ev.Result
		}
	}
	if result == nil {
		return nil, fmt.Errorf("the stream ended without the command's exit")
	}
	return result, nil
}

// execExit says on stderr what the exit code alone would hide, and ends with the command's code.
func (c *cli) execExit(r *client.ExecResult) error {
	switch {
	case r.TimedOut:
		fmt.Fprintf(c.stderr, "insien: the command timed out after %s and was killed\n", r.Duration.Round(time.Second))
	case r.OOMKilled:
		fmt.Fprintln(c.stderr, "insien: the command was killed for running out of memory (the sandbox's memory limit)")
	}
	if r.Truncated {
		fmt.Fprintln(c.stderr, "insien: output past the service's limit was dropped")
	}
	if r.ExitCode < 0 || r.ExitCode > 255 {
		fmt.Fprintf(c.stderr, "insien: the command's exit code is unknown (%d)\n", r.ExitCode)
		return exitError{exitFailure}
	}
	if r.ExitCode == 0 {
		return nil
	}
	return exitError{r.ExitCode}
}

// execResultJSON is exec --json's output: the API's ExecResult fields, output decoded.
type execResultJSON struct {
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	DurationMs int64  `json:"duration_ms"`
	TimedOut   bool   `json:"timed_out"`
	Truncated  bool   `json:"truncated"`
	OOMKilled  bool   `json:"oom_killed"`
}

func execJSON(r *client.ExecResult) execResultJSON {
	return execResultJSON{ExitCode: r.ExitCode, Stdout: r.Stdout, Stderr: r.Stderr, DurationMs: r.Duration.Milliseconds(),
		TimedOut: r.TimedOut, Truncated: r.Truncated, OOMKilled: r.OOMKilled}
}
