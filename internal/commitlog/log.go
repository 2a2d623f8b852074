// Package commitlog keeps a totally ordered log of commits in a bucket,
// sequenced by nothing but PutIfAbsent, and applies it to a deterministic
// state machine.
//
// Any number of agents, in any number of processes, may append to and read
// the same log. An agent that loses the race for sequence n reads the
// winner's commit, applies it, and tries n+1 with the same body; its data
// (chunks) is never uploaded twice. Every agent applies the same commits in
// the same order and so holds the same state.
//
// The package knows nothing of topics: it sequences, stores blobs (inline in
// the commit or in shared chunk objects), tails, checkpoints and collects
// garbage. Typed entries are applied by Owners (see machine.go).
//
// # Safety against garbage collection
//
// Old commits are deleted once a newer checkpoint covers them, so a writer
// must never "win" a sequence number that existed and was deleted. Two rules
// make that impossible, with W = Grace/4:
//
//   - The janitor deletes commit s only if s < C for a checkpoint C that it
//     saw at least Grace ago. So the newest commits are never deleted, and
//     every deleted s has an existing commit above it.
//   - A writer knows "no commit above k existed at time T" (a tail
//     confirmation: a successful PutIfAbsent at k started at T, a Get of k+1
//     that found nothing at T while the previous confirmation was less than W
//     old, or a List above k that was empty at T). It attempts a
//     PutIfAbsent only while less than W has passed since T. Any commit above
//     k was created after T, so it cannot have been deleted before T+Grace.
//
// Chunks follow the same idea: a writer commits a chunk within W of starting
// to upload it or abandons it, and the janitor deletes a chunk only after it
// has been unreferenced in a fresh state for Grace.
package commitlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
)

// Options tune a Log. Zero values take the defaults noted.
type Options struct {
	// AgentID names this agent in leases, chunk names and its registration.
	// Default: random.
	AgentID string
	// Linger is an extra wait after the first pending proposal before it
	// is sealed, so that more proposals share its commit: fewer PUTs,
	// higher latency. Default 0: a proposal is committed at once when no
	// commit is in flight, and proposals arriving during one share the next.
	Linger time.Duration
	// InlineMax is the most blob bytes a commit carries inline; larger
	// batches go to a chunk. Default 64 KiB.
	InlineMax int
	// ChunkMax seals a chunk once this many bytes are pending. Default 8 MiB.
	ChunkMax int
	// ChunkUploads bounds concurrent chunk uploads. Default 4.
	ChunkUploads int
	// RecentBytes bounds the newest commits kept in memory for readers of
	// their inline data (tailing consumers). Default 32 MiB.
	RecentBytes int
	// PollMin and PollMax bound the tail-polling backoff. Default 5ms, 500ms.
	PollMin, PollMax time.Duration
	// Grace is how long an object must have been unneeded before garbage
	// collection deletes it. It must exceed by far any stall of an agent
	// (GC pause, network outage). Default 10m.
	Grace time.Duration
	// CheckpointCommits and CheckpointInterval: the janitor checkpoints after
	// this many commits or this much time, whichever comes first.
	// Default 1000 commits, 1m.
	CheckpointCommits  int
	CheckpointInterval time.Duration
	// LeaseDuration is how long a janitor lease lasts unrenewed. Default 30s.
	LeaseDuration time.Duration
	// NoJanitor keeps this agent from competing for the janitor lease, so
	// it never checkpoints, collects garbage or runs maintenance tasks
	// (one-shot CLI commands). Default false.
	NoJanitor bool
	// CommitTimeout bounds one PutIfAbsent of a commit. Default 30s, and
	// never more than Grace/8, so that an attempt started inside the
	// freshness window W = Grace/4 ends well inside it.
	CommitTimeout time.Duration
	// RegisterInterval is how often the agent rewrites its registration
	// (agents/{agent}.json), which advertises the features it supports.
	// An agent not heard from for three intervals is not live. Default 10s.
	RegisterInterval time.Duration
	// CollectPrefixes are bucket prefixes, besides chunks/ and snapshots/,
	// whose objects garbage collection deletes once no owner has referenced
	// them (LiveObjects) for Grace. More can be added with Log.CollectUnder.
	CollectPrefixes []string
	// Tasks are maintenance tasks for the janitor, besides the core's own;
	// more can be added with Log.AddTask.
	Tasks []Task
	// HintAddr is the UDP address this agent listens on for commit hints
	// from other agents (see hint.go); it is advertised in the agent's
	// registration. Default "127.0.0.1:0"; "off" disables hints, and
	// readers then learn of other agents' commits by polling only.
	HintAddr string
	// StallThreshold is how long the bucket may be unreachable (every tail
	// read failing) before Health reports the agent not ready. Default 10s.
	StallThreshold time.Duration
	Logger         *slog.Logger
}

