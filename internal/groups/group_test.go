package groups

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The membership tests run in a synctest bubble: time stands still until
// every goroutine is blocked, so session and rebalance timeouts are exact.

var testTiming = timing{minSession: time.Second, maxSession: time.Hour, initialDelay: 3 * time.Second}

// settle waits out the initial rebalance delay of an empty group, extended
// once because more than one member joined during it.
const settle = 2 * 3 * time.Second

const (
	session   = 10 * time.Second
	rebalance = 30 * time.Second
)

func joinRequest(version int16, memberID string, protocols ...string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group = "g"
	req.MemberID = memberID
	req.SessionTimeoutMillis = int32(session / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
	req.ProtocolType = "consumer"
	for _, p := range protocols {
		req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: []byte("md-" + p)})
	}
	return req
}

// pending is a JoinGroup in flight.
type pending struct {
	ch  <-chan joinResult
	got *joinResult
}

func (p *pending) done() bool {
	if p.got != nil {
		return true
	}
	select {
	case r := <-p.ch:
		p.got = &r
		return true
	default:
		return false
	}
}

func (p *pending) result(t *testing.T) joinResult {
	t.Helper()
	synctest.Wait()
	if !p.done() {
		t.Fatal("join still waiting")
	}
	return *p.got
}

func startJoin(g *group, req *kmsg.JoinGroupRequest) *pending {
	return &pending{ch: g.join(req, ClientInfo{ID: "client", Host: "/127.0.0.1"})}
}

// joinNew joins a new member the v4+ way: MEMBER_ID_REQUIRED, then rejoin.
func joinNew(t *testing.T, g *group, protocols ...string) *pending {
	t.Helper()
	first := startJoin(g, joinRequest(9, "", protocols...)).result(t)
	if first.code != kerr.MemberIDRequired.Code || first.memberID == "" {
		t.Fatalf("first join: code %d, member %q", first.code, first.memberID)
	}
	return startJoin(g, joinRequest(9, first.memberID, protocols...))
}

func syncGroup(g *group, member string, generation int32, assign map[string]string) <-chan syncResult {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.Generation = "g", member, generation
	for m, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(a)})
	}
	return g.sync(req)
}

func heartbeat(g *group, member string, generation int32) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = "g", member, generation
	return g.heartbeat(req)
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	synctest.Wait()
	select {
	case v := <-ch:
		return v
	default:
		t.Fatal("no answer yet")
		panic("unreachable")
	}
}

func TestJoinSyncHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a := joinNew(t, g, "range")
		synctest.Wait()
		if a.done() {
			t.Fatal("the first join completed before the initial rebalance delay")
		}
		if st, _ := g.summary(); st != statePreparingRebalance {
			t.Fatalf("state %v", st)
		}
		time.Sleep(testTiming.initialDelay)
		ra := a.result(t)
		if ra.code != 0 || ra.generation != 1 || ra.leader != ra.memberID || ra.protocol != "range" || len(ra.members) != 1 {
			t.Fatalf("join: %+v", ra)
		}
		// The leader syncs its assignment.
		if r := recv(t, syncGroup(g, ra.memberID, 1, map[string]string{ra.memberID: "all"})); r.code != 0 || string(r.assignment) != "all" {
			t.Fatalf("sync: %+v", r)
		}
		if st, _ := g.summary(); st != stateStable {
			t.Fatalf("state %v", st)
		}
		if code := heartbeat(g, ra.memberID, 1); code != 0 {
			t.Fatalf("heartbeat: %d", code)
		}
		if code := heartbeat(g, ra.memberID, 0); code != kerr.IllegalGeneration.Code {
			t.Fatalf("heartbeat of an old generation: %d", code)
		}
		if code := heartbeat(g, "nobody", 1); code != kerr.UnknownMemberID.Code {
			t.Fatalf("heartbeat of an unknown member: %d", code)
		}

		// A second member joins: the group rebalances; the first member
		// learns it from its heartbeat and rejoins.
		b := joinNew(t, g, "range")
		synctest.Wait()
		if b.done() {
			t.Fatal("join completed while the first member had not rejoined")
		}
		if code := heartbeat(g, ra.memberID, 1); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("heartbeat during rebalance: %d", code)
		}
		if r := recv(t, syncGroup(g, ra.memberID, 1, nil)); r.code != kerr.RebalanceInProgress.Code {
			t.Fatalf("sync during rebalance: %d", r.code)
		}
		a2 := startJoin(g, joinRequest(9, ra.memberID, "range"))
		ra, rb := a2.result(t), b.result(t)
		if ra.code != 0 || rb.code != 0 || ra.generation != 2 || rb.generation != 2 {
			t.Fatalf("rejoin: %+v %+v", ra, rb)
		}
		if ra.leader != ra.memberID || len(ra.members) != 2 || len(rb.members) != 0 {
			t.Fatalf("the first joiner must lead and alone get the members: %+v %+v", ra, rb)
		}
		if ra.members[0].MemberID != ra.memberID || ra.members[1].MemberID != rb.memberID || string(ra.members[1].ProtocolMetadata) != "md-range" {
			t.Fatalf("members: %+v", ra.members)
		}
		// The follower syncs first and waits for the leader.
		fb := syncGroup(g, rb.memberID, 2, nil)
		synctest.Wait()
		select {
		case <-fb:
			t.Fatal("follower answered before the leader's assignment")
		default:
		}
		fa := syncGroup(g, ra.memberID, 2, map[string]string{ra.memberID: "p0", rb.memberID: "p1"})
		if r := recv(t, fa); string(r.assignment) != "p0" {
			t.Fatalf("leader assignment %q", r.assignment)
		}
		if r := recv(t, fb); string(r.assignment) != "p1" || r.protocol != "range" || r.protocolType != "consumer" {
			t.Fatalf("follower: %+v", r)
		}

		// A follower rejoining with the same protocols keeps the generation.
		if r := startJoin(g, joinRequest(9, rb.memberID, "range")).result(t); r.code != 0 || r.generation != 2 {
			t.Fatalf("idempotent rejoin: %+v", r)
		}

		// The second member leaves: the first rejoins alone.
		if code := g.leave(rb.memberID, ""); code != 0 {
			t.Fatal(code)
		}
		if code := heartbeat(g, ra.memberID, 2); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("heartbeat after leave: %d", code)
		}
		r := startJoin(g, joinRequest(9, ra.memberID, "range")).result(t)
		if r.code != 0 || r.generation != 3 || len(r.members) != 1 {
			t.Fatalf("join after leave: %+v", r)
		}
		if code := g.leave(rb.memberID, ""); code != kerr.UnknownMemberID.Code {
			t.Fatalf("second leave: %d", code)
		}
	})
}

func TestSessionTimeoutExpiresMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a, b := joinNew(t, g, "range"), joinNew(t, g, "range")
		time.Sleep(settle)
		ra, rb := a.result(t), b.result(t)
		fb := syncGroup(g, rb.memberID, 1, nil)
		recv(t, syncGroup(g, ra.memberID, 1, map[string]string{}))
		recv(t, fb)
		// a heartbeats, b goes silent.
		for range 2 {
			time.Sleep(4 * time.Second)
			if code := heartbeat(g, ra.memberID, 1); code != 0 {
				t.Fatalf("heartbeat: %d", code)
			}
		}
		// b's session ended 10s after its sync; a learns of the rebalance.
		time.Sleep(4 * time.Second)
		if code := heartbeat(g, ra.memberID, 1); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("heartbeat after b expired: %d", code)
		}
		if code := heartbeat(g, rb.memberID, 1); code != kerr.UnknownMemberID.Code {
			t.Fatalf("expired member's heartbeat: %d", code)
		}
		r := startJoin(g, joinRequest(9, ra.memberID, "range")).result(t)
		if r.code != 0 || r.generation != 2 || len(r.members) != 1 {
			t.Fatalf("rejoin: %+v", r)
		}
	})
}

// A member that does not rejoin within the rebalance timeout is dropped and
// the join completes without it.
func TestRebalanceTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a, b := joinNew(t, g, "range"), joinNew(t, g, "range")
		time.Sleep(settle)
		ra, rb := a.result(t), b.result(t)
		recv(t, syncGroup(g, ra.memberID, 1, nil))
		c := joinNew(t, g, "range")
		a2 := startJoin(g, joinRequest(9, ra.memberID, "range"))
		// b keeps heartbeating but never rejoins.
		start := time.Now()
		for !a2.done() {
			time.Sleep(time.Second)
			heartbeat(g, rb.memberID, 1)
			if time.Since(start) > 2*rebalance {
				t.Fatal("join never completed")
			}
		}
		if waited := time.Since(start); waited < rebalance-time.Second || waited > rebalance+time.Second {
			t.Fatalf("join completed after %v, want the rebalance timeout %v", waited, rebalance)
		}
		ra2, rc := a2.result(t), c.result(t)
		if ra2.generation != 2 || len(ra2.members) != 2 || rc.code != 0 {
			t.Fatalf("after timeout: %+v %+v", ra2, rc)
		}
		if code := heartbeat(g, rb.memberID, 2); code != kerr.UnknownMemberID.Code {
			t.Fatalf("dropped member: %d", code)
		}
	})
}

func TestMemberIDRequiredExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a := joinNew(t, g, "range")
		time.Sleep(testTiming.initialDelay)
		ra := a.result(t)
		recv(t, syncGroup(g, ra.memberID, 1, nil))
		// A client learns its id and dies: it never becomes a member.
		r := startJoin(g, joinRequest(9, "", "range")).result(t)
		if r.code != kerr.MemberIDRequired.Code {
			t.Fatal(r.code)
		}
		if st, _ := g.summary(); st != stateStable {
			t.Fatalf("a pending member started a rebalance: %v", st)
		}
		for range 3 {
			time.Sleep(session / 2)
			if code := heartbeat(g, ra.memberID, 1); code != 0 {
				t.Fatal(code)
			}
		}
		if r := startJoin(g, joinRequest(9, r.memberID, "range")).result(t); r.code != kerr.UnknownMemberID.Code {
			t.Fatalf("join with an expired pending id: %d", r.code)
		}
		// Before v4 the member id is assigned at once.
		old := startJoin(g, joinRequest(3, "", "range"))
		a2 := startJoin(g, joinRequest(9, ra.memberID, "range"))
		if ro, ra2 := old.result(t), a2.result(t); ro.code != 0 || ro.memberID == "" || ra2.generation != 2 {
			t.Fatalf("v3 join: %+v %+v", ro, ra2)
		}
	})
}

func TestProtocolSelection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a := joinNew(t, g, "range", "roundrobin")
		b := joinNew(t, g, "roundrobin", "range")
		c := joinNew(t, g, "roundrobin", "sticky")
		time.Sleep(settle)
		for _, p := range []*pending{a, b, c} {
			if r := p.result(t); r.code != 0 || r.protocol != "roundrobin" {
				t.Fatalf("%+v", r)
			}
		}
		// No common protocol, or another protocol type: refused.
		if r := startJoin(g, joinRequest(9, "", "sticky")).result(t); r.code != kerr.InconsistentGroupProtocol.Code {
			t.Fatalf("incompatible member: %d", r.code)
		}
		req := joinRequest(9, "", "roundrobin")
		req.ProtocolType = "connect"
		if r := startJoin(g, req).result(t); r.code != kerr.InconsistentGroupProtocol.Code {
			t.Fatalf("other protocol type: %d", r.code)
		}
		req = joinRequest(9, "", "roundrobin")
		req.SessionTimeoutMillis = 10
		if r := startJoin(g, req).result(t); r.code != kerr.InvalidSessionTimeout.Code {
			t.Fatalf("session too short: %d", r.code)
		}
	})
}

// A tie between protocols goes to the leader's preference.
func TestProtocolTieGoesToLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a := joinNew(t, g, "cooperative-sticky", "range")
		b := joinNew(t, g, "range", "cooperative-sticky")
		time.Sleep(settle)
		if ra, rb := a.result(t), b.result(t); ra.protocol != "cooperative-sticky" || rb.protocol != "cooperative-sticky" {
			t.Fatalf("%q %q", ra.protocol, rb.protocol)
		}
	})
}

func TestLeaderLeavesNextMemberLeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a, b := joinNew(t, g, "range"), joinNew(t, g, "range")
		time.Sleep(settle)
		ra, rb := a.result(t), b.result(t)
		recv(t, syncGroup(g, ra.memberID, 1, nil))
		g.leave(ra.memberID, "")
		r := startJoin(g, joinRequest(9, rb.memberID, "range")).result(t)
		if r.leader != rb.memberID || len(r.members) != 1 || r.generation != 2 {
			t.Fatalf("%+v", r)
		}
		// Everyone leaves: Empty, and the next join starts a new generation.
		g.leave(rb.memberID, "")
		synctest.Wait()
		if st, _ := g.summary(); st != stateEmpty {
			t.Fatalf("state %v", st)
		}
		c := joinNew(t, g, "range")
		time.Sleep(testTiming.initialDelay)
		if r := c.result(t); r.generation != 4 || r.leader != r.memberID {
			t.Fatalf("%+v", r)
		}
	})
}

