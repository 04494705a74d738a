package handlers

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/identity/auth"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/interact"
)

// transferTimeout bounds one file upload or download, which may outlast the request timeout.
const transferTimeout = 10 * time.Minute

// UploadBodyLimit gives the file upload route sandbox.max_upload_bytes as its body limit in place
// of http.max_body_bytes (contributed to the engine's "body_limits" group).
func UploadBodyLimit(cfg config.Sandbox) middleware.RouteLimit {
	return middleware.RouteLimit{Method: http.MethodPut, Path: "/api/sandboxes/:id/files", Limit: cfg.MaxUploadBytes}
}

// SandboxOps serves working inside a sandbox: exec, files, logs, metrics and the terminal.
type SandboxOps struct {
	auth *auth.Authenticator
	ops  *interact.Service
	ws   *websocket.AcceptOptions
}

// NewSandboxOps builds the endpoints; the terminal accepts the browser origins CORS allows.
func NewSandboxOps(a *auth.Authenticator, ops *interact.Service, cfg config.HTTP) *SandboxOps {
	return &SandboxOps{auth: a, ops: ops, ws: websocketOptions(cfg.CORS)}
}

// Register mounts the routes under /api/sandboxes/{id}.
func (h *SandboxOps) Register(r gin.IRouter) {
	g, read, write := sandboxGroup(r, h.auth, "/api/sandboxes/:id")
	g.POST("/exec", write, h.exec)
	g.PUT("/files", write, h.writeFile)
	g.GET("/files", read, h.readFile)
	g.DELETE("/files", write, h.removeFile)
	g.GET("/files/list", read, h.listDir)
	g.GET("/logs", read, h.logs)
	g.GET("/metrics", read, h.metrics)
	g.GET("/terminal", write, h.terminal)
}

type execRequest struct {
	Cmd            []string          `json:"cmd"`
	Env            map[string]string `json:"env"`
	Cwd            string            `json:"cwd"`
	TimeoutSeconds *int              `json:"timeout_seconds"`
	Stdin          *string           `json:"stdin"`
}

// execEnd is how a command ended: the tail of the JSON answer and the stream's exit event.
type execEnd struct {
	ExitCode   int   `json:"exit_code"`
	DurationMS int64 `json:"duration_ms"`
	TimedOut   bool  `json:"timed_out"`
	Truncated  bool  `json:"truncated"`
	OOMKilled  bool  `json:"oom_killed"`
}

func toExecEnd(res runtimes.ExecResult) execEnd {
	return execEnd{ExitCode: res.ExitCode, DurationMS: res.Duration.Milliseconds(), TimedOut: res.TimedOut,
		Truncated: res.Truncated, OOMKilled: res.OOMKilled}
}

// exec runs a command. The request timeout does not apply (the command's own timeout does); a
// client that leaves kills the command. With Accept: text/event-stream the output streams.
func (h *SandboxOps) exec(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	var req execRequest
	if err := bindJSON(c, &req); err != nil {
		_ = c.Error(err)
		return
	}
	ctx := middleware.Untimed(c)
	cmd, err := h.ops.PrepareExec(ctx, auth.From(c).UserID, id, req.input())
	if err != nil {
		_ = c.Error(err)
		return
	}
	if wantsEventStream(c) {
		h.execStream(c, ctx, cmd)
		return
	}
	stdout, stderr, res, err := cmd.Collect(ctx)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if err := writeExecJSON(c.Writer, stdout, stderr, res); err != nil && ctx.Err() == nil {
		_ = c.Error(fmt.Errorf("sending the exec result: %w", err)) // the status is out: logged only
	}
}

// input is the request as the service takes it.
func (r execRequest) input() interact.ExecInput {
	return interact.ExecInput{Cmd: r.Cmd, Env: r.Env, Cwd: r.Cwd, TimeoutSeconds: r.TimeoutSeconds, Stdin: r.Stdin}
}

