package commitlog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twoway/twoway/bucket"
)

// JanitorLease names the lease whose holder checkpoints, collects garbage
// and runs the maintenance tasks. One agent in the fleet holds it at a time;
// the safety of what it deletes does not depend on that (see the package
// comment), only the avoidance of duplicate work does.
const JanitorLease = "janitor"

// Task is maintenance run by the holder of the janitor lease: checkpoints,
// garbage collection and the core's feature enabling are tasks, and so are
// modules' (index compaction, retention, expiry). A task may do I/O and
// propose entries.
//
// Run gets a context whose deadline ends the pass (Timeout after it
// starts). A proposal made with that context after the
// deadline is refused (ErrNotCommitted), never applied; a proposal
// referencing a chunk the task wrote with PutChunk is refused once the
// chunk is too old to commit safely, whatever context it was made with.
type Task struct {
	// Name identifies the task in logs.
	Name string
	// Every is the time between passes. Default: every janitor tick
	// (LeaseDuration/3 or CheckpointInterval, whichever is shorter).
	Every time.Duration
	// Timeout bounds one pass. Default Grace/8, maximum Grace/2.
	Timeout time.Duration
	Run     func(ctx context.Context, l *Log) error
}

type taskKey struct{}

// AddTask adds a maintenance task to the janitor.
func (l *Log) AddTask(t Task) {
	l.tasksMu.Lock()
	l.tasks = append(l.tasks, t)
	l.tasksMu.Unlock()
}

// CollectUnder makes garbage collection delete objects under prefix once
// no owner has referenced them (LiveObjects) for Grace. An owner writing
// such an object must commit a reference to it within Grace/4 of writing
// it, as with PutChunk.
func (l *Log) CollectUnder(prefix string) {
	l.tasksMu.Lock()
	l.prefixes = append(l.prefixes, prefix)
	l.tasksMu.Unlock()
}

// IsJanitor reports whether this agent holds the janitor lease now (as far
// as its applied state says).
func (l *Log) IsJanitor() bool { return l.Lease(JanitorLease).Holder == l.opts.AgentID }

// ProposeLease commits one lease entry (LeaseAcquire, LeaseRenew,
// LeaseRelease) and reports whether it took effect.
func (l *Log) ProposeLease(ctx context.Context, e Entry) (bool, error) {
	_, res, err := l.Propose(ctx, e)
	if err != nil {
		return false, err
	}
	return res[0] == nil, nil
}

// LeaseWatch tracks when a lease last changed, by this agent's clock, to
// decide when it has expired. Apply cannot read clocks; observers can.
type LeaseWatch struct {
	last  Lease
	since time.Time
}

// Expired reports whether cur has gone unchanged (no renewal, no new
// holder) for longer than d, as observed by repeated calls.
func (w *LeaseWatch) Expired(cur Lease, now time.Time, d time.Duration) bool {
	if cur != w.last || w.since.IsZero() {
		w.last, w.since = cur, now
	}
	return cur.Holder == "" || now.Sub(w.since) > d
}

func (l *Log) janitorTick() time.Duration {
	return min(l.opts.LeaseDuration/3, l.opts.CheckpointInterval)
}

// coreTasks are the log's own maintenance.
func (l *Log) coreTasks() []Task {
	gc := &collector{checkpoint: map[uint64]time.Time{}, unref: map[string]time.Time{}, parts: map[string][]string{}}
	cp := &checkpointer{}
	return []Task{
		{Name: "checkpoint", Timeout: l.w, Run: cp.run},
		{Name: "gc", Every: max(l.opts.Grace/8, time.Second), Timeout: l.opts.Grace / 2, Run: gc.run},
		{Name: "features", Every: l.opts.RegisterInterval, Run: l.enableFeatures},
	}
}

// janitor competes for the janitor lease and renews it; while this agent
// holds it, a second goroutine runs the tasks, so a long pass never delays
// a renewal.
func (l *Log) janitor() {
	defer l.wg.Done()
	l.wg.Add(1)
	go l.runTasks()
	var watch LeaseWatch
	// The first look is at once: on a new bucket (no holder yet) the
	// lease is taken and the tasks run (enabling features) without
	// waiting a tick.
	for first := true; first || l.sleep(l.janitorTick()); first = false {
		now := time.Now()
		lease := l.Lease(JanitorLease)
		if lease.Holder != l.opts.AgentID {
			if watch.Expired(lease, now, l.opts.LeaseDuration) {
				if ok, err := l.ProposeLease(l.ctx, LeaseAcquire(JanitorLease, l.opts.AgentID, "", lease)); err == nil && ok {
					l.log.Info("holding the janitor lease", "epoch", lease.Epoch+1)
					select {
					case l.tasksWake <- struct{}{}:
					default:
					}
				}
			}
			continue
		}
		if _, err := l.ProposeLease(l.ctx, LeaseRenew(JanitorLease, l.opts.AgentID, lease.Epoch)); err != nil && l.ctx.Err() == nil {
			l.log.Warn("janitor lease renewal failed", "err", err)
		}
	}
}

