package stream

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

func TestTopicConfigSpecs(t *testing.T) {
	if !sort.SliceIsSorted(TopicConfigSpecs, func(i, j int) bool { return TopicConfigSpecs[i].Name < TopicConfigSpecs[j].Name }) {
		t.Fatal("TopicConfigSpecs must be sorted by name (LookupConfig searches it)")
	}
	for _, spec := range TopicConfigSpecs {
		if v, err := NormalizeConfig(spec.Name, spec.Default); err != nil || v != spec.Default {
			t.Errorf("%s: its default %q normalizes to %q, %v", spec.Name, spec.Default, v, err)
		}
		if spec.Doc == "" {
			t.Errorf("%s has no documentation", spec.Name)
		}
	}
	for _, bad := range [][2]string{
		{"no.such.config", "1"}, {"cleanup.policy", "compacted"}, {"cleanup.policy", ""}, {"max.message.bytes", "-1"},
		{"message.timestamp.type", "Now"}, {"min.insync.replicas", "0"}, {"preallocate", "yes"}, {"min.cleanable.dirty.ratio", "2"},
		{"retention.ms", "0"}, {"segment.bytes", "10"},
	} {
		_, err := NormalizeConfig(bad[0], bad[1])
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%q: %v, want an invalid config error naming it", bad[0], bad[1], err)
		}
	}
	for in, want := range map[[2]string]string{
		{"cleanup.policy", " Compact , delete"}:     "compact,delete",
		{"cleanup.policy", "delete,delete"}:         "delete",
		{"message.timestamp.type", "logappendtime"}: "LogAppendTime",
		{"unclean.leader.election.enable", "TRUE"}:  "true",
	} {
		if got, err := NormalizeConfig(in[0], in[1]); err != nil || got != want {
			t.Errorf("%s=%q normalizes to %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
	var c TopicConfig
	c.RetentionMs, c.RetentionBytes = -1, -1
	v := "compact,delete"
	if err := c.Set("cleanup.policy", &v); err != nil || !c.Compacted() || !c.Deletes() {
		t.Fatalf("compact,delete: %v %+v", err, c)
	}
	if err := c.Set("cleanup.policy", nil); err != nil || c.Compacted() || !c.Deletes() || len(c.Configs) != 0 {
		t.Fatalf("back to the default: %v %+v", err, c)
	}
}

// Encoding 2 wrote a partition's first segment base as 0; a partition that
// retention truncated restores with its segments in place all the same.
func TestSnapshot2RestoresTruncatedPartitions(t *testing.T) {
	s := newState()
	mk := func(typ uint16, v any, ref commitlog.Ref) commitlog.Entry {
		e := commitlog.Entry{Type: typ, Data: mustJSON(v)}
		e.Ref = ref
		return e
	}
	entries := []commitlog.Entry{mk(TypeCreateTopic, createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 1, RetentionMs: -1, RetentionBytes: -1}}, commitlog.Ref{})}
	for i := range 5 {
		entries = append(entries, mk(TypeProduce, produceEntry{Topic: "t", Count: 3, MaxTs: int64(i), AppendMs: int64(i)}, commitlog.Ref{Key: fmt.Sprintf("chunks/%d", i), Len: 10}))
	}
	entries = append(entries, mk(TypeTruncate, truncateEntry{Topic: "t", ID: 1, Offset: 7}, commitlog.Ref{}))
	applyAll(s, entries, 0)
	if got := s.topics["t"].Partitions[0].Segments[0].Base; got != 6 {
		t.Fatalf("first segment after truncation at %d, want 6", got)
	}
	want, _ := s.capture().encodeJSON()
	for _, v := range []int{2, 3} {
		r := newState()
		if err := r.Restore(s.capture().encodeBinary(v)); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.capture().encodeJSON(); string(got) != string(want) {
			t.Fatalf("encoding %d round trip:\n%s\nwant\n%s", v, got, want)
		}
	}
}

// A service on a directory with the gated types enabled at once.
func configService(t *testing.T, janitor bool, compact CompactOptions) *Service {
	t.Helper()
	return configServiceOn(t, fileBucket(t), janitor, compact)
}

