package commitlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Owner applies the entry types it owns to its part of the state. The log
// core knows nothing of topics, groups or actors: each of those is an Owner.
//
// Each Owner's state has a lock of its own, held by the log: Apply, Restore
// and Reset run with it held exclusively, LiveObjects with it shared, and
// code outside the log reads the state through Log.View(owner, ...), which
// holds it shared. Applying one Owner's entries therefore never blocks
// readers of another's. Apply is only ever called by one goroutine at a
// time, in commit order.
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
	// Snapshot captures the state for a checkpoint. It is called between
	// two commits, with applying paused, so it must be cheap: copy what a
	// later Apply would change in place, share what it never changes (an
	// appended-to slice's prefix, immutable values). The returned function
	// encodes the captured state deterministically; it runs later,
	// concurrently with Apply and readers.
	Snapshot() func() ([]byte, error)
	// Restore replaces the state with a snapshot.
	Restore(b []byte) error
	// Reset empties the state (a log with no checkpoint yet).
	Reset()
	// LiveObjects calls fn with every bucket key the state references, so
	// garbage collection keeps them.
	LiveObjects(fn func(key string))
}

// Gated is an Owner some of whose entry types are newer than the fleet may
// be: each of them is usable only after a commit enabled it, which the log
// proposes once every live agent advertises the type (see features.go).
// Proposing a gated type before then fails with ErrNotEnabled; applying one
// is a rejection. Types that existed before gating are not gated.
type Gated interface {
	GatedTypes() []uint16
}

// Formatted is an Owner with encodings (of its snapshot, or of an entry
// payload) newer than the fleet may read. Formats names them as features,
// "format:{owner}-{what}:{version}"; they are advertised and enabled like
// gated types. UseFeatures hands the owner, once, a function telling
// whether a feature is enabled; call it only from Apply and Snapshot (both
// run with applying paused), and write a newer encoding only once it
// says so. Restore must read every encoding the owner knows.
type Formatted interface {
	Formats() []string
	UseFeatures(enabled func(name string) bool)
}