// runTasks runs due tasks, one at a time, while this agent is the janitor.
func (l *Log) runTasks() {
	defer l.wg.Done()
	last := map[int]time.Time{}
	for {
		t := time.NewTimer(l.janitorTick())
		select {
		case <-t.C:
		case <-l.tasksWake:
		case <-l.ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
		l.tasksMu.Lock()
		tasks := append([]Task(nil), l.tasks...)
		l.tasksMu.Unlock()
		for i, t := range tasks {
			if l.ctx.Err() != nil || !l.IsJanitor() {
				break
			}
			every := t.Every
			if every <= 0 {
				every = l.janitorTick()
			}
			if time.Since(last[i]) < every {
				continue
			}
			last[i] = time.Now()
			if err := l.runTask(t); err != nil && l.ctx.Err() == nil {
				l.log.Warn("janitor task failed", "task", t.Name, "err", err)
			}
		}
	}
}

func (l *Log) runTask(t Task) error {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = l.w / 2
	}
	timeout = min(timeout, l.opts.Grace/2)
	ctx, cancel := context.WithTimeout(context.WithValue(l.ctx, taskKey{}, t.Name), timeout)
	defer cancel()
	return t.Run(ctx, l)
}

// checkpointer is the checkpoint task's memory.
type checkpointer struct {
	lastSeq uint64
	lastAt  time.Time
}

func (c *checkpointer) run(ctx context.Context, l *Log) error {
	now := time.Now()
	applied := l.Applied()
	if c.lastAt.IsZero() {
		c.lastSeq, c.lastAt = applied, now
	}
	due := applied >= c.lastSeq+uint64(l.opts.CheckpointCommits) ||
		(applied > c.lastSeq && now.Sub(c.lastAt) >= l.opts.CheckpointInterval)
	if !due {
		return nil
	}
	if err := l.Checkpoint(ctx); err != nil {
		return err
	}
	c.lastSeq, c.lastAt = applied, now
	return nil
}

// collector is the garbage collection task's memory: when it first saw
// each checkpoint, and since when each object has been unreferenced.
type collector struct {
	checkpoint map[uint64]time.Time // checkpoint seq → first seen
	unref      map[string]time.Time // object key → first seen unreferenced
	parts      map[string][]string  // checkpoint key → snapshot objects it references
}

// run deletes commits, checkpoints and objects under the collected prefixes
// that no state needs any more and that have been unneeded for the grace
// period.
func (gc *collector) run(ctx context.Context, l *Log) error {
	// A state that includes every commit created before now.
	if err := l.catchUpAll(ctx); err != nil {
		return fmt.Errorf("gc: cannot reach the tail: %w", err)
	}
	now := time.Now()
	live := map[string]bool{}
	for _, s := range l.mux.slots {
		s.mu.RLock()
		s.o.LiveObjects(func(k string) { live[k] = true })
		s.mu.RUnlock()
	}

	// Checkpoints: the newest one seen at least Grace ago is the floor.
	// Every present checkpoint keeps the snapshot objects it references.
	var floor uint64
	present := map[uint64]bool{}
	for info, err := range l.b.List(ctx, CheckpointPrefix, "") {
		if err != nil {
			return fmt.Errorf("gc: list checkpoints: %w", err)
		}
		seq, ok := parseSeq(info.Key, CheckpointPrefix)
		if !ok {
			continue
		}
		present[seq] = true
		if _, seen := gc.checkpoint[seq]; !seen {
			gc.checkpoint[seq] = now
		}
		if now.Sub(gc.checkpoint[seq]) >= l.opts.Grace && seq > floor {
			floor = seq
		}
		parts, ok := gc.parts[info.Key]
		if !ok {
			ci, err := l.readCheckpoint(ctx, info.Key)
			if bucket.IsNotFound(err) {
				continue
			}
			if err != nil {
				// Keep everything rather than guess what it references.
				return fmt.Errorf("gc: %w", err)
			}
			for _, p := range ci.parts {
				parts = append(parts, p.Key)
			}
			gc.parts[info.Key] = parts
		}
		for _, k := range parts {
			live[k] = true
		}
	}
	for seq := range gc.checkpoint {
		if !present[seq] {
			delete(gc.checkpoint, seq)
			delete(gc.parts, CheckpointKey(seq))
		}
	}
	if floor > 0 {
		for seq := range present {
			if seq < floor {
				l.remove(ctx, CheckpointKey(seq))
			}
		}
		// Commits below the floor, except those whose inline data is live.
		for info, err := range l.b.List(ctx, LogPrefix, "") {
			if err != nil {
				return fmt.Errorf("gc: list log: %w", err)
			}
			seq, ok := parseSeq(info.Key, LogPrefix)
			if !ok {
				continue
			}
			if seq >= floor {
				break
			}
			if !live[info.Key] {
				l.remove(ctx, info.Key)
			}
		}
	}

	// Objects under the collected prefixes unreferenced for the grace period.
	l.tasksMu.Lock()
	prefixes := append([]string(nil), l.prefixes...)
	l.tasksMu.Unlock()
	listed := map[string]bool{}
	for _, prefix := range prefixes {
		for info, err := range l.b.List(ctx, prefix, "") {
			if err != nil {
				return fmt.Errorf("gc: list %s: %w", prefix, err)
			}
			if !strings.HasPrefix(info.Key, prefix) {
				continue
			}
			listed[info.Key] = true
			if live[info.Key] {
				delete(gc.unref, info.Key)
				continue
			}
			first, seen := gc.unref[info.Key]
			if !seen {
				gc.unref[info.Key] = now
				continue
			}
			if now.Sub(first) >= l.opts.Grace {
				l.remove(ctx, info.Key)
				delete(gc.unref, info.Key)
			}
		}
	}
	for k := range gc.unref {
		if !listed[k] {
			delete(gc.unref, k)
		}
	}
	return nil
}

func (l *Log) remove(ctx context.Context, key string) {
	if err := l.b.Delete(ctx, key); err != nil {
		l.log.Warn("gc: delete failed", "key", key, "err", err)
		return
	}
	l.Stats.Deleted.Add(1)
}
