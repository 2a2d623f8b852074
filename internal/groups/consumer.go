package groups

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file is the KIP-848 consumer group ("consumer" group type): members
// heartbeat (ConsumerGroupHeartbeat) and the coordinator assigns.
//
// The state machine is Kafka's. The group epoch rises whenever the members,
// their subscriptions or the subscribed topics' partitions change; the
// target assignment is then computed anew by the group's assignor for that
// epoch (the assignment epoch). Each member reconciles towards its target
// at its heartbeats: it first gives up what it must (its epoch stays, the
// partitions are "revoking" and still its own) and only when a heartbeat
// shows it no longer owns them are they released; then it takes the
// partitions of its target that nobody holds any more and moves to the
// assignment epoch. A partition thus has one owner at a time: it is given
// to a new member only after the previous one acknowledged revoking it, or
// was fenced (session timeout, rebalance timeout, leave).
//
// Unlike classic membership, this state is durable: every change is a
// TypeConsumerGroup entry holding the whole group, committed before the
// heartbeat that reveals it is answered, so a new coordinator resumes the
// group exactly (Kafka replays its __consumer_offsets the same way) and
// members keep their epochs and partitions across a coordinator change.

// topicMeta is one topic as the assignors see it.
type topicMeta struct {
	name       string
	id         [16]byte
	partitions int32
}

// cmember is one member of a consumer group. The exported fields are its
// durable state.
type cmember struct {
	ID          string   `json:"id"`
	Instance    string   `json:"instance,omitempty"`
	Rack        string   `json:"rack,omitempty"`
	ClientID    string   `json:"client_id,omitempty"`
	Host        string   `json:"host,omitempty"`
	Epoch       int32    `json:"epoch"`
	PrevEpoch   int32    `json:"prev_epoch"`
	RebalanceMs int32    `json:"rebalance_ms"`
	Topics      []string `json:"topics,omitempty"`
	Regex       string   `json:"regex,omitempty"`
	Assignor    string   `json:"assignor,omitempty"`

	Assigned []TopicPartitions `json:"assigned,omitempty"`
	Revoking []TopicPartitions `json:"revoking,omitempty"`
	Target   []TopicPartitions `json:"target,omitempty"`

	assigned, revoking tpSet
	// since is the member epoch from which the member has held each of
	// its partitions (KIP-1251's assignment epochs): a commit made at an
	// older epoch than the member's is still its own for a partition it
	// held then and holds still.
	since map[tp]int32
	re    *regexp.Regexp
	// allow filters the topics a regex may match: those the member's
	// principal may describe, as of its last heartbeat (a member restored
	// from the log matches every topic until its first one here; reading
	// a topic is authorized by Fetch anyway).
	allow func(topic string) bool

	session, rebalance *time.Timer
	sessTok, rebTok    uint64
}

// consumerState is the payload of TypeConsumerGroup: the whole group.
type consumerState struct {
	Group string `json:"group"`
	// Epoch is the committing coordinator's lease epoch; Version orders the
	// states one coordinator commits (apply keeps the newest).
	Epoch           uint64     `json:"epoch"`
	Version         uint64     `json:"version"`
	GroupEpoch      int32      `json:"group_epoch"`
	AssignmentEpoch int32      `json:"assignment_epoch"`
	Meta            string     `json:"meta,omitempty"`
	Members         []*cmember `json:"members"`
}

// consumerTiming is the broker side of consumer group membership.
type consumerTiming struct {
	session, heartbeat time.Duration
	maxSize            int
}

// consumerGroup is the KIP-848 membership of one group on its coordinator.
type consumerGroup struct {
	id      string
	t       consumerTiming
	catalog func() []topicMeta

	mu              sync.Mutex
	dead            bool
	deleting        bool
	groupEpoch      int32
	assignmentEpoch int32
	meta            string
	members         map[string]*cmember
	target          map[string]tpSet
	owner           map[tp]string
	version         uint64
	lastActive      time.Time
	// The topics and group epoch meta was last computed for.
	sigTopics []topicMeta
	sigEpoch  int32

	// persist commits a state; the error code is the request's answer.
	persist func(ctx context.Context, st consumerState) int16
	pmu     sync.Mutex
	durable uint64
}

