package commitlog

import (
	"bytes"
	"context"
	"time"

	"github.com/twoway/twoway/bucket"
)

// JanitorLease names the lease whose holder checkpoints, collects garbage
// and runs owners' maintenance. One agent in the fleet holds it at a time;
// the safety of what it deletes does not depend on that (see the package
// comment), only the avoidance of duplicate work does.
const JanitorLease = "janitor"

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

type janitorState struct {
	watch      LeaseWatch
	lastCPSeq  uint64
	lastCPAt   time.Time
	lastGC     time.Time
	checkpoint map[uint64]time.Time // checkpoint seq → first seen
	unref      map[string]time.Time // chunk key → first seen unreferenced
}

func (l *Log) janitor() {
	defer l.wg.Done()
	js := &janitorState{
		lastCPSeq:  l.Applied(),
		lastCPAt:   time.Now(),
		checkpoint: map[uint64]time.Time{},
		unref:      map[string]time.Time{},
	}
	tick := min(l.opts.LeaseDuration/3, l.opts.CheckpointInterval)
	for l.sleep(tick) {
		l.janitorTick(js)
	}
}

func (l *Log) janitorTick(js *janitorState) {
	ctx := l.ctx
	now := time.Now()
	lease := l.Lease(JanitorLease)
	if lease.Holder != l.opts.AgentID {
		if js.watch.Expired(lease, now, l.opts.LeaseDuration) {
			if ok, err := l.ProposeLease(ctx, LeaseAcquire(JanitorLease, l.opts.AgentID, "", lease)); err == nil && ok {
				l.log.Info("holding the janitor lease", "epoch", lease.Epoch+1)
			}
		}
		return
	}
	if ok, err := l.ProposeLease(ctx, LeaseRenew(JanitorLease, l.opts.AgentID, lease.Epoch)); err != nil || !ok {
		return
	}
	l.maintain(ctx, now)
	l.checkpointIfDue(ctx, js, now)
	if now.Sub(js.lastGC) >= max(l.opts.Grace/8, time.Second) {
		js.lastGC = now
		l.collect(ctx, js)
	}
}

func (l *Log) maintain(ctx context.Context, now time.Time) {
	var entries []Entry
	l.View(func() {
		for _, o := range l.mux.owners {
			if m, ok := o.(Maintainer); ok {
				entries = append(entries, m.Maintain(now)...)
			}
		}
	})
	if len(entries) > 0 {
		if _, _, err := l.Propose(ctx, entries...); err != nil {
			l.log.Warn("maintenance commit failed", "err", err)
		}
	}
}

func (l *Log) checkpointIfDue(ctx context.Context, js *janitorState, now time.Time) {
	applied := l.Applied()
	due := applied >= js.lastCPSeq+uint64(l.opts.CheckpointCommits) ||
		(applied > js.lastCPSeq && now.Sub(js.lastCPAt) >= l.opts.CheckpointInterval)
	if !due {
		return
	}
	if err := l.Checkpoint(ctx); err != nil {
		l.log.Warn("checkpoint failed", "err", err)
		return
	}
	js.lastCPSeq, js.lastCPAt = applied, now
}

// Checkpoint writes the current state as checkpoints/{applied}. Any agent may
// write one: the state at a sequence number is the same everywhere, so a
// checkpoint that already exists is left alone.
func (l *Log) Checkpoint(ctx context.Context) error {
	var seq uint64
	var body []byte
	var err error
	l.View(func() {
		seq = l.applied
		body, err = l.mux.snapshot()
	})
	if err != nil || seq == 0 {
		return err
	}
	data := encodeCheckpoint(seq, body)
	_, err = l.b.PutIfAbsent(ctx, CheckpointKey(seq), bytes.NewReader(data), int64(len(data)))
	if err != nil && !bucket.IsPrecondition(err) {
		return err
	}
	l.Stats.Checkpoints.Add(1)
	return nil
}

// collect deletes commits, checkpoints and chunks that no state needs any
// more and that have been unneeded for the grace period.
func (l *Log) collect(ctx context.Context, js *janitorState) {
	// A state that includes every commit created before now.
	if err := l.catchUpAll(ctx); err != nil {
		l.log.Warn("gc: cannot reach the tail", "err", err)
		return
	}
	now := time.Now()
	live := map[string]bool{}
	l.View(func() {
		for _, o := range l.mux.owners {
			o.LiveObjects(func(k string) { live[k] = true })
		}
	})

	// Checkpoints: the newest one seen at least Grace ago is the floor.
	var floor uint64
	present := map[uint64]bool{}
	for info, err := range l.b.List(ctx, CheckpointPrefix, "") {
		if err != nil {
			l.log.Warn("gc: list checkpoints", "err", err)
			return
		}
		seq, ok := parseSeq(info.Key, CheckpointPrefix)
		if !ok {
			continue
		}
		present[seq] = true
		if _, seen := js.checkpoint[seq]; !seen {
			js.checkpoint[seq] = now
		}
		if now.Sub(js.checkpoint[seq]) >= l.opts.Grace && seq > floor {
			floor = seq
		}
	}
	for seq := range js.checkpoint {
		if !present[seq] {
			delete(js.checkpoint, seq)
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
				l.log.Warn("gc: list log", "err", err)
				return
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

	// Chunks unreferenced for the grace period.
	listed := map[string]bool{}
	for info, err := range l.b.List(ctx, ChunkPrefix, "") {
		if err != nil {
			l.log.Warn("gc: list chunks", "err", err)
			return
		}
		listed[info.Key] = true
		if live[info.Key] {
			delete(js.unref, info.Key)
			continue
		}
		first, seen := js.unref[info.Key]
		if !seen {
			js.unref[info.Key] = now
			continue
		}
		if now.Sub(first) >= l.opts.Grace {
			l.remove(ctx, info.Key)
			delete(js.unref, info.Key)
		}
	}
	for k := range js.unref {
		if !listed[k] {
			delete(js.unref, k)
		}
	}
}

func (l *Log) remove(ctx context.Context, key string) {
	if err := l.b.Delete(ctx, key); err != nil {
		l.log.Warn("gc: delete failed", "key", key, "err", err)
		return
	}
	l.Stats.Deleted.Add(1)
}