func staticJoin(instance, memberID string) *kmsg.JoinGroupRequest {
	req := joinRequest(9, memberID, "range")
	req.InstanceID = &instance
	return req
}

// A static member that restarts gets a new member id and its old
// assignment without a rebalance; its old id is fenced.
func TestStaticMemberRejoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		a := startJoin(g, staticJoin("a", ""))
		b := startJoin(g, staticJoin("b", ""))
		time.Sleep(settle)
		ra, rb := a.result(t), b.result(t)
		if ra.code != 0 || rb.code != 0 {
			t.Fatalf("static members need no MEMBER_ID_REQUIRED: %+v %+v", ra, rb)
		}
		fb := syncGroup(g, rb.memberID, 1, nil)
		recv(t, syncGroup(g, ra.memberID, 1, map[string]string{ra.memberID: "A", rb.memberID: "B"}))
		recv(t, fb)

		// b restarts.
		rb2 := startJoin(g, staticJoin("b", "")).result(t)
		if rb2.code != 0 || rb2.memberID == rb.memberID || rb2.generation != 1 {
			t.Fatalf("static rejoin: %+v", rb2)
		}
		if st, _ := g.summary(); st != stateStable {
			t.Fatalf("static rejoin rebalanced: %v", st)
		}
		if r := recv(t, syncGroup(g, rb2.memberID, 1, nil)); string(r.assignment) != "B" {
			t.Fatalf("static member's assignment: %q", r.assignment)
		}
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation = "g", rb.memberID, 1
		inst := "b"
		req.InstanceID = &inst
		if code := g.heartbeat(req); code != kerr.UnknownMemberID.Code && code != kerr.FencedInstanceID.Code {
			t.Fatalf("old static member id: %d", code)
		}
		if code := g.leave(rb.memberID, "b"); code != kerr.FencedInstanceID.Code {
			t.Fatalf("leave with the old id: %d", code)
		}
		// Leaving by instance id alone (LeaveGroup v3+) works.
		if code := g.leave("", "b"); code != 0 {
			t.Fatalf("leave by instance: %d", code)
		}
		if code := heartbeat(g, ra.memberID, 1); code != kerr.RebalanceInProgress.Code {
			t.Fatal(code)
		}
	})
}

func TestCommitValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		defer g.shutdown()
		// A client without membership may commit to an empty group.
		if code := g.validateCommit(-1, "", ""); code != 0 {
			t.Fatal(code)
		}
		// A member of a generation this coordinator never saw (after a
		// failover) is unknown and must rejoin.
		if code := g.validateCommit(5, "m", ""); code != kerr.UnknownMemberID.Code {
			t.Fatal(code)
		}
		a := joinNew(t, g, "range")
		time.Sleep(testTiming.initialDelay)
		ra := a.result(t)
		if code := g.validateCommit(1, ra.memberID, ""); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("commit while completing the rebalance: %d", code)
		}
		recv(t, syncGroup(g, ra.memberID, 1, nil))
		if code := g.validateCommit(1, ra.memberID, ""); code != 0 {
			t.Fatal(code)
		}
		if code := g.validateCommit(0, ra.memberID, ""); code != kerr.IllegalGeneration.Code {
			t.Fatal(code)
		}
		if code := g.validateCommit(-1, "", ""); code != kerr.UnknownMemberID.Code {
			t.Fatalf("simple commit to a group with members: %d", code)
		}
		// Commits of the current generation are accepted while preparing
		// a rebalance: members commit before they rejoin.
		joinNew(t, g, "range")
		synctest.Wait()
		if code := g.validateCommit(1, ra.memberID, ""); code != 0 {
			t.Fatalf("commit while preparing a rebalance: %d", code)
		}
	})
}

// Losing the group (lease lost, agent closing) answers every waiting
// request with NOT_COORDINATOR.
func TestShutdownAnswersWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGroup("g", testTiming)
		a := joinNew(t, g, "range")
		synctest.Wait()
		g.shutdown()
		if r := a.result(t); r.code != kerr.NotCoordinator.Code {
			t.Fatal(r.code)
		}
		if code := heartbeat(g, "x", 1); code != kerr.NotCoordinator.Code {
			t.Fatal(code)
		}
		if r := startJoin(g, joinRequest(9, "", "range")).result(t); r.code != kerr.NotCoordinator.Code {
			t.Fatal(r.code)
		}
	})
}
