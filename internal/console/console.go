// Package console is twoway's web console: plain HTML, CSS and JavaScript
// embedded in the binary and served at /ui/ by every agent, and the few
// API routes it needs that the rest of the API lacks — a metrics history
// (1 s resolution, 15 minutes), the live agents, the bucket's objects by
// kind, consumer groups, and the tail of a function's logs (docs/HTTP.md).
// The console reads everything else through the same API the CLI uses.
//
// It is a module without entry types: it commits nothing, so adding it
// changes nothing in the bucket's format.
package console

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/stream"
)

// Config is what the console reads. Zero durations take the defaults.
type Config struct {
	// Gatherer is the agent's metrics registry, sampled every Interval.
	Gatherer prometheus.Gatherer
	Streams  *stream.Service
	// Groups is the consumer-group coordinator: committed offsets always,
	// members only for the groups this agent coordinates.
	Groups *groups.Coordinator
	// Coordinating: the coordinator was started (the agent serves Kafka);
	// without it members are not described.
	Coordinating bool
	// Logs is the tail of functions' logs (nil: none kept).
	Logs *LogTail
	// Version is the twoway version the agent reports.
	Version string
	// Addrs returns the agent's listen addresses, for the overview.
	Addrs func() map[string]string
	// Linger is the commit log's group-commit wait, shown beside the
	// bucket's costs (it trades PUTs for latency).
	Linger time.Duration
	// Interval between metrics samples: default 1 s.
	Interval time.Duration
	// RecountEvery is the least time between two counts of the bucket's
	// objects (each lists the whole bucket): default 1 minute.
	RecountEvery time.Duration
	// AgentsEvery is how long a listing of the live agents is reused:
	// default 10 s.
	AgentsEvery time.Duration
}

func (c *Config) fill() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.RecountEvery <= 0 {
		c.RecountEvery = time.Minute
	}
	if c.AgentsEvery <= 0 {
		c.AgentsEvery = 10 * time.Second
	}
	if c.Logs == nil {
		c.Logs = NewLogTail()
	}
}

// Module is the console module.
type Module struct {
	cfg     Config
	hist    *history
	log     *commitlog.Log
	b       bucket.Bucket
	logger  *slog.Logger
	started time.Time
	counts  *objectCounts

	agentsMu   sync.Mutex
	agentsAt   time.Time
	agentsList []commitlog.Registration
}

// New returns the console module.
func New(cfg Config) *Module {
	cfg.fill()
	return &Module{cfg: cfg, hist: newHistory()}
}

func (m *Module) Name() string              { return "console" }
func (m *Module) Owners() []commitlog.Owner { return nil }
func (m *Module) Close() error              { return nil }

// Start registers the routes and starts the sampler.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	m.log, m.b, m.logger, m.started = env.Log, env.Bucket, env.Logger, time.Now()
	m.counts = &objectCounts{b: env.Bucket, every: m.cfg.RecountEvery, logger: env.Logger}
	m.routes(env.HTTP)
	env.Go(m.sample)
	return nil
}

func (m *Module) routes(r module.Routes) {
	assets := assetHandler()
	r.Handle("GET /ui/", assets)
	r.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	guard := func(op, res, nameParam string, f http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name := authz.ClusterName
			if nameParam != "" {
				name = r.PathValue(nameParam)
			}
			if err := authz.Check(r.Context(), op, res, name); err != nil {
				httpapi.WriteError(w, err)
				return
			}
			f(w, r)
		})
	}
	r.Handle("GET /v1/metrics/history", guard(authz.OpDescribe, authz.ResCluster, "", m.handleHistory))
	r.Handle("GET /v1/agents", guard(authz.OpDescribe, authz.ResCluster, "", m.handleAgents))
	r.Handle("GET /v1/bucket", guard(authz.OpDescribe, authz.ResCluster, "", m.handleBucket))
	r.Handle("GET /v1/bucket/objects", guard(authz.OpDescribe, authz.ResCluster, "", m.handleObjects))
	r.Handle("GET /v1/groups", http.HandlerFunc(m.handleGroups))
	r.Handle("GET /v1/groups/{group}", guard(authz.OpDescribe, authz.ResGroup, "group", m.handleGroup))
	r.Handle("GET /v1/functions/{name}/logs", guard(authz.OpDescribe, authz.ResFunction, "name", m.handleLogs))
}