func (o *Options) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.AgentID == "" {
		o.AgentID = randomHex(8)
	}
	o.Linger = max(o.Linger, 0)
	if o.InlineMax <= 0 {
		o.InlineMax = 64 << 10
	}
	if o.ChunkMax <= 0 {
		o.ChunkMax = 8 << 20
	}
	if o.ChunkUploads <= 0 {
		o.ChunkUploads = 4
	}
	if o.RecentBytes <= 0 {
		o.RecentBytes = 32 << 20
	}
	def(&o.PollMin, 5*time.Millisecond)
	def(&o.PollMax, 500*time.Millisecond)
	def(&o.Grace, 10*time.Minute)
	if o.CheckpointCommits <= 0 {
		o.CheckpointCommits = 1000
	}
	def(&o.CheckpointInterval, time.Minute)
	def(&o.LeaseDuration, 30*time.Second)
	def(&o.CommitTimeout, 30*time.Second)
	if o.CommitTimeout > o.Grace/8 {
		o.CommitTimeout = o.Grace / 8
	}
	def(&o.RegisterInterval, 10*time.Second)
	def(&o.StallThreshold, 10*time.Second)
	if o.HintAddr == "" {
		o.HintAddr = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are cumulative counters for metrics.
type Stats struct {
	Commits         atomic.Int64 // commits this agent wrote
	Conflicts       atomic.Int64 // PutIfAbsent attempts lost to another writer
	UnknownOutcome  atomic.Int64 // commit writes whose outcome had to be read back
	Applied         atomic.Int64 // commits applied (own and others')
	ChunksWritten   atomic.Int64
	ChunkBytes      atomic.Int64
	RewrittenBytes  atomic.Int64 // chunk bytes written by PutChunk (compaction)
	Checkpoints     atomic.Int64
	SnapshotsReused atomic.Int64 // owner snapshots a checkpoint reused unchanged
	Deleted         atomic.Int64 // objects deleted by GC
	Reloads         atomic.Int64 // restarts from a checkpoint after a gap
	TooLate         atomic.Int64 // proposals refused because their deadline passed
	// CheckpointStallNs is the longest time a checkpoint paused applying.
	CheckpointStallNs atomic.Int64
	// HintsReceived counts commit hints from other agents that woke the
	// tail (hint.go).
	HintsReceived atomic.Int64
}

// ErrClosed is returned for proposals cut off by a closed log. Alone it
// means the outcome is unknown (a commit may have landed); wrapped together
// with ErrNotCommitted (errors.Is both) it means the proposal never reached
// the bucket.
var ErrClosed = errors.New("commit log closed")

// errClosedNotCommitted is ErrClosed for proposals known not to be committed.
var errClosedNotCommitted = fmt.Errorf("%w: %w", ErrNotCommitted, ErrClosed)

// ErrNotCommitted means a proposal was definitely not committed (it can be
// retried safely).
var ErrNotCommitted = errors.New("not committed")

// ErrOutcomeUnknown means a commit write may or may not have landed, and
// the log could not find out before giving up (the commit was too late to
// retry safely).
var ErrOutcomeUnknown = errors.New("commit outcome unknown")

// StoppedError is the error that stopped a log: a commit that does not
// decode, an entry type this version does not know, a checkpoint that
// cannot be read. Seq is the commit concerned (0 when none is).
type StoppedError struct {
	Seq uint64
	Err error
}

func (e *StoppedError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("commit log stopped: %v", e.Err)
	}
	return fmt.Sprintf("commit log stopped at commit %d: %v", e.Seq, e.Err)
}

