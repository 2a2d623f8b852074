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
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
)

// Options tune a Log. Zero values take the defaults noted.
type Options struct {
	// AgentID names this agent in leases and chunk names. Default: random.
	AgentID string
	// Linger is how long pending proposals gather before a commit.
	// Default 5ms.
	Linger time.Duration
	// InlineMax is the most blob bytes a commit carries inline; larger
	// batches go to a chunk. Default 64 KiB.
	InlineMax int
	// ChunkMax seals a chunk once this many bytes are pending. Default 8 MiB.
	ChunkMax int
	// ChunkUploads bounds concurrent chunk uploads. Default 4.
	ChunkUploads int
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
	// Janitor enables checkpointing and GC on this agent (it still competes
	// for the lease). Default true; set NoJanitor to disable.
	NoJanitor bool
	// CommitTimeout bounds one PutIfAbsent of a commit. Default 30s, and
	// never more than W = Grace/4.
	CommitTimeout time.Duration
	Logger        *slog.Logger
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
	def(&o.Linger, 5*time.Millisecond)
	if o.InlineMax <= 0 {
		o.InlineMax = 64 << 10
	}
	if o.ChunkMax <= 0 {
		o.ChunkMax = 8 << 20
	}
	if o.ChunkUploads <= 0 {
		o.ChunkUploads = 4
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are cumulative counters for metrics.
type Stats struct {
	Commits        atomic.Int64 // commits this agent wrote
	Conflicts      atomic.Int64 // PutIfAbsent attempts lost to another writer
	UnknownOutcome atomic.Int64 // commit writes whose outcome had to be read back
	Applied        atomic.Int64 // commits applied (own and others')
	ChunksWritten  atomic.Int64
	ChunkBytes     atomic.Int64
	RewrittenBytes atomic.Int64 // chunk bytes written by PutChunk (compaction)
	Checkpoints    atomic.Int64
	Deleted        atomic.Int64 // objects deleted by GC
	Reloads        atomic.Int64 // restarts from a checkpoint after a gap
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

// Log is one agent's handle on the commit log in a bucket.
type Log struct {
	b    bucket.Bucket
	opts Options
	log  *slog.Logger
	w    time.Duration // freshness window, Grace/4

	// mu guards the state machine and applied.
	mu      sync.RWMutex
	mux     *mux
	leases  *leases
	applied uint64
	// results of the commit this agent has in flight, captured by whichever
	// goroutine applies it.
	inflightID      [16]byte
	inflightResults []any
	inflightSeq     uint64

	// changed is closed and replaced whenever applied advances.
	changedMu sync.Mutex
	changed   chan struct{}

	// tailConfirmed is the time (UnixNano) of the newest tail confirmation.
	tailConfirmed atomic.Int64

	pendMu    sync.Mutex
	pending   []*proposal
	pendBytes int
	pendWake  chan struct{}
	sealed    chan *sealedBatch

	fatalMu sync.Mutex
	fatal   error

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
	m, err := newMux(append([]Owner{ls}, owners...))
	if err != nil {
		return nil, err
	}
	l := &Log{
		b:        b,
		opts:     opts,
		log:      opts.Logger.With("agent", opts.AgentID),
		w:        opts.Grace / 4,
		mux:      m,
		leases:   ls,
		changed:  make(chan struct{}),
		pendWake: make(chan struct{}, 1),
		sealed:   make(chan *sealedBatch, opts.ChunkUploads),
	}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	if err := l.catchUpAll(ctx); err != nil {
		return nil, err
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(3)
	go l.tail()
	go l.sealLoop()
	go l.commitLoop()
	if !opts.NoJanitor {
		l.wg.Add(1)
		go l.janitor()
	}
	return l, nil
}

// Close stops the log. Proposals not yet committed fail with ErrClosed.
func (l *Log) Close() error {
	l.cancel()
	l.wg.Wait()
	l.pendMu.Lock()
	for _, p := range l.pending {
		p.err = errClosedNotCommitted
		close(p.done)
	}
	l.pending = nil
	l.pendMu.Unlock()
	return nil
}

// AgentID is this agent's name.
func (l *Log) AgentID() string { return l.opts.AgentID }

// Bucket is the bucket the log lives in.
func (l *Log) Bucket() bucket.Bucket { return l.b }

// Err returns the error that stopped the log, if any.
func (l *Log) Err() error {
	l.fatalMu.Lock()
	defer l.fatalMu.Unlock()
	return l.fatal
}

func (l *Log) setFatal(err error) {
	l.fatalMu.Lock()
	if l.fatal == nil {
		l.fatal = err
		l.log.Error("commit log stopped", "err", err)
	}
	l.fatalMu.Unlock()
	l.cancel()
}

// View runs f with the state lock shared: owners' state may be read, not
// changed.
func (l *Log) View(f func()) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f()
}

// Applied is the sequence number of the newest applied commit.
func (l *Log) Applied() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.applied
}

// Changed returns a channel closed the next time a commit is applied (or
// the state is reloaded).
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
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.leases.m[name]
}

// Sync brings the state up to the tail of the log as of now: after it
// returns, every commit that existed when Sync was called is applied.
func (l *Log) Sync(ctx context.Context) error {
	return l.catchUpAll(ctx)
}

// Propose submits entries for the next commit and waits until the commit
// holding them is durable and applied. It returns the commit's sequence
// number and each entry's apply result. On ErrNotCommitted nothing was
// committed; on a context error the outcome is unknown.
func (l *Log) Propose(ctx context.Context, entries ...Entry) (uint64, []any, error) {
	return l.Submit(entries...)(ctx)
}

// Submit queues entries for the next commit without waiting, and returns
// the function that waits for the outcome (as Propose does). Entries
// submitted earlier, by any goroutine, are committed in an earlier commit or
// earlier in the same one: callers that must keep an order (a Kafka
// connection's produce requests to one partition) submit in that order and
// wait concurrently.
func (l *Log) Submit(entries ...Entry) func(context.Context) (uint64, []any, error) {
	if err := l.Err(); err != nil {
		return func(context.Context) (uint64, []any, error) { return 0, nil, err }
	}
	p := &proposal{entries: entries, done: make(chan struct{})}
	for _, e := range entries {
		p.blobLen += len(e.Blob)
	}
	l.pendMu.Lock()
	if l.ctx.Err() != nil {
		l.pendMu.Unlock()
		return func(context.Context) (uint64, []any, error) { return 0, nil, errClosedNotCommitted }
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
			return 0, nil, fmt.Errorf("commit outcome unknown: %w", ctx.Err())
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

// ---- loading and applying ----

// load restores the newest checkpoint (or the empty state). A checkpoint
// deleted between listing and reading (a newer one replaced it) means: list
// again.
func (l *Log) load(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := l.loadOnce(ctx)
		if !bucket.IsNotFound(err) || attempt >= 5 {
			return err
		}
	}
}

func (l *Log) loadOnce(ctx context.Context) error {
	var newest string
	for info, err := range l.b.List(ctx, CheckpointPrefix, "") {
		if err != nil {
			return fmt.Errorf("list checkpoints: %w", err)
		}
		if _, ok := parseSeq(info.Key, CheckpointPrefix); ok {
			newest = info.Key
		}
	}
	if newest == "" {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.applied > 0 {
			return fmt.Errorf("commitlog: no checkpoint in the bucket, but commits 1..%d were applied: the bucket was emptied", l.applied)
		}
		l.mux.reset()
		return nil
	}
	data, _, err := bucket.ReadAll(ctx, l.b, newest)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	seq, body, err := DecodeCheckpoint(data)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", newest, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.applied && l.applied > 0 {
		return nil // what we have is at least as new
	}
	if err := l.mux.restore(body); err != nil {
		return fmt.Errorf("checkpoint %s: %w", newest, err)
	}
	l.applied = seq
	return nil
}

// applyLocked applies c, which must be the next commit. l.mu must be held.
func (l *Log) applyLocked(c *Commit) error {
	if c.Seq != l.applied+1 {
		return fmt.Errorf("commitlog: apply of commit %d after %d", c.Seq, l.applied)
	}
	for _, e := range c.Entries {
		if l.mux.byType[e.Type] == nil {
			return &UnknownEntryError{Seq: c.Seq, Type: e.Type}
		}
	}
	results := make([]any, len(c.Entries))
	for i, e := range c.Entries {
		results[i] = l.mux.byType[e.Type].Apply(c.Seq, e)
	}
	l.applied = c.Seq
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
	l.mu.Lock()
	if seq <= l.applied {
		l.mu.Unlock()
		return nil
	}
	err = l.applyLocked(c)
	l.mu.Unlock()
	if err == nil {
		l.notify()
	}
	return err
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

// catchUpAll applies commits until the next one does not exist, confirming
// the tail with a List so that a gap left by garbage collection is noticed.
func (l *Log) catchUpAll(ctx context.Context) error {
	for {
		start := time.Now()
		next := l.Applied() + 1
		found, err := l.fetchApply(ctx, next)
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

func (l *Log) confirmTail(at time.Time) {
	for {
		old := l.tailConfirmed.Load()
		if at.UnixNano() <= old || l.tailConfirmed.CompareAndSwap(old, at.UnixNano()) {
			return
		}
	}
}

// fresh reports how long the newest tail confirmation remains usable.
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
		found, err := l.fetchApply(l.ctx, next)
		switch {
		case err != nil:
			if l.ctx.Err() != nil {
				return
			}
			var unknown *UnknownEntryError
			if errors.As(err, &unknown) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerFormat) {
				l.setFatal(err)
				return
			}
			l.log.Warn("tail: read failed; retrying", "seq", next, "err", err)
		case found:
			wait = l.opts.PollMin
			continue
		case l.freshFor() > 0:
			l.confirmTail(start)
		default:
			// The confirmation chain lapsed (this agent stalled): only a
			// List can tell a missing commit from a collected one.
			gap, err := l.confirmByList(l.ctx, next, start)
			if err == nil && gap {
				err = l.reload(l.ctx)
			}
			if err != nil && l.ctx.Err() == nil {
				l.log.Warn("tail: confirm failed; retrying", "err", err)
			}
			if gap {
				continue
			}
		}
		if !l.sleep(wait) {
			return
		}
		wait = min(wait*2, l.opts.PollMax)
	}
}
