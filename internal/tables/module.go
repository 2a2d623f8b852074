// Package tables materializes topics as Apache Iceberg v2 tables of Parquet
// in the agent's bucket, serves them through an Iceberg REST catalog, and
// answers SQL over them on embedded DuckDB, including the records not yet
// materialized (the fresh tail).
//
// Exactly once: one agent at a time materializes a table, chosen by a
// lease "tables/NAME". It writes Parquet data files and Iceberg metadata
// (manifests, manifest list, metadata/vN.metadata.json) with iceberg-go,
// then commits a table pointer to the log (TypeCommit): the metadata
// locations and the end offset of every partition covered. The pointer
// applies only on the pointer it was built on, so it is the atomic swap
// of the table: a crash or a deposed holder before it leaves only files
// no pointer references, which garbage collection removes, and each
// record is in the table once.
package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/sqlengine"
	"github.com/twoway/twoway/internal/stream"
)

// Config configures the tables module.
type Config struct {
	// Streams is the agent's streams module: records are read from it.
	Streams *stream.Service
	// Workers materializes tables on this agent. One-shot CLI commands
	// leave it off.
	Workers bool
	// LeaseDuration is how long a table's lease lasts unrenewed. Default
	// 10s.
	LeaseDuration time.Duration
	// CommitInterval is the default for tables that do not set theirs:
	// new records are in the table within about this long. Default 10s.
	CommitInterval time.Duration
	// FlushBytes commits early when this much is pending. Default 64 MiB.
	FlushBytes int64
	// TargetFileSize is what small data files are merged into. Default
	// 128 MiB.
	TargetFileSize int64
	// SnapshotsKeep and SnapshotMaxAge bound the snapshots kept: older
	// ones beyond the count are expired. Defaults 100 and 24h.
	SnapshotsKeep  int
	SnapshotMaxAge time.Duration
	// MaintenanceEvery is how often the materializer merges small files
	// and expires snapshots. Default 1 minute.
	MaintenanceEvery time.Duration
	// MinMergeFiles is the fewest small files merged at once. Default 5.
	MinMergeFiles int
	// CacheDir holds the read-through cache of data files for SQL on a
	// bucket that is not a local directory. Default: a directory under
	// the user's cache.
	CacheDir string
	// CacheBytes bounds it. Default 1 GiB.
	CacheBytes int64
	// SQL limits.
	SQLMemoryLimit string
	SQLThreads     int
	SQLTimeout     time.Duration
	SQLMaxRows     int
}

func (c *Config) fill() {
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 10 * time.Second
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = 10 * time.Second
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = 64 << 20
	}
	if c.TargetFileSize <= 0 {
		c.TargetFileSize = 128 << 20
	}
	if c.SnapshotsKeep <= 0 {
		c.SnapshotsKeep = 100
	}
	if c.SnapshotMaxAge <= 0 {
		c.SnapshotMaxAge = 24 * time.Hour
	}
	if c.MaintenanceEvery <= 0 {
		c.MaintenanceEvery = time.Minute
	}
	if c.MinMergeFiles <= 1 {
		c.MinMergeFiles = 5
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 1 << 30
	}
}

// Module is the tables module.
type Module struct {
	cfg     Config
	st      *state
	log     *commitlog.Log
	b       bucket.Bucket
	logger  *slog.Logger
	streams *stream.Service
	met     *metrics
	cache   *fileCache

	mu      sync.Mutex
	running map[string]*worker

	engineOnce sync.Once
	sql        *sqlengine.Engine
	filesMu    sync.Mutex
	files      map[string][]string // metadata key -> data file keys
}

// New makes the module.
func New(cfg Config) *Module {
	cfg.fill()
	return &Module{cfg: cfg, st: newState(), streams: cfg.Streams, running: map[string]*worker{}, files: map[string][]string{}}
}

func (m *Module) Name() string              { return "tables" }
func (m *Module) Owners() []commitlog.Owner { return []commitlog.Owner{m.st} }

// Start wires the module to the log.
func (m *Module) Start(ctx context.Context, env *module.Env) error {
	m.log, m.b, m.logger = env.Log, env.Bucket, env.Logger
	env.Log.CollectUnder("tables/")
	met, err := newMetrics(m, env.Metrics)
	if err != nil {
		return err
	}
	m.met = met
	m.cache = newFileCache(m.cfg.CacheDir, m.cfg.CacheBytes, env.Bucket)
	m.routes(env.HTTP)
	if m.cfg.Workers {
		env.Go(m.materializers)
		// A serving agent has a database ready for its first query.
		m.engine()
	}
	return nil
}

// Close stops the materializers (Env.Go's context has ended) and the SQL
// engine.
func (m *Module) Close() error {
	m.engineOnce.Do(func() {}) // no engine is made after this
	if m.sql != nil {
		return m.sql.Close()
	}
	return nil
}