// execStream answers with server-sent events: stdout and stderr chunks as they come, then exit.
// The stream starts once the command runs, so a command that cannot start (a missing cwd, a
// sandbox that stopped) is answered with an error status like a JSON exec.
func (h *SandboxOps) execStream(c *gin.Context, ctx context.Context, cmd *interact.Command) {
	stream := newEventStream(c)
	defer stream.stop()
	stdout, stderr := &chunkWriter{event: "stdout", stream: stream}, &chunkWriter{event: "stderr", stream: stream}
	res, err := cmd.Run(ctx, stdout, stderr, stream.start)
	if !stream.isStarted() {
		if err != nil {
			_ = c.Error(err)
			return
		}
		stream.start()
	}
	stdout.flush()
	stderr.flush()
	if err != nil {
		stream.fail(c, ctx, err)
		return
	}
	_ = stream.send("exit", toExecEnd(res))
}

// filePath reads and checks the path query parameter.
func filePath(c *gin.Context) (string, bool) {
	p := c.Query("path")
	if err := interact.CheckPath(p); err != nil {
		_ = c.Error(err)
		return "", false
	}
	return p, true
}

// fileTarget parses the sandbox id and ?path= of a file route; on failure the error is attached.
func fileTarget(c *gin.Context) (uuid.UUID, string, bool) {
	id, ok := sandboxID(c)
	if !ok {
		return uuid.Nil, "", false
	}
	p, ok := filePath(c)
	return id, p, ok
}

// transfer is the context of a file upload or download: the request timeout does not apply,
// transferTimeout does, and the client leaving ends it.
func transfer(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(middleware.Untimed(c), transferTimeout)
}

