package groups

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/stream"
)

// simClient is a KIP-848 client as the model test plays it: it holds the
// partitions it processes; an assignment adds partitions at once, and a
// revocation takes effect later (when its callback has committed), only
// then reported to the coordinator.
type simClient struct {
	id       string
	epoch    int32
	holds    tpSet
	dropping tpSet
	topics   []string
	assignor string
}

// The consumer group state machine under random joins, leaves, deaths,
// subscription and partition changes, lost and keepalive heartbeats, and
// slow revocations: no partition is ever held by two clients, and once the
// clients keep heartbeating, every subscribed partition has exactly one
// holder, the one the coordinator assigned, and every member is at the
// assignment epoch. Each seed replays a run.
func TestConsumerGroupModel(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { modelRun(t, seed) })
	}
}

func modelRun(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 848))
	parts := map[string]int32{"a": int32(1 + r.IntN(8)), "b": int32(1 + r.IntN(8))}
	catalog := func() []topicMeta {
		return []topicMeta{
			{name: "a", id: stream.TopicID("a", 1), partitions: parts["a"]},
			{name: "b", id: stream.TopicID("b", 1), partitions: parts["b"]},
		}
	}
	ids := map[string][16]byte{"a": stream.TopicID("a", 1), "b": stream.TopicID("b", 1)}
	g := newConsumerGroup("g", consumerTiming{session: time.Hour, heartbeat: time.Second}, catalog, nil)
	g.persist = func(context.Context, consumerState) int16 { return 0 }
	defer g.shutdown()
	var clients []*simClient
	next := 0
	subscriptions := [][]string{{"a"}, {"b"}, {"a", "b"}}
	assignors := []string{"", AssignorUniform, AssignorRange}

	lossy := true
	hb := func(c *simClient, full bool) {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch, req.RebalanceTimeoutMillis = "g", c.id, c.epoch, -1
		if c.epoch == 0 || full {
			req.RebalanceTimeoutMillis = 60000
			req.SubscribedTopicNames = c.topics
			req.ServerAssignor = &c.assignor
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			if c.epoch != 0 {
				for _, tp := range toTopicPartitions(c.holds) {
					req.Topics = append(req.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: ids[tp.Topic], Partitions: tp.Partitions})
				}
			}
		}
		res := g.heartbeat(req, ClientInfo{}, nil, func() bool { return false })
		switch res.code {
		case 0:
		case kerr.FencedMemberEpoch.Code:
			c.holds, c.dropping, c.epoch = tpSet{}, tpSet{}, 0
			return
		case kerr.UnknownMemberID.Code:
			next++
			c.id, c.holds, c.dropping, c.epoch = fmt.Sprint("m", next), tpSet{}, tpSet{}, 0
			return
		default:
			t.Fatalf("seed %d: heartbeat of %s: %v %s", seed, c.id, kerr.ErrorForCode(res.code), res.msg)
		}
		if lossy && r.IntN(10) == 0 {
			return // the answer is lost
		}
		c.epoch = res.epoch
		if res.assignment == nil {
			return
		}
		a := tpSet{}
		for _, at := range res.assignment.Topics {
			for name, id := range ids {
				if id == at.TopicID {
					for _, p := range at.Partitions {
						a[tp{name, p}] = struct{}{}
					}
				}
			}
		}
		for p := range a {
			c.holds[p] = struct{}{}
		}
		for p := range c.holds.minus(a) {
			c.dropping[p] = struct{}{}
		}
	}
	check := func(step int) {
		seen := map[tp]string{}
		for _, c := range clients {
			for p := range c.holds {
				if o, dup := seen[p]; dup {
					t.Fatalf("seed %d step %d: %v held by %s and %s", seed, step, p, o, c.id)
				}
				seen[p] = c.id
			}
		}
	}
	for step := range 400 {
		switch k := r.IntN(100); {
		case k < 8 && len(clients) < 6:
			next++
			c := &simClient{id: fmt.Sprint("m", next), holds: tpSet{}, dropping: tpSet{},
				topics: subscriptions[r.IntN(3)], assignor: assignors[r.IntN(3)]}
			clients = append(clients, c)
			hb(c, true)
		case k < 11 && len(clients) > 0: // leaves, after revoking everything
			i := r.IntN(len(clients))
			c := clients[i]
			clients = slices.Delete(clients, i, i+1)
			req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
			req.Group, req.MemberID, req.MemberEpoch = "g", c.id, -1
			g.heartbeat(req, ClientInfo{}, nil, func() bool { return false })
		case k < 13 && len(clients) > 0: // dies: its session expires
			i := r.IntN(len(clients))
			c := clients[i]
			clients = slices.Delete(clients, i, i+1)
			g.mu.Lock()
			if m := g.members[c.id]; m != nil {
				tok := m.sessTok
				g.mu.Unlock()
				g.fence(c.id, tok, false)
			} else {
				g.mu.Unlock()
			}
		case k < 15 && len(clients) > 0:
			c := clients[r.IntN(len(clients))]
			c.topics = subscriptions[r.IntN(3)]
			hb(c, true)
		case k < 16:
			parts["ab"[r.IntN(2):][:1]] += int32(1 + r.IntN(3))
		case k < 25 && len(clients) > 0: // a commit, maybe at an old epoch, maybe of a partition not held
			c := clients[r.IntN(len(clients))]
			var ps []tp
			for p := range c.holds {
				if r.IntN(2) == 0 {
					ps = append(ps, p)
				}
			}
			if r.IntN(4) == 0 {
				ps = append(ps, tp{"a", int32(r.IntN(int(parts["a"])))})
			}
			epoch := c.epoch - int32(r.IntN(2))
			if code, _ := g.validateMember(c.id, epoch, ps); code == 0 {
				// Accepted: no other client holds those partitions (the
				// commit cannot undo another's progress).
				for _, p := range ps {
					for _, o := range clients {
						if o != c && o.holds.has(p) {
							t.Fatalf("seed %d step %d: %s's commit at epoch %d of %v accepted while %s holds it", seed, step, c.id, epoch, p, o.id)
						}
					}
				}
			}
		case k < 40 && len(clients) > 0: // a revocation completes
			c := clients[r.IntN(len(clients))]
			for p := range c.dropping {
				delete(c.holds, p)
			}
			c.dropping = tpSet{}
		case len(clients) > 0:
			hb(clients[r.IntN(len(clients))], r.IntN(3) > 0)
		}
		check(step)
	}
	// Settle: every client finishes its revocations and heartbeats in full,
	// and answers arrive.
	lossy = false
	for range 10 {
		for _, c := range clients {
			for p := range c.dropping {
				delete(c.holds, p)
			}
			c.dropping = tpSet{}
			hb(c, true)
			check(-1)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	want := tpSet{}
	for _, c := range clients {
		m := g.members[c.id]
		if m == nil {
			t.Fatalf("seed %d: client %s is not a member", seed, c.id)
		}
		for _, tn := range c.topics {
			for p := range parts[tn] {
				want[tp{tn, p}] = struct{}{}
			}
		}
	}
	held := tpSet{}
	for _, c := range clients {
		m := g.members[c.id]
		if len(m.revoking) > 0 || m.Epoch != g.assignmentEpoch {
			t.Fatalf("seed %d: member %s not reconciled: epoch %d (assignment %d), revoking %v", seed, c.id, m.Epoch, g.assignmentEpoch, m.revoking.sorted())
		}
		if !mapsEqual(m.assigned, g.target[c.id]) {
			t.Fatalf("seed %d: member %s holds %v, target %v", seed, c.id, m.assigned.sorted(), g.target[c.id].sorted())
		}
		if !mapsEqual(m.assigned, c.holds) {
			t.Fatalf("seed %d: client %s holds %v, the coordinator assigned it %v", seed, c.id, c.holds.sorted(), m.assigned.sorted())
		}
		for p := range m.assigned {
			held[p] = struct{}{}
		}
	}
	if !mapsEqual(held, want) {
		t.Fatalf("seed %d: assigned %v, subscribed %v", seed, held.sorted(), want.sorted())
	}
}

func mapsEqual(a, b tpSet) bool { return len(a.minus(b)) == 0 && len(b.minus(a)) == 0 }