// LeaseReader is implemented by Owners whose entries are fenced by a lease.
// The log hands them, once, a function reading the applied lease state; it
// may be called only from Apply, and it sees the lease entries of earlier
// entries in the same commit.
type LeaseReader interface {
	UseLeases(func(name string) Lease)
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

// ErrNotEnabled is the error for an entry type (or format) that this agent
// knows but the fleet has not enabled yet.
var ErrNotEnabled = errors.New("not enabled yet")

// slot is the log's bookkeeping for one Owner.
type slot struct {
	o  Owner
	mu sync.RWMutex
	// touched is the newest commit that applied an entry of this owner (or
	// the sequence its state was restored at); guarded by the log's
	// applyMu. A snapshot taken at touched is valid until it changes.
	touched uint64
}

// mux dispatches entries to owners by type.
type mux struct {
	slots  []*slot // sorted by name
	byType map[uint16]*slot
	byOwn  map[Owner]*slot
	gated  map[uint16]bool
	// formats are the Formatted owners' format features.
	formats []string
}

func newMux(owners []Owner) (*mux, error) {
	m := &mux{byType: map[uint16]*slot{}, byOwn: map[Owner]*slot{}, gated: map[uint16]bool{}}
	names := map[string]bool{}
	for _, o := range owners {
		if names[o.Name()] {
			return nil, fmt.Errorf("commitlog: two owners named %q", o.Name())
		}
		if !validOwnerName(o.Name()) {
			return nil, fmt.Errorf("commitlog: owner name %q: use 1 to 64 characters from [a-z0-9_-]", o.Name())
		}
		names[o.Name()] = true
		s := &slot{o: o}
		for _, t := range o.Types() {
			if prev, ok := m.byType[t]; ok {
				return nil, fmt.Errorf("commitlog: entry type %d claimed by %q and %q", t, prev.o.Name(), o.Name())
			}
			m.byType[t] = s
		}
		if g, ok := o.(Gated); ok {
			for _, t := range g.GatedTypes() {
				if m.byType[t] != s {
					return nil, fmt.Errorf("commitlog: owner %q gates entry type %d, which it does not apply", o.Name(), t)
				}
				m.gated[t] = true
			}
		}
		m.slots = append(m.slots, s)
		m.byOwn[o] = s
	}
	sort.Slice(m.slots, func(i, j int) bool { return m.slots[i].o.Name() < m.slots[j].o.Name() })
	var ls *leases
	for _, o := range owners {
		if l, ok := o.(*leases); ok {
			ls = l
		}
	}
	var fs *features
	for _, o := range owners {
		if f, ok := o.(*features); ok {
			fs = f
		}
	}
	for _, o := range owners {
		if lr, ok := o.(LeaseReader); ok && ls != nil {
			lr.UseLeases(ls.get)
		}
		if fo, ok := o.(Formatted); ok && fs != nil {
			for _, f := range fo.Formats() {
				if !strings.HasPrefix(f, "format:") {
					return nil, fmt.Errorf("commitlog: owner %q: format feature %q must start with \"format:\"", o.Name(), f)
				}
				m.formats = append(m.formats, f)
			}
			fo.UseFeatures(func(name string) bool { return fs.on[name] })
		}
	}
	return m, nil
}

func validOwnerName(n string) bool {
	if len(n) == 0 || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (m *mux) slot(name string) *slot {
	i := sort.Search(len(m.slots), func(i int) bool { return m.slots[i].o.Name() >= name })
	if i < len(m.slots) && m.slots[i].o.Name() == name {
		return m.slots[i]
	}
	return nil
}

// reset empties every owner's state.
func (m *mux) reset() {
	for _, s := range m.slots {
		s.mu.Lock()
		s.o.Reset()
		s.touched = 0
		s.mu.Unlock()
	}
}

// Feature names: an entry type is feature "type:N"; formats are named by
// the object kind and version ("checkpoint:2").
func typeFeature(t uint16) string { return "type:" + strconv.Itoa(int(t)) }

// Entry types 1-99 belong to the log core; 100-199 to streams; 200-299 to
// consumer groups and producer state; later capabilities take new ranges.
const (
	TypeLease uint16 = 1
	// TypeFeatures enables gated entry types and formats.
	TypeFeatures uint16 = 2
	// TypeLeaseRemove forgets a released lease (gated).
	TypeLeaseRemove uint16 = 3
	// TypeAll makes the entries after it all-or-none (gated); see All.
	TypeAll uint16 = 4
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

// LeaseRemove is the entry that forgets lease name, released at epoch, so
// that leases of things that are gone (a consumer group nobody uses) do not
// stay in the state forever. It takes effect only if the lease is still
// released at that epoch. Epochs stay unique: a lease acquired after its
// removal starts above every epoch any removed lease had.
func LeaseRemove(name string, epoch uint64) Entry {
	data, _ := json.Marshal(leaseOp{Op: "remove", Name: name, Epoch: epoch})
	return Entry{Type: TypeLeaseRemove, Data: data}
}

func leaseEntry(op leaseOp) Entry {
	data, _ := json.Marshal(op)
	return Entry{Type: TypeLease, Data: data}
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
	// floor is the highest epoch of any removed lease: an absent lease
	// reads as released at the floor, so epochs are never reused.
	floor uint64
}

type leasesJSON struct {
	Leases map[string]Lease `json:"leases"`
	Floor  uint64           `json:"floor,omitempty"`
}

func (l *leases) Name() string    { return "leases" }
func (l *leases) Types() []uint16 { return []uint16{TypeLease, TypeLeaseRemove} }
func (l *leases) GatedTypes() []uint16 {
	return []uint16{TypeLeaseRemove}
}
func (l *leases) Reset() { l.m, l.floor = map[string]Lease{}, 0 }

func (l *leases) get(name string) Lease {
	if cur, ok := l.m[name]; ok {
		return cur
	}
	return Lease{Epoch: l.floor}
}

func (l *leases) Apply(_ uint64, e Entry) any {
	var op leaseOp
	if err := json.Unmarshal(e.Data, &op); err != nil {
		return fmt.Errorf("malformed lease entry: %v", err)
	}
	cur := l.get(op.Name)
	if e.Type == TypeLeaseRemove {
		if op.Op != "remove" {
			return fmt.Errorf("lease remove entry with op %q", op.Op)
		}
		if _, ok := l.m[op.Name]; !ok || cur.Holder != "" || cur.Epoch != op.Epoch {
			return ErrStaleEpoch
		}
		delete(l.m, op.Name)
		l.floor = max(l.floor, cur.Epoch)
		return nil
	}
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

func (l *leases) Snapshot() func() ([]byte, error) {
	// Version-1 checkpoints held the bare map; the floor came later and is
	// omitted while zero, so the encoding of old states is unchanged.
	var b []byte
	var err error
	if l.floor == 0 {
		b, err = json.Marshal(l.m)
	} else {
		b, err = json.Marshal(leasesJSON{Leases: l.m, Floor: l.floor})
	}
	return func() ([]byte, error) { return b, err }
}

func (l *leases) Restore(b []byte) error {
	l.Reset()
	var j leasesJSON
	if err := json.Unmarshal(b, &j); err == nil && j.Leases != nil {
		l.m, l.floor = j.Leases, j.Floor
		return nil
	}
	return json.Unmarshal(b, &l.m)
}

func (l *leases) LiveObjects(func(string)) {}

// ErrStaleEpoch is the result of a lease entry (or an entry fenced by a
// lease) whose epoch is no longer current.
var ErrStaleEpoch = fmt.Errorf("stale lease epoch")
