package commitlog

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Owner applies the entry types it owns to its part of the state. The log
// core knows nothing of topics, groups or actors: each of those is an Owner.
//
// Every method is called with the log's state lock held (Apply, Restore and
// Reset exclusively, the others shared), so an Owner needs no locking of its
// own; code outside the log reads an Owner's state through Log.View.
type Owner interface {
	// Name identifies the owner's part of a checkpoint. It never changes.
	Name() string
	// Types lists the entry types the owner applies.
	Types() []uint16
	// Apply applies one entry of commit seq and returns the result handed
	// back to the proposer (typically nil, offsets, or a rejection error).
	// It must be deterministic: no clocks, no randomness, no I/O, and the
	// same input gives the same state byte for byte. A malformed entry is
	// a rejection result, not a panic.
	Apply(seq uint64, e Entry) any
	// Snapshot encodes the owner's state deterministically.
	Snapshot() ([]byte, error)
	// Restore replaces the owner's state with a snapshot.
	Restore(b []byte) error
	// Reset empties the state (a log with no checkpoint yet).
	Reset()
	// LiveObjects calls fn with every bucket key the state references, so
	// garbage collection keeps them.
	LiveObjects(fn func(key string))
}

// Maintainer is an Owner that has periodic work to propose, such as retention
// trimming that needs a clock. Only the agent holding the janitor lease calls
// it, with the state lock shared; the entries it returns are proposed as an
// ordinary commit (so the clock is read by one proposer, and every agent
// applies the same decision).
type Maintainer interface {
	Maintain(now time.Time) []Entry
}

// UnknownEntryError stops an agent that meets an entry type it does not know,
// rather than guessing: a newer twoway wrote it.
type UnknownEntryError struct {
	Seq  uint64
	Type uint16
}

func (e *UnknownEntryError) Error() string {
	return fmt.Sprintf("commit %d holds entry type %d, unknown to this version of twoway: upgrade this agent", e.Seq, e.Type)
}

// mux dispatches entries to owners by type and combines their snapshots.
type mux struct {
	owners []Owner
	byType map[uint16]Owner
}

func newMux(owners []Owner) (*mux, error) {
	m := &mux{byType: map[uint16]Owner{}}
	names := map[string]bool{}
	for _, o := range owners {
		if names[o.Name()] {
			return nil, fmt.Errorf("commitlog: two owners named %q", o.Name())
		}
		names[o.Name()] = true
		for _, t := range o.Types() {
			if prev, ok := m.byType[t]; ok {
				return nil, fmt.Errorf("commitlog: entry type %d claimed by %q and %q", t, prev.Name(), o.Name())
			}
			m.byType[t] = o
		}
		m.owners = append(m.owners, o)
	}
	sort.Slice(m.owners, func(i, j int) bool { return m.owners[i].Name() < m.owners[j].Name() })
	var ls *leases
	for _, o := range owners {
		if l, ok := o.(*leases); ok {
			ls = l
		}
	}
	for _, o := range owners {
		if lr, ok := o.(LeaseReader); ok && ls != nil {
			lr.UseLeases(func(name string) Lease { return ls.m[name] })
		}
	}
	return m, nil
}

// snapshot is a JSON object of owner name → snapshot bytes; encoding/json
// sorts map keys, so the encoding is deterministic.
func (m *mux) snapshot() ([]byte, error) {
	parts := map[string][]byte{}
	for _, o := range m.owners {
		b, err := o.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("snapshot of %s: %w", o.Name(), err)
		}
		parts[o.Name()] = b
	}
	return json.Marshal(parts)
}

func (m *mux) restore(b []byte) error {
	var parts map[string][]byte
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("%w: checkpoint body: %v", ErrCorrupt, err)
	}
	for _, o := range m.owners {
		p, ok := parts[o.Name()]
		if !ok {
			// An owner added after this checkpoint was written starts empty.
			o.Reset()
			continue
		}
		if err := o.Restore(p); err != nil {
			return fmt.Errorf("restore %s: %w", o.Name(), err)
		}
	}
	return nil
}

func (m *mux) reset() {
	for _, o := range m.owners {
		o.Reset()
	}
}

// Entry types 1-99 belong to the log core; 100-199 to streams; 200-299 to
// consumer groups and producer state; later capabilities take new ranges.
const (
	TypeLease uint16 = 1
)

