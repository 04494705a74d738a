package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// spinner shows that the CLI is waiting (a create, a copy) on stderr when stderr is a terminal,
// and nothing otherwise, so scripts and logs never see it.
type spinner struct {
	w       io.Writer
	message string
	bytes   *atomic.Int64 // counted bytes to show, or nil
	stop    chan struct{}
	done    sync.WaitGroup
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// startSpinner starts a spinner with message when stderr is a terminal; stop it with Stop.
func (c *cli) startSpinner(message string) *spinner {
	s := &spinner{w: c.stderr, message: message}
	if _, tty := isTerminal(c.stderr); tty {
		s.stop = make(chan struct{})
		s.done.Add(1)
		go s.spin()
	}
	return s
}

// countBytes makes the spinner show how many bytes went through r so far.
func (s *spinner) countBytes(r io.Reader) io.Reader {
	s.bytes = new(atomic.Int64)
	return countingReader{r: r, n: s.bytes}
}

func (s *spinner) spin() {
	defer s.done.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		line := spinnerFrames[i%len(spinnerFrames)] + " " + s.message
		if s.bytes != nil {
			line += " " + humanBytes(s.bytes.Load())
		}
		fmt.Fprintf(s.w, "\r\033[K%s", line)
		select {
		case <-s.stop:
			fmt.Fprint(s.w, "\r\033[K")
			return
		case <-tick.C:
		}
	}
}

// Stop clears the spinner's line; safe to call on a spinner that never ran, and more than once.
func (s *spinner) Stop() {
	if s.stop == nil {
		return
	}
	close(s.stop)
	s.done.Wait()
	s.stop = nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// humanBytes is a size for people: 512 B, 1.5 KiB, 3.2 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago is how long ago t was, for tables: "12s ago", "5m ago", "3h10m ago", "2d ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return roughDuration(time.Since(t)) + " ago"
}

// until is how long until t, for tables: "in 4m", or "5s ago" once past.
func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Until(t)
	if d < 0 {
		return roughDuration(-d) + " ago"
	}
	return "in " + roughDuration(d)
}

func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
