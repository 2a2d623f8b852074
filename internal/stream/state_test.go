package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
)

// randomEntries builds a random but plausible sequence of stream entries,
// including invalid ones (unknown topics, bad partitions, shrinking).
func randomEntries(rng *rand.Rand, n int) []commitlog.Entry {
	names := []string{"a", "b", "c.d", "e_f"}
	var out []commitlog.Entry
	mk := func(t uint16, v any) commitlog.Entry {
		data, _ := json.Marshal(v)
		return commitlog.Entry{Type: t, Data: data}
	}
	for i := range n {
		name := names[rng.IntN(len(names))]
		switch rng.IntN(16) {
		case 13:
			cfgs := map[string]string{"cleanup.policy": []string{"compact", "delete", "compact,delete"}[rng.IntN(3)]}
			if rng.IntN(2) == 0 {
				cfgs["max.message.bytes"] = fmt.Sprint(rng.IntN(5000))
			}
			if rng.IntN(5) == 0 {
				cfgs["no.such.config"] = "1"
			}
			out = append(out, mk(TypeCreateTopicConfigs, createEntry{TopicConfig: TopicConfig{Name: name, Partitions: int32(rng.IntN(3) + 1), RetentionMs: -1, RetentionBytes: -1, Configs: cfgs}, CreatedMs: int64(i)}))
		case 14:
			cfgs := map[string]string{"segment.bytes": fmt.Sprint(rng.IntN(1 << 20)), "message.timestamp.type": "LogAppendTime"}
			out = append(out, mk(TypeSetTopicConfigs, setConfigsEntry{Name: name, RetentionMs: int64(rng.IntN(3) - 1), RetentionBytes: -1, Configs: cfgs}))
		case 15:
			base := int64(rng.IntN(40))
			e := mk(TypeKeyCompact, keyCompactEntry{Topic: name, ID: uint64(rng.IntN(20)), Partition: int32(rng.IntN(3)), Base: base, End: base + int64(rng.IntN(30)), Segments: rng.IntN(4), Digest: uint32(rng.IntN(3)), Empty: rng.IntN(3) == 0})
			if !strings.Contains(string(e.Data), `"empty":true`) {
				e.Ref = commitlog.Ref{Key: "chunks/k", Off: int64(i), Len: int64(rng.IntN(2000))}
			}
			out = append(out, e)
		case 12:
			base := int64(rng.IntN(40))
			e := mk(TypeCompact, compactEntry{Topic: name, ID: uint64(rng.IntN(20)), Partition: int32(rng.IntN(3)), Base: base, End: base + int64(rng.IntN(30)), Segments: rng.IntN(5)})
			e.Ref = commitlog.Ref{Key: "chunks/c", Off: int64(i), Len: int64(rng.IntN(2000))}
			out = append(out, e)
		case 10:
			out = append(out, mk(TypeInitProducer, initProducerEntry{PID: int64(rng.IntN(3)), Epoch: int16(rng.IntN(2))}))
		case 11:
			first := int32(rng.IntN(8))
			e := mk(TypeProduce, produceEntry{Topic: name, Partition: int32(rng.IntN(2)), Count: 2, PID: int64(rng.IntN(3) + 1), Epoch: int16(rng.IntN(2)), FirstSeq: first, LastSeq: first + 1})
			e.Ref = commitlog.Ref{Key: "chunks/p", Off: int64(i), Len: 10}
			out = append(out, e)
		case 0:
			out = append(out, mk(TypeCreateTopic, createEntry{TopicConfig: TopicConfig{Name: name, Partitions: int32(rng.IntN(4) + 1), RetentionMs: -1, RetentionBytes: -1}, CreatedMs: int64(i)}))
		case 1:
			out = append(out, mk(TypeDeleteTopic, name))
		case 2:
			out = append(out, mk(TypeAddPartitions, alterEntry{Name: name, Partitions: int32(rng.IntN(6))}))
		case 3:
			ms := int64(rng.IntN(1000) + 1)
			out = append(out, mk(TypeAlterTopic, alterEntry{Name: name, RetentionMs: &ms}))
		case 4:
			out = append(out, mk(TypeTruncate, truncateEntry{Topic: name, ID: uint64(rng.IntN(20)), Partition: int32(rng.IntN(3)), Offset: int64(rng.IntN(50))}))
		case 5:
			out = append(out, commitlog.Entry{Type: TypeProduce, Data: []byte("{not json")})
		default:
			e := mk(TypeProduce, produceEntry{Topic: name, Partition: int32(rng.IntN(4)), Count: int64(rng.IntN(10)), MaxTs: int64(i), AppendMs: int64(i)})
			e.Ref = commitlog.Ref{Key: fmt.Sprintf("chunks/%d", i%7), Off: int64(i), Len: int64(rng.IntN(500) + 1), CRC: uint32(i)}
			out = append(out, e)
		}
	}
	return out
}

