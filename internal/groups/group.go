package groups

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is a classic group's state, as Kafka names them.
type groupState int

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	// stateDead: this agent no longer coordinates the group (lease lost,
	// released or agent closing). Every request gets NOT_COORDINATOR.
	stateDead
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

func (s groupState) String() string { return stateNames[s] }

// timing holds the broker-side limits of group membership.
type timing struct {
	minSession, maxSession time.Duration
	// initialDelay holds the first rebalance of an empty group open for
	// more joiners (Kafka's group.initial.rebalance.delay.ms).
	initialDelay time.Duration
}

// joinResult is a JoinGroup outcome, turned into a response at the
// request's version by the caller.
type joinResult struct {
	code           int16
	generation     int32
	protocolType   string
	protocol       string
	leader         string
	memberID       string
	members        []kmsg.JoinGroupResponseMember
	skipAssignment bool
}

// syncResult is a SyncGroup outcome.
type syncResult struct {
	code         int16
	protocolType string
	protocol     string
	assignment   []byte
}

type member struct {
	id, instance       string
	clientID, host     string
	session, rebalance time.Duration
	protocols          []kmsg.JoinGroupRequestProtocol
	assignment         []byte

	// join is set while the member awaits the end of a rebalance; sync
	// while it awaits the leader's assignment. Both are buffered (1).
	join chan joinResult
	sync chan syncResult

	hb      *time.Timer
	hbToken uint64
}

func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

func copyProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(ps))
	for i, p := range ps {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	return out
}

// group is the in-memory membership of one classic consumer group on its
// coordinator: Kafka's group state machine. Nothing here is durable; a new
// coordinator starts with an empty group and members rejoin.
type group struct {
	id string
	t  timing

	mu           sync.Mutex
	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	order        []string // member ids in join order
	pending      map[string]*time.Timer
	static       map[string]string // instance id → member id
	deleting     bool

	// Rebalance timers: joinToken invalidates callbacks of replaced timers.
	joinTimer      *time.Timer
	joinToken      uint64
	initialJoin    bool
	newMemberAdded bool
	lastActive     time.Time
}

func newGroup(id string, t timing) *group {
	return &group{
		id:         id,
		t:          t,
		members:    map[string]*member{},
		pending:    map[string]*time.Timer{},
		static:     map[string]string{},
		lastActive: time.Now(),
	}
}

func newMemberID(clientID string) string {
	if clientID == "" {
		clientID = "consumer"
	}
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", clientID, u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func joinError(code int16, memberID string) joinResult {
	return joinResult{code: code, generation: -1, memberID: memberID}
}

