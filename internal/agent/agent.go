// Package agent assembles one twoway agent: the bucket (with metrics), the
// commit log and streams, and the front doors that serve them. `twoway
// serve` runs one with listeners; the CLI's embedded mode opens one without
// any, straight on a bucket, since the bucket is all the state there is.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/instrument"
	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/console"
	"github.com/twoway/twoway/internal/functions"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/mirror"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/stream"
	"github.com/twoway/twoway/internal/tables"
	"github.com/twoway/twoway/internal/tlsconf"
)

// Config describes an agent. Open fills the defaults (zero values) and
// checks it.
type Config struct {
	// Bucket is a bucket URL: a directory, file:///path or s3://...
	Bucket string
	// HTTPAddr is where to serve HTTP; empty serves none.
	HTTPAddr string
	// KafkaAddr is where to serve the Kafka protocol; empty serves none.
	KafkaAddr string
	// TLS, when its files are set, makes both listeners speak TLS (HTTPS,
	// and Kafka's SSL), the certificate reloaded when its files change.
	TLS tlsconf.Files
	// Auth requires authentication on both listeners: SASL on Kafka
	// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), HTTP Basic on HTTP, with the
	// users in the log. Without it SASL is still served to clients that
	// ask.
	Auth bool
	// SASLSessionLifetime, if positive, limits a Kafka SASL authentication
	// to this long: clients re-authenticate on their connections or are
	// disconnected (KIP-368, Kafka's connections.max.reauth.ms; see
	// kafka.Config.SessionLifetime). 0 is off.
	SASLSessionLifetime time.Duration
	// MetricsAuth makes /metrics require authentication too (with Auth).
	MetricsAuth bool
	// SuperUsers bypass the ACLs (with Auth, which turns ACLs on):
	// principals such as User:admin.
	SuperUsers []string
	// InsecureNoAuth allows listening on a non-loopback address without
	// authentication (Auth, or TLS client certificates).
	InsecureNoAuth bool
	// KafkaAdvertise is the host:port Kafka clients are told to connect to
	// (Metadata, FindCoordinator). Default: the address listened on.
	KafkaAdvertise string
	// Groups tunes consumer-group coordination (tests shorten the lease).
	Groups groups.Config
	// OffsetsRetention is how long the committed offsets of a group nobody
	// coordinates are kept after its newest commit (Kafka's
	// offsets.retention.minutes). Default 7 days.
	OffsetsRetention time.Duration
	// Linger is an extra group-commit wait (see commitlog.Options.Linger).
	// Zero picks the backend's default: none on a directory, 100ms on S3
	// (where a PUT costs money and takes tens of milliseconds anyway);
	// NoLinger asks for none on any backend.
	Linger time.Duration
	// HintAddr is the UDP address for commit hints (commitlog.Options.
	// HintAddr): default 127.0.0.1:0, "off" to poll only.
	HintAddr string
	// Log overrides commit-log tuning (tests use short intervals). Linger
	// above wins over Log.Linger when set.
	Log commitlog.Options
	// Janitor: embedded one-shot commands run without the janitor (and
	// without functions' subscriptions and timers).
	NoJanitor bool
	// Functions tunes the functions module; its Streams and Workers are
	// the agent's. CacheDir defaults to the user's cache directory.
	Functions functions.Config
	// Tables tunes the tables module; its Streams and Workers are the
	// agent's.
	Tables tables.Config
	// Memory, if positive, is the agent's memory budget in bytes (serve
	// --memory): every cache and buffer is sized from it (PlanMemory) and
	// producers are slowed rather than the budget exceeded.
	Memory int64
	Logger *slog.Logger
	// Registry receives the agent's metrics; nil makes a new one.
	Registry *prometheus.Registry
}

// StopDrain is how long an agent whose log stopped keeps answering (health
// checks say why) before Serve returns.
var StopDrain = 2 * time.Second