func applyAll(s *state, entries []commitlog.Entry, from int) []any {
	var res []any
	for i, e := range entries[from:] {
		res = append(res, s.Apply(uint64(from+i+1), e))
	}
	return res
}

// TestApplyIsDeterministic: the same entries give the same state byte for
// byte, and a snapshot/restore at any point changes nothing.
func TestApplyIsDeterministic(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		entries := randomEntries(rng, 300)
		a, b := newState(), newState()
		resA := applyAll(a, entries, 0)
		resB := applyAll(b, entries, 0)
		if fmt.Sprint(resA) != fmt.Sprint(resB) {
			t.Fatalf("seed %d: results differ", seed)
		}
		snapA, _ := a.Snapshot()()
		snapB, _ := b.Snapshot()()
		if !bytes.Equal(snapA, snapB) {
			t.Fatalf("seed %d: states differ", seed)
		}
		// Restart from a snapshot at a random point.
		cut := rng.IntN(len(entries))
		c := newState()
		applyAll(c, entries[:cut], 0)
		mid, _ := c.Snapshot()()
		d := newState()
		if err := d.Restore(mid); err != nil {
			t.Fatal(err)
		}
		resD := applyAll(d, entries, cut)
		if fmt.Sprint(resD) != fmt.Sprint(resA[cut:]) {
			t.Fatalf("seed %d: results after restore at %d differ", seed, cut)
		}
		snapD, _ := d.Snapshot()()
		if !bytes.Equal(snapA, snapD) {
			t.Fatalf("seed %d: state after restore at %d differs:\n%s\n%s", seed, cut, snapA, snapD)
		}
		checkInvariants(t, a)
	}
}

// checkInvariants: offsets are dense and segments contiguous in every
// partition.
func checkInvariants(t *testing.T, s *state) {
	t.Helper()
	for name, tp := range s.topics {
		if int32(len(tp.Partitions)) != tp.Config.Partitions {
			t.Fatalf("%s: %d partitions, config says %d", name, len(tp.Partitions), tp.Config.Partitions)
		}
		for i, p := range tp.Partitions {
			next := int64(-1)
			var bytes int64
			for _, seg := range p.Segments {
				if next >= 0 && seg.Base != next {
					t.Fatalf("%s/%d: segment at %d after one ending at %d", name, i, seg.Base, next)
				}
				next = seg.Base + seg.Count
				bytes += seg.Ref.Len
			}
			if len(p.Segments) > 0 && (next != p.End || p.Segments[0].Base > p.Start) {
				t.Fatalf("%s/%d: segments end at %d, partition [%d,%d)", name, i, next, p.Start, p.End)
			}
			if bytes != p.Bytes {
				t.Fatalf("%s/%d: bytes %d, segments hold %d", name, i, p.Bytes, bytes)
			}
		}
	}
}

func TestProduceAssignsDenseOffsets(t *testing.T) {
	s := newState()
	data, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 2, RetentionMs: -1, RetentionBytes: -1}})
	if r := s.Apply(1, commitlog.Entry{Type: TypeCreateTopic, Data: data}); r != nil {
		t.Fatal(r)
	}
	want := int64(0)
	for i := range 10 {
		pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: 1, Count: int64(i + 1)})
		r := s.Apply(uint64(i+2), commitlog.Entry{Type: TypeProduce, Data: pe, Ref: commitlog.Ref{Key: "k", Len: 1}})
		if r != (ProduceResult{Base: want}) {
			t.Fatalf("produce %d: %v, want base %d", i, r, want)
		}
		want += int64(i + 1)
	}
	pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: 2, Count: 1})
	if r, ok := s.Apply(20, commitlog.Entry{Type: TypeProduce, Data: pe, Ref: commitlog.Ref{Key: "k", Len: 1}}).(error); !ok {
		t.Fatalf("produce to partition 2 of 2: %v", r)
	}
}

