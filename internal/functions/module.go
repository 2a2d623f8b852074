// Package functions runs business logic as sandboxed WebAssembly with
// durable keyed state (actors): deployments, invocations by HTTP and by
// stream records, timers, and the exactly-once commit of their effects.
// The runtime (compilation, instances, the guest ABI's imports) is
// internal/wasm's; this package gives the imports their meaning and
// commits what invocations did.
//
// Exactly-once: everything an invocation changes (actor state, published
// records, timers, dead letters) and what it consumed (the input offsets
// of a subscription, the timers it handled) goes into one all-or-none
// group (commitlog.All) headed by a TypeEffects entry. The entry is also
// the guard: it applies only if the input position, the versions of the
// actors it read and the timers it handled are still as the invocation
// saw them; otherwise nothing of the group applies and the invocation
// runs again on the newer state. So any number of agents may run any
// invocation and every effect happens once.
package functions

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/keyed"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/stream"
	"github.com/twoway/twoway/internal/wasm"
)

// Config configures the functions module.
type Config struct {
	// Streams is the agent's streams module: records are read from and
	// published to it.
	Streams *stream.Service
	// CacheDir keeps compiled modules across restarts ("" compiles in
	// memory only).
	CacheDir string
	// Workers runs subscriptions and timers on this agent. One-shot CLI
	// commands leave it off; invocations still run.
	Workers bool
	// LeaseDuration is how long a subscription's partition lease lasts
	// unrenewed. Default 10s.
	LeaseDuration time.Duration
	// Retries is how many times a failing record is retried before it is
	// dead-lettered. Default 3.
	Retries int
	// BatchMax bounds the records of one subscription commit. Default 500.
	BatchMax int
	// TimerTick is how often due timers are looked for. Default 200ms.
	TimerTick time.Duration
	// StateCache is the bytes of actor state cached in memory. Default
	// 64 MiB.
	StateCache int64
	// Defaults for deployments that do not set their limits.
	Defaults Limits
}

// DefaultLimits are a deployment's limits unless it sets its own.
var DefaultLimits = Limits{
	MemoryPages:    256, // 16 MiB
	TimeoutMs:      5000,
	MaxConcurrency: 16,
	MaxOutput:      1 << 20,
	MaxState:       1 << 20,
	MaxRecord:      1 << 20,
	MaxEffects:     1000,
}

func (c *Config) fill() {
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 10 * time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 3
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 500
	}
	if c.TimerTick <= 0 {
		c.TimerTick = 200 * time.Millisecond
	}
	if c.StateCache <= 0 {
		c.StateCache = 64 << 20
	}
	c.Defaults = c.Defaults.or(DefaultLimits)
}

// Module is the functions module.
type Module struct {
	cfg     Config
	st      *state
	log     *commitlog.Log
	b       bucket.Bucket
	logger  *slog.Logger
	streams *stream.Service
	reader  *keyed.Reader
	met     *metrics

	mu       sync.Mutex
	cache    *wasm.Cache
	runtimes map[uint32]*wasm.Runtime
	loaded   map[string]*loaded // by name "@" version
	// compiled are modules by digest and limits, shared by the versions
	// that use them (a rollback compiles nothing); loading is set while
	// one is being compiled, so callers wait rather than compile too.
	compiled map[string]*wasm.Module
	loading  map[string]chan struct{}
	sems     map[string]chan struct{}
	boxes    map[string]*mailbox

	ctx    context.Context
	cancel context.CancelFunc
}

// loaded is a deployment with its compiled module.
type loaded struct {
	d   Deployment
	mod *wasm.Module
}

// New makes the module.
func New(cfg Config) *Module {
	cfg.fill()
	return &Module{cfg: cfg, st: newState(), streams: cfg.Streams,
		runtimes: map[uint32]*wasm.Runtime{}, loaded: map[string]*loaded{},
		compiled: map[string]*wasm.Module{}, loading: map[string]chan struct{}{},
		sems: map[string]chan struct{}{}, boxes: map[string]*mailbox{}}
}

func (m *Module) Name() string              { return "functions" }
func (m *Module) Owners() []commitlog.Owner { return []commitlog.Owner{m.st} }

// Start wires the module to the log: routes, metrics, GC of modules, and
// (with Workers) subscriptions and timers.
func (m *Module) Start(ctx context.Context, env *module.Env) error {
	m.log, m.b, m.logger = env.Log, env.Bucket, env.Logger
	m.reader = keyed.NewReader(env.Bucket, m.cfg.StateCache)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	env.Log.CollectUnder(ModulesPrefix)
	met, err := newMetrics(m, env.Metrics)
	if err != nil {
		return err
	}
	m.met = met
	m.routes(env.HTTP)
	if m.cfg.Workers {
		env.Go(m.subscriptions)
		env.Go(m.timers)
	}
	return nil
}

