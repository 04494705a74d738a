// Package config defines every setting of the orchestrator, its default, and how it is loaded:
// defaults < config.yaml < .env < real environment.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Secret is a string that never prints itself, so a config dump or a log field cannot leak it.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// MarshalText hides the value from JSON/YAML encoders and zap's reflection.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the value for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Config is the whole configuration. Each provider receives only its own section.
type Config struct {
	App       App       `mapstructure:"app"`
	HTTP      HTTP      `mapstructure:"http"`
	Log       Log       `mapstructure:"log"`
	Database  Database  `mapstructure:"database"`
	Redis     Redis     `mapstructure:"redis"`
	Health    Health    `mapstructure:"health"`
	Clerk     Clerk     `mapstructure:"clerk"`
	Auth      Auth      `mapstructure:"auth"`
	RateLimit RateLimit `mapstructure:"ratelimit"`
	Secrets   Secrets   `mapstructure:"secrets"`
	Runtime   Runtime   `mapstructure:"runtime"`
	Sandbox   Sandbox   `mapstructure:"sandbox"`
	Preview   Preview   `mapstructure:"preview"`
	Network   Network   `mapstructure:"network"`
	Volumes   Volumes   `mapstructure:"volumes"`
	Templates Templates `mapstructure:"templates"`
	Metrics   Metrics   `mapstructure:"metrics"`
	Tracing   Tracing   `mapstructure:"tracing"`
	Events    Events    `mapstructure:"events"`
	Webhooks  Webhooks  `mapstructure:"webhooks"`
}

// App holds process-wide settings.
type App struct {
	Env      string `mapstructure:"env"`      // development | production
	Instance string `mapstructure:"instance"` // names this replica in logs and container labels; empty = hostname
}

// Development reports whether the service runs in development mode.
func (a App) Development() bool { return a.Env == "development" }

// InstanceName is this replica's name: app.instance, else the hostname.
func (a App) InstanceName() string {
	if a.Instance != "" {
		return a.Instance
	}
	if host, err := os.Hostname(); err == nil {
		return host
	}
	return "orchestrator"
}

