package groups

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/twoway/twoway/internal/commitlog"
)

// Entry types owned by consumer groups (200-299; see docs/FORMAT.md).
const (
	// TypeOffsetCommit records committed offsets of one group.
	TypeOffsetCommit uint16 = 200
	// TypeDeleteGroup removes every committed offset of a group.
	TypeDeleteGroup uint16 = 201
	// TypeOffsetDelete removes the committed offsets of some partitions.
	TypeOffsetDelete uint16 = 202
	// TypeCoordinatorEpoch raises a group's fencing epoch. It rides in the
	// same commit as the acquisition of the group's lease, so every entry
	// of an older coordinator that is sequenced after the takeover is
	// rejected, even before the new coordinator commits anything itself.
	TypeCoordinatorEpoch uint16 = 203
	// TypeForgetGroup drops the record of a group that holds no offsets
	// (gated). Fencing does not need it: entries must carry the current
	// epoch of the group's lease, and lease epochs are never reused.
	TypeForgetGroup uint16 = 204
	// TypeConsumerGroup records the whole membership of a KIP-848
	// consumer group (gated): epochs, subscriptions, target and current
	// assignments. Its coordinator commits it at every change, before
	// answering the heartbeat that reveals the change, so the next
	// coordinator resumes the group where it was.
	TypeConsumerGroup uint16 = 205
)

// MaxMetadataBytes bounds the metadata string of one committed offset, as
// Kafka's offset.metadata.max.bytes does.
const MaxMetadataBytes = 4096

// Committed is one committed offset.
type Committed struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata,omitempty"`
	// CommitMs is the committing coordinator's clock, kept so a later
	// version can expire the offsets of long-empty groups as Kafka does.
	CommitMs int64 `json:"commit_ms,omitempty"`
}

// PartitionOffset is a partition's committed offset inside an entry.
type PartitionOffset struct {
	Partition   int32  `json:"p"`
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata,omitempty"`
}

// TopicOffsets groups the partitions of one topic inside an entry.
type TopicOffsets struct {
	Topic      string            `json:"topic"`
	Partitions []PartitionOffset `json:"partitions"`
}

// commitEntry is the payload of TypeOffsetCommit.
type commitEntry struct {
	Group string `json:"group"`
	// Epoch is the epoch of the committing coordinator's lease.
	Epoch uint64 `json:"epoch"`
	// Generation and Member are informational: the coordinator checked them
	// against its in-memory membership before proposing.
	Generation int32          `json:"generation"`
	Member     string         `json:"member,omitempty"`
	CommitMs   int64          `json:"commit_ms"`
	Topics     []TopicOffsets `json:"topics"`
}

// deleteGroupEntry is the payload of TypeDeleteGroup.
type deleteGroupEntry struct {
	Group string `json:"group"`
	Epoch uint64 `json:"epoch"`
}

// TopicPartitions names partitions of one topic inside an entry.
type TopicPartitions struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// offsetDeleteEntry is the payload of TypeOffsetDelete.
type offsetDeleteEntry struct {
	Group  string            `json:"group"`
	Epoch  uint64            `json:"epoch"`
	Topics []TopicPartitions `json:"topics"`
}

// epochEntry is the payload of TypeCoordinatorEpoch.
type epochEntry struct {
	Group string `json:"group"`
	Epoch uint64 `json:"epoch"`
}

// groupRecord is the durable state of one group.
type groupRecord struct {
	// Epoch is the highest coordinator epoch seen for the group; entries
	// carrying a lower one come from a deposed coordinator. It survives
	// the deletion of the group's offsets.
	Epoch   uint64                         `json:"epoch"`
	Offsets map[string]map[int32]Committed `json:"offsets,omitempty"`
	// Consumer is the membership of a KIP-848 consumer group.
	Consumer *consumerState `json:"consumer,omitempty"`
}

// Offsets is the consumer groups' Owner of the commit log: committed
// offsets per group, and each group's fencing epoch. Like every Owner it is
// called with the log's state lock held; read it through Log.View.
type Offsets struct {
	groups map[string]*groupRecord
	// lease reads the applied state of a group's coordinator lease (set by
	// the log, see commitlog.LeaseReader); nil when used without a log.
	lease func(name string) commitlog.Lease
}