// ---- definitions ----

// CreateRequest is what table create asks for.
type CreateRequest struct {
	Name           string        `json:"name"`
	Topic          string        `json:"topic"`
	Schema         *Schema       `json:"schema,omitempty"`
	PartitionBy    string        `json:"partition_by,omitempty"`
	CommitInterval time.Duration `json:"-"`
	// Retention deletes rows older than it (0: never).
	Retention time.Duration `json:"-"`
}

// Create creates a table on a topic.
func (m *Module) Create(ctx context.Context, r CreateRequest) (*Table, error) {
	if err := ValidateName(r.Name); err != nil {
		return nil, err
	}
	if _, err := m.streams.Topic(r.Topic); err != nil {
		return nil, fmt.Errorf("%w: topic %q: %v", ErrInvalid, r.Topic, err)
	}
	if r.Schema != nil {
		if err := r.Schema.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	d := Def{Name: r.Name, Topic: r.Topic, Schema: r.Schema, PartitionBy: r.PartitionBy,
		CommitIntervalMs: r.CommitInterval.Milliseconds(), RetentionMs: r.Retention.Milliseconds(), CreatedMs: time.Now().UnixMilli()}
	if r.Retention < 0 || r.Retention > 0 && r.Retention < time.Second {
		return nil, fmt.Errorf("%w: retention %v: give at least 1s (or 0 to keep rows for ever)", ErrInvalid, r.Retention)
	}
	if d.CommitIntervalMs <= 0 {
		d.CommitIntervalMs = m.cfg.CommitInterval.Milliseconds()
	}
	if d.CommitIntervalMs < 100 {
		return nil, fmt.Errorf("%w: commit interval %v is below 100ms", ErrInvalid, r.CommitInterval)
	}
	// The partition spec must bind to the columns.
	if _, err := newMetadata(&d, false, "file:///check"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	data, _ := json.Marshal(d)
	if err := m.propose(ctx, commitlog.Entry{Type: TypeCreate, Data: data}); err != nil {
		return nil, err
	}
	t, _ := m.Get(r.Name)
	return t, nil
}

// Alter changes a table's schema: optional columns added at the end.
func (m *Module) Alter(ctx context.Context, name string, s *Schema) (*Table, error) {
	data, _ := json.Marshal(map[string]any{"name": name, "schema": s})
	if err := m.propose(ctx, commitlog.Entry{Type: TypeAlter, Data: data}); err != nil {
		return nil, err
	}
	t, _ := m.Get(name)
	return t, nil
}

// Drop drops a table. Its files become garbage (after the grace period).
func (m *Module) Drop(ctx context.Context, name string) error {
	data, _ := json.Marshal(map[string]string{"name": name})
	return m.propose(ctx, commitlog.Entry{Type: TypeDrop, Data: data})
}

// propose commits one entry and returns its result as an error.
func (m *Module) propose(ctx context.Context, e commitlog.Entry) error {
	f := fmt.Sprintf("type:%d", TypeCreate)
	if !m.log.Enabled(f) {
		if err := m.log.EnableFeatures(ctx); err != nil {
			m.logger.Warn("enabling features failed", "err", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := m.log.WaitEnabled(wctx, f)
		cancel()
		if err != nil {
			return fmt.Errorf("tables are not enabled yet (every agent must run a version that has them): %w", err)
		}
	}
	_, res, err := m.log.Propose(ctx, e)
	if err != nil {
		return err
	}
	if err, ok := res[0].(error); ok {
		return err
	}
	return nil
}

// Get returns a copy of a table's state.
func (m *Module) Get(name string) (*Table, bool) {
	var t *Table
	m.log.View(m.st, func() {
		if x := m.st.tables[name]; x != nil {
			t = x.clone()
		}
	})
	return t, t != nil
}

// List returns the tables, by name.
func (m *Module) List() []*Table {
	var out []*Table
	m.log.View(m.st, func() {
		for _, name := range slices.Sorted(maps.Keys(m.st.tables)) {
			out = append(out, m.st.tables[name].clone())
		}
	})
	return out
}

// Sync catches up with the bucket (for one-shot commands).
func (m *Module) Sync(ctx context.Context) error { return m.log.Sync(ctx) }

// ---- the materializers ----

func leaseName(table string) string { return "tables/" + table }

// WorkersPrefix holds the presence of agents that materialize tables:
// their clock in ms as decimal text, rewritten every half lease. The
// agents share the tables by their count.
const WorkersPrefix = "workers/tables/"

// countWorkers refreshes this agent's presence and counts the live ones.
func (m *Module) countWorkers(ctx context.Context) (int, error) {
	return module.CountPresent(ctx, m.b, WorkersPrefix, m.log.AgentID(), 2*m.cfg.LeaseDuration)
}

// materializers keeps this agent's share of the table leases and a worker
// running for each one it holds. The share is the tables divided by the
// agents that materialize; a table nobody has taken for three leases is
// taken whatever the share (the count may be stale, and no table may
// starve).
func (m *Module) materializers(ctx context.Context) {
	me := m.log.AgentID()
	watches := map[string]*commitlog.LeaseWatch{}
	tick := m.cfg.LeaseDuration / 4
	agents, agentsAt := 1, time.Time{}
	defer m.b.Delete(context.Background(), WorkersPrefix+me)
	defer func() {
		m.mu.Lock()
		workers := maps.Clone(m.running)
		m.mu.Unlock()
		var rel []commitlog.Entry
		for name, w := range workers {
			w.stop()
			if l := m.log.Lease(leaseName(name)); l.Holder == me {
				rel = append(rel, commitlog.LeaseRelease(leaseName(name), me, l.Epoch))
			}
		}
		if len(rel) > 0 {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			m.log.Propose(rctx, rel...)
			cancel()
		}
	}()
	for {
		if time.Since(agentsAt) > m.cfg.LeaseDuration/2 {
			if n, err := m.countWorkers(ctx); err == nil {
				agents, agentsAt = max(1, n), time.Now()
			} else if ctx.Err() == nil {
				m.logger.Warn("counting the agents that materialize tables failed", "err", err)
			}
		}
		tables := m.List()
		share := (len(tables) + agents - 1) / agents
		held := 0
		for _, t := range tables {
			if m.holds(t.Def.Name) {
				held++
			}
		}
		// Start at a place of this agent's own, so agents arriving
		// together reach for different tables first.
		if n := len(tables); n > 0 {
			h := fnv.New32a()
			h.Write([]byte(me))
			off := int(h.Sum32() % uint32(n))
			tables = append(tables[off:], tables[:off]...)
		}
		now := time.Now()
		want := map[string]bool{}
		var renew []commitlog.Entry
		for _, t := range tables {
			name := t.Def.Name
			want[name] = true
			cur := m.log.Lease(leaseName(name))
			if watches[name] == nil {
				watches[name] = &commitlog.LeaseWatch{}
			}
			expired := watches[name].Expired(cur, now, m.cfg.LeaseDuration)
			orphaned := watches[name].Expired(cur, now, 3*m.cfg.LeaseDuration)
			switch {
			case cur.Holder == me && held > share:
				renew = append(renew, commitlog.LeaseRelease(leaseName(name), me, cur.Epoch))
				held--
				m.logger.Info("releasing a table (more than this agent's share)", "table", name, "share", share, "agents", agents)
			case cur.Holder == me:
				renew = append(renew, commitlog.LeaseRenew(leaseName(name), me, cur.Epoch))
			case expired && held < share || orphaned:
				if ok, err := m.log.ProposeLease(ctx, commitlog.LeaseAcquire(leaseName(name), me, "", cur)); err == nil && ok {
					held++
					m.logger.Info("materializing a table", "table", name, "from", cur.Holder, "epoch", cur.Epoch+1)
				}
			}
		}
		if len(renew) > 0 {
			if _, _, err := m.log.Propose(ctx, renew...); err != nil && ctx.Err() == nil {
				m.logger.Warn("renewing table leases failed", "err", err)
			}
		}
		m.mu.Lock()
		for name, w := range m.running {
			if !want[name] || m.log.Lease(leaseName(name)).Holder != me || w.done() {
				delete(m.running, name)
				m.mu.Unlock()
				w.stop()
				m.mu.Lock()
			}
		}
		for _, t := range tables {
			name := t.Def.Name
			if m.running[name] == nil && m.log.Lease(leaseName(name)).Holder == me {
				m.running[name] = m.startWorker(ctx, name)
			}
		}
		m.mu.Unlock()
		for name := range watches {
			if !want[name] {
				delete(watches, name)
			}
		}
		// Leases of dropped tables are given up.
		var gone []commitlog.Entry
		m.log.Leases(func(name string, cur commitlog.Lease) {
			if len(name) > 7 && name[:7] == "tables/" && cur.Holder == me && !want[name[7:]] {
				gone = append(gone, commitlog.LeaseRelease(name, me, cur.Epoch))
			}
		})
		if len(gone) > 0 {
			m.log.Propose(ctx, gone...)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
	}
}

// holds reports whether this agent holds the table's lease.
func (m *Module) holds(name string) bool {
	return m.log.Lease(leaseName(name)).Holder == m.log.AgentID()
}

// partitionsOf lists a topic's partitions in order, or nil if the topic
// is gone.
func (m *Module) partitionsOf(topic string) []stream.PartitionInfo {
	ti, err := m.streams.Topic(topic)
	if err != nil {
		return nil
	}
	ps := slices.Clone(ti.PartitionsInfo)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Partition < ps[j].Partition })
	return ps
}

var errStopped = errors.New("stopped")
