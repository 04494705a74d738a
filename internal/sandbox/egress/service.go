package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/dns"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/platform/netns"
	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/repositories"
)

const (
	// maxConnsPerSandbox bounds a sandbox's egress connections open at once through a replica.
	maxConnsPerSandbox = 512
	// recentBlocked is how many blocked attempts a sandbox keeps; blockedTTL how long.
	recentBlocked = 20
	blockedTTL    = 24 * time.Hour
)

// Service enforces the egress policies of the sandboxes whose namespaces it can enter: it opens a
// sandbox's route out when its policy opens, serves it while it runs and closes it again.
type Service struct {
	cfg      config.Network
	modes    []string // what users may ask for here
	guard    *guard
	upstream *upstream
	egressNS *os.File                   // nil: egress leaves from the orchestrator's own namespace
	netnses  runtimes.NetworkNamespaces // the proxy enforces policies (Docker)
	policies runtimes.EgressPolicies    // else the platform does, by address only (Kubernetes)
	rows     *repositories.Sandboxes
	rdb      *redis.Client
	log      *zap.Logger

	mu       sync.Mutex
	attached map[uuid.UUID]*attachment
}

// Params are the service's dependencies.
type Params struct {
	fx.In
	Config    config.Network
	Runtime   runtimes.Runtime
	Sandboxes *repositories.Sandboxes
	Redis     *redis.Client
	Log       *zap.Logger
}

// NewService builds the service for Fx, enforcing through what the runtime offers.
func NewService(p Params) (*Service, error) {
	netnses, _ := runtimes.As[runtimes.NetworkNamespaces](p.Runtime)
	policies, _ := runtimes.As[runtimes.EgressPolicies](p.Runtime)
	return New(p.Config, netnses, policies, p.Sandboxes, p.Redis, p.Log)
}

// New builds the service. With netnses it enforces every policy itself; else with policies the
// runtime enforces their addresses (names are refused); with neither only egress none is allowed.
func New(cfg config.Network, netnses runtimes.NetworkNamespaces, policies runtimes.EgressPolicies,
	rows *repositories.Sandboxes, rdb *redis.Client, log *zap.Logger) (*Service, error) {
	s := &Service{cfg: cfg, modes: cfg.AllowedModes, netnses: netnses, rows: rows, rdb: rdb,
		log: log.Named("egress"), attached: map[uuid.UUID]*attachment{}}
	switch {
	case netnses == nil && policies != nil:
		s.policies = policies
	case netnses == nil:
		s.modes = []string{model.EgressNone}
	}
	var ownNets []netip.Prefix
	var err error
	if cfg.Namespace != "" {
		if s.egressNS, err = os.Open(cfg.Namespace); err != nil {
			return nil, fmt.Errorf("network.namespace: %w", err)
		}
		err = netns.Do(s.egressNS, func() error { ownNets, err = interfaceNets(); return err })
	} else {
		ownNets, err = interfaceNets()
	}
	if err != nil {
		return nil, err
	}
	if s.guard, err = newGuard(cfg.Deny, cfg.AllowPrivate, ownNets); err != nil {
		return nil, err
	}
	servers := cfg.DNSServers
	if len(servers) == 0 {
		servers = resolvConfServers("/etc/resolv.conf")
	}
	s.upstream = &upstream{servers: servers, dial: s.dial, timeout: cfg.DialTimeout}
	return s, nil
}

