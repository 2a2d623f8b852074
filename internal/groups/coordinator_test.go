package groups

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type agent struct {
	c    *Coordinator
	log  *commitlog.Log
	addr string
}

func fileBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startAgent opens a log on b with a coordinator advertising addr.
func startAgent(t *testing.T, b bucket.Bucket, addr string, cfg Config, logOpts commitlog.Options) *agent {
	t.Helper()
	cfg.Logger = quiet
	if cfg.InitialRebalanceDelay == 0 {
		cfg.InitialRebalanceDelay = -1
	}
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = 100 * time.Millisecond
	}
	c, owner, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if logOpts.Linger == 0 {
		logOpts.Linger = time.Millisecond
	}
	if logOpts.PollMin == 0 {
		logOpts.PollMin, logOpts.PollMax = time.Millisecond, 10*time.Millisecond
	}
	logOpts.Logger, logOpts.NoJanitor = quiet, true
	l, err := commitlog.Open(context.Background(), b, []commitlog.Owner{owner}, logOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(l, addr, nil); err != nil {
		t.Fatal(err)
	}
	a := &agent{c: c, log: l, addr: addr}
	t.Cleanup(func() {
		a.c.Close()
		a.log.Close()
	})
	return a
}

// crash stops a coordinator as a killed process would: no release.
func (a *agent) crash() {
	c := a.c
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	a.log.Close()
}

func (a *agent) handle(t *testing.T, req kmsg.Request) kmsg.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.c.Handle(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Key() != req.Key() || resp.GetVersion() != req.GetVersion() {
		t.Fatalf("response %T v%d to %T v%d", resp, resp.GetVersion(), req, req.GetVersion())
	}
	return resp
}

// find returns the coordinator address an agent answers for a group.
func (a *agent) find(t *testing.T, group string) string {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version = 3
	req.CoordinatorKey = group
	resp := a.handle(t, req).(*kmsg.FindCoordinatorResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode).Error()
	}
	addr := resp.Host + ":" + itoa(resp.Port)
	if resp.NodeID != DefaultNodeID(addr) {
		t.Fatalf("node id %d for %s", resp.NodeID, addr)
	}
	return addr
}

func itoa(p int32) string {
	b := []byte{}
	for p > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + p%10)}, b...)
		p /= 10
	}
	return string(b)
}

func commitOffset(t *testing.T, a *agent, group string, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group = group
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, 4
	md := "meta"
	rp.Metadata = &md
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := a.handle(t, req).(*kmsg.OffsetCommitResponse)
	return resp.Topics[0].Partitions[0].ErrorCode
}

func fetchOffset(t *testing.T, a *agent, group string) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}
	req.Groups = append(req.Groups, rg)
	resp := a.handle(t, req).(*kmsg.OffsetFetchResponse)
	g := resp.Groups[0]
	if g.ErrorCode != 0 {
		return -1, g.ErrorCode
	}
	return g.Topics[0].Partitions[0].Offset, 0
}

func TestFindCoordinatorAcquiresLease(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{}, commitlog.Options{})
	c := startAgent(t, b, "127.0.0.1:1002", Config{}, commitlog.Options{})

	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version = 4
	req.CoordinatorKeys = []string{"g1", "g2", ""}
	resp := a.handle(t, req).(*kmsg.FindCoordinatorResponse)
	if len(resp.Coordinators) != 3 {
		t.Fatalf("%+v", resp)
	}
	for _, co := range resp.Coordinators[:2] {
		if co.ErrorCode != 0 || co.Host != "127.0.0.1" || co.Port != 1001 || co.NodeID != DefaultNodeID(a.addr) {
			t.Fatalf("%+v", co)
		}
	}
	if resp.Coordinators[2].ErrorCode != kerr.InvalidGroupID.Code {
		t.Fatalf("empty group id: %+v", resp.Coordinators[2])
	}
	lease := a.log.Lease(LeaseName("g1"))
	if lease.Holder != a.log.AgentID() || lease.Epoch != 1 || lease.Addr != a.addr {
		t.Fatalf("lease %+v", lease)
	}
	// The other agent sends clients to the holder.
	if got := c.find(t, "g1"); got != a.addr {
		t.Fatalf("agent 2 answered %s", got)
	}
	if got := c.find(t, "g3"); got != c.addr {
		t.Fatalf("agent 2 for a free group answered %s", got)
	}
	// The acquisition raised the group's fencing epoch in the same commit.
	var epoch uint64
	c.log.View(c.c.Offsets(), func() { epoch = c.c.Offsets().Epoch("g3") })
	if epoch != 1 {
		t.Fatalf("epoch %d", epoch)
	}
	// Transactions are not coordinated here.
	req = kmsg.NewPtrFindCoordinatorRequest()
	req.Version = 3
	req.CoordinatorType = 1
	req.CoordinatorKey = "txn"
	if resp := a.handle(t, req).(*kmsg.FindCoordinatorResponse); resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("transaction coordinator: %d", resp.ErrorCode)
	}
}

