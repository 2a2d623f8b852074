package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/commitlog"
)

// MaxVersions maps the API key of every request Handle serves to the
// highest version it implements, for the server's ApiVersions answer.
var MaxVersions = map[int16]int16{
	8:  9, // OffsetCommit (v10 names topics by id; not served)
	9:  9, // OffsetFetch (v8+: several groups per request)
	10: 4, // FindCoordinator (v4+: several keys per request)
	11: 9, // JoinGroup
	12: 4, // Heartbeat
	13: 5, // LeaveGroup (v3+: several members per request)
	14: 5, // SyncGroup
	15: 5, // DescribeGroups
	16: 5, // ListGroups
	42: 2, // DeleteGroups
	47: 0, // OffsetDelete
	68: 1, // ConsumerGroupHeartbeat (KIP-848; v1: members make their ids, regex subscriptions)
	69: 1, // ConsumerGroupDescribe
}

// Handle serves one group request, already decoded at the negotiated
// version, and returns the response of the matching kind and version. An
// error means the request cannot be answered (not a group request, a
// version above MaxVersions, or ctx ended while waiting): the server should
// close the connection.
func (c *Coordinator) Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	if maxV, ok := MaxVersions[req.Key()]; !ok || req.GetVersion() > maxV || req.GetVersion() < 0 {
		return nil, fmt.Errorf("groups: cannot serve api key %d version %d", req.Key(), req.GetVersion())
	}
	switch r := req.(type) {
	case *kmsg.FindCoordinatorRequest:
		return c.findCoordinator(ctx, r), nil
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(ctx, r)
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(ctx, r)
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(r), nil
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(r), nil
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(ctx, r), nil
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(r), nil
	case *kmsg.ListGroupsRequest:
		return c.listGroups(r), nil
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(r), nil
	case *kmsg.DeleteGroupsRequest:
		return c.deleteGroups(ctx, r), nil
	case *kmsg.OffsetDeleteRequest:
		return c.offsetDelete(ctx, r), nil
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return c.consumerHeartbeat(ctx, r), nil
	case *kmsg.ConsumerGroupDescribeRequest:
		return c.consumerDescribe(r), nil
	}
	return nil, fmt.Errorf("groups: %T is not a group request", req)
}

func strp(s string) *string { return &s }

// ---- FindCoordinator ----

func (c *Coordinator) findCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	out := make([]kmsg.FindCoordinatorResponseCoordinator, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() { out[i] = c.findOne(ctx, req.CoordinatorType, key) })
	}
	wg.Wait()
	if req.Version >= 4 {
		resp.Coordinators = out
		return resp
	}
	o := out[0]
	resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = o.ErrorCode, o.ErrorMessage, o.NodeID, o.Host, o.Port
	return resp
}

func (c *Coordinator) findOne(ctx context.Context, typ int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	r := kmsg.NewFindCoordinatorResponseCoordinator()
	r.Key, r.NodeID, r.Port = key, -1, -1
	fail := func(code int16, msg string) kmsg.FindCoordinatorResponseCoordinator {
		r.ErrorCode, r.ErrorMessage = code, strp(msg)
		return r
	}
	switch {
	case typ != 0:
		return fail(kerr.InvalidRequest.Code, "only consumer group coordinators (key type 0) are served; transactions are not supported")
	case key == "":
		return fail(kerr.InvalidGroupID.Code, "the group id is empty")
	}
	addr, err := c.locate(ctx, key)
	if err != nil {
		return fail(kerr.CoordinatorNotAvailable.Code, "no coordinator yet: "+err.Error())
	}
	host, port, err := splitAddr(addr)
	if err != nil {
		return fail(kerr.CoordinatorNotAvailable.Code, fmt.Sprintf("coordinator address %q is unusable: %v", addr, err))
	}
	r.NodeID, r.Host, r.Port = c.cfg.NodeID(addr), host, port
	return r
}

// ---- membership ----

func (c *Coordinator) joinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	h, _, err := c.coordinating(req.Group)
	if err != nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp, nil
	}
	var joined <-chan joinResult
	if !h.cg.whileEmpty(func() { joined = h.g.join(req, clientFrom(ctx)) }) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return resp, nil
	}
	var res joinResult
	select {
	case res = <-joined:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp.ErrorCode, resp.Generation, resp.LeaderID, resp.MemberID = res.code, res.generation, res.leader, res.memberID
	resp.SkipAssignment, resp.Members = res.skipAssignment, res.members
	if res.code == 0 {
		resp.ProtocolType, resp.Protocol = strp(res.protocolType), strp(res.protocol)
	}
	return resp, nil
}