func newConsumerGroup(id string, t consumerTiming, catalog func() []topicMeta, st *consumerState) *consumerGroup {
	g := &consumerGroup{
		id: id, t: t, catalog: catalog,
		members: map[string]*cmember{}, target: map[string]tpSet{}, owner: map[tp]string{},
		lastActive: time.Now(),
	}
	if st == nil {
		return g
	}
	g.groupEpoch, g.assignmentEpoch, g.meta = st.GroupEpoch, st.AssignmentEpoch, st.Meta
	g.version, g.durable = st.Version, st.Version
	for _, sm := range st.Members {
		m := *sm
		m.assigned, m.revoking = fromTopicPartitions(m.Assigned), fromTopicPartitions(m.Revoking)
		// Not durable: from the member's epoch on, to be safe.
		m.since = map[tp]int32{}
		for p := range m.assigned {
			m.since[p] = m.Epoch
		}
		for p := range m.revoking {
			m.since[p] = m.Epoch
		}
		if m.Regex != "" {
			m.re, _ = compileRegex(m.Regex)
		}
		g.members[m.ID] = &m
		g.target[m.ID] = fromTopicPartitions(m.Target)
		for p := range m.assigned {
			g.owner[p] = m.ID
		}
		for p := range m.revoking {
			g.owner[p] = m.ID
		}
	}
	// A member restored here gets a full session to reach us, and one
	// still revoking a full rebalance timeout.
	for _, m := range g.members {
		g.resetSessionLocked(m)
		if len(m.revoking) > 0 {
			g.startRebalanceLocked(m)
		}
	}
	return g
}

func fromTopicPartitions(ts []TopicPartitions) tpSet {
	s := tpSet{}
	for _, t := range ts {
		for _, p := range t.Partitions {
			s[tp{t.Topic, p}] = struct{}{}
		}
	}
	return s
}

func toTopicPartitions(s tpSet) []TopicPartitions {
	var out []TopicPartitions
	for _, p := range s.sorted() {
		if n := len(out); n > 0 && out[n-1].Topic == p.topic {
			out[n-1].Partitions = append(out[n-1].Partitions, p.p)
			continue
		}
		out = append(out, TopicPartitions{Topic: p.topic, Partitions: []int32{p.p}})
	}
	return out
}

// compileRegex compiles a subscription regex as Kafka matches it (RE2/J):
// against the whole topic name.
func compileRegex(s string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + s + `)$`)
}

// snapshotLocked is the durable state as of now.
func (g *consumerGroup) snapshotLocked() consumerState {
	st := consumerState{Group: g.id, Version: g.version, GroupEpoch: g.groupEpoch, AssignmentEpoch: g.assignmentEpoch, Meta: g.meta}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := *g.members[id]
		m.Assigned, m.Revoking, m.Target = toTopicPartitions(m.assigned), toTopicPartitions(m.revoking), toTopicPartitions(g.target[id])
		m.Topics = slices.Clone(m.Topics)
		st.Members = append(st.Members, &m)
	}
	return st
}

func (g *consumerGroup) dirtyLocked() { g.version++ }

// flush makes the state as of version v durable (or a later one: states are
// whole, so one commit covers every change before it).
func (g *consumerGroup) flush(ctx context.Context, v uint64) int16 {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	if g.durable >= v {
		return 0
	}
	g.mu.Lock()
	if g.dead {
		g.mu.Unlock()
		return kerr.NotCoordinator.Code
	}
	st := g.snapshotLocked()
	g.mu.Unlock()
	code := g.persist(ctx, st)
	if code == 0 {
		g.durable = st.Version
	}
	return code
}

// flushSoon commits the state from a timer's goroutine.
func (g *consumerGroup) flushSoon(v uint64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		g.flush(ctx, v)
	}()
}

// hbResult is a heartbeat's outcome; the handler commits the state up to
// version before answering.
type hbResult struct {
	code       int16
	msg        string
	memberID   string
	epoch      int32
	assignment *kmsg.ConsumerGroupHeartbeatResponseAssignment
	version    uint64
}