func TestNonCoordinatorRefuses(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{}, commitlog.Options{})
	c := startAgent(t, b, "127.0.0.1:1002", Config{}, commitlog.Options{})
	a.find(t, "g")
	if code := commitOffset(t, c, "g", 5); code != kerr.NotCoordinator.Code {
		t.Fatalf("commit: %d", code)
	}
	if _, code := fetchOffset(t, c, "g"); code != kerr.NotCoordinator.Code {
		t.Fatalf("fetch: %d", code)
	}
	jr := joinRequest(9, "", "range")
	if resp := c.handle(t, jr).(*kmsg.JoinGroupResponse); resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("join: %d", resp.ErrorCode)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group = "g"
	if resp := c.handle(t, hb).(*kmsg.HeartbeatResponse); resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat: %d", resp.ErrorCode)
	}
}

// The coordinator keeps its leases alive; when it dies, another agent takes
// the group over once the lease has gone unrenewed for its duration, and
// serves the offsets committed before.
func TestFailoverAfterLeaseExpiry(t *testing.T) {
	const d = 400 * time.Millisecond
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{LeaseDuration: d}, commitlog.Options{})
	c := startAgent(t, b, "127.0.0.1:1002", Config{LeaseDuration: d}, commitlog.Options{})
	if got := a.find(t, "g"); got != a.addr {
		t.Fatal(got)
	}
	if code := commitOffset(t, a, "g", 42); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	// Renewals keep the lease with a well past its duration.
	time.Sleep(3 * d)
	if got := c.find(t, "g"); got != a.addr {
		t.Fatalf("agent 2 took a live lease: %s", got)
	}
	if l := a.log.Lease(LeaseName("g")); l.Renewals == 0 || l.Epoch != 1 {
		t.Fatalf("lease %+v", l)
	}
	a.crash()
	died := time.Now()
	for c.find(t, "g") != c.addr {
		if time.Since(died) > 10*d {
			t.Fatal("no takeover")
		}
		time.Sleep(d / 20)
	}
	if waited := time.Since(died); waited < d/2 {
		t.Fatalf("took over %v after the last renewal; lease duration %v", waited, d)
	}
	if off, code := fetchOffset(t, c, "g"); code != 0 || off != 42 {
		t.Fatalf("offset after failover: %d, %d", off, code)
	}
	if l := c.log.Lease(LeaseName("g")); l.Epoch != 2 || l.Holder != c.log.AgentID() {
		t.Fatalf("lease %+v", l)
	}
}

// Close releases the leases, so another agent takes over at once.
func TestCloseReleases(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{LeaseDuration: time.Minute}, commitlog.Options{})
	c := startAgent(t, b, "127.0.0.1:1002", Config{LeaseDuration: time.Minute}, commitlog.Options{})
	a.find(t, "g1")
	a.find(t, "g2")
	if err := a.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.log.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"g1", "g2"} {
		if got := c.find(t, g); got != c.addr {
			t.Fatalf("%s: %s", g, got)
		}
	}
	if resp := a.handle(t, joinRequest(9, "", "range")).(*kmsg.JoinGroupResponse); resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("closed coordinator: %d", resp.ErrorCode)
	}
}

