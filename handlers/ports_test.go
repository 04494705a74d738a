package handlers_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/testenv"
	"github.com/insien/orchestrator/internal/testenv/clerkstub"
)

// webApp is a sandbox command serving, with no network at all: busybox's httpd on 8080 (a page,
// and a CGI script that prints the request as the app received it) and, on 9000, a server that
// switches protocols on any request and then echoes what it is sent (what a WebSocket needs of
// a proxy: an upgraded connection streamed both ways); and two hostile ones: on 9100 an app that
// never answers, on 9200 one that starts an answer and then stalls.
const webApp = `mkdir -p /tmp/www/cgi-bin
echo 'hello from the sandbox' > /tmp/www/index.html
cat > /tmp/www/cgi-bin/req <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\nSet-Cookie: app=1\r\n\r\n'
echo "method=$REQUEST_METHOD"
echo "uri=$REQUEST_URI"
echo "host=$HTTP_HOST"
env | grep '^HTTP_' | sort
if [ "$REQUEST_METHOD" = POST ]; then echo "body=$(head -c "$CONTENT_LENGTH")"; fi
EOF
chmod +x /tmp/www/cgi-bin/req
cat > /tmp/upgrade <<'EOF'
#!/bin/sh
while read -r line; do [ "$(printf %s "$line" | tr -d '\r')" = "" ] && break; done
printf 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n'
exec cat
EOF
chmod +x /tmp/upgrade
nc -ll -p 9000 -e /tmp/upgrade &
printf '#!/bin/sh\nexec sleep 3600\n' > /tmp/silent
cat > /tmp/stall <<'EOF'
#!/bin/sh
while read -r line; do [ "$(printf %s "$line" | tr -d '\r')" = "" ] && break; done
printf 'HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nstart'
exec sleep 3600
EOF
chmod +x /tmp/silent /tmp/stall
nc -ll -p 9100 -e /tmp/silent &
nc -ll -p 9200 -e /tmp/stall &
exec httpd -f -p 8080 -h /tmp/www`