func (c *Coordinator) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	h, _, err := c.coordinating(req.Group)
	if err != nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp, nil
	}
	var res syncResult
	select {
	case res = <-h.g.sync(req):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp.ErrorCode, resp.MemberAssignment = res.code, res.assignment
	if res.code == 0 {
		resp.ProtocolType, resp.Protocol = strp(res.protocolType), strp(res.protocol)
	}
	return resp, nil
}

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	h, _, err := c.coordinating(req.Group)
	if err != nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	resp.ErrorCode = h.g.heartbeat(req)
	return resp
}

func (c *Coordinator) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	h, _, err := c.coordinating(req.Group)
	if err != nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	if req.Version < 3 {
		resp.ErrorCode = h.g.leave(req.MemberID, "")
		return resp
	}
	for _, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
		rm.ErrorCode = h.g.leave(m.MemberID, deref(m.InstanceID))
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

// ---- offsets ----

// proposeFenced commits one entry on behalf of the group's lease and
// returns the error code for the request: the entry is durable when it is
// 0. An entry fenced by a newer coordinator means the lease is lost.
func (c *Coordinator) proposeFenced(ctx context.Context, cl *commitlog.Log, group string, h *held, e commitlog.Entry) int16 {
	_, res, err := cl.Propose(ctx, e)
	switch {
	case err == nil && res[0] == nil:
		return 0
	case err == nil && errors.Is(asError(res[0]), commitlog.ErrStaleEpoch):
		c.drop(group, h)
		return kerr.NotCoordinator.Code
	case err == nil:
		c.log.Error("consumer group entry rejected", "group", group, "err", res[0])
		return kerr.UnknownServerError.Code
	case ctx.Err() != nil:
		return kerr.RequestTimedOut.Code
	default:
		c.log.Warn("consumer group commit failed", "group", group, "err", err)
		return kerr.CoordinatorNotAvailable.Code
	}
}

func asError(v any) error {
	err, _ := v.(error)
	return err
}

func (c *Coordinator) offsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	respond := func() kmsg.Response {
		for i, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for j, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	all := func(code int16) kmsg.Response {
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = code
			}
		}
		return respond()
	}
	if req.Group == "" {
		return all(kerr.InvalidGroupID.Code)
	}
	h, cl, err := c.coordinating(req.Group)
	if err != nil {
		return all(kerr.NotCoordinator.Code)
	}
	generation, member := req.Generation, req.MemberID
	if req.Version == 0 {
		generation, member = -1, ""
	}
	// A consumer group (KIP-848) checks the member and its epoch; any
	// other commit is the classic group's to check.
	var parts []tp
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, tp{t.Topic, p.Partition})
		}
	}
	if code, ok := h.cg.validateMember(member, generation, parts); ok {
		if code != 0 {
			return all(code)
		}
	} else if code := h.g.validateCommit(generation, member, deref(req.InstanceID)); code != 0 {
		return all(code)
	}
	en := commitEntry{Group: req.Group, Epoch: h.epoch, Generation: generation, Member: member, CommitMs: time.Now().UnixMilli()}
	var included [][2]int
	synced := false
	for i, t := range req.Topics {
		parts := c.partitions(ctx, cl, t.Topic, &synced)
		to := TopicOffsets{Topic: t.Topic}
		for j, p := range t.Partitions {
			md := deref(p.Metadata)
			switch {
			case len(md) > MaxMetadataBytes:
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
			case parts >= 0 && (p.Partition < 0 || p.Partition >= parts):
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
			default:
				le := p.LeaderEpoch
				if req.Version < 6 {
					le = -1
				}
				to.Partitions = append(to.Partitions, PartitionOffset{Partition: p.Partition, Offset: p.Offset, LeaderEpoch: le, Metadata: md})
				included = append(included, [2]int{i, j})
			}
		}
		if len(to.Partitions) > 0 {
			en.Topics = append(en.Topics, to)
		}
	}
	if len(included) == 0 {
		return respond()
	}
	code := c.proposeFenced(ctx, cl, req.Group, h, jsonEntry(TypeOffsetCommit, en))
	for _, ij := range included {
		codes[ij[0]][ij[1]] = code
	}
	return respond()
}