func hbFail(code int16, msg string) hbResult { return hbResult{code: code, msg: msg} }

// heartbeat handles a ConsumerGroupHeartbeat. classicBusy reports whether
// the group id is in use by classic members (then it is not a consumer
// group); it is called with the group's lock held.
func (g *consumerGroup) heartbeat(req *kmsg.ConsumerGroupHeartbeatRequest, client ClientInfo, allow func(string) bool, classicBusy func() bool) hbResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive = time.Now()
	switch {
	case g.dead:
		return hbFail(kerr.NotCoordinator.Code, "")
	case g.deleting:
		return hbFail(kerr.CoordinatorLoadInProgress.Code, "the group is being deleted")
	case req.MemberID == "":
		return hbFail(kerr.InvalidRequest.Code, "MemberId can't be empty: a client of ConsumerGroupHeartbeat v1+ makes its own")
	case req.MemberEpoch < -2:
		return hbFail(kerr.InvalidRequest.Code, fmt.Sprintf("MemberEpoch %d is invalid", req.MemberEpoch))
	}
	m := g.members[req.MemberID]
	if req.MemberEpoch < 0 { // -1 leaves, -2 leaves a static member
		if m == nil {
			return hbFail(kerr.UnknownMemberID.Code, "")
		}
		g.removeLocked(m)
		return hbResult{memberID: m.ID, epoch: req.MemberEpoch, version: g.version}
	}
	if req.MemberEpoch == 0 {
		switch {
		case req.RebalanceTimeoutMillis <= 0:
			return hbFail(kerr.InvalidRequest.Code, "RebalanceTimeoutMs must be given when joining (MemberEpoch 0)")
		case req.SubscribedTopicNames == nil && (req.SubscribedTopicRegex == nil || *req.SubscribedTopicRegex == ""):
			return hbFail(kerr.InvalidRequest.Code, "SubscribedTopicNames or SubscribedTopicRegex must be given when joining (MemberEpoch 0)")
		case len(req.Topics) > 0:
			return hbFail(kerr.InvalidRequest.Code, "Topics must be empty when joining (MemberEpoch 0)")
		}
		if len(g.members) == 0 && classicBusy() {
			return hbFail(kerr.GroupIDNotFound.Code, fmt.Sprintf("group %s is not a consumer group: it has classic members", g.id))
		}
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != "" && !knownAssignor(*req.ServerAssignor) {
		return hbFail(kerr.UnsupportedAssignor.Code, fmt.Sprintf("unknown assignor %q; the server assignors are uniform and range", *req.ServerAssignor))
	}
	var re *regexp.Regexp
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		var err error
		if re, err = compileRegex(*req.SubscribedTopicRegex); err != nil {
			return hbFail(kerr.InvalidRegularExpression.Code, fmt.Sprintf("SubscribedTopicRegex %q: %v", *req.SubscribedTopicRegex, err))
		}
	}
	switch {
	case req.MemberEpoch == 0 && m == nil:
		if g.t.maxSize > 0 && len(g.members) >= g.t.maxSize {
			return hbFail(kerr.GroupMaxSizeReached.Code, fmt.Sprintf("the group has its maximum of %d members", g.t.maxSize))
		}
		if inst := deref(req.InstanceID); inst != "" {
			for _, o := range g.members {
				if o.Instance == inst {
					// A static member back with a new id replaces its
					// old incarnation.
					g.removeLocked(o)
				}
			}
		}
		m = &cmember{ID: req.MemberID, assigned: tpSet{}, revoking: tpSet{}, since: map[tp]int32{}}
		g.members[m.ID] = m
		g.target[m.ID] = tpSet{}
		g.groupEpoch++
		g.dirtyLocked()
	case req.MemberEpoch == 0:
		// A known member joining again owns nothing (Topics is empty):
		// what it had is released and it starts over, keeping its id.
		g.releaseLocked(m, m.assigned)
		g.releaseLocked(m, m.revoking)
		m.assigned, m.revoking = tpSet{}, tpSet{}
		m.PrevEpoch, m.Epoch = m.Epoch, 0
		g.stopRebalanceLocked(m)
		g.dirtyLocked()
	case m == nil:
		return hbFail(kerr.UnknownMemberID.Code, fmt.Sprintf("member %s is not in group %s", req.MemberID, g.id))
	case req.MemberEpoch != m.Epoch:
		// A member whose last answer was lost may come back with its
		// previous epoch, owning a subset of what it was given.
		owned := g.resolveOwned(req.Topics)
		if !(req.MemberEpoch == m.PrevEpoch && owned != nil && len(owned.minus(m.assigned)) == 0) {
			return hbFail(kerr.FencedMemberEpoch.Code, fmt.Sprintf("member epoch %d is not the member's epoch %d", req.MemberEpoch, m.Epoch))
		}
	}
	g.resetSessionLocked(m)

	changed := false
	if req.RebalanceTimeoutMillis > 0 && req.RebalanceTimeoutMillis != m.RebalanceMs {
		m.RebalanceMs = req.RebalanceTimeoutMillis
		changed = true
	}
	subChanged := false
	if req.SubscribedTopicNames != nil {
		names := slices.Clone(req.SubscribedTopicNames)
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Equal(names, m.Topics) {
			m.Topics = names
			subChanged = true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.Regex {
		m.Regex, m.re = *req.SubscribedTopicRegex, re
		subChanged = true
	}
	if allow != nil {
		m.allow = allow
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.Assignor {
		m.Assignor = *req.ServerAssignor
		subChanged = true
	}
	if req.InstanceID != nil && *req.InstanceID != m.Instance {
		m.Instance, changed = *req.InstanceID, true
	}
	if req.RackID != nil && *req.RackID != m.Rack {
		m.Rack, changed = *req.RackID, true
	}
	if client.ID != m.ClientID || client.Host != m.Host {
		m.ClientID, m.Host, changed = client.ID, client.Host, true
	}
	if subChanged {
		g.groupEpoch++
		changed = true
	}
	topics := g.catalog()
	// Matching every member's subscription against every topic is the
	// costly part of a heartbeat: only when the topics or the
	// subscriptions changed.
	if g.groupEpoch != g.sigEpoch || !slices.Equal(topics, g.sigTopics) {
		if sig := g.metaSigLocked(topics); sig != g.meta {
			g.meta = sig
			g.groupEpoch++
			changed = true
		}
		g.sigEpoch, g.sigTopics = g.groupEpoch, topics
	}
	if g.groupEpoch > g.assignmentEpoch {
		g.computeTargetLocked(topics)
		changed = true
	}
	if g.reconcileLocked(m, g.resolveOwned(req.Topics)) {
		changed = true
	}
	if changed {
		g.dirtyLocked()
	}
	res := hbResult{memberID: m.ID, epoch: m.Epoch, version: g.version}
	if changed || req.Topics != nil {
		res.assignment = g.assignmentLocked(m, topics)
	}
	return res
}

// resolveOwned turns the partitions a member says it owns into names; nil
// means the request did not say (unchanged since its last heartbeat).
func (g *consumerGroup) resolveOwned(ts []kmsg.ConsumerGroupHeartbeatRequestTopic) tpSet {
	if ts == nil {
		return nil
	}
	out := tpSet{}
	if len(ts) == 0 {
		return out
	}
	byID := map[[16]byte]string{}
	for _, t := range g.catalog() {
		byID[t.id] = t.name
	}
	for _, t := range ts {
		name, ok := byID[t.TopicID]
		if !ok {
			continue // a topic gone: nothing of it can be assigned
		}
		for _, p := range t.Partitions {
			out[tp{name, p}] = struct{}{}
		}
	}
	return out
}

func (g *consumerGroup) assignmentLocked(m *cmember, topics []topicMeta) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	ids := map[string][16]byte{}
	for _, t := range topics {
		ids[t.name] = t.id
	}
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, t := range toTopicPartitions(m.assigned) {
		id, ok := ids[t.Topic]
		if !ok {
			continue
		}
		at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		at.TopicID, at.Partitions = id, t.Partitions
		a.Topics = append(a.Topics, at)
	}
	return &a
}

// subscribedLocked lists the topics a member subscribes to, by name and by
// regex, among those that exist.
func (m *cmember) subscribed(topics []topicMeta) []string {
	var out []string
	for _, t := range topics {
		switch {
		case slices.Contains(m.Topics, t.name):
		case m.re != nil && m.re.MatchString(t.name) && (m.allow == nil || m.allow(t.name)):
		default:
			continue
		}
		out = append(out, t.name)
	}
	return out
}

// metaSigLocked is a signature of what the assignment depends on besides
// the members: every subscribed topic with its id and partition count.
func (g *consumerGroup) metaSigLocked(topics []topicMeta) string {
	want := map[string]bool{}
	for _, m := range g.members {
		for _, t := range m.subscribed(topics) {
			want[t] = true
		}
	}
	var b strings.Builder
	for _, t := range topics {
		if want[t.name] {
			fmt.Fprintf(&b, "%s/%x/%d;", t.name, t.id[:4], t.partitions)
		}
	}
	return b.String()
}

// assignorLocked is the assignor most members ask for.
func (g *consumerGroup) assignorLocked() string {
	votes := map[string]int{}
	for _, m := range g.members {
		a := m.Assignor
		if a == "" {
			a = DefaultAssignor
		}
		votes[a]++
	}
	best := DefaultAssignor
	for _, a := range []string{AssignorUniform, AssignorRange} {
		if votes[a] > votes[best] {
			best = a
		}
	}
	return best
}

func (g *consumerGroup) computeTargetLocked(topics []topicMeta) {
	in := assignInput{subs: map[string][]string{}, parts: map[string]int32{}, prev: g.target}
	for _, t := range topics {
		in.parts[t.name] = t.partitions
	}
	for id, m := range g.members {
		in.members = append(in.members, id)
		in.subs[id] = m.subscribed(topics)
	}
	slices.Sort(in.members)
	g.target = assign(g.assignorLocked(), in)
	g.assignmentEpoch = g.groupEpoch
}

// reconcileLocked moves a member towards its target and reports whether
// anything changed. owned is what the member says it owns (nil: unchanged).
func (g *consumerGroup) reconcileLocked(m *cmember, owned tpSet) bool {
	changed := false
	if len(m.revoking) > 0 {
		if owned == nil {
			return false
		}
		for p := range m.revoking {
			if owned.has(p) {
				return false // not revoked yet
			}
		}
		g.releaseLocked(m, m.revoking)
		m.revoking = tpSet{}
		g.stopRebalanceLocked(m)
		changed = true
	}
	target := g.target[m.ID]
	if m.Epoch == g.assignmentEpoch && len(target.minus(m.assigned)) == 0 && len(m.assigned.minus(target)) == 0 {
		return changed
	}
	if revoke := m.assigned.minus(target); len(revoke) > 0 {
		// Revocation first: the member keeps its epoch, and the
		// partitions stay its own until it acknowledges giving them up.
		for p := range revoke {
			delete(m.assigned, p)
			m.revoking[p] = struct{}{}
		}
		g.startRebalanceLocked(m)
		return true
	}
	for _, p := range target.minus(m.assigned).sorted() {
		if o, held := g.owner[p]; held && o != m.ID {
			continue // unreleased: still its previous owner's
		}
		g.owner[p] = m.ID
		m.assigned[p] = struct{}{}
		m.since[p] = g.assignmentEpoch
		changed = true
	}
	if m.Epoch != g.assignmentEpoch {
		m.PrevEpoch, m.Epoch = m.Epoch, g.assignmentEpoch
		changed = true
	}
	return changed
}

func (g *consumerGroup) releaseLocked(m *cmember, s tpSet) {
	for p := range s {
		delete(m.since, p)
		if g.owner[p] == m.ID {
			delete(g.owner, p)
		}
	}
}

// removeLocked drops a member (it left or was fenced): its partitions are
// free and the group's assignment is recomputed.
func (g *consumerGroup) removeLocked(m *cmember) {
	g.releaseLocked(m, m.assigned)
	g.releaseLocked(m, m.revoking)
	g.stopTimersLocked(m)
	delete(g.members, m.ID)
	delete(g.target, m.ID)
	g.groupEpoch++
	g.dirtyLocked()
}

func (g *consumerGroup) stopTimersLocked(m *cmember) {
	m.sessTok++
	if m.session != nil {
		m.session.Stop()
	}
	g.stopRebalanceLocked(m)
}

func (g *consumerGroup) resetSessionLocked(m *cmember) {
	m.sessTok++
	tok := m.sessTok
	if m.session != nil {
		m.session.Stop()
	}
	id := m.ID
	m.session = time.AfterFunc(g.t.session, func() { g.fence(id, tok, false) })
}

// startRebalanceLocked gives a member its rebalance timeout to revoke.
func (g *consumerGroup) startRebalanceLocked(m *cmember) {
	if m.rebalance != nil {
		return // already counting since the revocation began
	}
	m.rebTok++
	tok := m.rebTok
	id := m.ID
	d := time.Duration(m.RebalanceMs) * time.Millisecond
	if d <= 0 {
		d = g.t.session
	}
	m.rebalance = time.AfterFunc(d, func() { g.fence(id, tok, true) })
}

func (g *consumerGroup) stopRebalanceLocked(m *cmember) {
	m.rebTok++
	if m.rebalance != nil {
		m.rebalance.Stop()
		m.rebalance = nil
	}
}

// fence removes a member whose session or rebalance timeout expired.
func (g *consumerGroup) fence(id string, tok uint64, rebalance bool) {
	g.mu.Lock()
	m := g.members[id]
	if g.dead || m == nil || (!rebalance && m.sessTok != tok) || (rebalance && (m.rebTok != tok || len(m.revoking) == 0)) {
		g.mu.Unlock()
		return
	}
	g.removeLocked(m)
	v := g.version
	g.mu.Unlock()
	g.flushSoon(v)
}

// validateMember checks an OffsetCommit (or OffsetFetch) naming a member of
// this consumer group. ok is false when the group has no say: it has no
// members, so the request is the classic group's (or a simple client's)
// to judge.
//
// An OffsetCommit (parts non-nil) is accepted if the member has held every
// partition it commits since the commit's epoch (KIP-1251's rule): a
// member's epoch moves on when it gains partitions, and a commit sent just
// before must not fail (franz-go would give it up for the partitions it is
// about to revoke); and a partition the member does not hold is not its to
// commit, whatever the epoch, so a commit never undoes another member's
// progress. An OffsetFetch must carry the current epoch.
func (g *consumerGroup) validateMember(memberID string, epoch int32, parts []tp) (code int16, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive = time.Now()
	if g.dead {
		return kerr.NotCoordinator.Code, true
	}
	if len(g.members) == 0 {
		return 0, false
	}
	m := g.members[memberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code, true
	case !m.heldSince(epoch, parts):
		return kerr.StaleMemberEpoch.Code, true
	}
	g.resetSessionLocked(m)
	return 0, true
}

func (m *cmember) heldSince(epoch int32, parts []tp) bool {
	if parts == nil {
		return epoch == m.Epoch
	}
	if epoch < 0 || epoch > m.Epoch {
		return false
	}
	for _, p := range parts {
		if at, held := m.since[p]; !held || at > epoch {
			return false
		}
	}
	return true
}

// active reports whether the group has members.
func (g *consumerGroup) active() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.dead && len(g.members) > 0
}

