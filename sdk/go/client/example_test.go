package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/insien/orchestrator/sdk/go/client"
)

// The whole round: a client from $INSIEN_API_KEY and $INSIEN_API_URL, a sandbox, a command, and
// the sandbox deleted.
func Example() {
	ctx := context.Background()
	c, err := client.New("") // "" reads $INSIEN_API_KEY
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	res, err := sb.Exec(ctx, []string{"echo", "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	fmt.Println("exit code", res.ExitCode)
	// Output:
	// hello
	// exit code 0
}

// Options for a sandbox are the API's own fields; the generated types take pointers.
func ExampleSandboxService_Create() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	memory, timeout := 128, 600
	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{
		MemoryMb:       &memory,
		TimeoutSeconds: &timeout,
		Env:            &map[string]string{"GREETING": "hi"},
		Metadata:       &map[string]string{"job": "example"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	res, err := sb.Exec(ctx, []string{"sh", "-c", "echo $GREETING"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sb.Status, sb.MemoryMB, sb.Metadata["job"], sb.EnvNames)
	fmt.Print(res.Stdout)
	// Output:
	// running 128 example [GREETING]
	// hi
}

// A command that fails is a result, not an error: its exit code and stderr are in ExecResult.
func ExampleSandbox_Exec() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	res, err := sb.Exec(ctx, []string{"sh", "-c", "echo to stderr >&2; exit 3"}, client.WithCwd("/tmp"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exit %d, stderr %q\n", res.ExitCode, res.Stderr)
	// Output:
	// exit 3, stderr "to stderr\n"
}

// ExecStream yields output as the command writes it, then the result.
func ExampleSandbox_ExecStream() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	for ev, err := range sb.ExecStream(ctx, []string{"sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done"}) {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Stream {
		case client.StreamStdout, client.StreamStderr:
			fmt.Print(string(ev.Data))
		case client.StreamExit:
			fmt.Println("exit code", ev.Result.ExitCode)
		}
	}
	// Output:
	// line 1
	// line 2
	// line 3
	// exit code 0
}

// Files move byte for byte, binary included.
func ExampleFiles_Write() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	written, err := sb.Files.Write(ctx, "/tmp/data/hello.txt", strings.NewReader("hello, file\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(*written.Path, *written.Size, *written.Mode)

	r, err := sb.Files.Read(ctx, "/tmp/data/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(body))

	entries, err := sb.Files.List(ctx, "/tmp/data")
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(*e.Name, *e.Type, *e.Size)
	}
	// Output:
	// /tmp/data/hello.txt 12 0644
	// hello, file
	// hello.txt file 12
}

// A terminal is an io.ReadWriter on a pseudo-terminal: type into it, read the screen.
func ExampleSandbox_Terminal() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	term, err := sb.Terminal(ctx, client.TerminalOptions{Cmd: []string{"sh"}, Rows: 24, Cols: 80})
	if err != nil {
		log.Fatal(err)
	}
	defer term.Close()
	if _, err := io.WriteString(term, "echo $((6*7)); exit 5\n"); err != nil {
		log.Fatal(err)
	}
	screen, err := io.ReadAll(term) // until the shell exits
	if err != nil {
		log.Fatal(err)
	}
	code, _ := term.ExitCode()
	fmt.Println(bytes.Contains(screen, []byte("42\r\n")), code)
	// Output:
	// true 5
}

// Logs are the main process's output; Follow streams them as they come.
func ExampleSandbox_Logs() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{
		Command: &[]string{"sh", "-c", "echo booted; echo warning >&2; exec sleep 600"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Delete(ctx)

	for line, err := range sb.Logs(ctx, client.LogOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(*line.Stream, *line.Text)
	}
	// Unordered output:
	// stdout booted
	// stderr warning
}

// Every answer outside 2xx is *client.Error: switch on its Code, quote its RequestID.
func ExampleError() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Sandboxes.Get(ctx, "00000000-0000-4000-8000-000000000000")
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code, apiErr.RequestID != "")
	}
	// Output:
	// 404 not_found true
}

// List walks every page; filter by status and metadata.
func ExampleSandboxService_List() {
	ctx := context.Background()
	c, err := client.New("")
	if err != nil {
		log.Fatal(err)
	}
	tag := map[string]string{"example": "list"}
	for range 3 {
		sb, err := c.Sandboxes.Create(ctx, client.CreateSandboxParams{Metadata: &tag})
		if err != nil {
			log.Fatal(err)
		}
		defer sb.Delete(ctx)
	}

	n := 0
	for sb, err := range c.Sandboxes.List(ctx, client.ListSandboxesOptions{Status: "running", Metadata: tag, PageSize: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		n++
		_ = sb.ID
	}
	fmt.Println(n, "sandboxes")
	// Output:
	// 3 sandboxes
}