// HTTP configures the listener, timeouts and edge middleware.
type HTTP struct {
	Host              string        `mapstructure:"host"`
	Port              int           `mapstructure:"port"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	RequestTimeout    time.Duration `mapstructure:"request_timeout"`
	MaxBodyBytes      int64         `mapstructure:"max_body_bytes"`
	TrustedProxies    []string      `mapstructure:"trusted_proxies"`
	DrainDelay        time.Duration `mapstructure:"drain_delay"`
	ShutdownTimeout   time.Duration `mapstructure:"shutdown_timeout"`
	CORS              CORS          `mapstructure:"cors"`
}

// Addr is the listen address.
func (h HTTP) Addr() string { return fmt.Sprintf("%s:%d", h.Host, h.Port) }

// CORS configures cross-origin access for browser clients.
type CORS struct {
	AllowedOrigins   []string      `mapstructure:"allowed_origins"`
	AllowCredentials bool          `mapstructure:"allow_credentials"`
	MaxAge           time.Duration `mapstructure:"max_age"`
}

// Log configures zap.
type Log struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // json | console; empty = console in development, json otherwise
}

// Database configures the Postgres pool.
type Database struct {
	URL             Secret        `mapstructure:"url"`
	MaxOpenConns    int           `mapstructure:"max_open_conns"`
	MaxIdleConns    int           `mapstructure:"max_idle_conns"`
	ConnMaxLifetime time.Duration `mapstructure:"conn_max_lifetime"`
	ConnMaxIdleTime time.Duration `mapstructure:"conn_max_idle_time"`
	ConnectTimeout  time.Duration `mapstructure:"connect_timeout"`
}

// Redis configures the go-redis client.
type Redis struct {
	URL          Secret        `mapstructure:"url"`
	PoolSize     int           `mapstructure:"pool_size"`
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
}

// Health configures dependency checks.
type Health struct {
	CheckTimeout  time.Duration `mapstructure:"check_timeout"`
	RetryInterval time.Duration `mapstructure:"retry_interval"`
}

// Clerk configures session-token verification and the Backend API.
type Clerk struct {
	SecretKey         Secret        `mapstructure:"secret_key"`
	JWTKey            string        `mapstructure:"jwt_key"`
	APIURL            string        `mapstructure:"api_url"`
	WebhookSecret     Secret        `mapstructure:"webhook_secret"`
	AuthorizedParties []string      `mapstructure:"authorized_parties"`
	Leeway            time.Duration `mapstructure:"leeway"`
	ProfileTTL        time.Duration `mapstructure:"profile_ttl"`
	RequestTimeout    time.Duration `mapstructure:"request_timeout"`
	WebhookTolerance  time.Duration `mapstructure:"webhook_tolerance"`
	MaxTokenLifetime  time.Duration `mapstructure:"max_token_lifetime"` // longest exp - iat a session token may claim
}

// Auth configures API keys.
type Auth struct {
	JWTSecret      Secret `mapstructure:"jwt_secret"`
	MaxKeysPerUser int    `mapstructure:"max_keys_per_user"`
	// KeyLocalTTL is how long a replica trusts a verified key without asking Postgres: the bound
	// on a revocation that the Redis broadcast did not reach.
	KeyLocalTTL time.Duration `mapstructure:"key_local_ttl"`
	// KeyCacheSize bounds the verified keys each replica holds (and the key uses it buffers).
	KeyCacheSize       int           `mapstructure:"key_cache_size"`
	LastUsedResolution time.Duration `mapstructure:"last_used_resolution"`
}

// RateLimit configures the Redis-backed GCRA limiter (requests per minute with a burst).
type RateLimit struct {
	Enabled         bool   `mapstructure:"enabled"`
	PrincipalPerMin int    `mapstructure:"principal_per_minute"`
	PrincipalBurst  int    `mapstructure:"principal_burst"`
	AnonymousPerMin int    `mapstructure:"anonymous_per_minute"`
	AnonymousBurst  int    `mapstructure:"anonymous_burst"`
	FailureMode     string `mapstructure:"failure_mode"` // open | closed
}

// Secrets configures encryption at rest.
type Secrets struct {
	Key Secret `mapstructure:"key"` // empty = derived from auth.jwt_secret
}

// Runtime configures the sandbox runtime driver.
type Runtime struct {
	Driver       string        `mapstructure:"driver"` // docker | kubernetes
	DockerHost   string        `mapstructure:"docker_host"`
	Cluster      string        `mapstructure:"cluster"`
	AllowNetwork bool          `mapstructure:"allow_network"`
	ReadOnlyRoot bool          `mapstructure:"read_only_root"`
	TmpfsSizeMB  int64         `mapstructure:"tmpfs_size_mb"`
	OCIRuntime   string        `mapstructure:"oci_runtime"`
	PullImages   bool          `mapstructure:"pull_images"`
	StopGrace    time.Duration `mapstructure:"stop_grace"`
	Kubernetes   Kubernetes    `mapstructure:"kubernetes"`
}

// Kubernetes configures the kubernetes driver (runtime.driver: kubernetes).
type Kubernetes struct {
	Kubeconfig      string `mapstructure:"kubeconfig"` // empty: the in-cluster service account
	Namespace       string `mapstructure:"namespace"`  // where sandbox Pods live
	RuntimeClass    string `mapstructure:"runtime_class"`
	ImagePullPolicy string `mapstructure:"image_pull_policy"` // IfNotPresent | Never | Always
	// A Pod's ephemeral-storage limit is its sandbox's disk_mb (sandbox.default_disk_mb).
	NodeSelector map[string]string `mapstructure:"node_selector"`
	Tolerations  []Toleration      `mapstructure:"tolerations"`
	// VolumeStorageClass is the StorageClass of volumes' PersistentVolumeClaims; empty: the
	// cluster's default class.
	VolumeStorageClass string `mapstructure:"volume_storage_class"`
}

// Toleration lets sandbox Pods onto tainted nodes (nodes set aside for untrusted code).
type Toleration struct {
	Key      string `mapstructure:"key"`
	Operator string `mapstructure:"operator"` // Equal | Exists
	Value    string `mapstructure:"value"`
	Effect   string `mapstructure:"effect"` // NoSchedule | PreferNoSchedule | NoExecute
}

// Sandbox configures sandbox limits and lifecycle.
type Sandbox struct {
	DefaultImage      string        `mapstructure:"default_image"`
	AllowedImages     []string      `mapstructure:"allowed_images"`
	DefaultCPU        float64       `mapstructure:"default_cpu"`
	MaxCPU            float64       `mapstructure:"max_cpu"`
	DefaultMemoryMB   int64         `mapstructure:"default_memory_mb"`
	MaxMemoryMB       int64         `mapstructure:"max_memory_mb"`
	DefaultDiskMB     int64         `mapstructure:"default_disk_mb"` // where the runtime can enforce one
	MaxDiskMB         int64         `mapstructure:"max_disk_mb"`
	PidsLimit         int64         `mapstructure:"pids_limit"`
	DefaultTimeout    time.Duration `mapstructure:"default_timeout"`
	MaxLifetime       time.Duration `mapstructure:"max_lifetime"`
	MaxPerUser        int           `mapstructure:"max_per_user"`
	MaxPerInstance    int           `mapstructure:"max_per_instance"`
	MaxEnvBytes       int           `mapstructure:"max_env_bytes"`
	ReapInterval      time.Duration `mapstructure:"reap_interval"`
	ReconcileInterval time.Duration `mapstructure:"reconcile_interval"`
	CacheTTL          time.Duration `mapstructure:"cache_ttl"`
	ViewLocalTTL      time.Duration `mapstructure:"view_local_ttl"` // GET /api/sandboxes/{id} from memory; 0 = off
	AutoExtend        bool          `mapstructure:"auto_extend"`
	PausedExpiry      string        `mapstructure:"paused_expiry"` // keep | freeze
	ConnectionTTL     time.Duration `mapstructure:"connection_ttl"`
	MaxConnections    int           `mapstructure:"max_connections"`
	ExecOutputLimit   int64         `mapstructure:"exec_output_limit"`
	ExecMaxTimeout    time.Duration `mapstructure:"exec_max_timeout"`
	MaxUploadBytes    int64         `mapstructure:"max_upload_bytes"`
	WarmPool          WarmPool      `mapstructure:"warm_pool"`
}

// Preview is how ports inside sandboxes are reached from outside: through the API's own path
// (always), and through preview hosts <port>-<sandbox id>.<domain> opened by signed URLs.
type Preview struct {
	Domain                string        `mapstructure:"domain"` // needs a wildcard DNS record; empty: no preview URLs
	Scheme                string        `mapstructure:"scheme"` // of the URLs issued: https (TLS in front) or http
	DefaultURLLifetime    time.Duration `mapstructure:"default_url_lifetime"`
	MaxURLLifetime        time.Duration `mapstructure:"max_url_lifetime"`
	ResponseHeaderTimeout time.Duration `mapstructure:"response_header_timeout"` // an app silent this long after a request: 504
	IdleTimeout           time.Duration `mapstructure:"idle_timeout"`            // a connection to an app that sends nothing this long is closed
}

// Network caps the egress policies users may give their sandboxes and says how egress leaves.
type Network struct {
	AllowedModes []string `mapstructure:"allowed_modes"` // of none, allow, all
	// Deny is always denied, on top of the built-in list (loopback, link-local and the metadata
	// address, private ranges, this host's own subnets): CIDRs, IPs or domain names.
	Deny []string `mapstructure:"deny"`
	// AllowPrivate are private CIDRs that users' allow lists may open (otherwise never reachable).
	AllowPrivate []string `mapstructure:"allow_private"`
	// DNSServers (host:port) answer sandboxes' lookups; empty: the nameservers of /etc/resolv.conf.
	DNSServers []string `mapstructure:"dns_servers"`
	// Namespace is the network namespace egress leaves from (e.g. /run/netns/egress); empty: the
	// orchestrator's own.
	Namespace    string        `mapstructure:"namespace"`
	ProxyPort    int           `mapstructure:"proxy_port"` // where a sandbox's TCP is redirected, on its own loopback
	DNSPort      int           `mapstructure:"dns_port"`   // where a sandbox's DNS is redirected, on its own loopback
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	SniffTimeout time.Duration `mapstructure:"sniff_timeout"` // waiting for a TLS ClientHello or HTTP request to read a name
	IdleTimeout  time.Duration `mapstructure:"idle_timeout"`  // an egress connection silent both ways this long is closed
	// PolicyRefresh bounds how long a policy change made through another replica takes to apply.
	PolicyRefresh time.Duration `mapstructure:"policy_refresh"`
}

// Volumes configures persistent volumes: an ext4 image per volume under Dir, loop mounted on the
// engine's host (the orchestrator must run there, as root).
type Volumes struct {
	Dir               string `mapstructure:"dir"`
	MinSizeMB         int    `mapstructure:"min_size_mb"`
	MaxSizeMB         int    `mapstructure:"max_size_mb"`
	MaxPerUser        int    `mapstructure:"max_per_user"`
	MaxTotalMBPerUser int    `mapstructure:"max_total_mb_per_user"`
	MaxPerSandbox     int    `mapstructure:"max_per_sandbox"`
}

// Metrics configures the Prometheus listener. It is a listener of its own so that the public
// port never serves the metrics: only what can reach this address (a scraper inside the cluster)
// reads them.
type Metrics struct {
	Addr string `mapstructure:"addr"` // host:port; empty: no metrics listener
}

// Tracing configures OpenTelemetry tracing, exported over OTLP/HTTP. It is off while Endpoint is
// empty: no exporter exists and no span is recorded.
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP URL: a base (http://otel-collector:4318, to which
	// /v1/traces is added) or a full URL with its path; https for TLS. Empty: tracing off.
	Endpoint string `mapstructure:"endpoint"`
	// SampleRatio is the share of new traces recorded (0 to 1); a request carrying a traceparent
	// follows its caller's decision.
	SampleRatio float64 `mapstructure:"sample_ratio"`
	ServiceName string  `mapstructure:"service_name"` // service.name of every span
}

// Enabled reports whether spans are recorded and exported.
func (t Tracing) Enabled() bool { return t.Endpoint != "" }

// Events configures the event log (GET /api/events).
type Events struct {
	Retention time.Duration `mapstructure:"retention"` // events older than this are deleted
}

// Webhooks configures outbound webhooks: users' endpoints that receive their events, signed.
type Webhooks struct {
	AllowHTTP           bool          `mapstructure:"allow_http"`            // http:// endpoints outside development mode
	AllowPrivateTargets bool          `mapstructure:"allow_private_targets"` // loopback, private, link-local and metadata addresses
	MaxPerUser          int           `mapstructure:"max_per_user"`
	Timeout             time.Duration `mapstructure:"timeout"`            // one attempt, connection to the end of the answer
	MaxAttemptWindow    time.Duration `mapstructure:"max_attempt_window"` // a delivery not made within this is failed
	DisableAfter        time.Duration `mapstructure:"disable_after"`      // an endpoint failing this long is disabled
	BackoffBase         time.Duration `mapstructure:"backoff_base"`       // the wait after the first failed attempt; doubles
	BackoffMax          time.Duration `mapstructure:"backoff_max"`        // the longest wait between attempts
	PollInterval        time.Duration `mapstructure:"poll_interval"`      // how often each replica looks for due deliveries
	Concurrency         int           `mapstructure:"concurrency"`        // attempts in flight per replica
}

// Templates configures users' own images, built on the engine from a Dockerfile.
type Templates struct {
	MaxPerUser          int           `mapstructure:"max_per_user"`
	MaxTotalMBPerUser   int64         `mapstructure:"max_total_mb_per_user"` // their images' size; a user at it builds no more
	MaxContextBytes     int           `mapstructure:"max_context_bytes"`     // the Dockerfile and its files
	MaxLogBytes         int           `mapstructure:"max_log_bytes"`
	BuildTimeout        time.Duration `mapstructure:"build_timeout"`
	BuildMemoryMB       int64         `mapstructure:"build_memory_mb"`
	BuildCPU            float64       `mapstructure:"build_cpu"`
	BuildDiskMB         int64         `mapstructure:"build_disk_mb"`         // the most one build step may write
	MaxConcurrentBuilds int           `mapstructure:"max_concurrent_builds"` // per replica; more wait
}

// WarmPool keeps sandboxes of some images started ahead of demand, so that a create claims one
// instead of waiting for the engine.
type WarmPool struct {
	Enabled bool `mapstructure:"enabled"`
	Size    int  `mapstructure:"size"` // members of sandbox.default_image
	// Images are more pools as "image=size" entries: image names hold dots and colons, which
	// configuration keys cannot, so a map keyed by image is not an option.
	Images          []string      `mapstructure:"images"`
	RefillPerSecond float64       `mapstructure:"refill_per_second"` // members started per second, per replica
	MaxIdleAge      time.Duration `mapstructure:"max_idle_age"`      // older members are replaced (image updates reach the pool)
}

// Targets is the number of members to keep per image: empty when the pool is off. An entry of
// Images for sandbox.default_image overrides Size.
func (s Sandbox) Targets() (map[string]int, error) {
	targets := map[string]int{}
	if !s.WarmPool.Enabled {
		return targets, nil
	}
	targets[s.DefaultImage] = s.WarmPool.Size
	for _, entry := range s.WarmPool.Images {
		image, size, ok := strings.Cut(strings.TrimSpace(entry), "=")
		n, err := strconv.Atoi(strings.TrimSpace(size))
		image = strings.TrimSpace(image)
		switch {
		case !ok || err != nil || image == "":
			return nil, invalid("sandbox.warm_pool.images", "entry %q is not image=size", entry)
		case !slices.Contains(s.AllowedImages, image):
			return nil, invalid("sandbox.warm_pool.images", "image %q is not in sandbox.allowed_images", image)
		case n < 0:
			return nil, invalid("sandbox.warm_pool.images", "size of %q must not be negative", image)
		}
		targets[image] = n
	}
	total := 0
	for image, n := range targets {
		if n == 0 {
			delete(targets, image)
		}
		total += n
	}
	if total > s.MaxPerInstance {
		return nil, invalid("sandbox.warm_pool", "%d members in all exceed sandbox.max_per_instance (%d)", total, s.MaxPerInstance)
	}
	return targets, nil
}

// Default returns the configuration used when nothing overrides it. config.yaml mirrors it.
func Default() Config {
	return Config{
		App: App{Env: "production"},
		HTTP: HTTP{
			Port:              3000,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			RequestTimeout:    30 * time.Second,
			MaxBodyBytes:      1 << 20,
			TrustedProxies:    []string{},
			DrainDelay:        5 * time.Second,
			ShutdownTimeout:   20 * time.Second,
			CORS:              CORS{AllowedOrigins: []string{}, MaxAge: 12 * time.Hour},
		},
		Log: Log{Level: "info"},
		Database: Database{
			URL:             "postgres://localhost:5432/insien_sandbox?sslmode=disable",
			MaxOpenConns:    20,
			MaxIdleConns:    20,
			ConnMaxLifetime: 30 * time.Minute,
			ConnMaxIdleTime: 5 * time.Minute,
			ConnectTimeout:  5 * time.Second,
		},
		Redis: Redis{
			URL:          "redis://localhost:6379",
			PoolSize:     20,
			DialTimeout:  5 * time.Second,
			ReadTimeout:  3 * time.Second,
			WriteTimeout: 3 * time.Second,
		},
		Health: Health{CheckTimeout: 2 * time.Second, RetryInterval: 2 * time.Second},
		Clerk: Clerk{
			APIURL:            "https://api.clerk.com/v1",
			AuthorizedParties: []string{},
			Leeway:            5 * time.Second,
			ProfileTTL:        time.Hour,
			RequestTimeout:    5 * time.Second,
			WebhookTolerance:  5 * time.Minute,
			MaxTokenLifetime:  24 * time.Hour,
		},
		Auth: Auth{MaxKeysPerUser: 25, KeyLocalTTL: 5 * time.Second, KeyCacheSize: 10_000, LastUsedResolution: time.Minute},
		RateLimit: RateLimit{
			Enabled:         true,
			PrincipalPerMin: 600,
			PrincipalBurst:  100,
			AnonymousPerMin: 120,
			AnonymousBurst:  30,
			FailureMode:     "open",
		},
		Runtime: Runtime{
			Driver:      "docker",
			Cluster:     "default",
			TmpfsSizeMB: 256,
			StopGrace:   5 * time.Second,
			Kubernetes: Kubernetes{
				Namespace:          "insien-sandboxes",
				ImagePullPolicy:    "IfNotPresent",
				NodeSelector:       map[string]string{},
				Tolerations:        []Toleration{},
				VolumeStorageClass: "",
			},
		},
		Sandbox: Sandbox{
			DefaultImage:      "insien/sandbox:busybox",
			AllowedImages:     []string{"insien/sandbox:busybox", "insien/sandbox:debian"},
			DefaultCPU:        1,
			MaxCPU:            4,
			DefaultMemoryMB:   512,
			MaxMemoryMB:       8192,
			DefaultDiskMB:     2048,
			MaxDiskMB:         20480,
			PidsLimit:         256,
			DefaultTimeout:    5 * time.Minute,
			MaxLifetime:       24 * time.Hour,
			MaxPerUser:        20,
			MaxPerInstance:    200,
			MaxEnvBytes:       64 << 10,
			ReapInterval:      time.Second,
			ReconcileInterval: time.Minute,
			CacheTTL:          30 * time.Second,
			ViewLocalTTL:      time.Second,
			AutoExtend:        true,
			PausedExpiry:      "keep",
			ConnectionTTL:     30 * time.Second,
			MaxConnections:    16,
			ExecOutputLimit:   10 << 20,
			ExecMaxTimeout:    time.Hour,
			MaxUploadBytes:    100 << 20,
			WarmPool:          WarmPool{Enabled: true, Size: 2, Images: []string{}, RefillPerSecond: 2, MaxIdleAge: 30 * time.Minute},
		},
		Preview: Preview{Scheme: "https", DefaultURLLifetime: time.Hour, MaxURLLifetime: 24 * time.Hour,
			ResponseHeaderTimeout: time.Minute, IdleTimeout: 5 * time.Minute},
		Network: Network{AllowedModes: []string{"none", "allow", "all"}, Deny: []string{}, AllowPrivate: []string{}, DNSServers: []string{},
			ProxyPort: 15001, DNSPort: 15053, DialTimeout: 10 * time.Second, SniffTimeout: time.Second,
			IdleTimeout: 10 * time.Minute, PolicyRefresh: time.Second},
		Volumes: Volumes{Dir: "/var/lib/insien/volumes", MinSizeMB: 16, MaxSizeMB: 10240, MaxPerUser: 10,
			MaxTotalMBPerUser: 20480, MaxPerSandbox: 8},
		Templates: Templates{MaxPerUser: 20, MaxTotalMBPerUser: 10240, MaxContextBytes: 10 << 20, MaxLogBytes: 1 << 20, BuildTimeout: 10 * time.Minute,
			BuildMemoryMB: 1024, BuildCPU: 1, BuildDiskMB: 10240, MaxConcurrentBuilds: 2},
		Metrics: Metrics{Addr: ":9090"},
		Tracing: Tracing{SampleRatio: 1, ServiceName: "insien-orchestrator"},
		Events:  Events{Retention: 30 * 24 * time.Hour},
		Webhooks: Webhooks{MaxPerUser: 10, Timeout: 10 * time.Second, MaxAttemptWindow: 24 * time.Hour, DisableAfter: 5 * 24 * time.Hour,
			BackoffBase: 5 * time.Second, BackoffMax: time.Hour, PollInterval: 500 * time.Millisecond, Concurrency: 16},
	}
}

// validListenAddr: empty, or host:port with a port number (0: any free port).
func validListenAddr(addr string) bool {
	if addr == "" {
		return true
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// validDomain: empty, or dot-separated labels of letters, digits and hyphens.
func validDomain(d string) bool {
	if d == "" {
		return true
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") ||
			strings.IndexFunc(label, func(r rune) bool {
				return !(r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			}) >= 0 {
			return false
		}
	}
	return len(d) <= 253
}

// Error names the key that made the configuration unusable.
type Error struct {
	Key    string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Reason) }

func invalid(key, format string, args ...any) error {
	return &Error{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// Validate rejects values the service cannot run with, naming the key.
func (c *Config) Validate() error {
	checks := []struct {
		ok     bool
		key    string
		reason string
	}{
		{slices.Contains([]string{"development", "production"}, c.App.Env), "app.env", "must be development or production"},
		{c.HTTP.Port >= 0 && c.HTTP.Port <= 65535, "http.port", "must be between 0 and 65535"},
		{c.HTTP.RequestTimeout > 0, "http.request_timeout", "must be positive"},
		{c.HTTP.WriteTimeout > c.HTTP.RequestTimeout, "http.write_timeout", "must be longer than http.request_timeout, so a timed-out request can still be answered"},
		{c.HTTP.ReadHeaderTimeout > 0, "http.read_header_timeout", "must be positive"},
		{c.HTTP.MaxBodyBytes > 0, "http.max_body_bytes", "must be positive"},
		{c.HTTP.DrainDelay >= 0, "http.drain_delay", "must not be negative"},
		{c.HTTP.ShutdownTimeout > 0, "http.shutdown_timeout", "must be positive"},
		{slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level), "log.level", "must be debug, info, warn or error"},
		{slices.Contains([]string{"", "json", "console"}, c.Log.Format), "log.format", "must be json or console"},
		{validURL(string(c.Database.URL), "postgres", "postgresql"), "database.url", "must be a postgres:// URL"},
		{c.Database.MaxOpenConns > 0, "database.max_open_conns", "must be positive"},
		{c.Database.MaxIdleConns >= 0, "database.max_idle_conns", "must not be negative"},
		{c.Database.ConnectTimeout > 0, "database.connect_timeout", "must be positive"},
		{validURL(string(c.Redis.URL), "redis", "rediss", "unix"), "redis.url", "must be a redis:// URL"},
		{c.Redis.PoolSize > 0, "redis.pool_size", "must be positive"},
		{c.Health.CheckTimeout > 0, "health.check_timeout", "must be positive"},
		{c.Events.Retention >= time.Hour, "events.retention", "must be at least 1h"},
		{c.Webhooks.MaxPerUser > 0, "webhooks.max_per_user", "must be positive"},
		{c.Webhooks.Timeout >= 100*time.Millisecond && c.Webhooks.Timeout <= time.Minute, "webhooks.timeout", "must be between 100ms and 1m"},
		{c.Webhooks.MaxAttemptWindow >= time.Second, "webhooks.max_attempt_window", "must be at least 1s"},
		{c.Webhooks.DisableAfter >= time.Second, "webhooks.disable_after", "must be at least 1s"},
		{c.Webhooks.BackoffBase >= 10*time.Millisecond && c.Webhooks.BackoffBase <= c.Webhooks.BackoffMax, "webhooks.backoff_base", "must be at least 10ms and at most webhooks.backoff_max"},
		{c.Webhooks.PollInterval >= 10*time.Millisecond && c.Webhooks.PollInterval <= time.Minute, "webhooks.poll_interval", "must be between 10ms and 1m"},
		{c.Webhooks.Concurrency > 0, "webhooks.concurrency", "must be positive"},
		{validListenAddr(c.Metrics.Addr), "metrics.addr", "must be host:port (e.g. :9090), or empty to serve no metrics"},
		{c.Tracing.Endpoint == "" || validEndpoint(c.Tracing.Endpoint), "tracing.endpoint", "must be an http(s) URL with a host (e.g. http://otel-collector:4318), or empty to trace nothing"},
		{c.Tracing.SampleRatio >= 0 && c.Tracing.SampleRatio <= 1, "tracing.sample_ratio", "must be between 0 and 1"},
		{strings.TrimSpace(c.Tracing.ServiceName) != "", "tracing.service_name", "must not be empty"},
		{c.Health.RetryInterval > 0, "health.retry_interval", "must be positive"},
		{validURL(c.Clerk.APIURL, "http", "https"), "clerk.api_url", "must be an http(s) URL"},
		{c.Clerk.Leeway >= 0, "clerk.leeway", "must not be negative"},
		{c.Clerk.ProfileTTL > 0, "clerk.profile_ttl", "must be positive"},
		{c.Clerk.WebhookTolerance > 0, "clerk.webhook_tolerance", "must be positive"},
		{c.Clerk.MaxTokenLifetime >= time.Minute, "clerk.max_token_lifetime", "must be at least 1m (Clerk's session tokens live 60s)"},
		{c.Auth.MaxKeysPerUser > 0, "auth.max_keys_per_user", "must be positive"},
		{c.Auth.KeyLocalTTL >= 100*time.Millisecond && c.Auth.KeyLocalTTL <= time.Minute, "auth.key_local_ttl", "must be between 100ms and 1m: it bounds how long a revocation can go unseen"},
		{c.Auth.KeyCacheSize > 0, "auth.key_cache_size", "must be positive"},
		{c.Auth.LastUsedResolution > 0, "auth.last_used_resolution", "must be positive"},
		{c.RateLimit.PrincipalPerMin > 0, "ratelimit.principal_per_minute", "must be positive"},
		{c.RateLimit.AnonymousPerMin > 0, "ratelimit.anonymous_per_minute", "must be positive"},
		{c.RateLimit.PrincipalBurst > 0, "ratelimit.principal_burst", "must be positive"},
		{c.RateLimit.AnonymousBurst > 0, "ratelimit.anonymous_burst", "must be positive"},
		{slices.Contains([]string{"open", "closed"}, c.RateLimit.FailureMode), "ratelimit.failure_mode", "must be open or closed"},
		{slices.Contains([]string{"docker", "kubernetes"}, c.Runtime.Driver), "runtime.driver", "must be docker or kubernetes"},
		{dnsLabel.MatchString(c.Runtime.Kubernetes.Namespace), "runtime.kubernetes.namespace", "must be a DNS label: at most 63 lower case letters, digits and '-'"},
		{slices.Contains([]string{"IfNotPresent", "Never", "Always"}, c.Runtime.Kubernetes.ImagePullPolicy), "runtime.kubernetes.image_pull_policy", "must be IfNotPresent, Never or Always"},
		{validTolerations(c.Runtime.Kubernetes.Tolerations), "runtime.kubernetes.tolerations", "each needs operator Equal or Exists (Exists takes no value) and effect NoSchedule, PreferNoSchedule, NoExecute or empty"},
		{c.Runtime.Kubernetes.VolumeStorageClass == "" || dnsSubdomain.MatchString(c.Runtime.Kubernetes.VolumeStorageClass), "runtime.kubernetes.volume_storage_class", "must be empty or a StorageClass name: at most 253 lower case letters, digits, '-' and '.'"},
		{c.Runtime.Cluster != "", "runtime.cluster", "must not be empty"},
		{c.Sandbox.DefaultImage != "" && slices.Contains(c.Sandbox.AllowedImages, c.Sandbox.DefaultImage), "sandbox.default_image", "must be listed in sandbox.allowed_images"},
		{c.Sandbox.DefaultCPU > 0 && c.Sandbox.DefaultCPU <= c.Sandbox.MaxCPU, "sandbox.default_cpu", "must be positive and at most sandbox.max_cpu"},
		{c.Sandbox.DefaultMemoryMB >= runtimes.MinMemoryMB && c.Sandbox.DefaultMemoryMB <= c.Sandbox.MaxMemoryMB, "sandbox.default_memory_mb", fmt.Sprintf("must be at least %d and at most sandbox.max_memory_mb", runtimes.MinMemoryMB)},
		{c.Sandbox.DefaultDiskMB >= runtimes.MinDiskMB && c.Sandbox.DefaultDiskMB <= c.Sandbox.MaxDiskMB, "sandbox.default_disk_mb", fmt.Sprintf("must be at least %d and at most sandbox.max_disk_mb", runtimes.MinDiskMB)},
		{c.Sandbox.PidsLimit > 0, "sandbox.pids_limit", "must be positive"},
		{c.Sandbox.DefaultTimeout >= time.Second && c.Sandbox.DefaultTimeout <= c.Sandbox.MaxLifetime, "sandbox.default_timeout", "must be between 1s and sandbox.max_lifetime"},
		{c.Sandbox.MaxPerUser > 0, "sandbox.max_per_user", "must be positive"},
		{c.Sandbox.MaxPerInstance > 0, "sandbox.max_per_instance", "must be positive"},
		{c.Sandbox.MaxEnvBytes > 0, "sandbox.max_env_bytes", "must be positive"},
		{c.Sandbox.ReapInterval > 0, "sandbox.reap_interval", "must be positive"},
		{c.Sandbox.ReconcileInterval > 0, "sandbox.reconcile_interval", "must be positive"},
		{c.Sandbox.CacheTTL > 0, "sandbox.cache_ttl", "must be positive"},
		{c.Sandbox.ViewLocalTTL >= 0 && c.Sandbox.ViewLocalTTL <= 10*time.Second, "sandbox.view_local_ttl", "must be between 0 (off) and 10s: it bounds how stale a missed change can be served"},
		{slices.Contains([]string{"keep", "freeze"}, c.Sandbox.PausedExpiry), "sandbox.paused_expiry", "must be keep or freeze"},
		{c.Sandbox.ConnectionTTL >= 3*time.Second, "sandbox.connection_ttl", "must be at least 3s"},
		{c.Sandbox.MaxConnections > 0, "sandbox.max_connections", "must be positive"},
		{c.Sandbox.ExecOutputLimit > 0, "sandbox.exec_output_limit", "must be positive"},
		{c.Sandbox.ExecMaxTimeout >= time.Second, "sandbox.exec_max_timeout", "must be at least 1s"},
		{c.Sandbox.MaxUploadBytes > 0, "sandbox.max_upload_bytes", "must be positive"},
		{c.Sandbox.WarmPool.Size >= 0, "sandbox.warm_pool.size", "must not be negative"},
		{c.Sandbox.WarmPool.RefillPerSecond > 0, "sandbox.warm_pool.refill_per_second", "must be positive"},
		{c.Sandbox.WarmPool.MaxIdleAge >= time.Minute, "sandbox.warm_pool.max_idle_age", "must be at least 1m"},
		{validDomain(c.Preview.Domain), "preview.domain", "must be a DNS name (no scheme, port or path), or empty"},
		{c.Preview.Scheme == "https" || c.Preview.Scheme == "http", "preview.scheme", "must be https or http"},
		{c.Preview.MaxURLLifetime >= time.Minute, "preview.max_url_lifetime", "must be at least 1m"},
		{c.Preview.DefaultURLLifetime >= time.Minute && c.Preview.DefaultURLLifetime <= c.Preview.MaxURLLifetime, "preview.default_url_lifetime", "must be from 1m to preview.max_url_lifetime"},
		{c.Preview.ResponseHeaderTimeout >= time.Second, "preview.response_header_timeout", "must be at least 1s"},
		{c.Preview.IdleTimeout >= time.Second, "preview.idle_timeout", "must be at least 1s"},
		{len(c.Network.AllowedModes) > 0 && allIn(c.Network.AllowedModes, "none", "allow", "all"), "network.allowed_modes", "must list some of none, allow, all"},
		{!c.Runtime.AllowNetwork || !slices.ContainsFunc(c.Network.AllowedModes, func(m string) bool { return m != "none" }), "network.allowed_modes",
			"must be [none] while runtime.allow_network gives every sandbox the engine's whole network"},
		{validPort(c.Network.ProxyPort) && validPort(c.Network.DNSPort) && c.Network.ProxyPort != c.Network.DNSPort, "network.proxy_port", "and network.dns_port must be two different ports from 1 to 65535"},
		{c.Network.DialTimeout >= 100*time.Millisecond, "network.dial_timeout", "must be at least 100ms"},
		{c.Network.SniffTimeout >= 100*time.Millisecond, "network.sniff_timeout", "must be at least 100ms"},
		{c.Network.IdleTimeout >= time.Second, "network.idle_timeout", "must be at least 1s"},
		{strings.HasPrefix(c.Volumes.Dir, "/"), "volumes.dir", "must be an absolute path"},
		{c.Volumes.MinSizeMB >= 8 && c.Volumes.MinSizeMB <= c.Volumes.MaxSizeMB, "volumes.min_size_mb", "must be at least 8 (an ext4 filesystem's smallest useful size) and at most volumes.max_size_mb"},
		{c.Volumes.MaxPerUser > 0, "volumes.max_per_user", "must be positive"},
		{c.Volumes.MaxTotalMBPerUser >= c.Volumes.MinSizeMB, "volumes.max_total_mb_per_user", "must be at least volumes.min_size_mb"},
		{c.Volumes.MaxPerSandbox > 0, "volumes.max_per_sandbox", "must be positive"},
		{c.Templates.MaxPerUser > 0, "templates.max_per_user", "must be positive"},
		{c.Templates.MaxTotalMBPerUser > 0, "templates.max_total_mb_per_user", "must be positive"},
		{c.Templates.MaxContextBytes > 0, "templates.max_context_bytes", "must be positive"},
		{c.Templates.MaxLogBytes > 0, "templates.max_log_bytes", "must be positive"},
		{c.Templates.BuildTimeout >= time.Second, "templates.build_timeout", "must be at least 1s"},
		{c.Templates.BuildMemoryMB >= runtimes.MinMemoryMB, "templates.build_memory_mb", fmt.Sprintf("must be at least %d", runtimes.MinMemoryMB)},
		{c.Templates.BuildCPU >= runtimes.MinCPU, "templates.build_cpu", fmt.Sprintf("must be at least %g", runtimes.MinCPU)},
		{c.Templates.BuildDiskMB >= 16, "templates.build_disk_mb", "must be at least 16"},
		{c.Templates.MaxConcurrentBuilds > 0, "templates.max_concurrent_builds", "must be positive"},
		{c.Network.PolicyRefresh >= 100*time.Millisecond && c.Network.PolicyRefresh <= time.Second, "network.policy_refresh", "must be between 100ms and 1s: a policy change must apply within a second"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return invalid(ch.key, "%s", ch.reason)
		}
	}
	_, err := c.Sandbox.Targets()
	return err
}

func allIn(values []string, allowed ...string) bool {
	return !slices.ContainsFunc(values, func(v string) bool { return !slices.Contains(allowed, v) })
}

func validPort(p int) bool { return p > 0 && p <= 65535 }

func validURL(raw string, schemes ...string) bool {
	u, err := url.Parse(raw)
	return err == nil && slices.Contains(schemes, strings.ToLower(u.Scheme))
}

// validEndpoint: an http or https URL with a host, and nothing a collector URL cannot carry.
func validEndpoint(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil &&
		u.RawQuery == "" && u.Fragment == ""
}

// dnsLabel is what Kubernetes accepts as a namespace name (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// dnsSubdomain is what Kubernetes accepts as a StorageClass name (RFC 1123 subdomain).
var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// validTolerations checks what the API server would refuse at the first create, so that a typo
// stops start-up instead of every sandbox.
func validTolerations(ts []Toleration) bool {
	for _, t := range ts {
		switch {
		case !slices.Contains([]string{"", "Equal", "Exists"}, t.Operator),
			!slices.Contains([]string{"", "NoSchedule", "PreferNoSchedule", "NoExecute"}, t.Effect),
			t.Operator == "Exists" && t.Value != "",
			t.Key == "" && t.Operator != "Exists":
			return false
		}
	}
	return true
}