// join handles a JoinGroup request. The channel yields the answer, at once
// or when the rebalance completes.
func (g *group) join(req *kmsg.JoinGroupRequest, client ClientInfo) <-chan joinResult {
	ch := make(chan joinResult, 1)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive = time.Now()
	fail := func(code int16) <-chan joinResult {
		ch <- joinError(code, req.MemberID)
		return ch
	}
	switch {
	case g.state == stateDead:
		return fail(kerr.NotCoordinator.Code)
	case g.deleting:
		return fail(kerr.CoordinatorLoadInProgress.Code)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 {
		rebalance = session
	}
	if session < g.t.minSession || session > g.t.maxSession {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 || !g.supportsLocked(req.ProtocolType, req.Protocols) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	instance := deref(req.InstanceID)
	newMember := func(id string) *member {
		return &member{
			id: id, instance: instance, clientID: client.ID, host: client.Host,
			session: session, rebalance: rebalance,
			protocols: copyProtocols(req.Protocols),
		}
	}

	if req.MemberID == "" {
		id := newMemberID(client.ID)
		switch {
		case instance != "" && g.members[g.static[instance]] != nil:
			g.replaceStaticLocked(g.members[g.static[instance]], newMember(id), ch)
		case instance == "" && req.Version >= 4:
			// KIP-394: hand out an id first, so that a client that dies
			// before learning it leaves no member behind.
			tok := time.AfterFunc(session, func() { g.expirePending(id) })
			g.pending[id] = tok
			ch <- joinError(kerr.MemberIDRequired.Code, id)
		default:
			g.addMemberLocked(newMember(id), req.ProtocolType, ch)
		}
		return ch
	}
	if tm, ok := g.pending[req.MemberID]; ok {
		tm.Stop()
		delete(g.pending, req.MemberID)
		g.addMemberLocked(newMember(req.MemberID), req.ProtocolType, ch)
		return ch
	}
	m := g.members[req.MemberID]
	if m == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	if g.fencedLocked(m.id, instance) {
		return fail(kerr.FencedInstanceID.Code)
	}
	switch g.state {
	case statePreparingRebalance:
		g.updateMemberLocked(m, req, session, rebalance, ch)
		g.tryCompleteJoinLocked()
	case stateCompletingRebalance:
		if sameProtocols(m.protocols, req.Protocols) {
			// A retried join of this generation: answer it again.
			ch <- g.currentJoinLocked(m, m.id == g.leader, false)
			return ch
		}
		g.updateMemberLocked(m, req, session, rebalance, ch)
		g.prepareRebalanceLocked()
	case stateStable:
		if m.id == g.leader || !sameProtocols(m.protocols, req.Protocols) {
			g.updateMemberLocked(m, req, session, rebalance, ch)
			g.prepareRebalanceLocked()
			return ch
		}
		// A follower rejoining with nothing new keeps its assignment.
		ch <- g.currentJoinLocked(m, false, false)
	default:
		return fail(kerr.UnknownMemberID.Code)
	}
	return ch
}

// fencedLocked reports whether a request naming instance comes from a
// member id other than the one registered for that static member.
func (g *group) fencedLocked(memberID, instance string) bool {
	if instance == "" {
		return false
	}
	id, ok := g.static[instance]
	return ok && id != memberID
}

// supportsLocked is Kafka's check that a joining member can be part of the
// group: same protocol type, and one protocol every member supports.
func (g *group) supportsLocked(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		all := true
		for _, m := range g.members {
			if !m.hasProtocol(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (m *member) hasProtocol(name string) bool {
	for _, p := range m.protocols {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (g *group) addMemberLocked(m *member, protocolType string, ch chan joinResult) {
	if len(g.members) == 0 {
		g.protocolType = protocolType
	}
	m.join = ch
	g.members[m.id] = m
	g.order = append(g.order, m.id)
	if m.instance != "" {
		g.static[m.instance] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.newMemberAdded = true
	if g.state == statePreparingRebalance {
		g.tryCompleteJoinLocked()
	} else {
		g.prepareRebalanceLocked()
	}
}

func (g *group) updateMemberLocked(m *member, req *kmsg.JoinGroupRequest, session, rebalance time.Duration, ch chan joinResult) {
	if m.join != nil {
		// The client gave up on its earlier join and sent another.
		m.join <- joinError(kerr.RebalanceInProgress.Code, m.id)
	}
	m.protocols = copyProtocols(req.Protocols)
	m.session, m.rebalance = session, rebalance
	m.join = ch
}

// replaceStaticLocked gives a known static member (same instance id) a new
// member id, fencing the old one (Kafka's KIP-345). If the group is Stable
// and the protocol it would select does not change, the member gets its
// previous assignment without a rebalance.
func (g *group) replaceStaticLocked(old, m *member, ch chan joinResult) {
	if old.join != nil {
		old.join <- joinError(kerr.FencedInstanceID.Code, old.id)
	}
	if old.sync != nil {
		old.sync <- syncResult{code: kerr.FencedInstanceID.Code}
	}
	if old.hb != nil {
		old.hb.Stop()
	}
	m.assignment = old.assignment
	delete(g.members, old.id)
	g.members[m.id] = m
	g.order[slices.Index(g.order, old.id)] = m.id
	g.static[m.instance] = m.id
	wasLeader := g.leader == old.id
	if wasLeader {
		g.leader = m.id
	}
	m.join = ch
	g.scheduleHeartbeatLocked(m)
	switch g.state {
	case stateStable:
		if g.selectProtocolLocked() == g.protocol {
			m.join = nil
			ch <- g.currentJoinLocked(m, wasLeader, wasLeader)
			return
		}
		g.prepareRebalanceLocked()
	case stateCompletingRebalance:
		g.prepareRebalanceLocked()
	case statePreparingRebalance:
		g.tryCompleteJoinLocked()
	}
}

// currentJoinLocked answers a join within the current generation.
func (g *group) currentJoinLocked(m *member, withMembers, skip bool) joinResult {
	r := joinResult{
		generation: g.generation, protocolType: g.protocolType, protocol: g.protocol,
		leader: g.leader, memberID: m.id, skipAssignment: skip,
	}
	if withMembers {
		r.members = g.memberListLocked()
	}
	return r
}

func (g *group) memberListLocked() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(g.order))
	for _, id := range g.order {
		m := g.members[id]
		jm := kmsg.JoinGroupResponseMember{MemberID: id, ProtocolMetadata: m.metadata(g.protocol)}
		if m.instance != "" {
			jm.InstanceID = &m.instance
		}
		out = append(out, jm)
	}
	return out
}

func (g *group) maxRebalanceLocked() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// prepareRebalanceLocked moves the group to PreparingRebalance and arms the
// timer that completes the join when members are slow to rejoin.
func (g *group) prepareRebalanceLocked() {
	if g.state == stateCompletingRebalance {
		for _, m := range g.members {
			if m.sync != nil {
				m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
				m.sync = nil
			}
		}
	}
	wasEmpty := g.state == stateEmpty
	g.state = statePreparingRebalance
	g.stopJoinTimerLocked()
	tok := g.joinToken
	if wasEmpty && g.t.initialDelay > 0 {
		g.initialJoin = true
		g.newMemberAdded = false
		remaining := max(g.maxRebalanceLocked()-g.t.initialDelay, 0)
		g.joinTimer = time.AfterFunc(g.t.initialDelay, func() { g.initialDelayOver(tok, remaining) })
		return
	}
	g.initialJoin = false
	g.joinTimer = time.AfterFunc(g.maxRebalanceLocked(), func() { g.rebalanceTimeout(tok) })
	g.tryCompleteJoinLocked()
}

func (g *group) stopJoinTimerLocked() {
	g.joinToken++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
}

// initialDelayOver extends the first rebalance of an empty group while new
// members keep arriving, up to the rebalance timeout.
func (g *group) initialDelayOver(tok uint64, remaining time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if tok != g.joinToken || g.state != statePreparingRebalance {
		return
	}
	if g.newMemberAdded && remaining > 0 {
		g.newMemberAdded = false
		d := min(g.t.initialDelay, remaining)
		g.joinTimer = time.AfterFunc(d, func() { g.initialDelayOver(tok, remaining-d) })
		return
	}
	g.completeJoinLocked()
}

func (g *group) rebalanceTimeout(tok uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if tok != g.joinToken || g.state != statePreparingRebalance {
		return
	}
	g.completeJoinLocked()
}

func (g *group) tryCompleteJoinLocked() {
	if g.state != statePreparingRebalance || g.initialJoin || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.join == nil {
			return
		}
	}
	g.completeJoinLocked()
}

// completeJoinLocked ends the join phase: members that did not rejoin are
// dropped (static ones are kept), the next generation starts and every
// waiting member gets its JoinGroup answer, the leader with the member list.
func (g *group) completeJoinLocked() {
	g.stopJoinTimerLocked()
	g.initialJoin = false
	for _, id := range slices.Clone(g.order) {
		if m := g.members[id]; m.join == nil && m.instance == "" {
			g.removeLocked(m)
		}
	}
	if len(g.members) > 0 && g.members[g.leader].join == nil {
		// The leader must be a member that is listening for the answer.
		for _, id := range g.order {
			if g.members[id].join != nil {
				g.leader = id
				break
			}
		}
	}
	if len(g.members) > 0 && g.members[g.leader].join == nil {
		// Only static members that have not rejoined remain: wait more.
		tok := g.joinToken
		g.joinTimer = time.AfterFunc(g.maxRebalanceLocked(), func() { g.rebalanceTimeout(tok) })
		return
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = stateEmpty, "", ""
		return
	}
	g.protocol = g.selectProtocolLocked()
	g.state = stateCompletingRebalance
	for _, id := range g.order {
		m := g.members[id]
		if m.join == nil {
			continue
		}
		m.join <- g.currentJoinLocked(m, id == g.leader, false)
		m.join = nil
		g.scheduleHeartbeatLocked(m)
	}
}

// selectProtocolLocked picks the protocol as Kafka does: among those every
// member supports, each member votes for the first in its own preference
// order; most votes wins, ties going to the leader's preference.
func (g *group) selectProtocolLocked() string {
	var candidates []string
	for _, id := range g.order {
		for _, p := range g.members[id].protocols {
			if !slices.Contains(candidates, p.Name) && g.allSupportLocked(p.Name) {
				candidates = append(candidates, p.Name)
			}
		}
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	if l := g.members[g.leader]; l != nil {
		for _, p := range l.protocols {
			if slices.Contains(candidates, p.Name) && (best == "" || votes[p.Name] > votes[best]) {
				best = p.Name
			}
		}
	}
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (g *group) allSupportLocked(protocol string) bool {
	for _, m := range g.members {
		if !m.hasProtocol(protocol) {
			return false
		}
	}
	return true
}

func (g *group) scheduleHeartbeatLocked(m *member) {
	m.hbToken++
	tok := m.hbToken
	if m.hb != nil {
		m.hb.Stop()
	}
	id := m.id
	m.hb = time.AfterFunc(m.session, func() { g.expireMember(id, tok) })
}

// expireMember removes a member whose session timed out. Members waiting
// for a join or sync answer are not expired: they are blocked on us.
func (g *group) expireMember(id string, tok uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[id]
	if m == nil || m.hbToken != tok || g.state == stateDead {
		return
	}
	if m.join != nil || m.sync != nil {
		g.scheduleHeartbeatLocked(m)
		return
	}
	g.removeMemberAndUpdateLocked(m)
}

func (g *group) expirePending(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.pending[id]; !ok {
		return
	}
	delete(g.pending, id)
	g.tryCompleteJoinLocked()
}

// removeLocked drops a member without starting a rebalance.
func (g *group) removeLocked(m *member) {
	if m.hb != nil {
		m.hb.Stop()
	}
	m.hbToken++
	if m.join != nil {
		m.join <- joinError(kerr.UnknownMemberID.Code, m.id)
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.UnknownMemberID.Code}
		m.sync = nil
	}
	delete(g.members, m.id)
	g.order = slices.DeleteFunc(g.order, func(id string) bool { return id == m.id })
	if m.instance != "" && g.static[m.instance] == m.id {
		delete(g.static, m.instance)
	}
	if g.leader == m.id {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0]
		}
	}
}

func (g *group) removeMemberAndUpdateLocked(m *member) {
	g.removeLocked(m)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		g.prepareRebalanceLocked()
	case statePreparingRebalance:
		g.tryCompleteJoinLocked()
	}
}

// sync handles a SyncGroup request.
func (g *group) sync(req *kmsg.SyncGroupRequest) <-chan syncResult {
	ch := make(chan syncResult, 1)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive = time.Now()
	fail := func(code int16) <-chan syncResult {
		ch <- syncResult{code: code}
		return ch
	}
	if g.state == stateDead {
		return fail(kerr.NotCoordinator.Code)
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return fail(kerr.UnknownMemberID.Code)
	case g.fencedLocked(m.id, deref(req.InstanceID)):
		return fail(kerr.FencedInstanceID.Code)
	case req.Generation != g.generation:
		return fail(kerr.IllegalGeneration.Code)
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	switch g.state {
	case statePreparingRebalance:
		return fail(kerr.RebalanceInProgress.Code)
	case stateCompletingRebalance:
		if m.sync != nil {
			m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
		}
		m.sync = ch
		g.scheduleHeartbeatLocked(m)
		if m.id != g.leader {
			return ch
		}
		for _, mm := range g.members {
			mm.assignment = nil
		}
		for _, a := range req.GroupAssignment {
			if mm := g.members[a.MemberID]; mm != nil {
				mm.assignment = bytes.Clone(a.MemberAssignment)
			}
		}
		g.state = stateStable
		for _, mm := range g.members {
			if mm.sync != nil {
				mm.sync <- g.syncAnswerLocked(mm)
				mm.sync = nil
				g.scheduleHeartbeatLocked(mm)
			}
		}
		return ch
	case stateStable:
		g.scheduleHeartbeatLocked(m)
		ch <- g.syncAnswerLocked(m)
		return ch
	}
	return fail(kerr.UnknownMemberID.Code)
}

func (g *group) syncAnswerLocked(m *member) syncResult {
	a := m.assignment
	if a == nil {
		a = []byte{}
	}
	return syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: a}
}

// heartbeat handles a Heartbeat request and returns its error code.
func (g *group) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive = time.Now()
	if g.state == stateDead {
		return kerr.NotCoordinator.Code
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case g.fencedLocked(m.id, deref(req.InstanceID)):
		return kerr.FencedInstanceID.Code
	case req.Generation != g.generation:
		return kerr.IllegalGeneration.Code
	}
	g.scheduleHeartbeatLocked(m)
	if g.state == statePreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// leave removes one member (by member id, or by instance id for a static
// member) and returns the error code for it.
func (g *group) leave(memberID, instance string) int16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive = time.Now()
	if g.state == stateDead {
		return kerr.NotCoordinator.Code
	}
	if instance != "" {
		id, ok := g.static[instance]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if memberID != "" && memberID != id {
			return kerr.FencedInstanceID.Code
		}
		memberID = id
	}
	if tm, ok := g.pending[memberID]; ok {
		tm.Stop()
		delete(g.pending, memberID)
		g.tryCompleteJoinLocked()
		return 0
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	g.removeMemberAndUpdateLocked(m)
	return 0
}

// validateCommit checks that an offset commit comes from a current member
// (or from a client that does not use group membership, on an empty group)
// and returns its error code.
func (g *group) validateCommit(generation int32, memberID, instance string) int16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastActive = time.Now()
	if g.state == stateDead {
		return kerr.NotCoordinator.Code
	}
	if g.deleting {
		return kerr.CoordinatorLoadInProgress.Code
	}
	if g.fencedLocked(memberID, instance) {
		return kerr.FencedInstanceID.Code
	}
	if generation < 0 && g.state == stateEmpty {
		return 0
	}
	if g.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	g.scheduleHeartbeatLocked(m)
	return 0
}

// shutdown ends this agent's coordination of the group: waiting requests
// get NOT_COORDINATOR, timers stop, and members will rejoin elsewhere.
func (g *group) shutdown() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead {
		return
	}
	g.state = stateDead
	g.stopJoinTimerLocked()
	for _, tm := range g.pending {
		tm.Stop()
	}
	g.pending = map[string]*time.Timer{}
	for _, m := range g.members {
		if m.hb != nil {
			m.hb.Stop()
		}
		m.hbToken++
		if m.join != nil {
			m.join <- joinError(kerr.NotCoordinator.Code, m.id)
			m.join = nil
		}
		if m.sync != nil {
			m.sync <- syncResult{code: kerr.NotCoordinator.Code}
			m.sync = nil
		}
	}
}

// exists reports whether the group exists in Kafka's sense: it has members
// or had some since it was created or deleted.
func (g *group) exists() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state != stateDead && (len(g.members) > 0 || g.protocolType != "")
}