// A coordinator that was deposed without noticing (its view of the log is
// behind) gets its offset commit rejected: the takeover commit raised the
// group's epoch, and every agent applies the rejection alike.
func TestDeposedCoordinatorIsFenced(t *testing.T) {
	b := fileBucket(t)
	// a does not tail the log and renews rarely, so it cannot notice.
	a := startAgent(t, b, "127.0.0.1:1001", Config{LeaseDuration: time.Hour}, commitlog.Options{PollMin: time.Hour, PollMax: time.Hour, HintAddr: "off"})
	c := startAgent(t, b, "127.0.0.1:1002", Config{LeaseDuration: time.Hour}, commitlog.Options{})
	a.find(t, "g")
	if code := commitOffset(t, a, "g", 10); code != 0 {
		t.Fatal(code)
	}
	// c takes over, as if it had seen a's lease expire.
	if err := c.log.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.c.acquire(context.Background(), c.log, "g", commitlog.Lease{Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if l := c.log.Lease(LeaseName("g")); l.Holder != c.log.AgentID() || l.Epoch != 2 {
		t.Fatalf("takeover failed: %+v", l)
	}
	if l := a.log.Lease(LeaseName("g")); l.Holder != a.log.AgentID() {
		t.Fatalf("a already saw the takeover: %+v", l)
	}
	if code := commitOffset(t, a, "g", 99); code != kerr.NotCoordinator.Code {
		t.Fatalf("deposed commit: %d", code)
	}
	for _, ag := range []*agent{a, c} {
		if err := ag.log.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		var co Committed
		ag.log.View(ag.c.Offsets(), func() { co, _ = ag.c.Offsets().Committed("g", "t", 0) })
		if co.Offset != 10 {
			t.Fatalf("agent %s: offset %d", ag.addr, co.Offset)
		}
	}
	if off, code := fetchOffset(t, c, "g"); code != 0 || off != 10 {
		t.Fatal(off, code)
	}
	// a has dropped the group.
	if _, code := fetchOffset(t, a, "g"); code != kerr.NotCoordinator.Code {
		t.Fatal(code)
	}
}

func TestIdleGroupReleased(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{LeaseDuration: 100 * time.Millisecond, IdleRelease: 200 * time.Millisecond}, commitlog.Options{})
	a.find(t, "g")
	deadline := time.Now().Add(5 * time.Second)
	for a.log.Lease(LeaseName("g")).Holder != "" {
		if time.Now().After(deadline) {
			t.Fatal("idle group lease never released")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := a.find(t, "g"); got != a.addr {
		t.Fatal(got)
	}
	if l := a.log.Lease(LeaseName("g")); l.Epoch != 2 {
		t.Fatalf("%+v", l)
	}
}

// The group APIs end to end through Handle on one agent, at several
// versions.
func TestHandleGroupLifecycle(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{}, commitlog.Options{})
	a.find(t, "g")

	// Join (v4+: member id first), sync, heartbeat.
	jr := joinRequest(5, "", "range")
	sub := kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{"t"}}
	jr.Protocols[0].Metadata = sub.AppendTo(nil)
	resp := a.handle(t, jr).(*kmsg.JoinGroupResponse)
	if resp.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatal(resp.ErrorCode)
	}
	jr.MemberID = resp.MemberID
	resp = a.handle(t, jr).(*kmsg.JoinGroupResponse)
	if resp.ErrorCode != 0 || resp.Generation != 1 || resp.LeaderID != jr.MemberID || len(resp.Members) != 1 || *resp.Protocol != "range" {
		t.Fatalf("join: %+v", resp)
	}
	member := jr.MemberID
	sr := kmsg.NewPtrSyncGroupRequest()
	sr.Version = 3
	sr.Group, sr.MemberID, sr.Generation = "g", member, 1
	ca := kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: []int32{0}}}}
	sr.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: ca.AppendTo(nil)}}
	if resp := a.handle(t, sr).(*kmsg.SyncGroupResponse); resp.ErrorCode != 0 || len(resp.MemberAssignment) == 0 {
		t.Fatalf("sync: %+v", resp)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version = 4
	hb.Group, hb.MemberID, hb.Generation = "g", member, 1
	if resp := a.handle(t, hb).(*kmsg.HeartbeatResponse); resp.ErrorCode != 0 {
		t.Fatal(resp.ErrorCode)
	}

	// A member commit (v2: generation and member id) and fetches at v1, v5, v8.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version = 2
	oc.Group, oc.Generation, oc.MemberID = "g", 1, member
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 7}, {Partition: 1, Offset: 3}}}}
	if resp := a.handle(t, oc).(*kmsg.OffsetCommitResponse); resp.Topics[0].Partitions[0].ErrorCode != 0 || resp.Topics[0].Partitions[1].ErrorCode != 0 {
		t.Fatalf("commit: %+v", resp)
	}
	oc.Generation = 0
	if resp := a.handle(t, oc).(*kmsg.OffsetCommitResponse); resp.Topics[0].Partitions[0].ErrorCode != kerr.IllegalGeneration.Code {
		t.Fatalf("commit of an old generation: %+v", resp)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version = 1
	of.Group = "g"
	of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 9}}}
	fr := a.handle(t, of).(*kmsg.OffsetFetchResponse)
	if p := fr.Topics[0].Partitions; p[0].Offset != 7 || p[1].Offset != -1 || p[0].ErrorCode != 0 {
		t.Fatalf("fetch v1: %+v", fr)
	}
	of.Version, of.Topics = 5, nil // all topics
	fr = a.handle(t, of).(*kmsg.OffsetFetchResponse)
	if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 2 || fr.Topics[0].Partitions[1].Offset != 3 {
		t.Fatalf("fetch all: %+v", fr)
	}
	of = kmsg.NewPtrOffsetFetchRequest()
	of.Version = 8
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g"}, {Group: "elsewhere"}}
	fr = a.handle(t, of).(*kmsg.OffsetFetchResponse)
	if len(fr.Groups) != 2 || fr.Groups[0].ErrorCode != 0 || len(fr.Groups[0].Topics[0].Partitions) != 2 || fr.Groups[1].ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("fetch v8: %+v", fr)
	}

	// Describe and list.
	dr := kmsg.NewPtrDescribeGroupsRequest()
	dr.Version = 5
	dr.Groups = []string{"g", "nothing"}
	a.find(t, "nothing")
	d := a.handle(t, dr).(*kmsg.DescribeGroupsResponse)
	if g := d.Groups[0]; g.State != "Stable" || g.ProtocolType != "consumer" || g.Protocol != "range" || len(g.Members) != 1 || g.Members[0].MemberID != member {
		t.Fatalf("describe: %+v", g)
	}
	if g := d.Groups[1]; g.State != "Dead" || g.ErrorCode != 0 {
		t.Fatalf("describe missing: %+v", g)
	}
	lr := kmsg.NewPtrListGroupsRequest()
	lr.Version = 4
	l := a.handle(t, lr).(*kmsg.ListGroupsResponse)
	if len(l.Groups) != 1 || l.Groups[0].Group != "g" || l.Groups[0].GroupState != "Stable" {
		t.Fatalf("list: %+v", l)
	}
	lr.StatesFilter = []string{"empty"}
	if l := a.handle(t, lr).(*kmsg.ListGroupsResponse); len(l.Groups) != 0 {
		t.Fatalf("list empty: %+v", l)
	}

	// Deleting offsets of a subscribed topic or a non-empty group is refused.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}}}
	if r := a.handle(t, od).(*kmsg.OffsetDeleteResponse); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code {
		t.Fatalf("offset delete: %+v", r)
	}
	dg := kmsg.NewPtrDeleteGroupsRequest()
	dg.Version = 2
	dg.Groups = []string{"g"}
	if r := a.handle(t, dg).(*kmsg.DeleteGroupsResponse); r.Groups[0].ErrorCode != kerr.NonEmptyGroup.Code {
		t.Fatalf("delete non-empty: %+v", r)
	}

	// Leave (v3+: batched), then the offsets can go.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version = 4
	lv.Group = "g"
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}, {MemberID: "ghost"}}
	lresp := a.handle(t, lv).(*kmsg.LeaveGroupResponse)
	if lresp.ErrorCode != 0 || lresp.Members[0].ErrorCode != 0 || lresp.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave: %+v", lresp)
	}
	if r := a.handle(t, od).(*kmsg.OffsetDeleteResponse); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", r)
	}
	var parts []int32
	a.log.View(a.c.Offsets(), func() { parts = a.c.Offsets().Partitions("g", "t") })
	if len(parts) != 1 || parts[0] != 0 {
		t.Fatalf("partitions after offset delete: %v", parts)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := a.handle(t, dg).(*kmsg.DeleteGroupsResponse)
		if r.Groups[0].ErrorCode == 0 {
			break
		}
		// The leave completes the rebalance asynchronously.
		if time.Now().After(deadline) {
			t.Fatalf("delete: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var has bool
	a.log.View(a.c.Offsets(), func() { has = a.c.Offsets().HasOffsets("g") })
	if has {
		t.Fatal("offsets survived the deletion")
	}
	if r := a.handle(t, dg).(*kmsg.DeleteGroupsResponse); r.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("second delete: %+v", r)
	}
}

func TestHandleRefusesOtherRequests(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{}, commitlog.Options{})
	if _, err := a.c.Handle(context.Background(), kmsg.NewPtrMetadataRequest()); err == nil {
		t.Fatal("metadata request served")
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 10
	if _, err := a.c.Handle(context.Background(), req); err == nil {
		t.Fatal("unadvertised version served")
	}
	for key, v := range MaxVersions {
		req := kmsg.RequestForKey(key)
		if req == nil || v > req.MaxVersion() {
			t.Fatalf("api key %d: version %d is beyond what kmsg encodes", key, v)
		}
	}
}

// Every API at every advertised version: the request survives the wire,
// is answered, and the answer encodes and decodes at that version.
func TestEveryVersionRoundTrips(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, "127.0.0.1:1001", Config{}, commitlog.Options{})
	for key, maxV := range MaxVersions {
		for v := int16(0); v <= maxV; v++ {
			group := "g-" + kmsg.NameForKey(key) + "-" + itoa(int32(v))
			a.find(t, group)
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			switch r := req.(type) {
			case *kmsg.FindCoordinatorRequest:
				r.CoordinatorKey, r.CoordinatorKeys = group, []string{group}
			case *kmsg.JoinGroupRequest:
				*r = *joinRequest(v, "", "range")
				r.Group = group
			case *kmsg.SyncGroupRequest:
				r.Group, r.MemberID = group, "m"
			case *kmsg.HeartbeatRequest:
				r.Group, r.MemberID = group, "m"
			case *kmsg.LeaveGroupRequest:
				r.Group, r.MemberID = group, "m"
				r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
			case *kmsg.OffsetCommitRequest:
				r.Group = group
				r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: int64(v)}}}}
			case *kmsg.OffsetFetchRequest:
				r.Group = group
				r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
				r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
			case *kmsg.ListGroupsRequest:
				r.TypesFilter = []string{"Classic"}
			case *kmsg.DescribeGroupsRequest:
				r.Groups = []string{group}
			case *kmsg.DeleteGroupsRequest:
				r.Groups = []string{group}
			case *kmsg.OffsetDeleteRequest:
				r.Group = group
				r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			}
			wire := kmsg.RequestForKey(key)
			wire.SetVersion(v)
			if err := wire.ReadFrom(req.AppendTo(nil)); err != nil {
				t.Fatalf("%s v%d request: %v", kmsg.NameForKey(key), v, err)
			}
			resp := a.handle(t, wire)
			back := wire.ResponseKind()
			back.SetVersion(v)
			if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
				t.Fatalf("%s v%d response: %v", kmsg.NameForKey(key), v, err)
			}
			switch r := back.(type) {
			case *kmsg.OffsetCommitResponse:
				if code := r.Topics[0].Partitions[0].ErrorCode; code != 0 {
					t.Errorf("commit v%d: %v", v, kerr.ErrorForCode(code))
				}
			case *kmsg.FindCoordinatorResponse:
				if r.ErrorCode != 0 || (v >= 4 && r.Coordinators[0].ErrorCode != 0) {
					t.Errorf("find coordinator v%d: %+v", v, r)
				}
			case *kmsg.ListGroupsResponse:
				if r.ErrorCode != 0 {
					t.Errorf("list groups v%d: %+v", v, r)
				}
			}
		}
	}
}