func TestRetentionMaintain(t *testing.T) {
	s := newState()
	data, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 1, RetentionMs: 1000, RetentionBytes: 250}})
	s.Apply(1, commitlog.Entry{Type: TypeCreateTopic, Data: data})
	now := time.UnixMilli(100_000)
	for i := range 5 {
		pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: 0, Count: 10, AppendMs: now.UnixMilli() - int64(5-i)*100})
		s.Apply(uint64(i+2), commitlog.Entry{Type: TypeProduce, Data: pe, Ref: commitlog.Ref{Key: "k", Len: 100}})
	}
	// 500 bytes with a 250-byte limit: as in Kafka, a segment goes only while
	// what remains is still at least the limit, so two go and 300 bytes stay.
	entries := s.Maintain(now)
	if len(entries) != 1 {
		t.Fatalf("maintain: %d entries", len(entries))
	}
	s.Apply(10, entries[0])
	p := s.topics["t"].Partitions[0]
	if p.Start != 20 || p.Bytes != 300 || len(p.Segments) != 3 {
		t.Fatalf("after byte retention: start %d bytes %d segments %d", p.Start, p.Bytes, len(p.Segments))
	}
	// Two seconds later everything is older than retention_ms.
	entries = s.Maintain(now.Add(2 * time.Second))
	s.Apply(11, entries[0])
	if p.Start != 50 || p.End != 50 || len(p.Segments) != 0 {
		t.Fatalf("after time retention: start %d end %d segments %d", p.Start, p.End, len(p.Segments))
	}
}

func TestKafkaPartitionMatchesKafka(t *testing.T) {
	// Reference values from Kafka's own murmur2 tests (UtilsTest).
	want := map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107}
	for k, v := range want {
		if got := int32(murmur2([]byte(k))); got != v {
			t.Errorf("murmur2(%q) = %d, want %d", k, got, v)
		}
	}
}

func TestIdempotentProducerSequences(t *testing.T) {
	s := newState()
	data, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 1, RetentionMs: -1, RetentionBytes: -1}})
	s.Apply(1, commitlog.Entry{Type: TypeCreateTopic, Data: data})
	init, _ := json.Marshal(initProducerEntry{})
	pid := s.Apply(2, commitlog.Entry{Type: TypeInitProducer, Data: init}).(ProducerID)
	if pid.ID != 1 || pid.Epoch != 0 {
		t.Fatalf("first producer id %+v", pid)
	}
	seq := uint64(3)
	produce := func(pid int64, epoch int16, first, last int32) any {
		pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: 0, Count: int64(last-first) + 1, PID: pid, Epoch: epoch, FirstSeq: first, LastSeq: last})
		seq++
		return s.Apply(seq, commitlog.Entry{Type: TypeProduce, Data: pe, Ref: commitlog.Ref{Key: "k", Len: 1}})
	}
	if r := produce(1, 0, 0, 4); r != (ProduceResult{Base: 0}) {
		t.Fatalf("first batch: %v", r)
	}
	if r := produce(1, 0, 5, 9); r != (ProduceResult{Base: 5}) {
		t.Fatalf("second batch: %v", r)
	}
	if r := produce(1, 0, 0, 4); r != (ProduceResult{Base: 0, Duplicate: true}) {
		t.Fatalf("retry of first batch: %v", r)
	}
	if r, _ := produce(1, 0, 20, 24).(error); !errors.Is(r, ErrOutOfOrderSequence) {
		t.Fatalf("gap in sequence: %v", r)
	}
	if r, _ := produce(7, 0, 0, 0).(error); !errors.Is(r, ErrUnknownProducerID) {
		t.Fatalf("unknown producer: %v", r)
	}
	bump, _ := json.Marshal(initProducerEntry{PID: 1, Epoch: 0})
	seq++
	if r := s.Apply(seq, commitlog.Entry{Type: TypeInitProducer, Data: bump}); r != (ProducerID{ID: 1, Epoch: 1}) {
		t.Fatalf("epoch bump: %v", r)
	}
	if r, _ := produce(1, 0, 10, 10).(error); !errors.Is(r, ErrInvalidProducerEpoch) {
		t.Fatalf("stale epoch: %v", r)
	}
	if r := produce(1, 1, 0, 0); r != (ProduceResult{Base: 10}) {
		t.Fatalf("new epoch restarts: %v", r)
	}
	if p := s.topics["t"].Partitions[0]; p.End != 11 {
		t.Fatalf("end offset %d, want 11 (duplicates must not append)", p.End)
	}
}