// Agent is a running agent.
type Agent struct {
	cfg     Config
	Bucket  *instrument.Bucket
	Service *stream.Service
	HTTP    *httpapi.Server
	Kafka   *kafka.Server
	Groups  *groups.Coordinator
	// Functions is the functions module (deployments, invocations).
	Functions *functions.Module
	// Tables is the tables module (Iceberg tables, SQL).
	Tables *tables.Module
	// Users is the security module: users and their authentication.
	Users *auth.Module
	// Mirror holds the positions of the mirrors writing into this
	// deployment, and runs none by itself (see internal/mirror).
	Mirror *mirror.Module
	kind   bucketurl.Kind
	set    *module.Set
	tls    *tls.Config // nil: plaintext

	mu        sync.Mutex
	listeners []net.Listener
}

// Open opens the bucket and the streams on it.
func Open(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// The console's live tail of functions' logs sees every line the
	// agent logs about a function (and passes them all on).
	var logTail *console.LogTail
	if cfg.HTTPAddr != "" {
		logTail = console.NewLogTail()
		cfg.Logger = slog.New(logTail.Handler(cfg.Logger.Handler()))
	}
	loc, err := bucketurl.Parse(cfg.Bucket)
	if err != nil {
		return nil, err
	}
	raw, err := loc.Open(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		cfg.Registry = httpapi.NewRegistry()
	}
	if err := checkExposure(cfg); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, kind: loc.Kind}
	if cfg.TLS.Enabled() {
		r, err := tlsconf.New(cfg.TLS, cfg.Logger)
		if err != nil {
			return nil, err
		}
		a.tls = r.Config()
	}
	a.Bucket = instrument.Wrap(raw, cfg.Registry)
	if err := checkBucket(ctx, a.Bucket); err != nil {
		return nil, err
	}
	opts := cfg.Log
	opts.Logger = cfg.Logger
	opts.NoJanitor = opts.NoJanitor || cfg.NoJanitor
	if cfg.Linger != 0 {
		opts.Linger = cfg.Linger
	}
	if cfg.HintAddr != "" {
		opts.HintAddr = cfg.HintAddr
	}
	opts = TuneLog(loc.Kind, opts)
	var plan *MemoryPlan
	if cfg.Memory > 0 {
		p, err := PlanMemory(cfg.Memory, ResidentFileBytes())
		if err != nil {
			return nil, err
		}
		plan = &p
		p.applyRuntime(os.Getenv)
		opts.ChunkMax, opts.ChunkUploads, opts.RecentBytes = p.ChunkMax, p.ChunkUploads, p.RecentCommits
		cfg.Tables.FlushBytes, cfg.Tables.SQLMemoryLimit = p.TableFlush, p.SQLMemory
		cfg.Logger.Info("memory budget", "budget", p.Budget, "go_limit", p.GoLimit, "blob_cache", p.BlobCache, "kafka_requests", p.KafkaRequests,
			"kafka_fetch", p.KafkaFetch, "chunk", p.ChunkMax, "chunk_uploads", p.ChunkUploads)
	}
	gm, err := groups.NewModule(groups.ModuleConfig{
		Coordinate:       cfg.KafkaAddr != "",
		Coordinator:      withGroupDefaults(cfg.Groups, cfg.Logger),
		OffsetsRetention: cfg.OffsetsRetention,
	})
	if err != nil {
		return nil, err
	}
	sopts := stream.Options{}
	if plan != nil {
		sopts.CacheBytes = plan.BlobCache
	}
	a.Service, a.Groups = stream.New(sopts), gm.Coordinator()
	fcfg := cfg.Functions
	fcfg.Streams, fcfg.Workers = a.Service, !opts.NoJanitor
	if fcfg.CacheDir == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			fcfg.CacheDir = filepath.Join(dir, "twoway")
		}
	}
	a.Functions = functions.New(fcfg)
	tcfg := cfg.Tables
	tcfg.Streams, tcfg.Workers = a.Service, !opts.NoJanitor
	a.Tables = tables.New(tcfg)
	a.Mirror = mirror.NewModule()
	// The HTTP server exists before the modules start, which register
	// their routes on it; its health checks read the log once it is open.
	var set *module.Set
	a.Users = auth.New()
	a.Users.SetAuthorization(cfg.Auth, cfg.SuperUsers)
	hcfg := httpapi.Config{Registry: cfg.Registry, Logger: cfg.Logger, Health: func() commitlog.Health { return set.Log().Health() }}
	if plan != nil {
		hcfg.MaxBodyBytes = plan.HTTPBody
	}
	if cfg.Auth {
		hcfg.Authenticate, hcfg.MetricsAuth, hcfg.Authorizer = a.Users.HTTPAuth, cfg.MetricsAuth, a.Users
	}
	a.HTTP = httpapi.New(hcfg)
	// The module list. Every agent assembles every module, whichever front
	// doors it serves: an agent lacking a module's owners would stop at
	// the first entry of its types another agent commits.
	mods := []module.Module{
		a.Service,
		gm,
		a.Functions,
		a.Users,
		a.Tables,
		a.Mirror,
	}
	// The web console commits nothing (no owners), so only agents that
	// serve HTTP assemble it.
	if cfg.HTTPAddr != "" {
		for _, c := range []prometheus.Collector{kafka.RequestDuration, kafka.RequestBytes} {
			if err := cfg.Registry.Register(c); err != nil {
				if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
					return nil, err
				}
			}
		}
		mods = append(mods, console.New(console.Config{
			Gatherer:     cfg.Registry,
			Streams:      a.Service,
			Groups:       a.Groups,
			Coordinating: cfg.KafkaAddr != "",
			Logs:         logTail,
			Version:      console.BuildVersion(),
			Addrs:        a.consoleAddrs,
			Linger:       opts.Linger,
		}))
	}
	set, err = module.Open(ctx, module.Config{Bucket: a.Bucket, Log: opts, HTTP: a.HTTP, Metrics: cfg.Registry, Logger: cfg.Logger}, mods...)
	if err != nil {
		return nil, fmt.Errorf("open the log in %s: %w", a.Bucket, err)
	}
	a.set = set
	if cfg.KafkaAddr != "" {
		kcfg := kafka.Config{
			TLS:             a.tls,
			Auth:            a.Users,
			RequireAuth:     cfg.Auth,
			SessionLifetime: cfg.SASLSessionLifetime,
			Service:         a.Service,
			Addr:            cfg.KafkaAddr,
			Advertise:       cfg.KafkaAdvertise,
			Groups:          a.Groups,
			Logger:          cfg.Logger,
		}
		if plan != nil {
			kcfg.MaxRequestBytes, kcfg.MaxFetchInFlight, kcfg.MaxFetchBytes = plan.KafkaRequests, plan.KafkaFetch, plan.KafkaFetchMax
			kcfg.MaxDecompressedInFlight = plan.KafkaDecompressed
		}
		a.Kafka = kafka.NewServer(kcfg)
	}
	registerLogMetrics(cfg.Registry, a.Log())
	// The streams' HTTP front door, as Kafka is their other one.
	httpapi.RegisterStreams(a.HTTP, a.Service)
	return a, nil
}

