package ports

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/middleware"
	"github.com/insien/orchestrator/internal/sandbox/model"
)

const (
	// TokenParam carries a preview URL's token, once: the gateway trades it for a cookie.
	TokenParam = "insien_preview_token"
	// CookieName is the cookie that opens one preview host in a browser.
	CookieName = "insien_preview"
	// tokenContext binds a sealed grant to its use, so no other sealed value passes for one.
	tokenContext = "preview-url/v1"
)

// grant is what a preview token opens: one port of one sandbox, until Expires, while the
// sandbox's URL generation is still Generation. It travels sealed (authenticated encryption
// under the secrets key), so it can be neither read nor forged, and it names its owner so that
// the gateway reads the sandbox as the API would for that user.
type grant struct {
	User       uuid.UUID `json:"u"`
	Sandbox    uuid.UUID `json:"s"`
	Port       int       `json:"p"`
	Expires    int64     `json:"e"`
	Generation int       `json:"g"`
}

func (s *Service) seal(g grant) (string, error) {
	plain, _ := json.Marshal(g)
	sealed, err := s.sealer.Seal(plain, []byte(tokenContext))
	if err != nil {
		return "", fmt.Errorf("sealing a preview token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// open returns the grant a token holds; false for anything that is not a token this service
// sealed, or one that has expired.
func (s *Service) open(token string) (grant, bool) {
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return grant{}, false
	}
	plain, err := s.sealer.Open(sealed, []byte(tokenContext))
	if err != nil {
		return grant{}, false
	}
	var g grant
	if json.Unmarshal(plain, &g) != nil || time.Now().Unix() >= g.Expires {
		return grant{}, false
	}
	return g, true
}

// grantFor is the grant a token (or the cookie it became) holds when it opens port of sandbox id.
func (s *Service) grantFor(token string, id uuid.UUID, port int) (grant, bool) {
	g, ok := s.open(token)
	return g, ok && g.Sandbox == id && g.Port == port
}

// URL is an issued preview URL.
type URL struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// IssueURL returns a preview URL opening port of a user's running sandbox for expiresIn (the
// configured default when 0).
func (s *Service) IssueURL(ctx context.Context, userID, id uuid.UUID, port int, expiresIn time.Duration) (URL, error) {
	if s.cfg.Domain == "" {
		return URL{}, apierror.Conflict("preview_disabled", "preview URLs are off on this server (preview.domain is empty); use /api/sandboxes/{id}/ports/{port}/ instead")
	}
	if expiresIn == 0 {
		expiresIn = s.cfg.DefaultURLLifetime
	}
	if expiresIn < time.Minute || expiresIn > s.cfg.MaxURLLifetime {
		return URL{}, apierror.Invalid("expires_in_seconds", "expires_in_seconds must be from 60 to %d", int(s.cfg.MaxURLLifetime/time.Second))
	}
	sb, err := s.Target(ctx, userID, id)
	if err != nil {
		return URL{}, err
	}
	expires := time.Now().Add(expiresIn).Truncate(time.Second)
	token, err := s.seal(grant{User: userID, Sandbox: sb.ID, Port: port, Expires: expires.Unix(), Generation: sb.PreviewGeneration})
	if err != nil {
		return URL{}, err
	}
	u := url.URL{Scheme: s.cfg.Scheme, Host: s.host(sb.ID, port), Path: "/", RawQuery: url.Values{TokenParam: {token}}.Encode()}
	return URL{URL: u.String(), ExpiresAt: expires.UTC()}, nil
}

// RevokeURLs makes every preview URL of a user's sandbox, and every cookie they were traded for,
// open nothing from now on, on every replica.
func (s *Service) RevokeURLs(ctx context.Context, userID, id uuid.UUID) error {
	return s.sandboxes.RevokePreviewURLs(ctx, userID, id)
}

// host is the preview host of a sandbox's port: <port>-<sandbox id>.<preview.domain>.
func (s *Service) host(id uuid.UUID, port int) string {
	return strconv.Itoa(port) + "-" + id.String() + "." + s.cfg.Domain
}

// previewHost reads the port and sandbox a preview host names; false for any other host.
func (s *Service) previewHost(hostport string) (int, uuid.UUID, bool) {
	if s.cfg.Domain == "" {
		return 0, uuid.Nil, false
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	label, ok := strings.CutSuffix(strings.ToLower(host), "."+strings.ToLower(s.cfg.Domain))
	if !ok {
		return 0, uuid.Nil, false
	}
	rawPort, rawID, ok := strings.Cut(label, "-")
	port, err := s.ParsePort(rawPort)
	if !ok || err != nil {
		return 0, uuid.Nil, false
	}
	id, err := uuid.Parse(rawID)
	if err != nil || id.String() != rawID {
		return 0, uuid.Nil, false
	}
	return port, id, true
}

// Gateway serves every request whose host is a preview host (and passes the others on): the
// token of a preview URL is checked and traded for a cookie scoped to that host (a redirect to
// the same URL without it, so that it leaves the address bar and the app's logs), then the
// cookie opens the app. It runs before the API's security headers and CORS, which are the API's
// and not the app's. Whatever does not open the app is a 404 that says nothing of whether the
// sandbox exists.
func (s *Service) Gateway() gin.HandlerFunc {
	return func(c *gin.Context) {
		port, id, ok := s.previewHost(c.Request.Host)
		if !ok {
			c.Next()
			return
		}
		c.Abort()
		if err := s.servePreview(c, port, id); err != nil {
			_ = c.Error(err)
		}
	}
}

func (s *Service) servePreview(c *gin.Context, port int, id uuid.UUID) error {
	notFound := apierror.NotFound("preview")
	if token := c.Query(TokenParam); token != "" {
		g, ok := s.grantFor(token, id, port)
		if !ok {
			return notFound
		}
		if _, err := s.current(c.Request.Context(), g); err != nil {
			return err
		}
		http.SetCookie(c.Writer, &http.Cookie{
			Name: CookieName, Value: token, Path: "/", Expires: time.Unix(g.Expires, 0),
			MaxAge: int(time.Until(time.Unix(g.Expires, 0)).Seconds()), HttpOnly: true,
			Secure: s.cfg.Scheme == "https", SameSite: http.SameSiteLaxMode,
		})
		clean := *c.Request.URL
		q := clean.Query()
		q.Del(TokenParam)
		clean.RawQuery = q.Encode()
		c.Redirect(http.StatusSeeOther, clean.RequestURI())
		return nil
	}
	var sb *model.Sandbox
	if cookie, err := c.Cookie(CookieName); err == nil {
		if g, ok := s.grantFor(cookie, id, port); ok {
			if sb, err = s.current(c.Request.Context(), g); err != nil {
				return err
			}
		}
	}
	if sb == nil {
		public, err := s.public(c.Request.Context(), id, port)
		if err != nil {
			return err
		}
		if public == nil {
			return notFound
		}
		sb = public
	}
	ctx := middleware.Untimed(c)
	return s.Forward(c.Writer, c.Request.WithContext(ctx), Request{Sandbox: sb, Port: port, Path: c.Request.URL.Path})
}

// public is the running sandbox whose port is open without a token; nil when it is not.
func (s *Service) public(ctx context.Context, id uuid.UUID, port int) (*model.Sandbox, error) {
	owner, err := s.sandboxes.OwnerOf(ctx, id)
	if apierror.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sb, _, err := s.sandboxes.View(ctx, owner, id)
	if apierror.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(sb.PublicPorts, port) {
		return nil, nil
	}
	if err := reachable(sb); err != nil {
		return nil, err
	}
	return sb, nil
}

// SetPublic opens (or closes) a port of a user's sandbox to requests without a token.
func (s *Service) SetPublic(ctx context.Context, userID, id uuid.UUID, port int, public bool) error {
	_, err := s.sandboxes.SetPortPublic(ctx, userID, id, port, public)
	return err
}

// current is the running sandbox a grant opens, unless its URLs were revoked since it was issued.
func (s *Service) current(ctx context.Context, g grant) (*model.Sandbox, error) {
	sb, err := s.Target(ctx, g.User, g.Sandbox)
	if apierror.IsNotFound(err) {
		return nil, apierror.NotFound("preview")
	}
	if err != nil {
		return nil, err
	}
	if sb.PreviewGeneration != g.Generation {
		return nil, apierror.NotFound("preview")
	}
	return sb, nil
}