// Close stops invocations and releases the runtimes.
func (m *Module) Close() error {
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, mod := range m.compiled {
		errs = append(errs, mod.Close(context.Background()))
	}
	for _, r := range m.runtimes {
		errs = append(errs, r.Close(context.Background()))
	}
	if m.cache != nil {
		errs = append(errs, m.cache.Close(context.Background()))
	}
	m.loaded, m.compiled, m.runtimes, m.cache = map[string]*loaded{}, map[string]*wasm.Module{}, map[uint32]*wasm.Runtime{}, nil
	return errors.Join(errs...)
}

// ---- deploying ----

// DeployRequest is what a deploy asks for.
type DeployRequest struct {
	Name      string
	Module    []byte
	Grants    []string
	Subscribe []string
	HTTP      bool
	Config    map[string]string
	// Limits: zero fields take the defaults.
	Limits Limits
}

// Errors of deploys and invocations that callers tell apart.
var (
	ErrInvalid      = errors.New("invalid")
	ErrNotFound     = errors.New("not found")
	ErrNotGranted   = errors.New("not granted")
	ErrInvocation   = errors.New("invocation failed")
	ErrBusy         = errors.New("too many conflicting writers")
	ErrNoKey        = errors.New("no key")
	ErrUnknownTopic = stream.ErrUnknownTopic
)

// grantNames are the capabilities a deployment may be granted;
// parameterized ones end in ':'.
var grantNames = []string{"state", "timers", "log", "metrics", "config", "publish:", "read:", "http:"}

func validGrant(g string) bool {
	for _, n := range grantNames {
		if strings.HasSuffix(n, ":") {
			if strings.HasPrefix(g, n) && len(g) > len(n) {
				return true
			}
		} else if g == n {
			return true
		}
	}
	return false
}

func hasGrant(grants []string, want string) bool {
	for _, g := range grants {
		if g == want || strings.HasSuffix(want, ":") && strings.HasPrefix(g, want) {
			return true
		}
	}
	return false
}

// checkGrants refuses a module importing what its grants do not allow.
func checkGrants(name string, imports, grants []string) error {
	caps := wasm.Capabilities()
	for _, imp := range imports {
		fn, ok := strings.CutPrefix(imp, "twoway_v1.")
		if !ok {
			continue
		}
		need := caps[fn]
		if need == "" || hasGrant(grants, need) {
			continue
		}
		example := need
		if strings.HasSuffix(need, ":") {
			example += map[string]string{"publish:": "TOPIC", "read:": "TOPIC", "http:": "HOST"}[need]
		}
		return fmt.Errorf("%w: function %s imports %s, which needs the grant %s (--grant %s)", ErrNotGranted, name, imp, example, example)
	}
	return nil
}