func webAppBody(t testing.TB) string {
	body, err := json.Marshal(map[string]any{"command": []string{"sh", "-c", webApp}, "memory_mb": 64})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// startWebApp creates a sandbox running webApp and waits until its server answers.
func startWebApp(t *testing.T, u sandboxUser) sandbox {
	t.Helper()
	sb := u.create(t, webAppBody(t))
	t.Cleanup(func() { u.do(t, "DELETE", "/api/sandboxes/"+sb.ID, "") })
	eventually(t, "the app in the sandbox to listen", 10*time.Second, func() bool {
		return u.do(t, "GET", "/api/sandboxes/"+sb.ID+"/ports/8080/", "").Status == http.StatusOK
	})
	return sb
}

// TestPortProxy: a port inside a sandbox without network is reachable through the API, with the
// request the app expects (its own Host, none of the orchestrator's credentials) and clear
// errors when it cannot be reached.
func TestPortProxy(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		// Above the second a Kubernetes port-forward can take to end a response or start one, and
		// above what a CGI answer takes on a loaded 2-core machine running the suite.
		c.Preview.ResponseHeaderTimeout, c.Preview.IdleTimeout = 5*time.Second, 5*time.Second
	})
	u := newSandboxUser(t, id, "user_ports")
	other := newSandboxUser(t, id, "user_ports_other")
	sb := startWebApp(t, u)
	base := "/api/sandboxes/" + sb.ID + "/ports/"

	var listed struct {
		Ports []struct {
			Port     int    `json:"port"`
			Protocol string `json:"protocol"`
		} `json:"ports"`
	}
	// A view is kept up to sandbox.view_local_ttl (1 s), so a port opened since shows within it.
	eventually(t, "the sandbox to list its ports", 3*time.Second, func() bool {
		mustJSON(t, u.do(t, "GET", "/api/sandboxes/"+sb.ID, "").Body, &listed)
		return fmt.Sprint(listed.Ports) == "[{8080 tcp} {9000 tcp} {9100 tcp} {9200 tcp}]"
	})

	page := u.do(t, "GET", base+"8080/", "")
	if page.Status != http.StatusOK || page.Body != "hello from the sandbox\n" {
		t.Fatalf("GET the app's page: %d %q", page.Status, page.Body)
	}

	resp, body := u.request(t, "POST", base+"8080/cgi-bin/req?q=1", strings.NewReader("payload"), map[string]string{
		"Cookie": "__session=clerk-jwt; app_pref=dark; insien_preview=grant",
	})
	seen := string(body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST to the app: %d %s", resp.StatusCode, seen)
	}
	for _, want := range []string{"method=POST", "uri=/cgi-bin/req?q=1", "host=localhost:8080", "body=payload", "HTTP_COOKIE=app_pref=dark", "HTTP_X_FORWARDED_FOR=127.0.0.1"} {
		if !strings.Contains(seen, want+"\n") {
			t.Errorf("the app saw no %q in:\n%s", want, seen)
		}
	}
	for _, secret := range []string{u.key, "clerk-jwt", "grant", "HTTP_AUTHORIZATION"} {
		if strings.Contains(seen, secret) {
			t.Errorf("the app saw the orchestrator's credential %q:\n%s", secret, seen)
		}
	}
	if resp.Header.Get("Set-Cookie") != "app=1" {
		t.Errorf("the app's own cookie did not reach the client: %q", resp.Header.Get("Set-Cookie"))
	}
	byKeyHeader := id.Do(t, "GET", base+"8080/cgi-bin/req", "", map[string]string{"X-API-Key": u.key})
	if byKeyHeader.Status != http.StatusOK || strings.Contains(byKeyHeader.Body, u.key) || strings.Contains(byKeyHeader.Body, "HTTP_X_API_KEY") {
		t.Errorf("a request authenticated by X-API-Key: %d, the app saw:\n%s", byKeyHeader.Status, byKeyHeader.Body)
	}

	for _, tc := range []struct {
		name   string
		user   sandboxUser
		path   string
		status int
		code   string
	}{
		{"nothing listens there", u, base + "8081/", http.StatusBadGateway, "port_not_listening"},
		{"port 0", u, base + "0/", http.StatusBadRequest, "validation_failed"},
		{"port past 65535", u, base + "65536/", http.StatusBadRequest, "validation_failed"},
		{"not a number", u, base + "http/", http.StatusBadRequest, "validation_failed"},
		{"another user's sandbox", other, base + "8080/", http.StatusNotFound, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.user.do(t, "GET", tc.path, "")
			if resp.Status != tc.status || errorCode(t, resp) != tc.code {
				t.Errorf("GET %s = %d %s, want %d %s", tc.path, resp.Status, resp.Body, tc.status, tc.code)
			}
		})
	}

	t.Run("an upgraded connection streams both ways", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(id.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req, _ := http.NewRequest("GET", id.URL+base+"9000/", nil)
		req.Header.Set("Authorization", "Bearer "+u.key)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "echo")
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, req)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		for _, msg := range []string{"ping\n", "a second message\n"} {
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatal(err)
			}
			echoed, err := r.ReadString('\n')
			if err != nil || echoed != msg {
				t.Fatalf("echo of %q: %q %v", msg, echoed, err)
			}
		}
	})

	t.Run("an app that never answers", func(t *testing.T) {
		start := time.Now()
		resp := u.do(t, "GET", base+"9100/", "")
		if resp.Status != http.StatusGatewayTimeout || errorCode(t, resp) != "port_timeout" || time.Since(start) > 10*time.Second {
			t.Errorf("GET a silent app = %d %s after %s, want 504 port_timeout after about 5 s", resp.Status, resp.Body, time.Since(start))
		}
	})

	t.Run("an app that stalls mid-answer", func(t *testing.T) {
		start := time.Now()
		req, _ := http.NewRequest("GET", id.URL+base+"9200/", nil)
		req.Header.Set("Authorization", "Bearer "+u.key)
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil || string(got) != "start" || time.Since(start) > 10*time.Second {
			t.Errorf("a stalled answer: %q, %v after %s; want it cut after the idle timeout (5 s)", got, err, time.Since(start))
		}
		if health := id.Do(t, "GET", "/health", "", nil); health.Status != http.StatusOK {
			t.Errorf("the service after a hostile app: %d", health.Status)
		}
	})

	t.Run("a paused sandbox", func(t *testing.T) {
		if testenv.Driver() == "kubernetes" {
			t.Skip("the Kubernetes driver cannot pause")
		}
		if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/pause", ""); resp.Status != http.StatusOK {
			t.Fatalf("pause: %d %s", resp.Status, resp.Body)
		}
		defer u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/resume", "")
		resp := u.do(t, "GET", base+"8080/", "")
		if resp.Status != http.StatusConflict || errorCode(t, resp) != "sandbox_not_running" {
			t.Errorf("GET a paused sandbox's port = %d %s, want 409 sandbox_not_running", resp.Status, resp.Body)
		}
	})
}

