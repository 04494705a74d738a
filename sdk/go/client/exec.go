package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"math"
	"time"

	"github.com/insien/orchestrator/sdk/go/api"
)

// ExecOption changes how one command runs.
type ExecOption func(*api.ExecRequest)

// WithEnv adds variables to the sandbox's environment for this command (POSIX names).
func WithEnv(env map[string]string) ExecOption {
	return func(r *api.ExecRequest) { r.Env = &env }
}

// WithCwd runs the command in dir, an absolute path (400 cwd_not_found when it cannot be entered).
func WithCwd(dir string) ExecOption {
	return func(r *api.ExecRequest) { r.Cwd = &dir }
}

// WithTimeout kills the command and everything it started after d (rounded up to whole seconds;
// default 60 s, at most the service's exec_max_timeout); the result then has TimedOut set.
func WithTimeout(d time.Duration) ExecOption {
	return func(r *api.ExecRequest) {
		secs := max(int(math.Ceil(d.Seconds())), 1)
		r.TimeoutSeconds = &secs
	}
}

// WithStdin feeds s to the command's standard input, then end of file (at most 1 MiB; default
// empty).
func WithStdin(s string) ExecOption {
	return func(r *api.ExecRequest) { r.Stdin = &s }
}

// ExecResult is how a command ended. A non-zero ExitCode is a result, not an error.
type ExecResult struct {
	// ExitCode is the command's status: 128+signal when it was killed (137 on a timeout), -1 if unknown.
	ExitCode int
	// Stdout and Stderr are the output, byte for byte (binary output included); empty in the
	// result of a stream, whose events carried it.
	Stdout, Stderr string
	Duration       time.Duration
	// TimedOut: the command's timeout passed and it was killed.
	TimedOut bool
	// Truncated: output past the service's exec_output_limit was dropped.
	Truncated bool
	// OOMKilled: the kernel's OOM killer ended it (the sandbox hit its memory limit).
	OOMKilled bool
}

// The Stream of an ExecEvent.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamExit   = "exit"
)

// ExecEvent is one step of a streamed command: output on "stdout" or "stderr" (Data), then one
// "exit" (Result).
type ExecEvent struct {
	Stream string
	Data   []byte
	Result *ExecResult
}

// execRequest is the request body for cmd and opts.
func execRequest(cmd []string, opts []ExecOption) api.ExecRequest {
	r := api.ExecRequest{Cmd: cmd}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// Exec runs cmd (an argv, never a shell string: use []string{"sh", "-c", "..."} for a shell) in
// the sandbox, waits for it to end and returns its output. It is sent once, never retried: a
// command may not be safe to run twice. Cancelling ctx kills the command.
func (sb *Sandbox) Exec(ctx context.Context, cmd []string, opts ...ExecOption) (*ExecResult, error) {
	id, err := sb.uuid()
	if err != nil {
		return nil, err
	}
	r, err := sb.c.API.ExecCommandWithResponse(ctx, id, execRequest(cmd, opts))
	if err != nil {
		return nil, requestFailed("running a command in sandbox "+sb.ID, err)
	}
	if r.JSON200 == nil {
		return nil, responseError(r.HTTPResponse, r.Body)
	}
	return execResult(*r.JSON200)
}

// execResult converts the wire result, decoding base64 output.
func execResult(w api.ExecResult) (*ExecResult, error) {
	res := &ExecResult{
		ExitCode:  -1,
		Duration:  time.Duration(deref(w.DurationMs)) * time.Millisecond,
		TimedOut:  deref(w.TimedOut),
		Truncated: deref(w.Truncated),
		OOMKilled: deref(w.OomKilled),
	}
	if w.ExitCode != nil {
		res.ExitCode = *w.ExitCode
	}
	var err error
	if res.Stdout, err = decodeOutput(deref(w.Stdout), string(deref(w.StdoutEncoding))); err != nil {
		return nil, fmt.Errorf("insien: decoding stdout: %w", err)
	}
	if res.Stderr, err = decodeOutput(deref(w.Stderr), string(deref(w.StderrEncoding))); err != nil {
		return nil, fmt.Errorf("insien: decoding stderr: %w", err)
	}
	return res, nil
}

// decodeOutput undoes the wire's encoding: text that is not valid UTF-8 travels as base64.
func decodeOutput(s, encoding string) (string, error) {
	if encoding != "base64" {
		return s, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}

// ExecStream runs cmd like Exec and yields its output as it arrives: "stdout" and "stderr" events
// in the order the command wrote them (per stream), then one "exit" event with the result. The
// command starts when the loop starts; leaving the loop early (or cancelling ctx) kills it. What
// keeps it from starting (a missing cwd, a paused sandbox) is yielded as *Error, and so is an
// error the service reports mid-stream (its StatusCode is then 0: the stream had answered 200).
func (sb *Sandbox) ExecStream(ctx context.Context, cmd []string, opts ...ExecOption) iter.Seq2[ExecEvent, error] {
	return func(yield func(ExecEvent, error) bool) {
		id, err := sb.uuid()
		if err != nil {
			yield(ExecEvent{}, err)
			return
		}
		req, err := api.NewExecCommandRequest(sb.c.server(), id, execRequest(cmd, opts))
		if err != nil {
			yield(ExecEvent{}, fmt.Errorf("insien: building the exec request: %w", err))
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		resp, err := sb.c.do(ctx, req)
		if err != nil {
			yield(ExecEvent{}, err)
			return
		}
		defer resp.Body.Close()
		for ev, err := range readEvents(resp.Body) {
			if err != nil {
				yield(ExecEvent{}, requestFailed("reading the exec stream", streamError(ctx, err)))
				return
			}
			out, done, err := execEvent(ev)
			if err != nil {
				yield(ExecEvent{}, err)
				return
			}
			if out.Stream == "" {
				continue // an event this SDK does not know: newer services may add some
			}
			if !yield(out, nil) || done {
				return
			}
		}
		yield(ExecEvent{}, requestFailed("reading the exec stream", fmt.Errorf("the stream ended before the command's exit event: %w", io.ErrUnexpectedEOF)))
	}
}

// execEvent converts one server-sent event of an exec stream; done says it was the last.
func execEvent(ev sseEvent) (out ExecEvent, done bool, err error) {
	switch ev.name {
	case StreamStdout, StreamStderr:
		var chunk struct {
			Data     string `json:"data"`
			Encoding string `json:"encoding"`
		}
		if err := json.Unmarshal(ev.data, &chunk); err != nil {
			return out, false, fmt.Errorf("insien: reading a %s event: %w", ev.name, err)
		}
		text, err := decodeOutput(chunk.Data, chunk.Encoding)
		if err != nil {
			return out, false, fmt.Errorf("insien: decoding a %s event: %w", ev.name, err)
		}
		return ExecEvent{Stream: ev.name, Data: []byte(text)}, false, nil
	case StreamExit:
		var w api.ExecResult
		if err := json.Unmarshal(ev.data, &w); err != nil {
			return out, true, fmt.Errorf("insien: reading the exit event: %w", err)
		}
		res, err := execResult(w)
		if err != nil {
			return out, true, err
		}
		return ExecEvent{Stream: StreamExit, Result: res}, true, nil
	case "error":
		return out, true, wireError(0, ev.data)
	}
	return out, false, nil
}

// streamError is why reading a stream failed: the context's error when it ended (the transport's
// error then does not always say so).
func streamError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