// known reports whether the consumer group exists: it has members, or had
// some since it was created (its epoch).
func (g *consumerGroup) known() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.dead && (len(g.members) > 0 || g.groupEpoch > 0)
}

func (g *consumerGroup) idleSince() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) > 0 {
		return time.Time{}, false
	}
	return g.lastActive, true
}

// state is the group's state as Kafka names it for consumer groups.
func (g *consumerGroup) stateLocked() string {
	switch {
	case g.dead:
		return "Dead"
	case len(g.members) == 0:
		return "Empty"
	case g.groupEpoch > g.assignmentEpoch:
		return "Assigning"
	}
	for _, m := range g.members {
		if m.Epoch != g.assignmentEpoch || len(m.revoking) > 0 || len(g.target[m.ID].minus(m.assigned)) > 0 {
			return "Reconciling"
		}
	}
	return "Stable"
}

func (g *consumerGroup) summary() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stateLocked()
}

// describe answers ConsumerGroupDescribe for this group.
func (g *consumerGroup) describe() kmsg.ConsumerGroupDescribeResponseGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	topics := g.catalog()
	ids := map[string][16]byte{}
	for _, t := range topics {
		ids[t.name] = t.id
	}
	assignment := func(s tpSet) kmsg.Assignment {
		a := kmsg.Assignment{TopicPartitions: []kmsg.AssignmentTopicPartition{}}
		for _, t := range toTopicPartitions(s) {
			a.TopicPartitions = append(a.TopicPartitions, kmsg.AssignmentTopicPartition{TopicID: ids[t.Topic], Topic: t.Topic, Partitions: t.Partitions})
		}
		return a
	}
	d := kmsg.NewConsumerGroupDescribeResponseGroup()
	d.Group, d.State, d.Epoch, d.AssignmentEpoch, d.AssignorName = g.id, g.stateLocked(), g.groupEpoch, g.assignmentEpoch, g.assignorLocked()
	ms := make([]string, 0, len(g.members))
	for id := range g.members {
		ms = append(ms, id)
	}
	slices.Sort(ms)
	for _, id := range ms {
		m := g.members[id]
		dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
		dm.MemberID, dm.MemberEpoch, dm.ClientID, dm.ClientHost = id, m.Epoch, m.ClientID, m.Host
		if m.Instance != "" {
			dm.InstanceID = strp(m.Instance)
		}
		if m.Rack != "" {
			dm.RackID = strp(m.Rack)
		}
		dm.SubscribedTopics = slices.Clone(m.Topics)
		if dm.SubscribedTopics == nil {
			dm.SubscribedTopics = []string{}
		}
		if m.Regex != "" {
			dm.SubscribedTopicRegex = strp(m.Regex)
		}
		dm.Assignment = assignment(m.assigned)
		dm.TargetAssignment = assignment(g.target[id])
		dm.MemberType = 1 // consumer protocol (0 would be a classic member)
		d.Members = append(d.Members, dm)
	}
	return d
}