func (e *StoppedError) Unwrap() error { return e.Err }

// Log is one agent's handle on the commit log in a bucket.
type Log struct {
	b       bucket.Bucket
	opts    Options
	log     *slog.Logger
	w       time.Duration // freshness window, Grace/4
	started time.Time

	// applyMu serializes applying commits (and pauses it for checkpoint
	// captures); each owner's state has its own lock in its slot.
	applyMu  sync.Mutex
	mux      *mux
	leases   *leases
	features *features
	applied  atomic.Uint64
	// results of the commit this agent has in flight, captured by whichever
	// goroutine applies it; guarded by applyMu.
	inflightID      [16]byte
	inflightResults []any
	inflightSeq     uint64

	// changed is closed and replaced whenever applied advances.
	changedMu sync.Mutex
	changed   chan struct{}

	// tailConfirmed is the time (UnixNano) of the newest tail confirmation,
	// progressed the time the tail last found a commit.
	tailConfirmed atomic.Int64
	progressed    atomic.Int64
	// bucketErrSince is when tail reads started failing (UnixNano; 0 while
	// they succeed), and lastErr the newest non-fatal error.
	bucketErrSince atomic.Int64
	errMu          sync.Mutex
	lastErr        error
	lastErrAt      time.Time

	pendMu    sync.Mutex
	pending   []*proposal
	pendBytes int
	pendWake  chan struct{}
	// tasksWake starts the janitor's tasks at once when the lease is won.
	tasksWake chan struct{}
	// inflight counts sealed batches not yet committed; idle is signalled
	// when it drops to zero (see sealLoop).
	inflight atomic.Int64
	idle     chan struct{}
	// hints sends and receives commit hints (nil when off); hintWake
	// wakes the tail loop.
	hints    *hinter
	hintWake chan struct{}
	hinted   atomic.Uint64 // the highest sequence number hinted
	lastHint atomic.Int64  // when a hint last arrived (unix ns)
	recent   recentCommits

	sealed chan *sealedBatch

	fatalMu sync.Mutex
	fatal   error

	tasksMu  sync.Mutex
	tasks    []Task
	prefixes []string
	// lastCP is the newest checkpoint this agent wrote or read, for reusing
	// unchanged owner snapshots.
	cpMu        sync.Mutex
	lastCP      *checkpointInfo
	lastWaiting string

	Stats Stats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	chunkN atomic.Uint64
}

type proposal struct {
	entries []Entry
	blobLen int
	done    chan struct{}
	seq     uint64
	results []any
	err     error
	// notAfter: the proposal must not be committed by a write started
	// later than this (zero: no limit).
	notAfter time.Time
}

// limit lowers the proposal's deadline to t.
func (p *proposal) limit(t time.Time) {
	if !t.IsZero() && (p.notAfter.IsZero() || t.Before(p.notAfter)) {
		p.notAfter = t
	}
}

type sealedBatch struct {
	props  []*proposal
	inline []byte // nil when blobs went to a chunk
	refs   [][]Ref
	start  time.Time // when the chunk upload started
	ready  chan struct{}
	err    error
}