// NoLinger as a Linger asks for no extra group-commit wait on any backend
// (zero means the backend's default).
const NoLinger = time.Duration(-1)

// TuneLog fills in the commit-log settings that depend on the backend, as
// every agent (and benchmark) uses them: on S3, where a PUT costs money and
// tens of milliseconds, a 100ms linger and a 20ms minimum tail poll; on a
// directory no linger and up to 1 MiB of data inlined in a commit. Values
// already set are kept; a Linger of NoLinger becomes 0.
func TuneLog(kind bucketurl.Kind, o commitlog.Options) commitlog.Options {
	switch {
	case o.Linger < 0:
		o.Linger = 0
	case o.Linger == 0 && kind == bucketurl.S3:
		o.Linger = 100 * time.Millisecond
	}
	// On a directory a PUT costs a file create and two fsyncs whatever its
	// size, and readers read locally: inlining up to 1 MiB in the commit
	// saves the chunk's PUT that would come before it. On S3 every agent
	// tailing the log GETs each commit whole, so commits stay small.
	if kind != bucketurl.S3 && o.InlineMax <= 0 {
		o.InlineMax = 1 << 20
	}
	if kind == bucketurl.S3 && o.PollMin <= 0 {
		o.PollMin = 20 * time.Millisecond
	}
	return o
}

