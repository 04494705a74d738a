package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/insien/orchestrator/sdk/go/client"
)

// ctrlD ends a remote shell's input when local standard input (not a terminal) ends.
const ctrlD = 0x04

func (c *cli) shellCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shell <id> [-- command args...]",
		Short: "Open an interactive terminal in a sandbox (default sh)",
		Long: `shell attaches this terminal to a pseudo-terminal in the sandbox running sh (or the command after
--). Keys go to the sandbox as typed (the local terminal is in raw mode: Ctrl-C reaches the remote
command), the remote terminal follows this one's size, and the local terminal is restored when the
remote command exits; insien exits with its exit code.`,
		Example: `  insien shell $id
  insien shell $id -- top`,
		Args:              minArgs(1, "a sandbox id"),
		ValidArgsFunction: c.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, argv := args[0], args[1:]
			if len(argv) > 0 && argv[0] == "--" {
				argv = argv[1:]
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			inFd, inTTY := isTerminal(c.stdin)
			sizeFd, sizeTTY := isTerminal(c.stdout)
			if !sizeTTY {
				sizeFd, sizeTTY = inFd, inTTY
			}
			opts := client.TerminalOptions{Cmd: argv}
			if sizeTTY {
				if cols, rows, err := term.GetSize(sizeFd); err == nil {
					opts.Rows, opts.Cols = rows, cols
				}
			}
			t, err := cl.Sandboxes.Connect(id).Terminal(cmd.Context(), opts)
			if err != nil {
				return fmt.Errorf("opening a terminal in %s: %w", id, err)
			}
			defer t.Close()
			if inTTY {
				state, err := term.MakeRaw(inFd)
				if err != nil {
					return fmt.Errorf("switching the terminal to raw mode: %w", err)
				}
				defer term.Restore(inFd, state)
			}
			if sizeTTY {
				stop := watchResize(sizeFd, func(rows, cols int) {
					_ = t.Resize(cmd.Context(), rows, cols) // a lost resize is redrawn by the next one
				})
				defer stop()
			}
			go func() { // ends with the process; a Read on stdin cannot be cancelled
				if _, err := io.Copy(t, c.stdin); err == nil && !inTTY {
					_, _ = t.Write([]byte{ctrlD})
				}
			}()
			_, copyErr := io.Copy(c.stdout, t)
			code, ok := t.ExitCode()
			if !ok {
				if copyErr == nil {
					copyErr = errors.New("the terminal closed without the command's exit code")
				}
				return fmt.Errorf("the terminal in %s: %w", id, copyErr)
			}
			if code == 0 {
				return nil
			}
			return exitError{code}
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}