// topicsInUse lists the topics the group's members subscribe to or are
// assigned, for DescribeGroups' and ConsumerGroupDescribe's authorization.
func (g *consumerGroup) topicsInUse() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	set := map[string]bool{}
	topics := g.catalog()
	for _, m := range g.members {
		for _, t := range m.subscribed(topics) {
			set[t] = true
		}
		for p := range m.assigned {
			set[p.topic] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (g *consumerGroup) beginDelete() int16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.dead:
		return kerr.NotCoordinator.Code
	case len(g.members) > 0:
		return kerr.NonEmptyGroup.Code
	case g.deleting:
		return kerr.CoordinatorLoadInProgress.Code
	}
	g.deleting = true
	return 0
}

func (g *consumerGroup) endDelete(done bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleting = false
	if done && !g.dead {
		g.groupEpoch, g.assignmentEpoch, g.meta = 0, 0, ""
		g.target = map[string]tpSet{}
	}
}

// shutdown ends this agent's coordination of the group; its state stays
// in the log for the next coordinator.
func (g *consumerGroup) shutdown() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead {
		return
	}
	g.dead = true
	for _, m := range g.members {
		g.stopTimersLocked(m)
	}
}

func marshalState(st consumerState) []byte {
	b, _ := json.Marshal(st)
	return b
}

// whileEmpty runs f while the consumer group has no members, so that a
// classic member cannot join a group the consumer protocol is taking (and
// the other way round: heartbeat checks the classic group under the same
// lock). It reports whether f ran.
func (g *consumerGroup) whileEmpty(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) > 0 {
		return false
	}
	f()
	return true
}
