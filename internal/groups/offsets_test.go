package groups

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twoway/twoway/internal/commitlog"
)

// randomEntries builds a history of group entries: commits, deletions and
// epoch raises over a few groups, with stale epochs and malformed payloads
// mixed in.
func randomEntries(r *rand.Rand, n int) []commitlog.Entry {
	groups := []string{"g1", "g2", "g3"}
	topics := []string{"a", "b"}
	epoch := map[string]uint64{}
	var out []commitlog.Entry
	for range n {
		g := groups[r.IntN(len(groups))]
		// Mostly the current epoch, sometimes a stale or a newer one.
		e := epoch[g]
		switch r.IntN(10) {
		case 0:
			if e > 0 {
				e--
			}
		case 1:
			e++
		}
		epoch[g] = max(epoch[g], e)
		switch k := r.IntN(20); {
		case k < 12:
			en := commitEntry{Group: g, Epoch: e, Generation: int32(r.IntN(5)), CommitMs: int64(r.IntN(1000))}
			for _, t := range topics {
				if r.IntN(2) == 0 {
					continue
				}
				to := TopicOffsets{Topic: t}
				for p := range int32(3) {
					if r.IntN(2) == 0 {
						to.Partitions = append(to.Partitions, PartitionOffset{Partition: p, Offset: int64(r.IntN(100)), LeaderEpoch: -1, Metadata: fmt.Sprint(r.IntN(3))})
					}
				}
				en.Topics = append(en.Topics, to)
			}
			out = append(out, jsonEntry(TypeOffsetCommit, en))
		case k < 14:
			out = append(out, jsonEntry(TypeCoordinatorEpoch, epochEntry{Group: g, Epoch: e + 1}))
			epoch[g] = e + 1
		case k < 15:
			out = append(out, jsonEntry(TypeDeleteGroup, deleteGroupEntry{Group: g, Epoch: e}))
		case k < 18:
			out = append(out, jsonEntry(TypeOffsetDelete, offsetDeleteEntry{Group: g, Epoch: e, Topics: []TopicPartitions{{Topic: topics[r.IntN(2)], Partitions: []int32{int32(r.IntN(3))}}}}))
		case k < 19:
			st := consumerState{Group: g, Epoch: e, Version: uint64(r.IntN(6)), GroupEpoch: int32(r.IntN(9))}
			for i := range r.IntN(3) {
				st.Members = append(st.Members, &cmember{ID: fmt.Sprint("m", i), Epoch: int32(r.IntN(9)),
					Assigned: []TopicPartitions{{Topic: topics[r.IntN(2)], Partitions: []int32{int32(r.IntN(3))}}}})
			}
			out = append(out, commitlog.Entry{Type: TypeConsumerGroup, Data: marshalState(st)})
		default:
			types := []uint16{TypeOffsetCommit, TypeDeleteGroup, TypeOffsetDelete, TypeCoordinatorEpoch, TypeConsumerGroup}
			out = append(out, commitlog.Entry{Type: types[r.IntN(5)], Data: []byte(`{"group":`)})
		}
	}
	return out
}

func snapshot(t *testing.T, o *Offsets) []byte {
	t.Helper()
	b, err := o.Snapshot()()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Applying a history straight, or up to a checkpoint then restoring it into
// a fresh state and applying the rest, gives the same bytes; so does every
// other agent applying the same history.
func TestOffsetsDeterministic(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 7))
		entries := randomEntries(r, 200)
		straight, again := NewOffsets(), NewOffsets()
		cut := r.IntN(len(entries))
		var results []string
		for i, e := range entries {
			res := straight.Apply(uint64(i+1), e)
			results = append(results, fmt.Sprint(res))
			if fmt.Sprint(again.Apply(uint64(i+1), e)) != results[i] {
				t.Fatalf("seed %d: entry %d gave different results", seed, i)
			}
		}
		if !bytes.Equal(snapshot(t, straight), snapshot(t, again)) {
			t.Fatalf("seed %d: two straight applies differ", seed)
		}

		first := NewOffsets()
		for i, e := range entries[:cut] {
			first.Apply(uint64(i+1), e)
		}
		restored := NewOffsets()
		if err := restored.Restore(snapshot(t, first)); err != nil {
			t.Fatal(err)
		}
		for i, e := range entries[cut:] {
			if got := fmt.Sprint(restored.Apply(uint64(cut+i+1), e)); got != results[cut+i] {
				t.Fatalf("seed %d: entry %d after restore: %s, straight: %s", seed, cut+i, got, results[cut+i])
			}
		}
		if a, b := snapshot(t, straight), snapshot(t, restored); !bytes.Equal(a, b) {
			t.Fatalf("seed %d: restored state differs:\n%s\n%s", seed, a, b)
		}
	}
}