// partitions returns a topic's partition count, 0 if it does not exist, or
// -1 when topics are not checked. A topic unknown here may have just been
// created through another agent: catch up with the log once per request.
func (c *Coordinator) partitions(ctx context.Context, cl *commitlog.Log, topic string, synced *bool) int32 {
	if c.topics == nil {
		return -1
	}
	n, err := c.topics.Partitions(topic)
	if err != nil && !*synced {
		*synced = true
		if cl.Sync(ctx) == nil {
			n, err = c.topics.Partitions(topic)
		}
	}
	if err != nil {
		return 0
	}
	return n
}

type fetchTopic struct {
	topic      string
	partitions []int32
}

// fetchOffsets reads a group's committed offsets (all of them when topics
// is nil). It needs no catching up with the log: the commit that gave this
// agent the lease was applied after every commit of earlier coordinators,
// and later ones are fenced, so the applied state holds every offset.
func (c *Coordinator) fetchOffsets(group string, topics []fetchTopic, all bool) ([]kmsg.OffsetFetchResponseTopic, int16) {
	_, cl, err := c.coordinating(group)
	if err != nil {
		return nil, kerr.NotCoordinator.Code
	}
	var out []kmsg.OffsetFetchResponseTopic
	cl.View(c.offsets, func() {
		if all {
			topics = nil
			for _, t := range c.offsets.Topics(group) {
				topics = append(topics, fetchTopic{t, c.offsets.Partitions(group, t)})
			}
		}
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.topic
			for _, p := range t.partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.Metadata = p, -1, strp("")
				if co, ok := c.offsets.Committed(group, t.topic, p); ok {
					rp.Offset, rp.LeaderEpoch, rp.Metadata = co.Offset, co.LeaderEpoch, strp(co.Metadata)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			out = append(out, rt)
		}
	})
	return out, 0
}

