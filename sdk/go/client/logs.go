package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/insien/orchestrator/sdk/go/api"
)

// LogOptions chooses which lines of the main process's output Logs yields.
type LogOptions struct {
	// Tail keeps only the last Tail lines already written; 0 means all of them.
	Tail int
	// Since keeps only lines received at or after Since; zero means from the start.
	Since time.Time
	// Follow goes on yielding lines as they are written, until the sandbox stops or ctx ends.
	Follow bool
}

// Logs yields the main process's stdout and stderr lines in the order the engine received them.
// Each line's Text is its raw bytes (the wire's base64 for non-UTF-8 lines is decoded, and
// Encoding then cleared). Without Follow the sequence ends after the lines written so far; with
// Follow it ends when the sandbox stops. An error ends it and is yielded once.
func (sb *Sandbox) Logs(ctx context.Context, opts LogOptions) iter.Seq2[api.LogLine, error] {
	return func(yield func(api.LogLine, error) bool) {
		id, err := sb.uuid()
		if err != nil {
			yield(api.LogLine{}, err)
			return
		}
		params := &api.GetSandboxLogsParams{}
		if opts.Tail > 0 {
			params.Tail = &opts.Tail
		}
		if !opts.Since.IsZero() {
			s := opts.Since.UTC().Format(time.RFC3339Nano)
			params.Since = &s
		}
		if opts.Follow {
			params.Follow = &opts.Follow
		}
		req, err := api.NewGetSandboxLogsRequest(sb.c.server(), id, params)
		if err != nil {
			yield(api.LogLine{}, fmt.Errorf("insien: building the logs request: %w", err))
			return
		}
		if !opts.Follow {
			var page api.LogLines
			if err := sb.c.doJSON(ctx, req, &page); err != nil {
				yield(api.LogLine{}, err)
				return
			}
			for _, l := range deref(page.Lines) {
				l, err := decodeLogLine(l)
				if !yield(l, err) || err != nil {
					return
				}
			}
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		resp, err := sb.c.do(ctx, req)
		if err != nil {
			yield(api.LogLine{}, err)
			return
		}
		defer resp.Body.Close()
		for ev, err := range readEvents(resp.Body) {
			if err != nil {
				yield(api.LogLine{}, requestFailed("reading the log stream", streamError(ctx, err)))
				return
			}
			switch ev.name {
			case "stdout", "stderr":
				var l api.LogLine
				if err := json.Unmarshal(ev.data, &l); err != nil {
					yield(api.LogLine{}, fmt.Errorf("insien: reading a log event: %w", err))
					return
				}
				l, err := decodeLogLine(l)
				if !yield(l, err) || err != nil {
					return
				}
			case "end":
				return
			case "error":
				yield(api.LogLine{}, wireError(0, ev.data))
				return
			}
		}
		yield(api.LogLine{}, requestFailed("reading the log stream",
			fmt.Errorf("the stream ended without its end event: %w", io.ErrUnexpectedEOF)))
	}
}

// decodeLogLine puts a base64 line's bytes in Text.
func decodeLogLine(l api.LogLine) (api.LogLine, error) {
	if l.Encoding == nil || *l.Encoding != "base64" {
		return l, nil
	}
	text, err := decodeOutput(deref(l.Text), "base64")
	if err != nil {
		return l, fmt.Errorf("insien: decoding a log line: %w", err)
	}
	l.Text, l.Encoding = &text, nil
	return l, nil
}