func TestOffsetsSnapshotIsJSON(t *testing.T) {
	o := NewOffsets()
	o.Apply(1, jsonEntry(TypeOffsetCommit, commitEntry{Group: "g", Epoch: 1, Topics: []TopicOffsets{{Topic: "t", Partitions: []PartitionOffset{{Partition: 2, Offset: 7, LeaderEpoch: 3, Metadata: "m"}}}}}))
	var v map[string]any
	if err := json.Unmarshal(snapshot(t, o), &v); err != nil {
		t.Fatal(err)
	}
	if err := o.Restore([]byte(`{"g":null}`)); err == nil {
		t.Fatal("a snapshot with a null group restored")
	}
	if err := o.Restore([]byte(`[`)); err == nil {
		t.Fatal("a broken snapshot restored")
	}
}

// An entry carrying an epoch below the group's highest is ignored: the
// coordinator that wrote it had been deposed when it was sequenced.
func TestOffsetsFencing(t *testing.T) {
	o := NewOffsets()
	commit := func(epoch uint64, offset int64) any {
		return o.Apply(0, jsonEntry(TypeOffsetCommit, commitEntry{Group: "g", Epoch: epoch, Topics: []TopicOffsets{{Topic: "t", Partitions: []PartitionOffset{{Partition: 0, Offset: offset, LeaderEpoch: -1}}}}}))
	}
	offset := func() int64 {
		c, ok := o.Committed("g", "t", 0)
		if !ok {
			return -1
		}
		return c.Offset
	}
	if res := commit(1, 10); res != nil || offset() != 10 {
		t.Fatalf("first commit: %v, offset %d", res, offset())
	}
	// Another agent takes the lease at epoch 2: the acquisition commit
	// carries the epoch entry.
	if res := o.Apply(0, jsonEntry(TypeCoordinatorEpoch, epochEntry{Group: "g", Epoch: 2})); res != nil {
		t.Fatal(res)
	}
	if res := commit(1, 99); !errors.Is(asError(res), commitlog.ErrStaleEpoch) || offset() != 10 {
		t.Fatalf("stale commit: %v, offset %d", res, offset())
	}
	if res := o.Apply(0, jsonEntry(TypeDeleteGroup, deleteGroupEntry{Group: "g", Epoch: 1})); !errors.Is(asError(res), commitlog.ErrStaleEpoch) || offset() != 10 {
		t.Fatalf("stale delete: %v, offset %d", res, offset())
	}
	if res := o.Apply(0, jsonEntry(TypeOffsetDelete, offsetDeleteEntry{Group: "g", Epoch: 1, Topics: []TopicPartitions{{Topic: "t", Partitions: []int32{0}}}})); !errors.Is(asError(res), commitlog.ErrStaleEpoch) || offset() != 10 {
		t.Fatalf("stale offset delete: %v, offset %d", res, offset())
	}
	if res := commit(2, 20); res != nil || offset() != 20 {
		t.Fatalf("current commit: %v, offset %d", res, offset())
	}
	// An epoch entry never lowers the epoch.
	o.Apply(0, jsonEntry(TypeCoordinatorEpoch, epochEntry{Group: "g", Epoch: 1}))
	if o.Epoch("g") != 2 {
		t.Fatalf("epoch %d", o.Epoch("g"))
	}
	// A commit at a newer epoch raises it (its coordinator acquired the
	// lease in a commit this state did not see, e.g. before a checkpoint).
	if res := commit(3, 30); res != nil || o.Epoch("g") != 3 {
		t.Fatal(res, o.Epoch("g"))
	}
	if res := commit(2, 40); res == nil || offset() != 30 {
		t.Fatalf("commit at epoch 2 after 3: %v, offset %d", res, offset())
	}
	// Deleting the group keeps its epoch.
	if res := o.Apply(0, jsonEntry(TypeDeleteGroup, deleteGroupEntry{Group: "g", Epoch: 3})); res != nil || o.HasOffsets("g") || o.Epoch("g") != 3 {
		t.Fatal(res, o.HasOffsets("g"), o.Epoch("g"))
	}
	if res := commit(2, 50); res == nil || offset() != -1 {
		t.Fatalf("stale commit after delete: %v, offset %d", res, offset())
	}
}