// idleSince reports when the group was last used, and false if it has
// members (so it is not idle).
func (g *group) idleSince() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) > 0 || len(g.pending) > 0 {
		return time.Time{}, false
	}
	return g.lastActive, true
}

// beginDelete marks an empty group as being deleted; it fails with the
// error code to return if the group has members.
func (g *group) beginDelete() int16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.state == stateDead:
		return kerr.NotCoordinator.Code
	case len(g.members) > 0 || len(g.pending) > 0:
		return kerr.NonEmptyGroup.Code
	case g.deleting:
		return kerr.CoordinatorLoadInProgress.Code
	}
	g.deleting = true
	return 0
}

// endDelete finishes a deletion: when done, the group starts afresh.
func (g *group) endDelete(done bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleting = false
	if done && g.state != stateDead {
		g.generation, g.protocolType, g.protocol, g.leader = 0, "", "", ""
	}
}

// subscriptions returns the topics that members subscribe to, decoded from
// their consumer protocol metadata, and whether the group has members that
// do not use the consumer protocol.
func (g *group) subscriptions() (topics map[string]bool, foreign bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) == 0 {
		return nil, false
	}
	if g.protocolType != "consumer" {
		return nil, true
	}
	topics = map[string]bool{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			var md kmsg.ConsumerMemberMetadata
			if md.ReadFrom(p.Metadata) == nil {
				for _, t := range md.Topics {
					topics[t] = true
				}
			}
		}
	}
	return topics, false
}

// describe summarises the group as DescribeGroups reports it.
func (g *group) describe() kmsg.DescribeGroupsResponseGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := kmsg.NewDescribeGroupsResponseGroup()
	d.Group = g.id
	d.State = g.state.String()
	d.ProtocolType = g.protocolType
	if g.state == stateStable {
		d.Protocol = g.protocol
	}
	for _, id := range g.order {
		m := g.members[id]
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.ClientID, dm.ClientHost = id, m.clientID, m.host
		if m.instance != "" {
			dm.InstanceID = &m.instance
		}
		if g.state == stateStable {
			dm.ProtocolMetadata = m.metadata(g.protocol)
			dm.MemberAssignment = m.assignment
		}
		d.Members = append(d.Members, dm)
	}
	return d
}

// summary is what ListGroups reports.
func (g *group) summary() (state groupState, protocolType string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state, g.protocolType
}

// busy reports whether the group has classic members (or members being
// admitted), so its id is not free for the consumer protocol.
func (g *group) busy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state != stateDead && (len(g.members) > 0 || len(g.pending) > 0)
}