// writeFile stores the raw request body at ?path= (parents created, ?mode= octal, default 0644).
func (h *SandboxOps) writeFile(c *gin.Context) {
	id, p, ok := fileTarget(c)
	if !ok {
		return
	}
	mode, err := interact.ParseMode(c.Query("mode"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	// The body limit middleware has applied sandbox.max_upload_bytes (UploadBodyLimit); the service
	// checks it again, so the limit holds even if the route limit is missing.
	ctx, cancel := transfer(c)
	defer cancel()
	size, err := h.ops.WriteFile(ctx, auth.From(c).UserID, id, p, mode, c.Request.Body, c.Request.ContentLength)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if mode == 0 {
		mode = 0o644
	}
	c.JSON(http.StatusOK, gin.H{"path": p, "size": size, "mode": fmt.Sprintf("%04o", mode.Perm())})
}

// readFile sends the file at ?path= byte for byte.
func (h *SandboxOps) readFile(c *gin.Context) {
	id, p, ok := fileTarget(c)
	if !ok {
		return
	}
	ctx, cancel := transfer(c)
	defer cancel()
	r, info, err := h.ops.OpenFile(ctx, auth.From(c).UserID, id, p)
	if err != nil {
		_ = c.Error(err)
		return
	}
	defer r.Close() // the helper in the sandbox ends with it, however the transfer ended
	hdr := c.Writer.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": info.Name}))
	hdr.Set("Last-Modified", info.ModifiedAt.UTC().Format(http.TimeFormat))
	if info.Size < 0 {
		// A kernel pseudo file (/proc, /sys): its length is known once read, up to
		// runtimes.PseudoFileLimit; the body is streamed without a Content-Length.
		c.Status(http.StatusOK)
		if _, err := io.Copy(c.Writer, r); err != nil && ctx.Err() == nil {
			_ = c.Error(fmt.Errorf("sending %s: %w", p, err))
		}
		return
	}
	hdr.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	c.Status(http.StatusOK)
	if _, err := io.CopyN(c.Writer, r, info.Size); err != nil && ctx.Err() == nil {
		// The headers are out: the short body (against Content-Length) tells the client; log why.
		_ = c.Error(fmt.Errorf("sending %s: %w", p, err))
	}
}

// removeFile deletes the file at ?path= (?recursive=true for a directory and its content).
func (h *SandboxOps) removeFile(c *gin.Context) {
	id, p, ok := fileTarget(c)
	if !ok {
		return
	}
	recursive, ok := boolQuery(c, "recursive")
	if !ok {
		return
	}
	if err := h.ops.RemoveFile(c.Request.Context(), auth.From(c).UserID, id, p, recursive); err != nil {
		_ = c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}

type fileEntry struct {
	Name       string    `json:"name"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	Mode       string    `json:"mode"`
	Type       string    `json:"type"`
	IsDir      bool      `json:"is_dir"`
	ModifiedAt time.Time `json:"modified_at"`
}

// listDir describes the entries of the directory at ?path=, sorted by name.
func (h *SandboxOps) listDir(c *gin.Context) {
	id, p, ok := fileTarget(c)
	if !ok {
		return
	}
	infos, err := h.ops.ListDir(c.Request.Context(), auth.From(c).UserID, id, p)
	if err != nil {
		_ = c.Error(err)
		return
	}
	entries := make([]fileEntry, 0, len(infos))
	for _, fi := range infos {
		entries = append(entries, fileEntry{Name: fi.Name, Path: fi.Path, Size: fi.Size, Mode: fmt.Sprintf("%04o", fi.Mode.Perm()),
			Type: interact.FileType(fi.Mode), IsDir: fi.IsDir, ModifiedAt: fi.ModifiedAt})
	}
	c.JSON(http.StatusOK, gin.H{"path": p, "entries": entries})
}

func boolQuery(c *gin.Context, name string) (value, ok bool) {
	raw := c.Query(name)
	if raw == "" {
		return false, true
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		_ = c.Error(apierror.Invalid(name, "%s must be true or false", name))
		return false, false
	}
	return v, true
}

type logLine struct {
	Stream   string     `json:"stream"`
	Text     string     `json:"text"`
	Encoding string     `json:"encoding"`
	At       *time.Time `json:"at"`
}

func toLogLine(l interact.LogLine) logLine {
	text, enc := encode(l.Text)
	out := logLine{Stream: l.Stream, Text: text, Encoding: enc}
	if !l.At.IsZero() {
		out.At = &l.At
	}
	return out
}

// logs answers with the main process's output as JSON lines, or follows it as server-sent events.
func (h *SandboxOps) logs(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	in := interact.LogsInput{Tail: -1}
	if raw := c.Query("tail"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			_ = c.Error(apierror.Invalid("tail", "tail must be a number of lines, 0 or more"))
			return
		}
		in.Tail = n
	}
	if raw := c.Query("since"); raw != "" {
		t, err := parseSince(raw)
		if err != nil {
			_ = c.Error(err)
			return
		}
		in.Since = t
	}
	if in.Follow, ok = boolQuery(c, "follow"); !ok {
		return
	}
	ctx := c.Request.Context()
	if in.Follow {
		ctx = middleware.Untimed(c)
	}
	logs, err := h.ops.PrepareLogs(ctx, auth.From(c).UserID, id, in)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if !in.Follow {
		lines := []logLine{}
		err := logs.Run(ctx, func(l interact.LogLine) error {
			lines = append(lines, toLogLine(l))
			return nil
		})
		if err != nil {
			_ = c.Error(err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"lines": lines})
		return
	}
	stream := startEventStream(c)
	defer stream.stop()
	err = logs.Run(ctx, func(l interact.LogLine) error { return stream.send(l.Stream, toLogLine(l)) })
	if err != nil {
		stream.fail(c, ctx, err)
		return
	}
	_ = stream.send("end", gin.H{"reason": "the sandbox stopped"})
}

// parseSince reads RFC 3339 or Unix seconds (with an optional fraction).
func parseSince(raw string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t, nil
	}
	if secs, err := strconv.ParseFloat(raw, 64); err == nil && secs >= 0 && secs < 1e11 {
		whole := int64(secs)
		return time.Unix(whole, int64((secs-float64(whole))*1e9)), nil
	}
	return time.Time{}, apierror.Invalid("since", "since must be an RFC 3339 time or Unix seconds")
}

// metrics samples the sandbox's resource use.
func (h *SandboxOps) metrics(c *gin.Context) {
	id, ok := sandboxID(c)
	if !ok {
		return
	}
	st, err := h.ops.Metrics(c.Request.Context(), auth.From(c).UserID, id)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"cpu_percent": st.CPUPercent, "memory_bytes": st.MemoryBytes,
		"memory_limit_bytes": st.MemoryLimitBytes, "pids": st.Pids, "at": st.At})
}
