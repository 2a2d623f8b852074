package console

import (
	"context"
	"net/http"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/httpapi"
)

// GroupSummary is a group in GET /v1/groups.
type GroupSummary struct {
	Name string `json:"name"`
	// State is the coordinator's (Stable, Empty, ...) when this agent
	// coordinates the group, "" otherwise.
	State      string `json:"state,omitempty"`
	Members    int    `json:"members"`
	Partitions int    `json:"partitions"`
	Lag        int64  `json:"lag"`
	// Coordinator is the agent holding the group's lease, and its Kafka
	// address.
	Coordinator     string `json:"coordinator,omitempty"`
	CoordinatorAddr string `json:"coordinator_addr,omitempty"`
	Here            bool   `json:"coordinated_here"`
}

// GroupOffset is a committed offset in GET /v1/groups/{group}.
type GroupOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	EndOffset int64  `json:"end_offset"`
	Lag       int64  `json:"lag"`
	CommitMs  int64  `json:"commit_ms,omitempty"`
	Metadata  string `json:"metadata,omitempty"`
}

// GroupMember is a member in GET /v1/groups/{group}.
type GroupMember struct {
	MemberID   string            `json:"member_id"`
	InstanceID string            `json:"instance_id,omitempty"`
	ClientID   string            `json:"client_id"`
	ClientHost string            `json:"client_host"`
	Assignment []AssignedTopic   `json:"assignment"`
	Extra      map[string]string `json:"-"`
}

// AssignedTopic is one topic of a member's assignment.
type AssignedTopic struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// described is what the coordinator says of a group it coordinates.
type described struct {
	state, protocol, protocolType string
	members                       []GroupMember
}

func (m *Module) describe(ctx context.Context, names []string) map[string]described {
	out := map[string]described{}
	c := m.cfg.Groups
	if c == nil || len(names) == 0 || !m.cfg.Coordinating {
		return out
	}
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version, req.Groups = 5, names
	resp, err := c.Handle(ctx, req)
	if err != nil {
		return out
	}
	for _, g := range resp.(*kmsg.DescribeGroupsResponse).Groups {
		if g.ErrorCode != 0 || g.State == "Dead" {
			continue
		}
		d := described{state: g.State, protocol: g.Protocol, protocolType: g.ProtocolType, members: []GroupMember{}}
		for _, mb := range g.Members {
			gm := GroupMember{MemberID: mb.MemberID, ClientID: mb.ClientID, ClientHost: mb.ClientHost, Assignment: []AssignedTopic{}}
			if mb.InstanceID != nil {
				gm.InstanceID = *mb.InstanceID
			}
			if g.ProtocolType == "consumer" && len(mb.MemberAssignment) > 0 {
				var a kmsg.ConsumerMemberAssignment
				if a.ReadFrom(mb.MemberAssignment) == nil {
					for _, t := range a.Topics {
						gm.Assignment = append(gm.Assignment, AssignedTopic{Topic: t.Topic, Partitions: t.Partitions})
					}
				}
			}
			d.members = append(d.members, gm)
		}
		out[g.Group] = d
	}
	return out
}

// coordinatedHere lists the groups this agent coordinates, with or without
// committed offsets.
func (m *Module) coordinatedHere(ctx context.Context) []string {
	if m.cfg.Groups == nil || !m.cfg.Coordinating {
		return nil
	}
	req := kmsg.NewPtrListGroupsRequest()
	req.Version = 4
	resp, err := m.cfg.Groups.Handle(ctx, req)
	if err != nil {
		return nil
	}
	lr := resp.(*kmsg.ListGroupsResponse)
	if lr.ErrorCode != 0 {
		return nil
	}
	var out []string
	for _, g := range lr.Groups {
		out = append(out, g.Group)
	}
	return out
}

func (m *Module) endOffsets() map[string][]int64 {
	ends := map[string][]int64{}
	for _, ti := range m.cfg.Streams.Topics() {
		full, err := m.cfg.Streams.Topic(ti.Name)
		if err != nil {
			continue
		}
		e := make([]int64, len(full.PartitionsInfo))
		for i, p := range full.PartitionsInfo {
			e[i] = p.End
		}
		ends[ti.Name] = e
	}
	return ends
}

func lagOf(ends map[string][]int64, p committedPartition) (int64, int64) {
	e := ends[p.topic]
	if int(p.partition) >= len(e) {
		return 0, -1
	}
	return max(e[p.partition]-p.offset, 0), e[p.partition]
}

func (m *Module) handleGroups(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if err := m.log.Sync(r.Context()); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	ends := m.endOffsets()
	byName := map[string]*GroupSummary{}
	if m.cfg.Groups != nil {
		for _, g := range committedOffsets(m.log, m.cfg.Groups.Offsets()) {
			s := &GroupSummary{Name: g.name, Partitions: len(g.partitions)}
			for _, p := range g.partitions {
				lag, _ := lagOf(ends, p)
				s.Lag += lag
			}
			byName[g.name] = s
		}
	}
	for _, name := range m.coordinatedHere(r.Context()) {
		if byName[name] == nil {
			byName[name] = &GroupSummary{Name: name}
		}
	}
	var names []string
	for name := range byName {
		if authz.Allowed(r.Context(), authz.OpDescribe, authz.ResGroup, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	desc := m.describe(r.Context(), names)
	out := []GroupSummary{}
	for _, name := range names {
		s := byName[name]
		m.coordinator(name, s)
		if d, ok := desc[name]; ok {
			s.State, s.Members = d.state, len(d.members)
		}
		out = append(out, *s)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"groups": out})
}

func (m *Module) coordinator(name string, s *GroupSummary) {
	l := m.log.Lease(groups.LeaseName(name))
	s.Coordinator, s.CoordinatorAddr = l.Holder, l.Addr
	s.Here = l.Holder != "" && l.Holder == m.log.AgentID()
}

func (m *Module) handleGroup(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if err := m.log.Sync(r.Context()); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	name := r.PathValue("group")
	var g groupOffsets
	if m.cfg.Groups != nil {
		o := m.cfg.Groups.Offsets()
		m.log.View(o, func() { g = offsetsOf(o, name) })
	}
	desc, coordinated := m.describe(r.Context(), []string{name})[name]
	if len(g.partitions) == 0 && !coordinated {
		httpapi.WriteJSON(w, http.StatusNotFound, map[string]any{"error": "no consumer group " + name + " (no committed offsets, and not coordinated by this agent)", "code": "not_found"})
		return
	}
	ends := m.endOffsets()
	s := GroupSummary{Name: name, Partitions: len(g.partitions)}
	m.coordinator(name, &s)
	offsets := []GroupOffset{}
	for _, p := range g.partitions {
		lag, end := lagOf(ends, p)
		s.Lag += lag
		offsets = append(offsets, GroupOffset{Topic: p.topic, Partition: p.partition, Committed: p.offset, EndOffset: end, Lag: lag, CommitMs: p.commitMs, Metadata: p.metadata})
	}
	body := map[string]any{"group": &s, "offsets": offsets, "members": []GroupMember{}}
	if coordinated {
		s.State, s.Members = desc.state, len(desc.members)
		body["members"], body["protocol"], body["protocol_type"] = desc.members, desc.protocol, desc.protocolType
	}
	httpapi.WriteJSON(w, http.StatusOK, body)
}