// onlyParams refuses query parameters other than those named, as the rest
// of the API does.
func onlyParams(r *http.Request, names ...string) error {
	for p := range r.URL.Query() {
		ok := false
		for _, n := range names {
			ok = ok || p == n
		}
		if !ok {
			return httpapi.BadRequest(p, "unknown query parameter (the parameters are "+strings.Join(names, ", ")+")")
		}
	}
	return nil
}

func (m *Module) handleHistory(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r, "since", "series"); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	var since int64
	if s := r.URL.Query().Get("since"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			httpapi.WriteError(w, httpapi.BadRequest("since", "since: want milliseconds since the epoch, got "+strconv.Quote(s)))
			return
		}
		since = v
	}
	var prefixes []string
	if s := r.URL.Query().Get("series"); s != "" {
		prefixes = strings.Split(s, ",")
	}
	b := m.hist.appendJSON(make([]byte, 0, 4096), since, time.Now().UnixMilli(), prefixes)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

func (m *Module) handleLogs(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r, "after"); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			httpapi.WriteError(w, httpapi.BadRequest("after", "after: want a log sequence number, got "+strconv.Quote(s)))
			return
		}
		after = v
	}
	lines, last := m.cfg.Logs.After(r.PathValue("name"), after)
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"lines": lines, "last": last, "kept": LogLen})
}

// agentInfo is this agent in GET /v1/agents.
type agentInfo struct {
	Agent        string            `json:"agent"`
	Version      string            `json:"version"`
	StartedMs    int64             `json:"started_ms"`
	Addrs        map[string]string `json:"addrs"`
	Applied      uint64            `json:"applied"`
	TailLagMs    int64             `json:"tail_lag_ms"`
	Ready        bool              `json:"ready"`
	Status       string            `json:"status"`
	Reason       string            `json:"reason,omitempty"`
	Janitor      bool              `json:"janitor"`
	LastError    string            `json:"last_error,omitempty"`
	LastErrorMs  int64             `json:"last_error_ms,omitempty"`
	BucketString string            `json:"bucket"`
	LingerMs     int64             `json:"linger_ms"`
}

// BuildVersion is the version of the running binary as the Go toolchain
// recorded it: the module version and, when built from a checkout, the
// commit.
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " (" + bi.GoVersion + ")"
}

type peerInfo struct {
	Agent     string `json:"agent"`
	StartedMs int64  `json:"started_ms"`
	UpdatedMs int64  `json:"updated_ms"`
	Hint      string `json:"hint,omitempty"`
	Self      bool   `json:"self"`
}

func (m *Module) self() agentInfo {
	h := m.log.Health()
	a := agentInfo{
		Agent: m.log.AgentID(), Version: m.cfg.Version, StartedMs: m.started.UnixMilli(),
		Applied: h.Applied, Ready: h.Ready, Status: "ok", Reason: h.Reason,
		Janitor: m.log.IsJanitor(), BucketString: m.b.String(), LingerMs: m.cfg.Linger.Milliseconds(),
	}
	if m.cfg.Addrs != nil {
		a.Addrs = m.cfg.Addrs()
	}
	if !h.TailConfirmed.IsZero() {
		a.TailLagMs = time.Since(h.TailConfirmed).Milliseconds()
	}
	switch {
	case h.Stopped != nil:
		a.Status = "stopped"
	case !h.Ready:
		a.Status = "not ready"
	}
	if h.LastError != nil {
		a.LastError, a.LastErrorMs = h.LastError.Error(), h.LastErrorAt.UnixMilli()
	}
	return a
}

func (m *Module) handleAgents(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	m.agentsMu.Lock()
	if time.Since(m.agentsAt) > m.cfg.AgentsEvery {
		list, err := m.log.Agents(r.Context())
		if err != nil {
			m.agentsMu.Unlock()
			httpapi.WriteError(w, err)
			return
		}
		m.agentsList, m.agentsAt = list, time.Now()
	}
	list, at := m.agentsList, m.agentsAt
	m.agentsMu.Unlock()
	peers := []peerInfo{}
	for _, reg := range list {
		peers = append(peers, peerInfo{Agent: reg.Agent, StartedMs: reg.StartedMs, UpdatedMs: reg.UpdatedMs, Hint: reg.Hint, Self: reg.Agent == m.log.AgentID()})
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"self": m.self(), "agents": peers, "listed_ms": at.UnixMilli()})
}