func TestCompactSwapsOnlyAnExactRun(t *testing.T) {
	s := newState()
	data, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 1, RetentionMs: -1, RetentionBytes: -1}})
	s.Apply(1, commitlog.Entry{Type: TypeCreateTopic, Data: data})
	for i := range 6 {
		pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: 0, Count: 10, MaxTs: int64(i), AppendMs: int64(i)})
		s.Apply(uint64(i+2), commitlog.Entry{Type: TypeProduce, Data: pe, Ref: commitlog.Ref{Key: fmt.Sprintf("chunks/%d", i), Len: 100}})
	}
	compact := func(base, end int64, segs int, size int64) any {
		ce, _ := json.Marshal(compactEntry{Topic: "t", ID: 1, Partition: 0, Base: base, End: end, Segments: segs})
		return s.Apply(20, commitlog.Entry{Type: TypeCompact, Data: ce, Ref: commitlog.Ref{Key: "chunks/merged", Len: size}})
	}
	for _, bad := range []struct {
		base, end int64
		segs      int
		size      int64
	}{
		{5, 30, 3, 300},  // base inside a segment
		{10, 30, 3, 300}, // end does not match the run
		{10, 40, 3, 299}, // size differs
		{10, 40, 1, 100}, // a run of one
		{50, 70, 2, 200}, // past the end of the index
	} {
		if r := compact(bad.base, bad.end, bad.segs, bad.size); r == nil {
			t.Fatalf("compaction %+v applied", bad)
		}
	}
	if r := compact(10, 40, 3, 300); r != nil {
		t.Fatalf("exact run: %v", r)
	}
	p := s.topics["t"].Partitions[0]
	if len(p.Segments) != 4 || p.Segments[1].Ref.Key != "chunks/merged" || p.Segments[1].Count != 30 || p.Segments[1].MaxTs != 3 || p.Bytes != 600 {
		t.Fatalf("after compaction: %+v", p.Segments)
	}
	checkInvariants(t, s)
	// Retention that cut into the run first makes the swap stale.
	tr, _ := json.Marshal(truncateEntry{Topic: "t", ID: 1, Partition: 0, Offset: 50})
	s.Apply(21, commitlog.Entry{Type: TypeTruncate, Data: tr})
	if r := compact(40, 60, 2, 200); r == nil {
		t.Fatal("compaction of a truncated run applied")
	}
}

// A producer that bumps its own epoch (KIP-360) restarts at sequence 0 and
// fences its older epoch, once the fleet has enabled the rule; before,
// the batch is refused as Kafka brokers before KIP-360 did.
func TestIdempotentProducerBumpsItsOwnEpoch(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		s := newState()
		s.UseFeatures(func(name string) bool { return enabled && name == formatEpochBump })
		data, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 1, RetentionMs: -1, RetentionBytes: -1}})
		s.Apply(1, commitlog.Entry{Type: TypeCreateTopic, Data: data})
		init, _ := json.Marshal(initProducerEntry{})
		s.Apply(2, commitlog.Entry{Type: TypeInitProducer, Data: init})
		seq := uint64(3)
		produce := func(epoch int16, first, last int32) any {
			pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: 0, Count: int64(last-first) + 1, PID: 1, Epoch: epoch, FirstSeq: first, LastSeq: last})
			seq++
			return s.Apply(seq, commitlog.Entry{Type: TypeProduce, Data: pe, Ref: commitlog.Ref{Key: "k", Len: 1}})
		}
		if r := produce(0, 0, 4); r != (ProduceResult{Base: 0}) {
			t.Fatalf("first batch: %v", r)
		}
		r := produce(1, 0, 2)
		if !enabled {
			if err, _ := r.(error); !errors.Is(err, ErrInvalidProducerEpoch) {
				t.Fatalf("bumped epoch before the rule was enabled: %v", r)
			}
			continue
		}
		if r != (ProduceResult{Base: 5}) {
			t.Fatalf("batch at a self-bumped epoch: %v", r)
		}
		if err, _ := produce(0, 5, 5).(error); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("the old epoch is not fenced: %v", err)
		}
		if err, _ := produce(2, 7, 7).(error); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("a higher epoch not starting at 0: %v", err)
		}
		if r := produce(1, 3, 3); r != (ProduceResult{Base: 8}) {
			t.Fatalf("next batch of the new epoch: %v", r)
		}
		if s.producers[1] != 1 {
			t.Fatalf("producer epoch %d, want 1", s.producers[1])
		}
	}
}