// UseLeases lets apply fence entries by the coordinator lease itself.
func (o *Offsets) UseLeases(read func(name string) commitlog.Lease) { o.lease = read }

// leaseAllows reports whether epoch is the current epoch of the group's
// coordinator lease. Entries made for an epoch that never took effect (an
// acquire that lost) or that has passed are stale.
func (o *Offsets) leaseAllows(group string, epoch uint64) bool {
	return o.lease == nil || o.lease(LeaseName(group)).Epoch == epoch
}

// NewOffsets returns an empty offsets state machine.
func NewOffsets() *Offsets { return &Offsets{groups: map[string]*groupRecord{}} }

// Name is the owner's part of a checkpoint.
func (o *Offsets) Name() string { return "groups" }

// Types lists the entry types Offsets applies.
func (o *Offsets) Types() []uint16 {
	return []uint16{TypeOffsetCommit, TypeDeleteGroup, TypeOffsetDelete, TypeCoordinatorEpoch, TypeForgetGroup, TypeConsumerGroup, TypeTxnOffsets}
}

// GatedTypes: TypeForgetGroup, TypeConsumerGroup and TypeTxnOffsets came
// after the others.
func (o *Offsets) GatedTypes() []uint16 {
	return []uint16{TypeForgetGroup, TypeConsumerGroup, TypeTxnOffsets}
}

// forgetEntry is the payload of TypeForgetGroup.
type forgetEntry struct {
	Group string `json:"group"`
}

// Reset empties the state.
func (o *Offsets) Reset() { o.groups = map[string]*groupRecord{} }

// LiveObjects: offsets reference no bucket objects.
func (o *Offsets) LiveObjects(func(string)) {}

// Snapshot encodes the state; encoding/json sorts map keys, so the bytes
// depend only on the state.
func (o *Offsets) Snapshot() func() ([]byte, error) {
	b, err := json.Marshal(o.groups)
	return func() ([]byte, error) { return b, err }
}

// Restore replaces the state with a snapshot.
func (o *Offsets) Restore(b []byte) error {
	m := map[string]*groupRecord{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("groups snapshot: %w", err)
	}
	for name, g := range m {
		if g == nil {
			return fmt.Errorf("groups snapshot: group %q has no state", name)
		}
	}
	o.groups = m
	return nil
}

// errMalformed marks an entry that does not decode; apply rejects it
// without changing the state.
var errMalformed = errors.New("malformed consumer group entry")

