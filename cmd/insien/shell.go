package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/insien/orchestrator/sdk/go/client"
)

// ctrlD ends a remote shell's input when local standard input (not a terminal) ends.
const ctrlD = 0x04

// ctrlDEvery is how often Ctrl-D is sent again while the remote command has not ended.
const ctrlDEvery = 500 * time.Millisecond

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
			done := make(chan struct{})
			go c.sendInput(t, inTTY, done)
			_, copyErr := io.Copy(c.stdout, t)
			close(done)
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

// sendInput copies standard input to the terminal until it ends (a Read on stdin cannot be
// cancelled: with a terminal, this goroutine ends with the process). Piped input's end is sent as
// Ctrl-D, and again every ctrlDEvery until done: input that arrives before the remote shell has
// set up its line editing is read in canonical mode, where the first Ctrl-D is taken as the end
// of a read that then never comes, so the shell would wait for ever.
func (c *cli) sendInput(t *client.Terminal, inTTY bool, done <-chan struct{}) {
	if _, err := io.Copy(t, c.stdin); err != nil || inTTY {
		return
	}
	tick := time.NewTicker(ctrlDEvery)
	defer tick.Stop()
	for {
		if _, err := t.Write([]byte{ctrlD}); err != nil {
			return
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}
