package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/insien/orchestrator/sdk/go/client"
)

// Exit codes: 0 success, 1 a failure (the API's error, a local one), 2 a usage error, 130 when
// interrupted; exec and shell exit with the remote command's own code.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// cli is one invocation: its streams, the global flags, and whether cobra got as far as running
// a command (an error before that is a usage error).
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	apiKey, apiURL string
	json           bool

	started bool
}

// run executes the command line args with the given streams and returns the process's exit code;
// main passes the real ones, tests their own.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // after the first Ctrl-C, a second one kills at once
		<-ctx.Done()
		stop()
	}()
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	return c.exitCode(cmd, err)
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "insien",
		Short: "Run commands in insien sandboxes",
		Long: `insien manages sandboxes of an insien orchestrator: create them, run commands and shells in
them, copy files in and out, follow their logs, and manage API keys.

Credentials and endpoint, first found wins: --api-key/--api-url, then INSIEN_API_KEY/INSIEN_API_URL,
then what 'insien login' stored.`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			c.started = true
			return nil
		},
	}
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	flags := root.PersistentFlags()
	flags.StringVar(&c.apiKey, "api-key", "", "API key (isk_...), or a Clerk session token for 'insien keys'")
	flags.StringVar(&c.apiURL, "api-url", "", "the API's base URL (default $INSIEN_API_URL, the stored login's, else http://localhost:3000)")
	flags.BoolVar(&c.json, "json", false, "print JSON (for scripts) instead of tables")
	root.AddCommand(
		c.loginCommand(), c.logoutCommand(),
		c.sandboxCommand(),
		c.execCommand(), c.shellCommand(), c.cpCommand(), c.logsCommand(),
		c.keysCommand(),
	)
	// cobra's own completion command (bash, zsh, fish, powershell; it writes to the streams set
	// above), added now rather than when executing so that an unknown shell is a usage error
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "completion" {
			group(cmd)
		}
	}
	return root
}

// usageError is a command line that cannot be run as written: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError ends the process with a remote command's exit code; its message, if any, is already
// printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

// exitCode prints err for a person and maps it to the process's exit code.
func (c *cli) exitCode(cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	var exit exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	var usage usageError
	if errors.As(err, &usage) || !c.started {
		path := "insien"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(c.stderr, "insien: %v\nRun '%s --help' for usage.\n", err, path)
		return exitUsage
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(c.stderr, "insien: interrupted")
		return exitInterrupted
	}
	fmt.Fprintf(c.stderr, "insien: %s\n", describe(err))
	return exitFailure
}

// describe says what went wrong: the API's message with its code and request id (what an operator
// needs to find the request in the service's log), and a hint where one helps.
func describe(err error) string {
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		// the SDK's errors start "insien: " too; once is enough
		msg := strings.ReplaceAll(err.Error(), ": insien: ", ": ")
		var netErr *net.OpError
		if errors.As(err, &netErr) && netErr.Op == "dial" {
			msg += "\nIs the API running there? Its address comes from --api-url, INSIEN_API_URL or 'insien login'."
		}
		return strings.TrimPrefix(msg, "insien: ")
	}
	var b strings.Builder
	if prefix := strings.TrimSuffix(err.Error(), apiErr.Error()); prefix != "" {
		b.WriteString(prefix) // the step that failed, e.g. "copying f: "
	}
	msg := apiErr.Message
	if msg == "" {
		msg = fmt.Sprintf("the API answered %d", apiErr.StatusCode)
	}
	fmt.Fprintf(&b, "%s (%s", msg, apiErr.Code)
	if apiErr.RequestID != "" {
		fmt.Fprintf(&b, ", request id %s", apiErr.RequestID)
	}
	b.WriteString(")")
	switch apiErr.Code {
	case "session_required":
		b.WriteString("\nAPI keys cannot manage keys: this command needs a Clerk session token as the credential " +
			"(pass it with --api-key or INSIEN_API_KEY).")
	case "missing_credentials", "invalid_api_key", "api_key_revoked", "api_key_expired", "invalid_token", "token_expired":
		b.WriteString("\nCheck the credential: 'insien login', INSIEN_API_KEY or --api-key.")
	}
	return b.String()
}

// client connects with the first credential and endpoint found: flags, then the environment,
// then the stored login.
func (c *cli) client() (*client.Client, error) {
	key, url, err := c.credentials()
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, errors.New("no credentials: run 'insien login', set INSIEN_API_KEY or pass --api-key")
	}
	opts := []client.Option{client.WithUserAgent("insien-cli/" + version)}
	if url != "" { // else the SDK's default
		opts = append(opts, client.WithBaseURL(url))
	}
	cl, err := client.New(key, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the API client: %w", err)
	}
	return cl, nil
}

// credentials resolves the key and the endpoint separately, each by the same precedence.
func (c *cli) credentials() (key, url string, err error) {
	key = first(c.apiKey, os.Getenv("INSIEN_API_KEY"))
	url = first(c.apiURL, os.Getenv("INSIEN_API_URL"))
	if key == "" || url == "" {
		stored, err := loadLogin()
		if err != nil {
			return "", "", err
		}
		key = first(key, stored.APIKey)
		url = first(url, stored.APIURL)
	}
	return key, url, nil
}

func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// printJSON writes v indented, for scripts.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// table writes rows under a header, in aligned columns.
func (c *cli) table(header []string, rows [][]string) error {
	w := tabwriterFor(c.stdout)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, row := range rows {
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return nil
}

// isTerminal reports whether a stream is a terminal, and its descriptor.
func isTerminal(stream any) (int, bool) {
	f, ok := stream.(*os.File)
	if !ok {
		return -1, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// exactArgs is cobra.ExactArgs whose failure is a usage error naming what is missing.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("expected %s, got %d argument(s)", names, len(args))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs whose failure is a usage error naming what is missing.
func minArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("expected %s", names)
		}
		return nil
	}
}

// group is a command that only holds subcommands: alone it prints its help, with an unknown
// subcommand it is a usage error (cobra would print the help and exit 0).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd
}

// tabwriterFor aligns tab-separated columns three spaces apart.
func tabwriterFor(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0) }