// Open loads the newest checkpoint, replays the commits after it and starts
// tailing. owners apply the typed entries.
func Open(ctx context.Context, b bucket.Bucket, owners []Owner, opts Options) (*Log, error) {
	opts.fill()
	ls := &leases{m: map[string]Lease{}}
	fs := &features{on: map[string]bool{}}
	m, err := newMux(append([]Owner{ls, fs}, owners...))
	if err != nil {
		return nil, err
	}
	l := &Log{
		b:         b,
		opts:      opts,
		log:       opts.Logger.With("agent", opts.AgentID),
		w:         opts.Grace / 4,
		started:   time.Now(),
		mux:       m,
		leases:    ls,
		features:  fs,
		changed:   make(chan struct{}),
		pendWake:  make(chan struct{}, 1),
		tasksWake: make(chan struct{}, 1),
		idle:      make(chan struct{}, 1),
		hintWake:  make(chan struct{}, 1),
		sealed:    make(chan *sealedBatch, opts.ChunkUploads),
		prefixes:  append([]string{ChunkPrefix, SnapshotPrefix}, opts.CollectPrefixes...),
		recent:    recentCommits{max: opts.RecentBytes},
	}
	l.tasks = append(l.coreTasks(), opts.Tasks...)
	if err := l.listenHints(); err != nil {
		return nil, fmt.Errorf("commit hints on %s: %w (give another hint address, or \"off\" to poll only)", opts.HintAddr, err)
	}
	// Register before reading the log, so that a janitor deciding whether
	// every live agent supports a feature counts this one from now on.
	if err := l.register(ctx); err != nil {
		l.closeHints()
		return nil, fmt.Errorf("register agent %s: %w", opts.AgentID, err)
	}
	// Transient bucket errors are retried a few times; a corrupt or newer
	// object is not.
	loaded := false
	for attempt := 0; ; attempt++ {
		var err error
		if !loaded {
			err = l.load(ctx)
			loaded = err == nil
		}
		if err == nil {
			err = l.catchUpAll(ctx)
		}
		if err == nil {
			break
		}
		if isFatal(err) || attempt >= 4 || ctx.Err() != nil {
			l.deregister()
			l.closeHints()
			return nil, err
		}
		l.log.Warn("opening the log: retrying", "err", err)
		time.Sleep(backoff(attempt + 2))
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(4)
	go l.tail()
	go l.sealLoop()
	go l.commitLoop()
	go l.registerLoop()
	if l.hints != nil {
		l.refreshPeers(l.ctx)
		l.wg.Add(1)
		go l.hintLoop()
	}
	if !opts.NoJanitor {
		l.wg.Add(1)
		go l.janitor()
	}
	return l, nil
}

// Close stops the log and waits for its goroutines, chunk uploads
// included. Proposals not yet committed fail with ErrClosed.
func (l *Log) Close() error {
	l.cancel()
	l.wg.Wait()
	l.failPending(errClosedNotCommitted)
	l.deregister()
	return nil
}

// failPending fails every proposal not yet sealed.
func (l *Log) failPending(err error) {
	l.pendMu.Lock()
	for _, p := range l.pending {
		p.err = err
		close(p.done)
	}
	l.pending, l.pendBytes = nil, 0
	l.pendMu.Unlock()
}

// AgentID is this agent's name.
func (l *Log) AgentID() string { return l.opts.AgentID }

// Bucket is the bucket the log lives in.
func (l *Log) Bucket() bucket.Bucket { return l.b }

// Grace is the garbage-collection grace period in force.
func (l *Log) Grace() time.Duration { return l.opts.Grace }

// Err returns the error that stopped the log (a *StoppedError), if any.
func (l *Log) Err() error {
	l.fatalMu.Lock()
	defer l.fatalMu.Unlock()
	return l.fatal
}

// setFatal stops the log with err; seq is the commit concerned, if known.
func (l *Log) setFatal(seq uint64, err error) {
	l.fatalMu.Lock()
	if l.fatal == nil {
		var se *StoppedError
		if !errors.As(err, &se) {
			se = &StoppedError{Seq: seq, Err: err}
		}
		l.fatal = se
		l.log.Error("commit log stopped", "seq", se.Seq, "err", se.Err)
	}
	l.fatalMu.Unlock()
	l.cancel()
	l.notify()
}

// isFatal reports whether err means the log cannot go on.
func isFatal(err error) bool {
	var unknown *UnknownEntryError
	return errors.As(err, &unknown) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerFormat)
}

func (l *Log) noteErr(err error) {
	l.errMu.Lock()
	l.lastErr, l.lastErrAt = err, time.Now()
	l.errMu.Unlock()
}