// Apply applies one entry. It reads no clock and keeps no randomness: the
// same entries give the same state on every agent.
func (o *Offsets) Apply(_ uint64, e commitlog.Entry) any {
	switch e.Type {
	case TypeTxnOffsets:
		return o.applyTxnOffsets(e)
	case TypeCoordinatorEpoch:
		var en epochEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		if !o.leaseAllows(en.Group, en.Epoch) {
			return commitlog.ErrStaleEpoch
		}
		g := o.record(en.Group)
		g.Epoch = max(g.Epoch, en.Epoch)
		return nil
	case TypeOffsetCommit:
		var en commitEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		g, ok := o.admit(en.Group, en.Epoch)
		if !ok {
			return commitlog.ErrStaleEpoch
		}
		for _, t := range en.Topics {
			if len(t.Partitions) == 0 {
				continue
			}
			if g.Offsets == nil {
				g.Offsets = map[string]map[int32]Committed{}
			}
			parts := g.Offsets[t.Topic]
			if parts == nil {
				parts = map[int32]Committed{}
				g.Offsets[t.Topic] = parts
			}
			for _, p := range t.Partitions {
				parts[p.Partition] = Committed{Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: p.Metadata, CommitMs: en.CommitMs}
			}
		}
		return nil
	case TypeDeleteGroup:
		var en deleteGroupEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		g, ok := o.admit(en.Group, en.Epoch)
		if !ok {
			return commitlog.ErrStaleEpoch
		}
		g.Offsets, g.Consumer = nil, nil
		return nil
	case TypeConsumerGroup:
		var st consumerState
		if err := json.Unmarshal(e.Data, &st); err != nil || st.Group == "" {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		g, ok := o.admit(st.Group, st.Epoch)
		if !ok {
			return commitlog.ErrStaleEpoch
		}
		// States one coordinator commits concurrently may be sequenced
		// out of order; the newest stands.
		if g.Consumer == nil || g.Consumer.Epoch != st.Epoch || st.Version > g.Consumer.Version {
			g.Consumer = &st
		}
		return nil
	case TypeForgetGroup:
		var en forgetEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		if g := o.groups[en.Group]; g != nil && g.forgettable() {
			delete(o.groups, en.Group)
		}
		return nil
	case TypeOffsetDelete:
		var en offsetDeleteEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		g, ok := o.admit(en.Group, en.Epoch)
		if !ok {
			return commitlog.ErrStaleEpoch
		}
		for _, t := range en.Topics {
			parts := g.Offsets[t.Topic]
			for _, p := range t.Partitions {
				delete(parts, p)
			}
			if parts != nil && len(parts) == 0 {
				delete(g.Offsets, t.Topic)
			}
		}
		if len(g.Offsets) == 0 {
			g.Offsets = nil
		}
		return nil
	}
	return fmt.Errorf("%w: type %d", errMalformed, e.Type)
}

func (o *Offsets) record(group string) *groupRecord {
	g := o.groups[group]
	if g == nil {
		g = &groupRecord{}
		o.groups[group] = g
	}
	return g
}

// admit fences an entry: it is accepted only if its epoch is at least the
// group's highest epoch, which it then becomes.
func (o *Offsets) admit(group string, epoch uint64) (*groupRecord, bool) {
	if !o.leaseAllows(group, epoch) {
		return nil, false
	}
	g := o.record(group)
	if epoch < g.Epoch {
		return nil, false
	}
	g.Epoch = epoch
	return g, true
}

// Epoch returns the fencing epoch of a group (0 if never coordinated).
func (o *Offsets) Epoch(group string) uint64 {
	if g := o.groups[group]; g != nil {
		return g.Epoch
	}
	return 0
}

// Committed returns a group's committed offset of one partition.
func (o *Offsets) Committed(group, topic string, partition int32) (Committed, bool) {
	g := o.groups[group]
	if g == nil {
		return Committed{}, false
	}
	c, ok := g.Offsets[topic][partition]
	return c, ok
}

// forgettable: the group holds nothing but its epoch (no offsets, no
// consumer group members).
func (g *groupRecord) forgettable() bool {
	return len(g.Offsets) == 0 && (g.Consumer == nil || len(g.Consumer.Members) == 0)
}

// consumerState returns the membership of a consumer group as last
// committed, or nil.
func (o *Offsets) consumerState(group string) *consumerState {
	if g := o.groups[group]; g != nil && g.Consumer != nil {
		st := *g.Consumer
		return &st
	}
	return nil
}

// HasOffsets reports whether a group has any committed offset.
func (o *Offsets) HasOffsets(group string) bool {
	g := o.groups[group]
	return g != nil && len(g.Offsets) > 0
}

// Topics lists, in name order, the topics a group has offsets for.
func (o *Offsets) Topics(group string) []string {
	g := o.groups[group]
	if g == nil {
		return nil
	}
	out := make([]string, 0, len(g.Offsets))
	for t := range g.Offsets {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Partitions lists, in order, the partitions of a topic a group has offsets
// for.
func (o *Offsets) Partitions(group, topic string) []int32 {
	g := o.groups[group]
	if g == nil {
		return nil
	}
	parts := g.Offsets[topic]
	out := make([]int32, 0, len(parts))
	for p := range parts {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Groups lists, in name order, every group the log knows: those that have
// offsets, and (when all is set) those that only ever had a coordinator.
func (o *Offsets) Groups(all bool) []string {
	out := make([]string, 0, len(o.groups))
	for name, g := range o.groups {
		if all || len(g.Offsets) > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