// Serve serves the configured listeners until ctx ends, then stops them and
// closes the agent.
func (a *Agent) Serve(ctx context.Context) error {
	defer a.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	running := 0
	var httpLn net.Listener
	var kafkaAttrs []any
	attrs := []any{"bucket", a.Bucket.String()}
	// Everything that can fail is set up before anything serves, so a
	// failure returns with no server running while Close stops the rest.
	if a.Kafka != nil {
		if err := a.Kafka.Listen(); err != nil {
			return fmt.Errorf("Kafka address %s: %w", a.cfg.KafkaAddr, err)
		}
		host, port := a.Kafka.Advertised()
		advertised := net.JoinHostPort(host, fmt.Sprint(port))
		if err := a.Groups.Start(a.Log(), advertised, a.Service); err != nil {
			return err
		}
		kafkaAttrs = []any{"kafka", a.Kafka.Addr().String(), "kafka_advertised", advertised, "node_id", a.Kafka.NodeID()}
	}
	if a.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("HTTP address %s: %w", a.cfg.HTTPAddr, err)
		}
		a.addListener(ln)
		scheme := "http://"
		if a.tls != nil {
			ln, scheme = tls.NewListener(ln, a.tls), "https://"
		}
		httpLn = ln
		attrs = append(attrs, "http", scheme+ln.Addr().String())
		running++
	}
	attrs = append(attrs, kafkaAttrs...)
	if a.Kafka != nil {
		running++
		go func() { errc <- a.Kafka.Serve(ctx) }()
	}
	if httpLn != nil {
		go func() { errc <- a.HTTP.Serve(ctx, httpLn) }()
	}
	attrs = append(attrs, "agent", a.Log().AgentID())
	a.cfg.Logger.Info("twoway serving", attrs...)
	if running == 0 {
		return errors.New("nothing to serve: no listener configured")
	}
	// A log that stops (a corrupt commit, an entry type this version does
	// not know) stops the agent: after a short drain, during which /healthz
	// and /readyz say why, Serve returns the error.
	l := a.Log()
	go func() {
		for l.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-l.Changed():
			}
		}
		a.cfg.Logger.Error("the commit log stopped; shutting down", "err", l.Err())
		select {
		case <-ctx.Done():
		case <-time.After(StopDrain):
		}
		errc <- l.Err()
		cancel()
	}()
	var first error
	for range running {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	if err := l.Err(); err != nil && first == nil {
		first = err
	}
	return first
}

func (a *Agent) addListener(ln net.Listener) {
	a.mu.Lock()
	a.listeners = append(a.listeners, ln)
	a.mu.Unlock()
}

// Addrs returns the addresses the agent listens on, once Serve has started
// them (for tests that ask for port 0).
func (a *Agent) Addrs() []net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []net.Addr
	for _, ln := range a.listeners {
		out = append(out, ln.Addr())
	}
	return out
}

// consoleAddrs names the listeners for the console's overview.
func (a *Agent) consoleAddrs() map[string]string {
	out := map[string]string{}
	a.mu.Lock()
	for _, ln := range a.listeners {
		out["http"] = ln.Addr().String()
	}
	a.mu.Unlock()
	if a.Kafka != nil {
		if host, port := a.Kafka.Advertised(); port != 0 {
			out["kafka"] = net.JoinHostPort(host, fmt.Sprint(port))
		}
	}
	return out
}

// Close stops the front doors, then the modules (the groups release their
// leases) and the log.
func (a *Agent) Close() error {
	if a.Kafka != nil {
		a.Kafka.Close()
	}
	return a.set.Close()
}

// Log is the agent's commit log.
func (a *Agent) Log() *commitlog.Log { return a.set.Log() }

func withGroupDefaults(c groups.Config, logger *slog.Logger) groups.Config {
	c.Logger = logger
	c.NodeID = kafka.NodeIDFor
	return c
}