// View runs f with owner o's state lock shared: o's state may be read, not
// changed. o must be one of the owners the log was opened with.
func (l *Log) View(o Owner, f func()) {
	s := l.mux.byOwn[o]
	if s == nil {
		panic(fmt.Sprintf("commitlog: View of an owner the log does not have (%T)", o))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	f()
}

// Applied is the sequence number of the newest applied commit.
func (l *Log) Applied() uint64 { return l.applied.Load() }

// Changed returns a channel closed the next time a commit is applied (or
// the state is reloaded, or the log stops).
func (l *Log) Changed() <-chan struct{} {
	l.changedMu.Lock()
	defer l.changedMu.Unlock()
	return l.changed
}

func (l *Log) notify() {
	l.changedMu.Lock()
	close(l.changed)
	l.changed = make(chan struct{})
	l.changedMu.Unlock()
}

// Lease returns the applied state of a named lease.
func (l *Log) Lease(name string) Lease {
	var cur Lease
	l.View(l.leases, func() { cur = l.leases.get(name) })
	return cur
}

// Leases calls fn for every lease in the applied state, in name order.
func (l *Log) Leases(fn func(name string, cur Lease)) {
	type kv struct {
		name string
		cur  Lease
	}
	var all []kv
	l.View(l.leases, func() {
		for n, c := range l.leases.m {
			all = append(all, kv{n, c})
		}
	})
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	for _, e := range all {
		fn(e.name, e.cur)
	}
}

// Sync brings the state up to the tail of the log as of now: after it
// returns, every commit that existed when Sync was called is applied.
func (l *Log) Sync(ctx context.Context) error {
	if err := l.Err(); err != nil {
		return err
	}
	return l.catchUpAll(ctx)
}

// Propose submits entries for the next commit and waits until the commit
// holding them is durable and applied. It returns the commit's sequence
// number and each entry's apply result. On ErrNotCommitted nothing was
// committed; on a context error the outcome is unknown.
//
// Inside a janitor task (ctx is the task's), the proposal is refused, never
// committed, once the task's deadline has passed.
func (l *Log) Propose(ctx context.Context, entries ...Entry) (uint64, []any, error) {
	var notAfter time.Time
	if ctx.Value(taskKey{}) != nil {
		// A task's proposal may start its write until the task's deadline,
		// so it lands by the deadline plus one commit timeout.
		if d, ok := ctx.Deadline(); ok {
			notAfter = d.Add(l.opts.CommitTimeout)
		}
	}
	return l.submit(notAfter, entries)(ctx)
}

// ProposeFresh is Propose for entries that reference objects under a
// collected prefix (CollectUnder) written at or after written: the
// proposal lands within Grace/4 of it or is refused (ErrNotCommitted),
// never committed, so it cannot reference an object garbage collection
// may already have deleted (a writer paused for longer, say).
func (l *Log) ProposeFresh(ctx context.Context, written time.Time, entries ...Entry) (uint64, []any, error) {
	return l.submit(written.Add(l.opts.Grace/4), entries)(ctx)
}

// Submit queues entries for the next commit without waiting, and returns
// the function that waits for the outcome (as Propose does). Entries
// submitted earlier, by any goroutine, are committed in an earlier commit or
// earlier in the same one: callers that must keep an order (a Kafka
// connection's produce requests to one partition) submit in that order and
// wait concurrently.
func (l *Log) Submit(entries ...Entry) func(context.Context) (uint64, []any, error) {
	return l.submit(time.Time{}, entries)
}

func (l *Log) submit(notAfter time.Time, entries []Entry) func(context.Context) (uint64, []any, error) {
	fail := func(err error) func(context.Context) (uint64, []any, error) {
		return func(context.Context) (uint64, []any, error) { return 0, nil, err }
	}
	if err := l.Err(); err != nil {
		return fail(err)
	}
	if err := l.checkEnabled(entries); err != nil {
		return fail(err)
	}
	p := &proposal{entries: entries, done: make(chan struct{})}
	p.limit(notAfter)
	for _, e := range entries {
		p.blobLen += len(e.Blob)
		if len(e.Blob) == 0 && e.Ref.Key != "" {
			p.limit(l.writtenDeadline(e.Ref.Key))
		}
	}
	l.pendMu.Lock()
	if l.ctx.Err() != nil {
		l.pendMu.Unlock()
		if err := l.Err(); err != nil {
			return fail(err)
		}
		return fail(errClosedNotCommitted)
	}
	l.pending = append(l.pending, p)
	l.pendBytes += p.blobLen
	l.pendMu.Unlock()
	select {
	case l.pendWake <- struct{}{}:
	default:
	}
	return func(ctx context.Context) (uint64, []any, error) {
		select {
		case <-p.done:
			return p.seq, p.results, p.err
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (l *Log) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// ---- applying ----

// applyLocked applies c, which must be the next commit. l.applyMu must be
// held. Each run of consecutive entries of one owner is applied under that
// owner's lock, so readers of other owners never wait.
func (l *Log) applyLocked(c *Commit) error {
	if c.Seq != l.applied.Load()+1 {
		return fmt.Errorf("commitlog: apply of commit %d after %d", c.Seq, l.applied.Load())
	}
	for _, e := range c.Entries {
		if l.mux.byType[e.Type] == nil {
			return &UnknownEntryError{Seq: c.Seq, Type: e.Type}
		}
	}
	results := make([]any, len(c.Entries))
	// An all-or-none group (all.go): guard is the index of its guard,
	// skipTo the end of a group being skipped, skipErr why.
	guard, groupEnd, skipTo := -1, 0, 0
	var skipErr error
	for i := 0; i < len(c.Entries); {
		s := l.mux.byType[c.Entries[i].Type]
		s.mu.Lock()
		for ; i < len(c.Entries) && l.mux.byType[c.Entries[i].Type] == s; i++ {
			e := c.Entries[i]
			if i < skipTo {
				results[i] = &SkippedError{Guard: skipErr}
				continue
			}
			if l.mux.gated[e.Type] && !l.features.on[typeFeature(e.Type)] {
				results[i] = fmt.Errorf("entry type %d: %w", e.Type, ErrNotEnabled)
				if e.Type == TypeAll {
					// Never apply a group's entries piecemeal.
					n, _ := allCount(e)
					skipTo, skipErr = min(i+1+n, len(c.Entries)), ErrNotEnabled
				}
				continue
			}
			results[i] = s.o.Apply(c.Seq, e)
			if e.Type == TypeAll {
				if err, _ := results[i].(error); err != nil {
					// A malformed group header: skip nothing after it,
					// since its extent is unknown; proposers never write
					// one (All builds them).
					continue
				}
				n, _ := allCount(e)
				guard, groupEnd = i+1, min(i+1+n, len(c.Entries))
				continue
			}
			if i == guard {
				if err, _ := results[i].(error); err != nil {
					skipTo, skipErr = groupEnd, err
				}
				guard = -1
			}
		}
		s.touched = c.Seq
		s.mu.Unlock()
	}
	l.applied.Store(c.Seq)
	if c.ID == l.inflightID {
		l.inflightResults, l.inflightSeq = results, c.Seq
	}
	l.Stats.Applied.Add(1)
	return nil
}

// applyBytes decodes and applies commit seq if it is the next one; commits
// already applied are skipped.
func (l *Log) applyBytes(seq uint64, data []byte) error {
	c, err := DecodeCommit(data)
	if err != nil {
		return fmt.Errorf("commit %d: %w", seq, err)
	}
	if c.Seq != seq {
		return fmt.Errorf("commit %d: %w: object claims sequence %d", seq, ErrCorrupt, c.Seq)
	}
	l.applyMu.Lock()
	if seq <= l.applied.Load() {
		l.applyMu.Unlock()
		return nil
	}
	err = l.applyLocked(c)
	l.applyMu.Unlock()
	if err == nil {
		l.recent.add(seq, data)
		l.notify()
	}
	return err
}

// isDecodeError tells a commit that was read but is bad (which a retry
// would only read again) from a failed read.
func isDecodeError(err error) bool {
	var ue *UnknownEntryError
	return errors.Is(err, ErrCorrupt) || errors.As(err, &ue)
}

// fetchApply reads commit seq and applies it. It reports whether the commit
// exists.
func (l *Log) fetchApply(ctx context.Context, seq uint64) (bool, error) {
	data, _, err := bucket.ReadAll(ctx, l.b, LogKey(seq))
	if bucket.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, l.applyBytes(seq, data)
}

// fetchAhead reads the commits next..last (at most 8) in parallel and
// applies them in order, stopping at the first that is missing. It reports
// whether it applied any.
func (l *Log) fetchAhead(ctx context.Context, next, last uint64) (bool, error) {
	n := int(min(last-next+1, 8))
	bodies := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { bodies[i], _, errs[i] = bucket.ReadAll(ctx, l.b, LogKey(next+uint64(i))) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			if bucket.IsNotFound(errs[i]) {
				// The hint was ahead of the bucket (or forged): read one
				// at a time again until the next hint.
				l.hinted.Store(0)
				return i > 0, nil
			}
			return i > 0, errs[i]
		}
		if err := l.applyBytes(next+uint64(i), bodies[i]); err != nil {
			return i > 0, err
		}
	}
	return true, nil
}

// catchUpAll applies commits until the next one does not exist, confirming
// the tail with a List so that a gap left by garbage collection is noticed.
func (l *Log) catchUpAll(ctx context.Context) error {
	for {
		start := time.Now()
		next := l.Applied() + 1
		found, err := l.fetchApply(ctx, next)
		// A failed read is retried here, a few times, rather than by
		// starting the whole catch-up again: replaying thousands of
		// commits must not need thousands of reads in a row to succeed.
		for try := 0; err != nil && !isDecodeError(err) && try < 4 && ctx.Err() == nil; try++ {
			time.Sleep(time.Duration(10<<try) * time.Millisecond)
			found, err = l.fetchApply(ctx, next)
		}
		if err != nil {
			return err
		}
		if found {
			continue
		}
		gap, err := l.confirmByList(ctx, next, start)
		if err != nil {
			return err
		}
		if !gap {
			return nil
		}
		if err := l.reload(ctx); err != nil {
			return err
		}
	}
}

// confirmByList lists the log above next-1. If nothing is there the tail is
// confirmed as of start. If the first commit above is next, it appeared
// meanwhile (not a gap). If it is higher, commits were deleted under us: a
// gap.
func (l *Log) confirmByList(ctx context.Context, next uint64, start time.Time) (gap bool, err error) {
	for info, err := range l.b.List(ctx, LogPrefix, LogKey(next-1)) {
		if err != nil {
			return false, fmt.Errorf("list log: %w", err)
		}
		seq, ok := parseSeq(info.Key, LogPrefix)
		if !ok {
			continue
		}
		return seq > next, nil
	}
	l.confirmTail(start)
	return false, nil
}

func (l *Log) confirmTail(at time.Time) { storeMax(&l.tailConfirmed, at.UnixNano()) }

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// freshFor reports how long the newest tail confirmation remains usable.
func (l *Log) freshFor() time.Duration {
	return time.Until(time.Unix(0, l.tailConfirmed.Load()).Add(l.w))
}

// reload restarts from the newest checkpoint after a gap.
func (l *Log) reload(ctx context.Context) error {
	before := l.Applied()
	if err := l.load(ctx); err != nil {
		return err
	}
	after := l.Applied()
	if after <= before {
		// The newest checkpoint is older than what we had: the gap is not
		// explained by garbage collection. Refuse to guess.
		return fmt.Errorf("commitlog: commits after %d are missing and no checkpoint covers them (newest checkpoint %d)", before, after)
	}
	l.Stats.Reloads.Add(1)
	l.log.Warn("commits were collected while this agent was behind; reloaded from checkpoint", "was", before, "now", after)
	l.notify()
	return nil
}

// tail polls for commits written by other agents.
func (l *Log) tail() {
	defer l.wg.Done()
	wait := l.opts.PollMin
	for l.ctx.Err() == nil {
		start := time.Now()
		next := l.Applied() + 1
		var found bool
		var err error
		if h := l.hinted.Load(); h > next {
			// Hints say several commits are there: read them at once.
			found, err = l.fetchAhead(l.ctx, next, h)
		} else {
			found, err = l.fetchApply(l.ctx, next)
		}
		switch {
		case err != nil:
			if l.ctx.Err() != nil {
				return
			}
			if isFatal(err) {
				l.setFatal(next, err)
				return
			}
			l.bucketErrSince.CompareAndSwap(0, time.Now().UnixNano())
			l.noteErr(err)
			l.log.Warn("tail: read failed; retrying", "seq", next, "err", err)
		case found:
			l.bucketErrSince.Store(0)
			l.progressed.Store(time.Now().UnixNano())
			wait = l.opts.PollMin
			if !l.hintsFlowing() || l.hinted.Load() > l.Applied() {
				continue
			}
			// The writers hint every commit: the next read would most
			// likely find nothing. Wait for the next hint (or PollMin).
		case l.freshFor() > 0:
			l.bucketErrSince.Store(0)
			l.confirmTail(start)
		default:
			// The confirmation chain lapsed (this agent stalled): only a
			// List can tell a missing commit from a collected one.
			gap, err := l.confirmByList(l.ctx, next, start)
			if err == nil && gap {
				err = l.reload(l.ctx)
				if err != nil && isFatal(err) {
					l.setFatal(0, err)
					return
				}
			}
			if err != nil && l.ctx.Err() == nil {
				l.bucketErrSince.CompareAndSwap(0, time.Now().UnixNano())
				l.noteErr(err)
				l.log.Warn("tail: confirm failed; retrying", "err", err)
			} else {
				l.bucketErrSince.Store(0)
			}
			if gap {
				continue
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-l.hintWake:
			// Another agent committed: read now, and keep reading
			// quickly while commits come.
			t.Stop()
			wait = l.opts.PollMin
			continue
		case <-t.C:
		}
		wait = min(wait*2, l.opts.PollMax)
	}
}

// Health is what an agent reports about its log.
type Health struct {
	// Stopped is the error that stopped the log, nil while it runs.
	Stopped *StoppedError
	// Applied is the newest applied commit.
	Applied uint64
	// TailConfirmed is when the log last confirmed that nothing newer than
	// Applied existed (zero before the first confirmation).
	TailConfirmed time.Time
	// BucketErrorsSince is when reads of the log started failing, zero while
	// they succeed.
	BucketErrorsSince time.Time
	// LastError is the newest non-fatal error and when it happened.
	LastError   error
	LastErrorAt time.Time
	// Ready: running, caught up with the tail recently, and the bucket not
	// failing for longer than the stall threshold.
	Ready  bool
	Reason string
}

// Health reports the log's state for /healthz and /readyz.
func (l *Log) Health() Health {
	h := Health{Applied: l.Applied()}
	if err := l.Err(); err != nil {
		errors.As(err, &h.Stopped)
	}
	if t := l.tailConfirmed.Load(); t != 0 {
		h.TailConfirmed = time.Unix(0, t)
	}
	if t := l.bucketErrSince.Load(); t != 0 {
		h.BucketErrorsSince = time.Unix(0, t)
	}
	l.errMu.Lock()
	h.LastError, h.LastErrorAt = l.lastErr, l.lastErrAt
	l.errMu.Unlock()
	switch {
	case h.Stopped != nil:
		h.Reason = h.Stopped.Error()
	case !h.BucketErrorsSince.IsZero() && time.Since(h.BucketErrorsSince) > l.opts.StallThreshold:
		h.Reason = fmt.Sprintf("the bucket has been unreachable for %v: %v", time.Since(h.BucketErrorsSince).Round(time.Second), h.LastError)
	case time.Since(h.TailConfirmed) > l.opts.StallThreshold+l.opts.PollMax &&
		time.Since(time.Unix(0, l.progressed.Load())) > l.opts.StallThreshold:
		h.Reason = fmt.Sprintf("not caught up with the log: the tail was last confirmed %v ago", time.Since(h.TailConfirmed).Round(time.Millisecond))
	default:
		h.Ready = true
	}
	return h
}
