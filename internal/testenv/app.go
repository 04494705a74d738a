package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/insien/orchestrator/app"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/migrations"
	"github.com/insien/orchestrator/providers"
)

// App is the whole service running in-process on a loopback port.
type App struct {
	URL    string
	fx     *fx.App
	cfg    *config.Config
	closed bool
}

// Migrate applies every migration to the configured database.
func Migrate(t testing.TB, cfg *config.Config) {
	t.Helper()
	db, err := providers.NewDB(cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := migrations.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
}

// StartApp runs the service graph for cfg (extra options can add routes or populate values) and
// stops it when the test ends.
func StartApp(t testing.TB, cfg *config.Config, extra ...fx.Option) *App {
	t.Helper()
	a, err := TryStartApp(cfg, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(t) })
	return a
}

// TryStartApp is StartApp for tests that expect start-up to fail.
func TryStartApp(cfg *config.Config, extra ...fx.Option) (*App, error) {
	var server *app.Server
	fxApp := fx.New(app.Options(cfg, append(extra, fx.Populate(&server))...))
	if err := fxApp.Err(); err != nil {
		return nil, fmt.Errorf("building the service: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fxApp.StartTimeout())
	defer cancel()
	if err := fxApp.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting the service: %w", err)
	}
	return &App{URL: "http://" + server.Addr().String(), fx: fxApp, cfg: cfg}, nil
}

// Stop shuts the service down as SIGTERM would.
func (a *App) Stop(t testing.TB) {
	t.Helper()
	if a.closed {
		return
	}
	a.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), app.StopTimeout(a.cfg))
	defer cancel()
	if err := a.fx.Stop(ctx); err != nil {
		t.Errorf("stopping the service: %v", err)
	}
}

// Response is a read HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends a request to the app and reads the whole response.
func (a *App) Do(t testing.TB, method, path, body string, headers map[string]string) Response {
	t.Helper()
	return Do(t, method, a.URL+path, body, headers)
}

// httpClient keeps as many connections alive as tests and benchmarks send requests at once, as an
// API client in production does: a burst of twenty on the default two would dial eighteen anew
// each time, and measure that instead of the service.
var httpClient = &http.Client{Timeout: 60 * time.Second, Transport: func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()}

// Do sends a request to url and reads the whole response.
func Do(t testing.TB, method, url, body string, headers map[string]string) Response {
	t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data := readChecked(t, req, resp)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(data)}
}