func configServiceOn(t *testing.T, b bucket.Bucket, janitor bool, compact CompactOptions) *Service {
	t.Helper()
	s, err := Open(context.Background(), b, Options{
		Log: commitlog.Options{
			Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 10 * time.Millisecond,
			Logger: quietLogger(), NoJanitor: !janitor,
			LeaseDuration: 300 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond, CheckpointCommits: 50,
		},
		Compact: compact,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func compactedTopic(t *testing.T, s *Service, name string, configs ...string) {
	t.Helper()
	cfg := TopicConfig{Name: name, Partitions: 1, RetentionMs: -1, RetentionBytes: -1}
	for i := 0; i+1 < len(configs); i += 2 {
		if err := cfg.Set(configs[i], &configs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateTopic(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func produceKV(t *testing.T, s *Service, topic string, kvs ...string) []int64 {
	t.Helper()
	var recs []records.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		r := records.Record{Key: []byte(kvs[i])}
		if kvs[i+1] != "<nil>" {
			r.Value = []byte(kvs[i+1])
		}
		recs = append(recs, r)
	}
	bases, errs, err := s.Produce(context.Background(), topic, []Batch{{Partition: 0, Records: recs}})
	if err != nil || errs[0] != nil {
		t.Fatalf("produce: %v %v", err, errs)
	}
	out := make([]int64, len(recs))
	for i := range out {
		out[i] = bases[0] + int64(i)
	}
	return out
}

func readTopic(t *testing.T, s *Service, topic string, from int64) []records.Record {
	t.Helper()
	var out []records.Record
	for {
		recs, res, err := s.Read(context.Background(), topic, 0, from, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
		if len(recs) == 0 || recs[len(recs)-1].Offset+1 >= res.HighWatermark {
			return out
		}
		from = recs[len(recs)-1].Offset + 1
	}
}

// Key compaction keeps each key's latest record at its offset (gaps where
// the others were), removes old tombstones, never touches the newest
// segment, and a read from inside a gap gets the next record.
func TestKeyCompactionKeepsLatestPerKeyAtItsOffset(t *testing.T) {
	ctx := context.Background()
	s := configService(t, false, CompactOptions{Disabled: true})
	compactedTopic(t, s, "kv", "cleanup.policy", "compact", "delete.retention.ms", "0", "min.cleanable.dirty.ratio", "0")
	o := produceKV(t, s, "kv", "a", "1", "b", "1", "a", "2")        // offsets 0 1 2
	o = append(o, produceKV(t, s, "kv", "c", "1", "b", "<nil>")...) // 3 4: b deleted
	o = append(o, produceKV(t, s, "kv", "a", "3")...)               // 5
	o = append(o, produceKV(t, s, "kv", "d", "1", "a", "4")...)     // 6 7: the head
	if o[len(o)-1] != 7 {
		t.Fatalf("offsets %v", o)
	}
	// Keyless records are refused, as Kafka does on a compacted topic.
	_, errs, err := s.Produce(ctx, "kv", []Batch{{Partition: 0, Records: []records.Record{{Value: []byte("x")}}}})
	if err == nil && errs == nil {
		t.Fatal("a record without a key went into a compacted topic")
	}
	if e := errors.Join(err, errors.Join(errs...)); !errors.Is(e, ErrNoKey) {
		t.Fatalf("keyless produce: %v", e)
	}
	time.Sleep(5 * time.Millisecond) // tombstones must be older than delete.retention.ms=0
	n, err := s.KeyCompact(ctx)
	if err != nil || n != 1 {
		t.Fatalf("key compaction: %d, %v", n, err)
	}
	got := readTopic(t, s, "kv", 0)
	var offs []string
	for _, r := range got {
		offs = append(offs, fmt.Sprintf("%d:%s=%s", r.Offset, r.Key, r.Value))
	}
	// c@3 is the only survivor of the run (a@5 is superseded by a@7 in the
	// head, b's tombstone is old); the head stays whole.
	if want := "3:c=1 6:d=1 7:a=4"; strings.Join(offs, " ") != want {
		t.Fatalf("after compaction: %s, want %s", strings.Join(offs, " "), want)
	}
	// A position inside a gap reads on from the next record.
	if recs, _, err := s.Read(ctx, "kv", 0, 1, 1, 0); err != nil || len(recs) != 1 || recs[0].Offset != 3 {
		t.Fatalf("read from offset 1 (removed): %v %v", recs, err)
	}
	if recs, _, err := s.Read(ctx, "kv", 0, 4, 1, 0); err != nil || len(recs) != 1 || recs[0].Offset != 6 {
		t.Fatalf("read from offset 4 (removed): %v %v", recs, err)
	}
	// A fetch of one batch at a time from inside the gap after c@3 (its
	// batch spanned 3 and 4) skips that batch: it holds nothing at or
	// above 4, and a reader going by records would not move on.
	res, err := s.Fetch(ctx, "kv", 0, 4, 1, 0)
	if err != nil || len(res.Batches) == 0 {
		t.Fatalf("fetch from offset 4: %v %v", res, err)
	}
	if recs, _, err := records.Decode(res.Batches[0], nil); err != nil || recs[0].Offset != 6 {
		t.Fatalf("fetch from offset 4 starts with %v, %v; want offset 6", recs, err)
	}
	ti, _ := s.Topic("kv")
	if p := ti.PartitionsInfo[0]; p.Start != 0 || p.End != 8 {
		t.Fatalf("partition offsets changed: %+v", p)
	}
	// Nothing more to do until new data arrives; then the next pass
	// compacts the compacted segment with it, and a fresh tombstone stays.
	if n, err := s.KeyCompact(ctx); err != nil || n != 0 {
		t.Fatalf("second pass without new data: %d, %v", n, err)
	}
	retention := "3600000"
	cfg := ti.TopicConfig
	if err := cfg.Set("delete.retention.ms", &retention); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTopicConfigs(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	produceKV(t, s, "kv", "c", "<nil>") // 8
	produceKV(t, s, "kv", "e", "1")     // 9: the head
	if n, err := s.KeyCompact(ctx); err != nil || n != 1 {
		t.Fatalf("third pass: %d, %v", n, err)
	}
	offs = nil
	for _, r := range readTopic(t, s, "kv", 0) {
		offs = append(offs, fmt.Sprintf("%d:%s=%s", r.Offset, r.Key, r.Value))
	}
	if want := "6:d=1 7:a=4 8:c= 9:e=1"; strings.Join(offs, " ") != want {
		t.Fatalf("after the third pass: %s, want %s", strings.Join(offs, " "), want)
	}
}

// max.message.bytes bounds each batch; LogAppendTime stamps batches with
// the append time.
func TestProduceHonoursTopicConfigs(t *testing.T) {
	ctx := context.Background()
	s := configService(t, false, CompactOptions{Disabled: true})
	compactedTopic(t, s, "small", "max.message.bytes", "200")
	compactedTopic(t, s, "stamped", "message.timestamp.type", "LogAppendTime")
	big := records.Encode([]records.Record{{Value: make([]byte, 300)}})
	_, errs, err := s.Produce(ctx, "small", []Batch{{Partition: 0, Raw: big}})
	if e := errors.Join(err, errors.Join(errs...)); !errors.Is(e, ErrTooLarge) || !strings.Contains(e.Error(), "max.message.bytes") {
		t.Fatalf("a batch over max.message.bytes: %v", e)
	}
	ok := records.Encode([]records.Record{{Value: make([]byte, 50)}})
	if _, errs, err := s.Produce(ctx, "small", []Batch{{Partition: 0, Raw: ok}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	before := time.Now().UnixMilli()
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	raw := records.Encode([]records.Record{{Key: []byte("k"), Value: []byte("v"), Timestamp: old}})
	if _, errs, err := s.Produce(ctx, "stamped", []Batch{{Partition: 0, Raw: raw}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	res, err := s.Fetch(ctx, "stamped", 0, 0, 1<<20, 0)
	if err != nil || len(res.Batches) != 1 {
		t.Fatal(err, res)
	}
	recs, m, err := records.Decode(res.Batches[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Attributes&records.AttrLogAppendTime == 0 || m.MaxTimestamp < before || recs[0].Timestamp != m.MaxTimestamp {
		t.Fatalf("LogAppendTime: attributes %x, max timestamp %d (produced after %d), record %d", m.Attributes, m.MaxTimestamp, before, recs[0].Timestamp)
	}
	if off, _, found, err := s.OffsetForTimestamp(ctx, "stamped", 0, before); err != nil || !found || off != 0 {
		t.Fatalf("offset for the append time: %d %v %v", off, found, err)
	}
}

// Key compaction racing producers, retention (compact,delete) and index
// compaction, all run by the janitor: every record read is the acknowledged
// record of its offset, in order, and no acknowledged record is lost that
// compaction may not remove: none in the active head, none that is its
// key's latest and at or above the log start.
func TestKeyCompactionRacingProducersAndRetention(t *testing.T) {
	t.Run("compact", func(t *testing.T) {
		raceCompaction(t, false, "cleanup.policy", "compact", "min.cleanable.dirty.ratio", "0.2", "delete.retention.ms", "3600000")
	})
	t.Run("compact,delete", func(t *testing.T) {
		raceCompaction(t, true, "cleanup.policy", "compact,delete", "retention.bytes", "8000",
			"min.cleanable.dirty.ratio", "0.2", "delete.retention.ms", "3600000")
	})
}

func raceCompaction(t *testing.T, retention bool, configs ...string) {
	ctx := context.Background()
	s := configService(t, true, CompactOptions{Interval: 15 * time.Millisecond, Age: time.Millisecond, MinSegments: 4, Target: 8 << 10})
	compactedTopic(t, s, "race", configs...)
	type acked struct {
		key, value string
		tomb       bool
	}
	var mu sync.Mutex
	acks := map[int64]acked{}
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; time.Now().Before(stop); i++ {
				var recs []records.Record
				var want []acked
				for range 1 + rng.IntN(5) {
					a := acked{key: fmt.Sprintf("w%d-k%d", w, rng.IntN(40)), value: fmt.Sprintf("w%d-%d-%s", w, i, strings.Repeat("x", rng.IntN(200)))}
					r := records.Record{Key: []byte(a.key), Value: []byte(a.value)}
					if rng.IntN(10) == 0 {
						a.tomb, a.value, r.Value = true, "", nil
					}
					recs = append(recs, r)
					want = append(want, a)
				}
				bases, errs, err := s.Produce(ctx, "race", []Batch{{Partition: 0, Records: recs}})
				if err != nil || errs[0] != nil {
					t.Errorf("produce: %v %v", err, errs)
					return
				}
				mu.Lock()
				for j, a := range want {
					acks[bases[0]+int64(j)] = a
				}
				mu.Unlock()
			}
		}()
	}
	// Watch retention and compaction happen while producers write, and
	// for a while after.
	var sawCompacted, sawTruncated bool
	watch := func() {
		s.log.View(s.st, func() {
			p := s.st.topics["race"].Partitions[0]
			sawTruncated = sawTruncated || p.Start > 0
			for _, seg := range p.Segments {
				sawCompacted = sawCompacted || seg.Compacted
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(5 * time.Millisecond):
			watch()
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for watch(); !sawCompacted || sawTruncated != retention; watch() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: compacted %v, truncated by retention %v", sawCompacted, sawTruncated)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a few more passes over the final state
	var headFrom, start int64
	s.log.View(s.st, func() {
		p := s.st.topics["race"].Partitions[0]
		start = p.Start
		headFrom = p.Start
		for _, seg := range p.Segments {
			if seg.Compacted {
				headFrom = seg.Base + seg.Count
			}
		}
	})
	got := readTopic(t, s, "race", start)
	seen := map[int64]bool{}
	prev := int64(-1)
	for _, r := range got {
		a, ok := acks[r.Offset]
		switch {
		case !ok:
			t.Fatalf("offset %d was never acknowledged", r.Offset)
		case r.Offset <= prev:
			t.Fatalf("offset %d after %d", r.Offset, prev)
		case string(r.Key) != a.key || string(r.Value) != a.value || (r.Value == nil) != a.tomb:
			t.Fatalf("offset %d holds %s=%q, acknowledged %s=%q", r.Offset, r.Key, r.Value, a.key, a.value)
		}
		seen[r.Offset] = true
		prev = r.Offset
	}
	latest := map[string]int64{}
	for off, a := range acks {
		if cur, ok := latest[a.key]; !ok || off > cur {
			latest[a.key] = off
		}
	}
	for off := range acks {
		if off >= headFrom && !seen[off] {
			t.Fatalf("acknowledged offset %d in the active head (from %d) is missing", off, headFrom)
		}
	}
	for key, off := range latest {
		if off >= start && !seen[off] {
			t.Fatalf("the latest record of %s (offset %d, log start %d) is missing", key, off, start)
		}
	}
	t.Logf("%d acknowledged, %d read from log start %d; head from %d", len(acks), len(got), start, headFrom)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Records younger than min.compaction.lag.ms are never compacted away;
// cleanup.policy=compact alone applies no retention.
func TestKeyCompactionWaitsForTheLag(t *testing.T) {
	ctx := context.Background()
	s := configService(t, false, CompactOptions{Disabled: true})
	compactedTopic(t, s, "lag", "cleanup.policy", "compact", "min.compaction.lag.ms", "3600000", "retention.ms", "1", "min.cleanable.dirty.ratio", "0")
	for i := range 5 {
		produceKV(t, s, "lag", "k", fmt.Sprint(i))
	}
	if n, err := s.KeyCompact(ctx); err != nil || n != 0 {
		t.Fatalf("compaction within the lag: %d, %v", n, err)
	}
	time.Sleep(5 * time.Millisecond)
	var entries []commitlog.Entry
	s.log.View(s.st, func() { entries = s.st.Maintain(time.Now()) })
	if len(entries) != 0 {
		t.Fatalf("retention on a compact-only topic: %d truncations", len(entries))
	}
	ti, _ := s.Topic("lag")
	cfg := ti.TopicConfig
	cfg.Configs["min.compaction.lag.ms"] = "0"
	if err := s.SetTopicConfigs(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if n, err := s.KeyCompact(ctx); err != nil || n != 1 {
		t.Fatalf("compaction after the lag: %d, %v", n, err)
	}
	if got := readTopic(t, s, "lag", 0); len(got) != 1 || got[0].Offset != 4 || string(got[0].Value) != "4" {
		t.Fatalf("after compaction: %+v", got)
	}
}

// Key compaction through an object store that fails reads, writes and
// commits (some of them after the write happened): passes fail, nothing
// is lost or changed, and once one succeeds every agent (one started
// afresh too) reads one record per key at its offset.
func TestKeyCompactionUnderFaults(t *testing.T) {
	ctx := context.Background()
	fb := faultbucket.Wrap(fileBucket(t), faultbucket.WithSeed(11))
	s := configServiceOn(t, fb, false, CompactOptions{Disabled: true})
	compactedTopic(t, s, "kv", "cleanup.policy", "compact", "min.cleanable.dirty.ratio", "0")
	acked := map[int64][2]string{}
	final := map[string]string{}
	faults := []faultbucket.Rule{
		{Op: faultbucket.OpGetRange, FailRate: 0.2},
		{Op: faultbucket.OpPut, FailRate: 0.3},
		{Op: faultbucket.OpPutIfAbsent, FailRate: 0.3, UnknownOutcome: true},
	}
	failures := 0
	for round := range 5 {
		// Produce without faults (acknowledgements must be certain), then
		// compact through them.
		if err := fb.SetRules(); err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			var kvs []string
			for j := range 10 {
				k, v := fmt.Sprintf("k%02d", (i*10+j)%50), fmt.Sprintf("v%d-%d-%d", round, i, j)
				kvs = append(kvs, k, v)
				final[k] = v
			}
			for j, off := range produceKV(t, s, "kv", kvs...) {
				acked[off] = [2]string{kvs[2*j], kvs[2*j+1]}
			}
		}
		var end int64
		s.log.View(s.st, func() { end = s.st.topics["kv"].Partitions[0].End })
		if err := fb.SetRules(faults...); err != nil {
			t.Fatal(err)
		}
		// Done once the compacted segment reaches the head.
		compactedTo := func() (to int64) {
			s.log.View(s.st, func() {
				p := s.st.topics["kv"].Partitions[0]
				if seg := p.Segments[0]; seg.Compacted {
					to = seg.Base + seg.Count
				}
			})
			return to
		}
		for compactedTo() < end-10 {
			if _, err := s.KeyCompact(ctx); err != nil {
				failures++
			}
			if failures > 500 {
				t.Fatal("500 failed passes")
			}
			_ = s.Sync(ctx)
		}
	}
	if err := fb.SetRules(); err != nil {
		t.Fatal(err)
	}
	var injected int64
	for _, op := range faultbucket.Ops {
		c := fb.Counts(op)
		injected += c.Failed + c.Unknown
	}
	if injected == 0 {
		t.Fatal("no fault was injected")
	}
	t.Logf("%d faults injected, %d failed passes", injected, failures)
	fresh := configServiceOn(t, fb, false, CompactOptions{Disabled: true})
	for name, svc := range map[string]*Service{"compacting agent": s, "fresh agent": fresh} {
		if err := svc.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		recs := readTopic(t, svc, "kv", 0)
		for _, r := range recs {
			if a := acked[r.Offset]; a[0] != string(r.Key) || a[1] != string(r.Value) {
				t.Fatalf("%s: offset %d holds %s=%s, acknowledged %v", name, r.Offset, r.Key, r.Value, a)
			}
			got[string(r.Key)] = string(r.Value)
		}
		// 50 keys, plus the records of the head (the newest segment) that
		// are not their key's latest.
		if len(got) != len(final) || len(recs) > len(final)+10 {
			t.Fatalf("%s: %d records, %d keys; want %d keys", name, len(recs), len(got), len(final))
		}
		for k, v := range final {
			if got[k] != v {
				t.Fatalf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
}

// Transactional batches are kept whole by key compaction, and their
// records never make an older record of their key obsolete (the
// transaction may have been aborted).
func TestKeyCompactionKeepsTransactionalBatchesWhole(t *testing.T) {
	ctx := context.Background()
	s := configService(t, false, CompactOptions{Disabled: true})
	compactedTopic(t, s, "txn", "cleanup.policy", "compact", "min.cleanable.dirty.ratio", "0")
	produceKV(t, s, "txn", "k", "v1", "j", "old") // 0 1
	txn := records.Encode([]records.Record{{Key: []byte("k"), Value: []byte("v2")}, {Key: []byte("j"), Value: []byte("x")}})
	binary.BigEndian.PutUint16(txn[21:], records.AttrTransactional)
	binary.BigEndian.PutUint32(txn[17:], crc32.Checksum(txn[21:], crc32.MakeTable(crc32.Castagnoli)))
	if _, errs, err := s.Produce(ctx, "txn", []Batch{{Partition: 0, Raw: txn}}); err != nil || errs[0] != nil { // 2 3
		t.Fatal(err, errs)
	}
	produceKV(t, s, "txn", "k", "v3") // 4
	produceKV(t, s, "txn", "z", "1")  // 5: the head
	if n, err := s.KeyCompact(ctx); err != nil || n != 1 {
		t.Fatalf("key compaction: %d, %v", n, err)
	}
	var offs []string
	for _, r := range readTopic(t, s, "txn", 0) {
		offs = append(offs, fmt.Sprintf("%d:%s=%s", r.Offset, r.Key, r.Value))
	}
	if want := "1:j=old 2:k=v2 3:j=x 4:k=v3 5:z=1"; strings.Join(offs, " ") != want {
		t.Fatalf("after compaction: %s, want %s", strings.Join(offs, " "), want)
	}
	res, err := s.Fetch(ctx, "txn", 0, 2, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range res.Batches {
		m, _ := records.ParseMeta(b)
		if m.BaseOffset == 2 && (m.Attributes&records.AttrTransactional == 0 || m.NumRecords != 2) {
			t.Fatalf("the transactional batch came back as %+v", m)
		}
	}
}