// Deploy stores the module and commits a new version of the function.
func (m *Module) Deploy(ctx context.Context, req DeployRequest) (Deployment, error) {
	if err := ValidateName(req.Name); err != nil {
		return Deployment{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, g := range req.Grants {
		if !validGrant(g) {
			return Deployment{}, fmt.Errorf("%w: unknown grant %q (grants: state, timers, log, metrics, config, publish:TOPIC, read:TOPIC, http:HOST)", ErrInvalid, g)
		}
	}
	lim := req.Limits.or(m.cfg.Defaults)
	if lim.MemoryPages > 65536 || lim.TimeoutMs < 1 || lim.MaxConcurrency < 1 {
		return Deployment{}, fmt.Errorf("%w: limits out of range: memory %d pages (at most 65536), timeout %d ms, concurrency %d", ErrInvalid, lim.MemoryPages, lim.TimeoutMs, lim.MaxConcurrency)
	}
	rt, err := m.runtime(lim.MemoryPages)
	if err != nil {
		return Deployment{}, err
	}
	mod, err := rt.Load(ctx, req.Name, req.Module)
	if err != nil {
		return Deployment{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	imports := mod.Imports()
	mod.Close(ctx)
	if err := checkGrants(req.Name, imports, req.Grants); err != nil {
		return Deployment{}, err
	}
	for _, t := range req.Subscribe {
		if _, err := m.streams.Topic(t); err != nil {
			return Deployment{}, fmt.Errorf("--subscribe %s: %w", t, err)
		}
	}
	for _, g := range req.Grants {
		for _, p := range []string{"publish:", "read:"} {
			if t, ok := strings.CutPrefix(g, p); ok {
				if _, err := m.streams.Topic(t); err != nil {
					return Deployment{}, fmt.Errorf("--grant %s: %w", g, err)
				}
			}
		}
	}
	if len(req.Subscribe) > 0 {
		if err := m.ensureDLQ(ctx, req.Name); err != nil {
			return Deployment{}, err
		}
	}
	sum := sha256.Sum256(req.Module)
	digest := hex.EncodeToString(sum[:])
	if _, err := m.b.PutIfAbsent(ctx, ModuleKey(digest), bytes.NewReader(req.Module), int64(len(req.Module))); err != nil && !bucket.IsPrecondition(err) {
		return Deployment{}, fmt.Errorf("store module: %w", err)
	}
	d := Deployment{Name: req.Name, Module: digest, Size: int64(len(req.Module)), Imports: imports,
		Grants: slices.Clone(req.Grants), Subscribe: slices.Clone(req.Subscribe), HTTP: req.HTTP,
		Config: req.Config, Limits: lim, DeployedMs: time.Now().UnixMilli()}
	return m.commitDeploy(ctx, d)
}

// or fills l's zero fields from def.
func (l Limits) or(def Limits) Limits {
	pick := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MemoryPages == 0 {
		l.MemoryPages = def.MemoryPages
	}
	if l.TimeoutMs == 0 {
		l.TimeoutMs = def.TimeoutMs
	}
	pick(&l.MaxConcurrency, def.MaxConcurrency)
	pick(&l.MaxOutput, def.MaxOutput)
	pick(&l.MaxState, def.MaxState)
	pick(&l.MaxRecord, def.MaxRecord)
	pick(&l.MaxEffects, def.MaxEffects)
	return l
}

// DLQTopic is the dead-letter topic of function name.
func DLQTopic(name string) string { return name + ".dlq" }

func (m *Module) ensureDLQ(ctx context.Context, name string) error {
	err := m.streams.CreateTopic(ctx, stream.TopicConfig{Name: DLQTopic(name), Partitions: 1})
	if err != nil && !errors.Is(err, stream.ErrTopicExists) {
		return fmt.Errorf("create the dead-letter topic %s: %w", DLQTopic(name), err)
	}
	return nil
}

func (m *Module) commitDeploy(ctx context.Context, d Deployment) (Deployment, error) {
	data, _ := json.Marshal(d)
	res, err := m.propose(ctx, commitlog.Entry{Type: TypeDeploy, Data: data})
	if err != nil {
		return Deployment{}, err
	}
	if err, ok := res[0].(error); ok {
		return Deployment{}, err
	}
	d.Version = res[0].(int)
	return d, nil
}

// propose commits entries once the functions' entry types are enabled.
func (m *Module) propose(ctx context.Context, entries ...commitlog.Entry) ([]any, error) {
	for _, f := range []string{"type:300", commitlog.AllFeature} {
		if !m.log.Enabled(f) {
			// Without waiting for the janitor's next round (or for ever,
			// in a one-shot command that runs none).
			if err := m.log.EnableFeatures(ctx); err != nil {
				m.logger.Warn("enabling features failed", "err", err)
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := m.log.WaitEnabled(wctx, f)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("functions are not enabled yet (every agent must run a version that has them): %w", err)
			}
		}
	}
	_, res, err := m.log.Propose(ctx, entries...)
	return res, err
}

// Rollback deploys version to (0: the one before the live one) again, as
// a new version.
func (m *Module) Rollback(ctx context.Context, name string, to int) (Deployment, error) {
	hist := m.History(name)
	if len(hist) == 0 {
		return Deployment{}, fmt.Errorf("%w: function %s", ErrNotFound, name)
	}
	cur := hist[len(hist)-1]
	if to == 0 {
		// The version that was live before the current one.
		to = cur.Version - 1
		if cur.RollbackOf > 0 {
			to = cur.RollbackOf - 1
		}
	}
	if len(hist) == 1 {
		return Deployment{}, fmt.Errorf("%w: function %s has only version 1: there is nothing to roll back to", ErrInvalid, name)
	}
	if to < 1 || to > len(hist) || to == cur.Version {
		return Deployment{}, fmt.Errorf("%w: function %s has versions 1 to %d (live: %d); cannot roll back to %d", ErrInvalid, name, len(hist), cur.Version, to)
	}
	d := cloneDeployment(hist[to-1])
	d.RollbackOf, d.DeployedMs = to, time.Now().UnixMilli()
	return m.commitDeploy(ctx, d)
}

// Delete deletes a function with its actors, timers and positions.
func (m *Module) Delete(ctx context.Context, name string) error {
	data, _ := json.Marshal(map[string]string{"name": name})
	res, err := m.propose(ctx, commitlog.Entry{Type: TypeDelete, Data: data})
	if err != nil {
		return err
	}
	if err, ok := res[0].(error); ok {
		if errors.Is(err, ErrNoFunc) {
			return fmt.Errorf("%w: function %s", ErrNotFound, name)
		}
		return err
	}
	return nil
}

// List is the inventory: every function's live version.
func (m *Module) List() []Deployment {
	var out []Deployment
	m.log.View(m.st, func() { out = m.st.list() })
	return out
}

// Get returns a function's live version.
func (m *Module) Get(name string) (Deployment, bool) {
	var d Deployment
	var ok bool
	m.log.View(m.st, func() { d, ok = m.st.deployment(name) })
	return d, ok
}

// History lists every version of a function, oldest first.
func (m *Module) History(name string) []Deployment {
	var out []Deployment
	m.log.View(m.st, func() { out = m.st.history(name) })
	return out
}

// Sync catches up with the log.
func (m *Module) Sync(ctx context.Context) error { return m.log.Sync(ctx) }

// ---- running ----

func (m *Module) runtime(pages uint32) (*wasm.Runtime, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.runtimes[pages]; r != nil {
		return r, nil
	}
	if m.cache == nil {
		dir := ""
		if m.cfg.CacheDir != "" {
			dir = filepath.Join(m.cfg.CacheDir, "wasm")
		}
		c, err := wasm.NewCache(dir)
		if err != nil {
			return nil, err
		}
		m.cache = c
	}
	r, err := wasm.New(context.Background(), wasm.Config{Cache: m.cache, MemoryPages: pages, Logger: m.logger})
	if err != nil {
		return nil, err
	}
	m.runtimes[pages] = r
	return r, nil
}

// load returns deployment d compiled, loading the module from the bucket
// the first time. Versions sharing a module and limits share its
// compiled code and instances.
func (m *Module) load(ctx context.Context, d Deployment) (*loaded, error) {
	// The digest too: a function deleted and deployed again starts at
	// version 1 with other code.
	id := fmt.Sprintf("%s@%d/%s", d.Name, d.Version, d.Module)
	ck := fmt.Sprintf("%s/%s/%d/%d", d.Name, d.Module, d.Limits.MemoryPages, d.Limits.TimeoutMs)
	for {
		m.mu.Lock()
		if l := m.loaded[id]; l != nil {
			m.mu.Unlock()
			return l, nil
		}
		if mod := m.compiled[ck]; mod != nil {
			l := &loaded{d: d, mod: mod}
			m.loaded[id] = l
			m.mu.Unlock()
			return l, nil
		}
		wait, busy := m.loading[ck]
		if !busy {
			m.loading[ck] = make(chan struct{})
			m.mu.Unlock()
			break
		}
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	mod, err := m.compile(ctx, d)
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.loading[ck])
	delete(m.loading, ck)
	if err != nil {
		return nil, err
	}
	m.compiled[ck] = mod
	l := &loaded{d: d, mod: mod}
	m.loaded[id] = l
	return l, nil
}

func (m *Module) compile(ctx context.Context, d Deployment) (*wasm.Module, error) {
	body, _, err := bucket.ReadAll(ctx, m.b, ModuleKey(d.Module))
	if err != nil {
		return nil, fmt.Errorf("function %s version %d: read module %s: %w", d.Name, d.Version, d.Module, err)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != d.Module {
		return nil, fmt.Errorf("function %s version %d: module %s in the bucket does not match its digest", d.Name, d.Version, d.Module)
	}
	rt, err := m.runtime(d.Limits.MemoryPages)
	if err != nil {
		return nil, err
	}
	return rt.LoadWith(ctx, d.Name, body, wasm.LoadOptions{Timeout: time.Duration(d.Limits.TimeoutMs) * time.Millisecond})
}

// sem bounds a function's concurrent invocations on this agent.
func (m *Module) sem(d *Deployment) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sems[d.Name]
	if s == nil || cap(s) != d.Limits.MaxConcurrency {
		s = make(chan struct{}, d.Limits.MaxConcurrency)
		m.sems[d.Name] = s
	}
	return s
}

func newInvocationID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