// dial connects from the namespace egress leaves from.
func (s *Service) dial(ctx context.Context, network, addr string) (conn net.Conn, err error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	if s.egressNS == nil {
		return d.DialContext(ctx, network, addr)
	}
	err = netns.Do(s.egressNS, func() error {
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Reserved reports whether port is one the orchestrator listens on inside sandboxes.
func (s *Service) Reserved(port int) bool { return port == s.cfg.ProxyPort || port == s.cfg.DNSPort }

// Normalize checks a policy a user asks for against what this server allows.
func (s *Service) Normalize(n model.Network) (model.Network, error) {
	n, pol, err := normalize(n, s.modes)
	if err != nil || s.policies == nil {
		return n, err
	}
	return n, addressesOnly(pol)
}

// Apply makes a running sandbox's namespace match its policy: a route out served by this replica
// when it is open, none when it is not. Call it after every change of the policy, on the replica
// that made it; the others follow within network.policy_refresh (and attach on reconcile).
func (s *Service) Apply(ctx context.Context, sb *model.Sandbox) error {
	if sb.RuntimeID == nil {
		return nil
	}
	if s.policies != nil {
		return s.policies.SetEgress(ctx, *sb.RuntimeID, s.addressRules(enforced(sb.Network, s.modes)))
	}
	s.mu.Lock()
	a := s.attached[sb.ID]
	s.mu.Unlock()
	if !sb.Network.Open() {
		if a == nil && s.netnses == nil {
			return nil
		}
		if a != nil {
			s.Detach(sb.ID)
		}
		ns, err := s.netnses.NetNS(ctx, *sb.RuntimeID)
		if err != nil {
			return fmt.Errorf("closing the route out of sandbox %s: %w", sb.ID, err)
		}
		defer ns.Close()
		return closeRoute(ns)
	}
	if a != nil {
		a.setPolicy(sb.Network)
		return nil
	}
	return s.attach(ctx, sb)
}

// attach opens a sandbox's route out and serves it.
func (s *Service) attach(ctx context.Context, sb *model.Sandbox) error {
	if s.netnses == nil {
		return errors.New("this runtime cannot enforce egress policies")
	}
	ns, err := s.netnses.NetNS(ctx, *sb.RuntimeID)
	if err != nil {
		return fmt.Errorf("opening the route out of sandbox %s: %w", sb.ID, err)
	}
	l, err := openRoute(ns, s.cfg.ProxyPort, s.cfg.DNSPort)
	if err != nil {
		_ = ns.Close()
		return fmt.Errorf("opening the route out of sandbox %s: %w", sb.ID, err)
	}
	a := &attachment{id: sb.ID, svc: s, ns: ns, listen: l, slots: make(chan struct{}, maxConnsPerSandbox)}
	a.setPolicy(sb.Network)
	a.dns = &dns.Server{PacketConn: l.dns, Handler: dnsHandler{a}}
	s.mu.Lock()
	if old := s.attached[sb.ID]; old != nil { // attached concurrently: keep the first
		s.mu.Unlock()
		a.close()
		old.setPolicy(sb.Network)
		return nil
	}
	s.attached[sb.ID] = a
	s.mu.Unlock()
	go a.serveTCP()
	go func() { _ = a.dns.ActivateAndServe() }()
	return nil
}

// Detach stops serving a sandbox (one that ended: its namespace goes with it).
func (s *Service) Detach(id uuid.UUID) {
	s.mu.Lock()
	a := s.attached[id]
	delete(s.attached, id)
	s.mu.Unlock()
	if a != nil {
		a.close()
	}
}

// Sync serves every sandbox in up (those whose main process runs) with an open policy and stops
// serving any other: how a replica that restarted, or did not make a sandbox, comes to serve it.
func (s *Service) Sync(ctx context.Context, up []model.Sandbox) {
	if s.netnses == nil {
		return
	}
	open := map[uuid.UUID]bool{}
	for i := range up {
		sb := &up[i]
		if !sb.Network.Open() || sb.RuntimeID == nil {
			continue
		}
		open[sb.ID] = true
		s.mu.Lock()
		a := s.attached[sb.ID]
		s.mu.Unlock()
		if a != nil {
			continue
		}
		if err := s.attach(ctx, sb); err != nil && !errors.Is(err, runtimes.ErrNotRunning) && !errors.Is(err, runtimes.ErrNotFound) {
			s.log.Warn("serving a sandbox's egress", zap.Stringer("sandbox", sb.ID), zap.Error(err))
		}
	}
	s.mu.Lock()
	var gone []uuid.UUID
	for id := range s.attached {
		if !open[id] {
			gone = append(gone, id)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		s.Detach(id)
	}
}

// Close stops serving every sandbox: their connections out are refused until a replica serves
// them again (the rules stay, so nothing leaves unchecked).
func (s *Service) Close() {
	s.mu.Lock()
	all := s.attached
	s.attached = map[uuid.UUID]*attachment{}
	s.mu.Unlock()
	for _, a := range all {
		a.close()
	}
	if s.egressNS != nil {
		_ = s.egressNS.Close()
	}
}

// Blocked is what a sandbox tried and was refused.
type Blocked struct {
	Total  int64            `json:"total"`
	Recent []BlockedAttempt `json:"recent"`
}

// BlockedAttempt is one refused connection or lookup.
type BlockedAttempt struct {
	At          time.Time `json:"at"`
	Protocol    string    `json:"protocol"` // tcp | dns
	Destination string    `json:"destination,omitempty"`
	Port        int       `json:"port,omitempty"`
	Name        string    `json:"name,omitempty"`
	Reason      string    `json:"reason"`
}

func blockedKey(id uuid.UUID) string { return "egress:blocked:" + id.String() }

// block records a refused attempt: counted, and kept among the sandbox's last few, in Redis so
// that every replica shows the same (and losing it loses only these figures).
func (s *Service) block(a *attachment, b BlockedAttempt) {
	b.At = time.Now().UTC()
	entry, _ := json.Marshal(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	key := blockedKey(a.id)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, key+":total")
		p.Expire(ctx, key+":total", blockedTTL)
		p.LPush(ctx, key, entry)
		p.LTrim(ctx, key, 0, recentBlocked-1)
		p.Expire(ctx, key, blockedTTL)
		return nil
	})
	if err != nil {
		s.log.Debug("recording a blocked connection", zap.Error(err))
	}
}

// Blocked returns a sandbox's refused attempts, the latest first.
func (s *Service) Blocked(ctx context.Context, id uuid.UUID) (Blocked, error) {
	key := blockedKey(id)
	var total *redis.StringCmd
	var recent *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		total = p.Get(ctx, key+":total")
		recent = p.LRange(ctx, key, 0, recentBlocked-1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Blocked{}, fmt.Errorf("reading the blocked connections of sandbox %s: %w", id, err)
	}
	out := Blocked{Recent: []BlockedAttempt{}}
	out.Total, _ = total.Int64()
	for _, raw := range recent.Val() {
		var b BlockedAttempt
		if json.Unmarshal([]byte(raw), &b) == nil {
			out.Recent = append(out.Recent, b)
		}
	}
	return out, nil
}

// attachment is one sandbox served by this replica.
type attachment struct {
	id     uuid.UUID
	svc    *Service
	ns     *os.File
	listen listeners
	dns    *dns.Server
	slots  chan struct{}
	names  names

	mu       sync.Mutex
	current  *policy
	loadedAt time.Time
}

func (a *attachment) setPolicy(n model.Network) {
	pol := enforced(n, a.svc.modes)
	a.mu.Lock()
	a.current, a.loadedAt = pol, time.Now()
	a.mu.Unlock()
}

// policy is the sandbox's policy, read again from Postgres when older than
// network.policy_refresh (so a change made through another replica applies in time). A sandbox
// that ended gets nothing; a database that does not answer leaves the last policy in force.
func (a *attachment) policy(ctx context.Context) *policy {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.loadedAt) < a.svc.cfg.PolicyRefresh {
		return a.current
	}
	n, err := a.svc.rows.NetworkOf(ctx, a.id)
	switch {
	case errors.Is(err, repositories.ErrNotFound):
		n = model.Network{Egress: model.EgressNone}
	case err != nil:
		a.svc.log.Warn("reloading a sandbox's egress policy", zap.Stringer("sandbox", a.id), zap.Error(err))
		return a.current
	}
	a.current, a.loadedAt = enforced(n, a.svc.modes), time.Now()
	return a.current
}

func (a *attachment) close() {
	_ = a.dns.Shutdown()
	a.listen.Close()
	_ = a.ns.Close()
}

// atomicTime is a time several goroutines read and write.
type atomicTime struct{ nanos atomic.Int64 }

func (t *atomicTime) touch()         { t.nanos.Store(time.Now().UnixNano()) }
func (t *atomicTime) get() time.Time { return time.Unix(0, t.nanos.Load()) }