// checkBucket lists one object, so that a bucket that cannot be reached or
// read (wrong endpoint, credentials, permissions) stops the agent at start
// instead of failing its first requests.
func checkBucket(ctx context.Context, b bucket.Bucket) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, err := range b.List(ctx, "", "") {
		if err != nil {
			return fmt.Errorf("cannot use the bucket: %w", err)
		}
		break
	}
	return nil
}

// registerLogMetrics exposes the commit log's counters.
func registerLogMetrics(reg prometheus.Registerer, l *commitlog.Log) {
	st := &l.Stats
	counter := func(name, help string, f func() int64) {
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "twoway_log_" + name, Help: help}, func() float64 { return float64(f()) })
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
	counter("commits_total", "Commits this agent wrote.", st.Commits.Load)
	counter("commit_conflicts_total", "Commit attempts lost to another agent's commit at the same sequence number.", st.Conflicts.Load)
	counter("commit_unknown_outcome_total", "Commit writes whose outcome had to be read back.", st.UnknownOutcome.Load)
	counter("applied_total", "Commits applied, this agent's and others'.", st.Applied.Load)
	counter("chunks_written_total", "Chunk objects written.", st.ChunksWritten.Load)
	counter("chunk_bytes_total", "Bytes written in chunks.", st.ChunkBytes.Load)
	counter("checkpoints_total", "Checkpoints written.", st.Checkpoints.Load)
	counter("gc_deleted_total", "Objects deleted by garbage collection.", st.Deleted.Load)
	counter("reloads_total", "Restarts from a checkpoint after commits were collected under this agent.", st.Reloads.Load)
	gauge := func(name, help string, f func() float64) {
		_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "twoway_log_" + name, Help: help}, f))
	}
	gauge("applied_seq", "Sequence number of the newest applied commit.", func() float64 { return float64(l.Applied()) })
	gauge("tail_lag_seconds", "Time since the log last confirmed it had applied every commit in the bucket.", func() float64 {
		h := l.Health()
		if h.TailConfirmed.IsZero() {
			return 0
		}
		return time.Since(h.TailConfirmed).Seconds()
	})
	gauge("stopped", "1 once the commit log has stopped on an error it cannot go past.", func() float64 {
		if l.Err() != nil {
			return 1
		}
		return 0
	})
	gauge("ready", "1 while the agent is caught up with the log and can reach the bucket.", func() float64 {
		if l.Health().Ready {
			return 1
		}
		return 0
	})
	gauge("last_error_timestamp_seconds", "When the log last met an error (bucket unreachable, read failed); 0 if never.", func() float64 {
		if t := l.Health().LastErrorAt; !t.IsZero() {
			return float64(t.UnixNano()) / 1e9
		}
		return 0
	})
	counter("too_late_total", "Proposals refused because their data or task deadline was too old to commit safely.", st.TooLate.Load)
	counter("hints_received_total", "Commit hints from other agents that woke this agent's tail (UDP, --hint).", st.HintsReceived.Load)
	counter("snapshots_reused_total", "Owner snapshots a checkpoint reused because the owner had not changed.", st.SnapshotsReused.Load)
}

// checkExposure refuses listeners that anyone on the network could reach
// without authenticating, unless asked for by InsecureNoAuth.
func checkExposure(cfg Config) error {
	if cfg.Auth || cfg.TLS.ClientCA != "" || cfg.InsecureNoAuth {
		return nil
	}
	for _, l := range []struct{ flag, addr string }{{"--http", cfg.HTTPAddr}, {"--kafka", cfg.KafkaAddr}} {
		if l.addr == "" {
			continue
		}
		host, _, err := net.SplitHostPort(l.addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", l.flag, l.addr, err)
		}
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			continue
		}
		return fmt.Errorf("refusing to listen on %s (%s) without authentication: anyone who can reach it could read, write and delete everything. "+
			"Give --auth (with users from `twoway user create`) or --tls-client-ca, or --insecure-no-auth to serve anyone who can connect", l.addr, l.flag)
	}
	return nil
}