func (c *Coordinator) offsetFetch(req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics []fetchTopic
			for _, t := range rg.Topics {
				topics = append(topics, fetchTopic{t.Topic, t.Partitions})
			}
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group = rg.Group
			if code := c.validateFetchMember(rg); code != 0 {
				g.ErrorCode = code
				resp.Groups = append(resp.Groups, g)
				continue
			}
			ts, code := c.fetchOffsets(rg.Group, topics, rg.Topics == nil)
			g.ErrorCode = code
			for _, t := range ts {
				gt := kmsg.NewOffsetFetchResponseGroupTopic()
				gt.Topic = t.Topic
				for _, p := range t.Partitions {
					gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata
					gt.Partitions = append(gt.Partitions, gp)
				}
				g.Topics = append(g.Topics, gt)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return resp
	}
	var topics []fetchTopic
	for _, t := range req.Topics {
		topics = append(topics, fetchTopic{t.Topic, t.Partitions})
	}
	ts, code := c.fetchOffsets(req.Group, topics, req.Topics == nil && req.Version >= 2)
	if code == 0 {
		resp.Topics = ts
		return resp
	}
	if req.Version >= 2 {
		resp.ErrorCode = code
		return resp
	}
	// v0 and v1 have no group-level error: report it on every partition.
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.topic
		for _, p := range t.partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.Metadata, rp.ErrorCode = p, -1, strp(""), code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// validateFetchMember checks the member and epoch an OffsetFetch v9+ of a
// consumer group's member names: UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH.
func (c *Coordinator) validateFetchMember(rg kmsg.OffsetFetchRequestGroup) int16 {
	if rg.MemberID == nil || rg.MemberEpoch < 0 {
		return 0
	}
	h, _, err := c.coordinating(rg.Group)
	if err != nil {
		return 0 // fetchOffsets answers NOT_COORDINATOR
	}
	code, _ := h.cg.validateMember(*rg.MemberID, rg.MemberEpoch, nil)
	return code
}

func (c *Coordinator) offsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	h, cl, err := c.coordinating(req.Group)
	if err != nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	var has bool
	cl.View(c.offsets, func() { has = c.offsets.HasOffsets(req.Group) })
	if !has && !h.g.exists() && !h.cg.known() {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	subscribed, foreign := h.g.subscriptions()
	if h.cg.active() {
		subscribed = map[string]bool{}
		for _, t := range h.cg.topicsInUse() {
			subscribed[t] = true
		}
	}
	if foreign {
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
	}
	en := offsetDeleteEntry{Group: req.Group, Epoch: h.epoch}
	for _, t := range req.Topics {
		rt := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
		tp := TopicPartitions{Topic: t.Topic}
		for _, p := range t.Partitions {
			rp := kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition}
			if subscribed[t.Topic] {
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else {
				tp.Partitions = append(tp.Partitions, p.Partition)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(tp.Partitions) > 0 {
			en.Topics = append(en.Topics, tp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(en.Topics) == 0 {
		return resp
	}
	// The deletion is one entry: it succeeds or fails as a whole.
	if code := c.proposeFenced(ctx, cl, req.Group, h, jsonEntry(TypeOffsetDelete, en)); code != 0 {
		resp.ErrorCode = code
	}
	return resp
}

// ---- administration ----

func (c *Coordinator) listGroups(req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	cl := c.commitLog()
	if cl == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	wantType := func(t string) bool {
		return len(req.TypesFilter) == 0 || slices.ContainsFunc(req.TypesFilter, func(f string) bool { return strings.EqualFold(f, t) })
	}
	wantState := func(s string) bool {
		return len(req.StatesFilter) == 0 || slices.ContainsFunc(req.StatesFilter, func(f string) bool { return strings.EqualFold(f, s) })
	}
	var withOffsets []string
	consumer := map[string]bool{}
	cl.View(c.offsets, func() {
		withOffsets = c.offsets.Groups(false)
		for _, name := range withOffsets {
			consumer[name] = c.offsets.consumerState(name) != nil
		}
	})
	c.mu.Lock()
	ours := make(map[string]*held, len(c.held))
	for name, h := range c.held {
		ours[name] = h
	}
	c.mu.Unlock()

	add := func(name, state, protocolType, groupType string) {
		if !wantState(state) || !wantType(groupType) {
			return
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = name, protocolType, state, groupType
		resp.Groups = append(resp.Groups, lg)
	}
	// Groups this agent coordinates, with their live state.
	names := make([]string, 0, len(ours))
	for name := range ours {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h, _, err := c.coordinating(name)
		if err != nil {
			continue
		}
		if h.cg.known() && !h.g.busy() {
			add(name, h.cg.summary(), "consumer", "consumer")
			continue
		}
		st, pt := h.g.summary()
		if st == stateDead || (pt == "" && !slices.Contains(withOffsets, name)) {
			continue
		}
		add(name, st.String(), pt, "classic")
	}
	// Groups nobody coordinates: only their offsets exist. Groups another
	// live agent coordinates are listed by that agent.
	for _, name := range withOffsets {
		if ours[name] != nil {
			continue
		}
		lease := cl.Lease(LeaseName(name))
		if lease.Holder != "" && lease.Holder != cl.AgentID() && !c.expired(name, lease) {
			continue
		}
		if consumer[name] {
			add(name, stateEmpty.String(), "consumer", "consumer")
		} else {
			add(name, stateEmpty.String(), "", "classic")
		}
	}
	return resp
}

func (c *Coordinator) describeGroups(req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		h, cl, err := c.coordinating(name)
		if err != nil {
			d := kmsg.NewDescribeGroupsResponseGroup()
			d.Group, d.ErrorCode = name, kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, d)
			continue
		}
		if h.cg.active() || (h.cg.known() && !h.g.exists()) {
			resp.Groups = append(resp.Groups, h.cg.describeClassic())
			continue
		}
		d := h.g.describe()
		var has bool
		cl.View(c.offsets, func() { has = c.offsets.HasOffsets(name) })
		if d.State == stateEmpty.String() && d.ProtocolType == "" && !has {
			d.State = stateDead.String() // Kafka's answer for a group that does not exist
		}
		resp.Groups = append(resp.Groups, d)
	}
	return resp
}

func (c *Coordinator) deleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		rg.ErrorCode = c.deleteGroup(ctx, name)
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(ctx context.Context, name string) int16 {
	h, cl, err := c.coordinating(name)
	if err != nil {
		return kerr.NotCoordinator.Code
	}
	var has bool
	cl.View(c.offsets, func() { has = c.offsets.HasOffsets(name) })
	if !has && !h.g.exists() && !h.cg.known() {
		return kerr.GroupIDNotFound.Code
	}
	if code := h.cg.beginDelete(); code != 0 {
		return code
	}
	if code := h.g.beginDelete(); code != 0 {
		h.cg.endDelete(false)
		return code
	}
	code := c.proposeFenced(ctx, cl, name, h, jsonEntry(TypeDeleteGroup, deleteGroupEntry{Group: name, Epoch: h.epoch}))
	h.g.endDelete(code == 0)
	h.cg.endDelete(code == 0)
	return code
}
