package functions

import (
	"context"
	"errors"
	"fmt"
	"github.com/twoway/twoway/internal/stream"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
)

// Subscriptions. Each partition of a subscribed topic is a lease,
// "fn/{function}/{topic}/{partition}"; the agents share the leases (each
// holds about its share of them, by the count of live agents), and the
// holder of one consumes the partition: it runs a batch of records, each
// as its key's actor, and commits their effects with the new input
// position. The position in the guard makes this exactly-once whoever
// holds the lease: a commit from a deposed holder, or a second one after
// an unknown outcome, is refused whole.

type partKey struct {
	fn, topic string
	p         int32
}

func (k partKey) lease() string { return fmt.Sprintf("fn/%s/%s/%d", k.fn, k.topic, k.p) }

// subscriptions keeps this agent's share of the partition leases and a
// consumer running for each one it holds.
func (m *Module) subscriptions(ctx context.Context) {
	me := m.log.AgentID()
	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	workers := map[partKey]*running{}
	watches := map[partKey]*commitlog.LeaseWatch{}
	stop := func(k partKey) {
		if w := workers[k]; w != nil {
			w.cancel()
			<-w.done
			delete(workers, k)
		}
	}
	agents, agentsAt := 1, time.Time{}
	tick := m.cfg.LeaseDuration / 4
	defer m.b.Delete(context.Background(), workerKey(me))
	defer func() {
		var rel []commitlog.Entry
		for k := range workers {
			stop(k)
			if l := m.log.Lease(k.lease()); l.Holder == me {
				rel = append(rel, commitlog.LeaseRelease(k.lease(), me, l.Epoch))
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
				m.logger.Warn("counting the agents that run functions failed", "err", err)
			}
		}
		wanted := m.wantedPartitions()
		share := (len(wanted) + agents - 1) / agents
		// Start at a place of this agent's own, so agents arriving
		// together reach for different partitions first.
		h := fnv.New32a()
		h.Write([]byte(me))
		if n := len(wanted); n > 0 {
			off := int(h.Sum32() % uint32(n))
			wanted = append(wanted[off:], wanted[:off]...)
		}
		held := 0
		for _, k := range wanted {
			if m.log.Lease(k.lease()).Holder == me {
				held++
			}
		}
		var renew []commitlog.Entry
		want := map[partKey]bool{}
		now := time.Now()
		for _, k := range wanted {
			want[k] = true
			cur := m.log.Lease(k.lease())
			if watches[k] == nil {
				watches[k] = &commitlog.LeaseWatch{}
			}
			expired := watches[k].Expired(cur, now, m.cfg.LeaseDuration)
			// A partition nobody has taken for a while is taken whatever
			// the share says: the count of agents may be stale (one just
			// killed still counts), and no partition may starve.
			orphaned := watches[k].Expired(cur, now, 3*m.cfg.LeaseDuration)
			switch {
			case cur.Holder == me && held > share:
				stop(k)
				renew = append(renew, commitlog.LeaseRelease(k.lease(), me, cur.Epoch))
				held--
				m.logger.Info("releasing a subscription partition (more than this agent's share)", "lease", k.lease(), "share", share, "agents", agents)
			case cur.Holder == me:
				renew = append(renew, commitlog.LeaseRenew(k.lease(), me, cur.Epoch))
			case expired && held < share || orphaned:
				if ok, err := m.log.ProposeLease(ctx, commitlog.LeaseAcquire(k.lease(), me, "", cur)); err == nil && ok {
					held++
					m.logger.Info("consuming a subscription partition", "lease", k.lease(), "from", cur.Holder, "epoch", cur.Epoch+1)
				}
			}
		}
		if len(renew) > 0 {
			if _, _, err := m.log.Propose(ctx, renew...); err != nil && ctx.Err() == nil {
				m.logger.Warn("renewing subscription leases failed", "err", err)
			}
		}
		for k := range workers {
			if !want[k] || m.log.Lease(k.lease()).Holder != me {
				stop(k)
			}
		}
		// Leases of partitions no longer subscribed (a function deleted
		// or redeployed without the topic) are given up.
		wantLease := map[string]bool{}
		for k := range want {
			wantLease[k.lease()] = true
		}
		var gone []commitlog.Entry
		m.log.Leases(func(name string, cur commitlog.Lease) {
			if strings.HasPrefix(name, "fn/") && cur.Holder == me && !wantLease[name] {
				gone = append(gone, commitlog.LeaseRelease(name, me, cur.Epoch))
			}
		})
		if len(gone) > 0 {
			m.log.Propose(ctx, gone...)
		}
		for _, k := range wanted {
			if workers[k] == nil && m.log.Lease(k.lease()).Holder == me {
				wctx, cancel := context.WithCancel(ctx)
				w := &running{cancel: cancel, done: make(chan struct{})}
				workers[k] = w
				go func() {
					defer close(w.done)
					m.consume(wctx, k)
				}()
			}
		}
		for k := range watches {
			if !want[k] {
				delete(watches, k)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
	}
}

// wantedPartitions lists every partition of every live subscription.
func (m *Module) wantedPartitions() []partKey {
	var out []partKey
	for _, d := range m.List() {
		for _, t := range d.Subscribe {
			n, err := m.streams.Partitions(t)
			if err != nil {
				continue
			}
			for p := range n {
				out = append(out, partKey{d.Name, t, p})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lease() < out[j].lease() })
	return out
}

// position returns the function's next input offset in a partition.
func (m *Module) position(k partKey) (int64, bool) {
	var pos int64
	var ok bool
	m.log.View(m.st, func() {
		if f := m.st.fns[k.fn]; f != nil {
			pos, ok = f.Positions[posKey(k.topic, k.p)]
		}
	})
	return pos, ok
}

// consume processes partition k while ctx lasts.
func (m *Module) consume(ctx context.Context, k partKey) {
	log := m.logger.With("function", k.fn, "topic", k.topic, "partition", k.p)
	backoff := func() {
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	for ctx.Err() == nil {
		d, ok := m.Get(k.fn)
		if !ok {
			return
		}
		pos, known := m.position(k)
		if !known {
			ti, err := m.streams.Topic(k.topic)
			if err != nil || int(k.p) >= len(ti.PartitionsInfo) {
				return
			}
			pos = ti.PartitionsInfo[k.p].Start
		}
		// Committed records only (read_committed): a subscription never
		// runs records of an aborted or still open transaction, and moves
		// on past transaction markers.
		res, err := m.streams.ReadRecords(ctx, k.topic, k.p, pos, stream.ReadOptions{Max: m.cfg.BatchMax, Wait: time.Second, Committed: true})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("reading input failed", "offset", pos, "err", err)
			backoff()
			continue
		}
		recs, from := res.Records, pos
		if len(recs) == 0 {
			to := res.Next
			if pos < res.LogStart {
				// Retention removed records before they were processed.
				log.Warn("input records were deleted by retention before processing", "from", pos, "to", res.LogStart)
				to = max(to, res.LogStart)
			}
			if to > pos {
				// Nothing to run (retention, markers, aborted records):
				// the position moves on by itself.
				b := m.newBatch(&d)
				b.input = &inputRange{Topic: k.topic, Partition: k.p, From: from, To: to}
				if err := m.commit(ctx, b); err != nil && ctx.Err() == nil {
					backoff()
				}
			}
			continue
		}
		l, err := m.load(ctx, d)
		if err != nil {
			log.Error("loading the function failed", "err", err)
			backoff()
			continue
		}
		b := m.newBatch(&l.d)
		b.input = &inputRange{Topic: k.topic, Partition: k.p, From: from, To: res.Next}
		for _, r := range recs {
			rec := &Record{Topic: k.topic, Partition: k.p, Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, [2][]byte{[]byte(h.Key), h.Value})
			}
			if err := m.process(ctx, l, b, rec); err != nil {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		err = m.commit(ctx, b)
		switch {
		case err == nil:
		case errors.Is(err, ErrConflict):
			// Another holder (or our own earlier, unknown-outcome
			// commit) moved the position: read it again.
			m.met.conflicts.WithLabelValues(k.fn).Inc()
		case ctx.Err() != nil:
			return
		default:
			log.Warn("committing a batch failed; it runs again", "from", from, "err", err)
			backoff()
			m.log.Sync(ctx)
		}
	}
}

// process runs one record as its key's actor, retrying a transient
// failure; a record that keeps failing is dead-lettered in the same
// commit. The error is only a cancelled context.
func (m *Module) process(ctx context.Context, l *loaded, b *batch, r *Record) error {
	key := string(r.Key)
	id := fmt.Sprintf("%s/%s/%d/%d", l.d.Name, r.Topic, r.Partition, r.Offset)
	for try := 0; ; try++ {
		inv, err := b.begin(ctx, key, true, id)
		if err != nil {
			return err
		}
		resp, err := m.run(ctx, l, inv, "record", recordEvent(key, id, r))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && resp.OK() {
			b.merge(inv)
			return nil
		}
		permanent := err == nil && resp.Status < 500
		if permanent || try >= m.cfg.Retries {
			why := ""
			if err != nil {
				why = err.Error()
			} else {
				why = fmt.Sprintf("status %d: %.500s", resp.Status, resp.Body)
			}
			inv.logger.Warn("record dead-lettered", "offset", r.Offset, "topic", DLQTopic(l.d.Name), "err", why)
			m.met.deadLetters.WithLabelValues(l.d.Name).Inc()
			b.deadLetter(r, why)
			return nil
		}
	}
}

// timers fires due timers while this agent holds the timers lease.
func (m *Module) timers(ctx context.Context) {
	const lease = "functions/timers"
	me := m.log.AgentID()
	var watch commitlog.LeaseWatch
	var renewed time.Time
	inflight := map[uint64]bool{}
	doneCh := make(chan uint64, 1024)
	for {
		select {
		case <-ctx.Done():
			if l := m.log.Lease(lease); l.Holder == me {
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				m.log.ProposeLease(rctx, commitlog.LeaseRelease(lease, me, l.Epoch))
				cancel()
			}
			return
		case id := <-doneCh:
			delete(inflight, id)
			continue
		case <-time.After(m.cfg.TimerTick):
		}
		cur := m.log.Lease(lease)
		now := time.Now()
		if cur.Holder != me {
			if watch.Expired(cur, now, m.cfg.LeaseDuration) && len(m.List()) > 0 {
				m.log.ProposeLease(ctx, commitlog.LeaseAcquire(lease, me, "", cur))
			}
			continue
		}
		if now.Sub(renewed) > m.cfg.LeaseDuration/4 {
			if ok, err := m.log.ProposeLease(ctx, commitlog.LeaseRenew(lease, me, cur.Epoch)); err == nil && ok {
				renewed = now
			}
		}
		type due struct {
			fn, key, name string
			t             Timer
		}
		var dues []due
		nowMs := now.UnixMilli()
		m.log.View(m.st, func() {
			for fn, f := range m.st.fns {
				f.Timers.Range(func(key, name string, t Timer) {
					if t.AtMs <= nowMs && !inflight[t.ID] && len(dues) < 10000 {
						dues = append(dues, due{fn, key, name, t})
					}
				})
			}
		})
		for _, d := range dues {
			inflight[d.t.ID] = true
			c := &call{trigger: "timer", id: fmt.Sprintf("%s/%s/timer/%s/%d", d.fn, d.key, d.name, d.t.ID),
				fired: &fired{Key: d.key, Name: d.name, ID: d.t.ID}, done: make(chan callResult, 1)}
			d := d
			c.event = func(id string) []byte { return timerEvent(d.key, id, d.name, d.t.AtMs, d.t.Payload) }
			if !m.enqueue(d.fn, d.key, c) {
				delete(inflight, d.t.ID) // the next tick tries again
				continue
			}
			go func() {
				<-c.done
				select {
				case doneCh <- d.t.ID:
				case <-ctx.Done():
				}
			}()
		}
	}
}

// WorkersPrefix holds a presence object per agent running subscriptions,
// rewritten every half lease: the agents share the partitions by their
// count. (Agents' registrations count every agent, also those that run no
// functions, such as one-shot CLI commands.)
const WorkersPrefix = "functions/workers/"

func workerKey(agent string) string { return WorkersPrefix + agent }

// countWorkers refreshes this agent's presence and counts the agents
// running subscriptions.
func (m *Module) countWorkers(ctx context.Context) (int, error) {
	return module.CountPresent(ctx, m.b, WorkersPrefix, m.log.AgentID(), 2*m.cfg.LeaseDuration)
}