func TestOffsetsMalformed(t *testing.T) {
	o := NewOffsets()
	before := snapshot(t, o)
	for _, e := range []commitlog.Entry{
		{Type: TypeOffsetCommit, Data: []byte("{")},
		{Type: TypeOffsetCommit, Data: []byte(`{"epoch":1}`)},
		{Type: TypeDeleteGroup, Data: nil},
		{Type: TypeOffsetDelete, Data: []byte(`{"group":1}`)},
		{Type: TypeCoordinatorEpoch, Data: []byte(`"x"`)},
		{Type: 299, Data: []byte(`{}`)},
	} {
		if res := o.Apply(1, e); asError(res) == nil {
			t.Errorf("type %d %q applied", e.Type, e.Data)
		}
	}
	if !bytes.Equal(before, snapshot(t, o)) {
		t.Fatal("malformed entries changed the state")
	}
}

func FuzzOffsetsApply(f *testing.F) {
	f.Add(uint16(200), []byte(`{"group":"g","epoch":1,"topics":[{"topic":"t","partitions":[{"p":0,"offset":1}]}]}`))
	f.Add(uint16(202), []byte(`{"group":"g","epoch":1,"topics":[{"topic":"t","partitions":[0]}]}`))
	f.Add(uint16(203), []byte(`{"group":"g","epoch":4}`))
	f.Fuzz(func(t *testing.T, typ uint16, data []byte) {
		o := NewOffsets()
		o.Apply(1, commitlog.Entry{Type: typ, Data: data})
		b := snapshot(t, o)
		r := NewOffsets()
		if err := r.Restore(b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, snapshot(t, r)) {
			t.Fatal("snapshot does not round-trip")
		}
	})
}

// With the log's lease state at hand, apply fences by the lease itself: an
// epoch raise or offset commit for an epoch the lease is not at (an acquire
// that lost, or a deposed coordinator) changes nothing.
func TestOffsetsFenceByAppliedLease(t *testing.T) {
	o := NewOffsets()
	lease := commitlog.Lease{Holder: "a", Epoch: 3}
	o.UseLeases(func(name string) commitlog.Lease {
		if name != LeaseName("g") {
			return commitlog.Lease{}
		}
		return lease
	})
	entry := func(typ uint16, v any) commitlog.Entry {
		data, _ := json.Marshal(v)
		return commitlog.Entry{Type: typ, Data: data}
	}
	if r := o.Apply(1, entry(TypeCoordinatorEpoch, epochEntry{Group: "g", Epoch: 4})); !errors.Is(r.(error), commitlog.ErrStaleEpoch) {
		t.Fatalf("epoch raise past the lease: %v", r)
	}
	if got := o.Epoch("g"); got != 0 {
		t.Fatalf("a lost acquire raised the fencing epoch to %d", got)
	}
	if r := o.Apply(2, entry(TypeCoordinatorEpoch, epochEntry{Group: "g", Epoch: 3})); r != nil {
		t.Fatalf("epoch raise at the lease's epoch: %v", r)
	}
	if r := o.Apply(3, entry(TypeOffsetCommit, commitEntry{Group: "g", Epoch: 2})); r == nil {
		t.Fatal("commit from a deposed coordinator was applied")
	}
	if r := o.Apply(4, entry(TypeOffsetCommit, commitEntry{Group: "g", Epoch: 3})); r != nil {
		t.Fatalf("commit from the holder: %v", r)
	}
}