// previewDo sends a request to a preview host (the Host header names it; the connection goes to
// the service) without following redirects.
func previewDo(t testing.TB, id *identity, rawURL string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", id.URL+u.RequestURI(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = u.Host
	for _, c := range cookies {
		req.AddCookie(c)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestPreviewURLs: a preview URL opens one port of one sandbox in a browser: its token is traded
// once for a cookie scoped to that host, the cookie opens the app, and revoking the sandbox's
// URLs closes every one of them. Anything else is a 404 that tells nothing.
func TestPreviewURLs(t *testing.T) {
	id := startIdentity(t, func(c *config.Config, _ *clerkstub.Server) {
		c.Preview.Domain, c.Preview.Scheme = "preview.test", "http"
	})
	u := newSandboxUser(t, id, "user_preview")
	other := func(t *testing.T) sandboxUser { return newSandboxUser(t, id, "user_preview_other") }
	sb := startWebApp(t, u)
	second := startWebApp(t, u)

	issue := func(sbID, port, body string) (string, time.Time) {
		t.Helper()
		resp := u.do(t, "POST", "/api/sandboxes/"+sbID+"/ports/"+port+"/url", body)
		if resp.Status != http.StatusCreated {
			t.Fatalf("POST url: %d %s", resp.Status, resp.Body)
		}
		var got struct {
			URL       string    `json:"url"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		mustJSON(t, resp.Body, &got)
		return got.URL, got.ExpiresAt
	}
	link, expires := issue(sb.ID, "8080", `{"expires_in_seconds":600}`)
	if !strings.HasPrefix(link, "http://8080-"+sb.ID+".preview.test/?insien_preview_token=") {
		t.Fatalf("preview URL %q", link)
	}
	if d := time.Until(expires); d < 9*time.Minute || d > 10*time.Minute {
		t.Errorf("expires_at %s is not 600 s from now", expires)
	}

	exchange := previewDo(t, id, link)
	if exchange.StatusCode != http.StatusSeeOther || exchange.Header.Get("Location") != "/" {
		t.Fatalf("opening the URL: %d, Location %q", exchange.StatusCode, exchange.Header.Get("Location"))
	}
	var grant *http.Cookie
	for _, c := range exchange.Cookies() {
		if c.Name == "insien_preview" {
			grant = c
		}
	}
	if grant == nil || !grant.HttpOnly || grant.Domain != "" || grant.Path != "/" {
		t.Fatalf("the token was not traded for a host-only HttpOnly cookie: %+v", exchange.Header.Values("Set-Cookie"))
	}
	host := "http://8080-" + sb.ID + ".preview.test"
	page := previewDo(t, id, host+"/", grant)
	if body := readBody(t, page); page.StatusCode != http.StatusOK || body != "hello from the sandbox\n" {
		t.Fatalf("the app through its preview host: %d %q", page.StatusCode, body)
	}
	if csp := page.Header.Get("Content-Security-Policy"); csp != "" {
		t.Errorf("the API's security headers reached the app's page: %q", csp)
	}
	seen := readBody(t, previewDo(t, id, host+"/cgi-bin/req", grant))
	if !strings.Contains(seen, "host=localhost:8080\n") || strings.Contains(seen, grant.Value) ||
		!strings.Contains(seen, "HTTP_X_FORWARDED_HOST=8080-"+sb.ID+".preview.test\n") {
		t.Errorf("the app saw:\n%s", seen)
	}

	// Every path of a preview host is the app's, those of the API's own routes included.
	for _, path := range []string{"/health", "/health/", "/api/sandboxes", "/openapi.yaml"} {
		resp := previewDo(t, id, host+path, grant)
		if body := readBody(t, resp); resp.StatusCode != http.StatusNotFound || strings.Contains(body, `"error"`) || strings.Contains(body, "openapi") {
			t.Errorf("%s on the preview host: %d %q, want the app's own 404", path, resp.StatusCode, body)
		}
	}

	token := strings.TrimPrefix(link, "http://8080-"+sb.ID+".preview.test/?insien_preview_token=")
	for _, tc := range []struct {
		name    string
		url     string
		cookies []*http.Cookie
	}{
		{"no token, no cookie", host + "/", nil},
		{"a forged token", host + "/?insien_preview_token=" + strings.Repeat("A", 120), nil},
		{"the token on another port", "http://8081-" + sb.ID + ".preview.test/?insien_preview_token=" + token, nil},
		{"the cookie on another port", "http://8081-" + sb.ID + ".preview.test/", []*http.Cookie{grant}},
		{"the token on another sandbox", "http://8080-" + second.ID + ".preview.test/?insien_preview_token=" + token, nil},
		{"the cookie on another sandbox", "http://8080-" + second.ID + ".preview.test/", []*http.Cookie{grant}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := previewDo(t, id, tc.url, tc.cookies...); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", tc.url, resp.StatusCode)
			}
		})
	}

	t.Run("revoked", func(t *testing.T) {
		if resp := u.do(t, "DELETE", "/api/sandboxes/"+sb.ID+"/ports/8080/url", ""); resp.Status != http.StatusNoContent {
			t.Fatalf("DELETE url: %d %s", resp.Status, resp.Body)
		}
		for _, resp := range []*http.Response{previewDo(t, id, host+"/", grant), previewDo(t, id, link)} {
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("after revocation: %d, want 404", resp.StatusCode)
			}
		}
		fresh, _ := issue(sb.ID, "8080", "")
		if resp := previewDo(t, id, fresh); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("a URL issued after the revocation: %d, want 303", resp.StatusCode)
		}
	})

	t.Run("a public port opens without a token", func(t *testing.T) {
		setPublic := func(body string) testenv.Response {
			return u.do(t, "PUT", "/api/sandboxes/"+second.ID+"/ports/8080", body)
		}
		secondHost := "http://8080-" + second.ID + ".preview.test/"
		if resp := previewDo(t, id, secondHost); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("before: %d, want 404", resp.StatusCode)
		}
		if resp := setPublic(`{"public":true}`); resp.Status != http.StatusOK || resp.Body != `{"port":8080,"public":true}` {
			t.Fatalf("PUT public: %d %s", resp.Status, resp.Body)
		}
		if got := u.do(t, "GET", "/api/sandboxes/"+second.ID, "").Body; !strings.Contains(got, `"public_ports":[8080]`) {
			t.Errorf("the sandbox does not list its public port: %s", got)
		}
		if resp := previewDo(t, id, secondHost); resp.StatusCode != http.StatusOK || readBody(t, resp) != "hello from the sandbox\n" {
			t.Errorf("a public port: %d, want 200 and the page", resp.StatusCode)
		}
		if resp := previewDo(t, id, "http://8081-"+second.ID+".preview.test/"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("another port of that sandbox: %d, want 404", resp.StatusCode)
		}
		for _, bad := range []string{`{}`, `{"public":"yes"}`, `not json`} {
			if resp := setPublic(bad); resp.Status != http.StatusBadRequest {
				t.Errorf("PUT %s: %d %s, want 400", bad, resp.Status, resp.Body)
			}
		}
		if resp := other(t).do(t, "PUT", "/api/sandboxes/"+second.ID+"/ports/8080", `{"public":true}`); resp.Status != http.StatusNotFound {
			t.Errorf("another user setting it: %d, want 404", resp.Status)
		}
		if resp := setPublic(`{"public":false}`); resp.Status != http.StatusOK {
			t.Fatalf("PUT not public: %d %s", resp.Status, resp.Body)
		}
		if resp := previewDo(t, id, secondHost); resp.StatusCode != http.StatusNotFound {
			t.Errorf("closed again: %d, want 404", resp.StatusCode)
		}
	})

	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"too short", `{"expires_in_seconds":30}`, http.StatusBadRequest},
		{"too long", `{"expires_in_seconds":86401}`, http.StatusBadRequest},
		{"not a number", `{"expires_in_seconds":"soon"}`, http.StatusBadRequest},
	} {
		t.Run("issue: "+tc.name, func(t *testing.T) {
			if resp := u.do(t, "POST", "/api/sandboxes/"+sb.ID+"/ports/8080/url", tc.body); resp.Status != tc.status {
				t.Errorf("POST url %s: %d %s, want %d", tc.body, resp.Status, resp.Body, tc.status)
			}
		})
	}
}
