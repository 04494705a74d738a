package handlers_test

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// TestShutdownEndsStreams: open streams (a terminal, a followed log) do not hold shutdown hostage
// or make it fail: they are ended within the shutdown timeout and the service stops cleanly.
func TestShutdownEndsStreams(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) { c.HTTP.ShutdownTimeout = 4 * time.Second })
	u := newSandboxUser(t, id, "user_shutdown")
	sb := u.create(t, `{"command":["sh","-c","while :; do echo tick; sleep 0.2; done"]}`)
	ctx := t.Context()

	term, _, err := u.terminal(t, ctx, sb.ID, "?"+url.Values{"cmd": {"sh", "-c", "echo started; sleep 321"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, ctx, term, "started")

	req, _ := http.NewRequestWithContext(ctx, "GET", id.URL+"/api/sandboxes/"+sb.ID+"/logs?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+u.key)
	logs, err := http.DefaultClient.Do(req)
	if err != nil || logs.StatusCode != http.StatusOK {
		t.Fatalf("follow logs: %v %v", err, logs)
	}
	defer logs.Body.Close()
	lines := bufio.NewScanner(logs.Body)
	for lines.Scan() && !strings.Contains(lines.Text(), "tick") {
	}

	start := time.Now()
	id.Stop(t) // fails the test if shutdown returns an error
	if took := time.Since(start); took > 4*time.Second+2*time.Second {
		t.Errorf("shutdown took %v with a 4s shutdown timeout", took)
	}
	for lines.Scan() {
	} // the followed log ends
	if _, _, err := term.Read(ctx); err == nil {
		t.Error("the terminal is still open after shutdown")
	}
}
