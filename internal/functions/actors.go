package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/twoway/twoway/internal/commitlog"
)

// Actors are turn-based: on each agent, one key's invocations run one at
// a time, from a mailbox. The turns waiting in a mailbox run back to back
// on the state the previous one left and commit together. Between
// agents, the versions in the commit's guard serialize them: a commit
// based on a state another agent has changed since is refused whole, and
// the turns run again on the new state.

// call is one queued invocation of an actor.
type call struct {
	trigger string
	event   func(id string) []byte
	id      string
	// fired is the timer a timer call handles.
	fired *fired
	done  chan callResult
}

type callResult struct {
	resp Response
	err  error
}

type mailbox struct {
	q []*call
}

// maxTurns bounds the turns committed together.
const maxTurns = 64

// maxConflicts bounds how often a turn runs again because another agent
// changed the actor first.
const maxConflicts = 100

// maxQueued bounds the invocations waiting for one actor on an agent:
// beyond it an invocation is refused (busy) rather than held in memory.
const maxQueued = 4096

// enqueue queues c for actor key of function fn; false if the actor's
// mailbox is full.
func (m *Module) enqueue(fn, key string, c *call) bool {
	k := actorKey(fn, key)
	m.mu.Lock()
	box := m.boxes[k]
	start := box == nil
	if start {
		box = &mailbox{}
		m.boxes[k] = box
	}
	if len(box.q) >= maxQueued {
		m.mu.Unlock()
		return false
	}
	box.q = append(box.q, c)
	m.mu.Unlock()
	if start {
		go m.drain(fn, key, box)
	}
	return true
}

func (m *Module) drain(fn, key string, box *mailbox) {
	k := actorKey(fn, key)
	for {
		m.mu.Lock()
		if len(box.q) == 0 {
			delete(m.boxes, k)
			m.mu.Unlock()
			return
		}
		n := min(len(box.q), maxTurns)
		calls := box.q[:n:n]
		box.q = box.q[n:]
		m.mu.Unlock()
		m.turns(fn, key, calls)
	}
}

// turns runs calls in order on actor key and commits them together.
func (m *Module) turns(fn, key string, calls []*call) {
	ctx := m.ctx
	finish := func(res []callResult) {
		for i, c := range calls {
			c.done <- res[i]
		}
	}
	failAll := func(err error) {
		res := make([]callResult, len(calls))
		for i := range res {
			res[i].err = err
		}
		finish(res)
	}
	for attempt := 0; ; attempt++ {
		d, ok := m.Get(fn)
		if !ok {
			failAll(fmt.Errorf("%w: function %s", ErrNotFound, fn))
			return
		}
		l, err := m.load(ctx, d)
		if err != nil {
			failAll(err)
			return
		}
		b := m.newBatch(&l.d)
		res := make([]callResult, len(calls))
		for i, c := range calls {
			if c.fired != nil && !m.timerSet(fn, *c.fired) {
				res[i].err = errTimerGone
				continue
			}
			res[i] = m.turn(ctx, l, b, key, c)
		}
		err = m.commit(ctx, b)
		if errors.Is(err, ErrConflict) && attempt < maxConflicts {
			m.met.conflicts.WithLabelValues(fn).Inc()
			continue
		}
		if err != nil {
			if errors.Is(err, ErrConflict) {
				err = fmt.Errorf("%w: %w", ErrBusy, err)
			}
			for i := range res {
				if res[i].err == nil {
					res[i] = callResult{err: err}
				}
			}
		}
		finish(res)
		return
	}
}

var errTimerGone = errors.New("the timer was replaced or has fired")

// turn runs one call on b. A failed timer call is retried, then its
// timer is consumed without effects (and the error logged), so a broken
// timer cannot fire forever.
func (m *Module) turn(ctx context.Context, l *loaded, b *batch, key string, c *call) callResult {
	for try := 0; ; try++ {
		inv, err := b.begin(ctx, key, true, c.id)
		if err != nil {
			return callResult{err: err}
		}
		resp, err := m.run(ctx, l, inv, c.trigger, c.event(c.id))
		if err == nil && resp.OK() {
			b.merge(inv)
			if c.fired != nil {
				b.fired = append(b.fired, *c.fired)
			}
			return callResult{resp: resp}
		}
		if c.fired == nil {
			return callResult{resp: resp, err: err}
		}
		permanent := err == nil && resp.Status < 500
		if permanent || try >= m.cfg.Retries {
			why := ""
			if err != nil {
				why = err.Error()
			} else {
				why = fmt.Sprintf("status %d: %.200s", resp.Status, resp.Body)
			}
			inv.logger.Error("timer failed; dropping it", "timer", c.fired.Name, "err", why)
			b.fired = append(b.fired, *c.fired)
			return callResult{resp: resp, err: err}
		}
	}
}

func (m *Module) timerSet(fn string, t fired) bool {
	set := false
	m.log.View(m.st, func() {
		if f := m.st.fns[fn]; f != nil {
			cur, ok := f.Timers.get(t.Key, t.Name)
			set = ok && cur.ID == t.ID
		}
	})
	return set
}

// Invoke runs function fn with method and body: as actor key's turn when
// keyed, else unkeyed (it may read any actor's state and publish).
func (m *Module) Invoke(ctx context.Context, fn, key string, keyed bool, method string, body []byte) (Response, error) {
	id := newInvocationID()
	event := func(id string) []byte { return invokeEvent(key, id, method, body) }
	if !keyed {
		return m.unkeyed(ctx, fn, "invoke", id, event)
	}
	c := &call{trigger: "invoke", event: event, id: id, done: make(chan callResult, 1)}
	if !m.enqueue(fn, key, c) {
		return Response{}, fmt.Errorf("%w: %d invocations of %s actor %q are already waiting on this agent", ErrBusy, maxQueued, fn, key)
	}
	select {
	case r := <-c.done:
		return r.resp, r.err
	case <-ctx.Done():
		return Response{}, fmt.Errorf("%w: %w", commitlog.ErrOutcomeUnknown, ctx.Err())
	}
}

// unkeyed runs an invocation of no actor and commits what it published.
func (m *Module) unkeyed(ctx context.Context, fn, trigger, id string, event func(string) []byte) (Response, error) {
	d, ok := m.Get(fn)
	if !ok {
		return Response{}, fmt.Errorf("%w: function %s", ErrNotFound, fn)
	}
	l, err := m.load(ctx, d)
	if err != nil {
		return Response{}, err
	}
	b := m.newBatch(&l.d)
	inv, err := b.begin(ctx, "", false, id)
	if err != nil {
		return Response{}, err
	}
	resp, err := m.run(ctx, l, inv, trigger, event(id))
	if err != nil || !resp.OK() {
		return resp, err
	}
	b.merge(inv)
	if err := m.commit(ctx, b); err != nil {
		return Response{}, err
	}
	return resp, nil
}