// leaseOp is the payload of a TypeLease entry.
type leaseOp struct {
	Op     string `json:"op"` // "acquire", "renew", "release"
	Name   string `json:"name"`
	Holder string `json:"holder"`
	Epoch  uint64 `json:"epoch"`
	// Addr is what the holder advertises (e.g. a group coordinator's address).
	Addr string `json:"addr,omitempty"`
	// Renewals (acquire only) is the renewal count the proposer saw when it
	// judged the lease expired: the takeover applies only if no renewal
	// happened since, so an agent that lags behind the log cannot depose a
	// live holder.
	Renewals uint64 `json:"renewals,omitempty"`
}

// LeaseAcquire is the entry that takes lease name at the next epoch after
// seen, the lease as the proposer last observed it. It takes effect only if
// the lease is still exactly at seen's epoch and renewal count.
func LeaseAcquire(name, holder, addr string, seen Lease) Entry {
	return leaseEntry(leaseOp{Op: "acquire", Name: name, Holder: holder, Epoch: seen.Epoch + 1, Addr: addr, Renewals: seen.Renewals})
}

// LeaseRenew is the entry by which holder renews lease name at epoch.
func LeaseRenew(name, holder string, epoch uint64) Entry {
	return leaseEntry(leaseOp{Op: "renew", Name: name, Holder: holder, Epoch: epoch})
}

// LeaseRelease is the entry by which holder gives lease name up.
func LeaseRelease(name, holder string, epoch uint64) Entry {
	return leaseEntry(leaseOp{Op: "release", Name: name, Holder: holder, Epoch: epoch})
}

func leaseEntry(op leaseOp) Entry {
	data, _ := json.Marshal(op)
	return Entry{Type: TypeLease, Data: data}
}

// LeaseReader is implemented by Owners whose entries are fenced by a lease.
// The log hands them, once, a function reading the applied lease state; it
// may be called only from Apply (the state lock is held then), and it sees
// the lease entries of earlier entries in the same commit.
type LeaseReader interface {
	UseLeases(func(name string) Lease)
}

// Lease is the applied state of one named lease. Anything a holder commits
// on the lease's behalf carries Epoch; appliers ignore stale epochs.
type Lease struct {
	Holder   string `json:"holder"`
	Epoch    uint64 `json:"epoch"`
	Renewals uint64 `json:"renewals"`
	Addr     string `json:"addr,omitempty"`
}

// leases is the core's own Owner. Expiry needs a clock, so apply never
// decides it: an agent that has watched a lease go unrenewed for the lease
// duration proposes a takeover at epoch+1, and the first such commit wins.
type leases struct {
	m map[string]Lease
}

func (l *leases) Name() string    { return "leases" }
func (l *leases) Types() []uint16 { return []uint16{TypeLease} }
func (l *leases) Reset()          { l.m = map[string]Lease{} }

func (l *leases) Apply(_ uint64, e Entry) any {
	var op leaseOp
	if err := json.Unmarshal(e.Data, &op); err != nil {
		return fmt.Errorf("malformed lease entry: %v", err)
	}
	cur := l.m[op.Name]
	switch op.Op {
	case "acquire":
		if op.Epoch != cur.Epoch+1 || op.Renewals != cur.Renewals || op.Holder == "" {
			return ErrStaleEpoch
		}
		l.m[op.Name] = Lease{Holder: op.Holder, Epoch: op.Epoch, Addr: op.Addr}
	case "renew":
		if op.Epoch != cur.Epoch || op.Holder != cur.Holder {
			return ErrStaleEpoch
		}
		cur.Renewals++
		l.m[op.Name] = cur
	case "release":
		if op.Epoch != cur.Epoch || op.Holder != cur.Holder {
			return ErrStaleEpoch
		}
		cur.Holder, cur.Addr = "", ""
		l.m[op.Name] = cur
	default:
		return fmt.Errorf("unknown lease op %q", op.Op)
	}
	return nil
}

func (l *leases) Snapshot() ([]byte, error) { return json.Marshal(l.m) }

func (l *leases) Restore(b []byte) error {
	l.m = map[string]Lease{}
	return json.Unmarshal(b, &l.m)
}

func (l *leases) LiveObjects(func(string)) {}

// ErrStaleEpoch is the result of a lease entry (or an entry fenced by a
// lease) whose epoch is no longer current.
var ErrStaleEpoch = fmt.Errorf("stale lease epoch")
