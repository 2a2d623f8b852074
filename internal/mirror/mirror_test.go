package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"

	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

func TestPattern(t *testing.T) {
	p := mustPattern(t, "telemetry, events-*,/sensor-[0-9]+/")
	for topic, want := range map[string]bool{
		"telemetry": true, "telemetry2": false, "events-a": true, "events": false,
		"sensor-12": true, "sensor-x": false, "xsensor-1": false,
	} {
		if p.Match(topic) != want {
			t.Errorf("%q matches %v, want %v", topic, !want, want)
		}
	}
	for _, bad := range []string{"", " , ", "/a(/", "[a"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func apply(s *state, seq uint64, pe positionEntry) any {
	data, _ := json.Marshal(pe)
	return s.Apply(seq, commitlog.Entry{Type: TypePosition, Data: data})
}

// The guard applies only on the positions it was built on, all of them or
// none, and survives a snapshot.
func TestPositionGuard(t *testing.T) {
	s := newState()
	first := positionEntry{Source: "edge", Parts: []partAdvance{{Topic: "t", P: 0, From: -1, Start: 5, To: 10, End: 12}}}
	if r := apply(s, 1, first); r != nil {
		t.Fatal(r)
	}
	if r := apply(s, 2, first); !errors.Is(r.(error), ErrConflict) {
		t.Fatalf("a first commit applied twice: %v", r)
	}
	// One stale part refuses the whole entry.
	mixed := positionEntry{Source: "edge", Parts: []partAdvance{{Topic: "t", P: 0, From: 10, To: 20}, {Topic: "t", P: 1, From: 3, To: 4}}}
	if r := apply(s, 3, mixed); !errors.Is(r.(error), ErrConflict) {
		t.Fatalf("a stale part applied: %v", r)
	}
	if p := s.pos["edge"][tp{"t", 0}]; p.Next != 10 || p.Mirrored != 5 {
		t.Fatalf("position after a refused entry: %+v", p)
	}
	next := positionEntry{Source: "edge", Parts: []partAdvance{{Topic: "t", P: 0, From: 10, To: 30, Skipped: 4, End: 30}, {Topic: "t", P: 1, From: -1, To: 2}}}
	if r := apply(s, 4, next); r != nil {
		t.Fatal(r)
	}
	if r := apply(s, 5, positionEntry{Source: "other", Parts: []partAdvance{{Topic: "t", P: 0, From: -1, To: 7}}}); r != nil {
		t.Fatal("another source's position is its own:", r)
	}
	for _, bad := range []positionEntry{
		{Source: "", Parts: []partAdvance{{Topic: "t", From: -1, To: 1}}},
		{Source: "edge"},
		{Source: "edge", Parts: []partAdvance{{Topic: "t", P: 0, From: 30, To: 29}}},
		{Source: "edge", Parts: []partAdvance{{Topic: "t", P: 0, From: 30, To: 31}, {Topic: "t", P: 0, From: 30, To: 31}}},
	} {
		if _, ok := apply(s, 6, bad).(error); !ok {
			t.Fatalf("malformed entry %+v applied", bad)
		}
	}
	if r := s.Apply(7, commitlog.Entry{Type: TypePosition, Data: []byte("{")}); r == nil {
		t.Fatal("undecodable entry applied")
	}
	b, err := s.Snapshot()()
	if err != nil {
		t.Fatal(err)
	}
	r := newState()
	if err := r.Restore(b); err != nil {
		t.Fatal(err)
	}
	got, want := r.list(), s.list()
	if len(got) != 3 || got[0].Next != 30 || got[0].Skipped != 4 || got[0].Mirrored != 21 || got[0].Seq != 4 {
		t.Fatalf("restored %+v, want %+v", got, want)
	}
	if b2, _ := r.Snapshot()(); string(b2) != string(b) {
		t.Fatal("snapshot not deterministic")
	}
}

// A mirror copies every record once with its source offset, follows
// partitions added and new matching topics, and leaves other topics alone.
func TestMirrorCopiesTopics(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			dstURL := "file://" + t.TempDir()
			if backend == "s3" {
				dstURL = s3URL(t)
			}
			src := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
			dst := mustOpenSide(t, openURL(t, dstURL))
			ctx := context.Background()
			for _, tc := range []stream.TopicConfig{{Name: "telemetry", Partitions: 3}, {Name: "private", Partitions: 1}} {
				if err := src.streams.CreateTopic(ctx, tc); err != nil {
					t.Fatal(err)
				}
			}
			for p := range int32(3) {
				produce(t, src.streams, "telemetry", p, 0, 50+int(p))
			}
			produce(t, src.streams, "private", 0, 0, 5)
			reg := prometheus.NewRegistry()
			m := runMirror(t, Config{Source: "edge-1", Topics: mustPattern(t, "telemetry,events-*"), From: src.streams, To: dst.streams, ToMirror: dst.mirror, MaxBytes: 2000, Poll: 20 * time.Millisecond})
			src.mirror.Attach(m)
			if err := reg.Register(&collector{src.mirror}); err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, src.streams, dst, "edge-1", "telemetry", 30*time.Second)

			// More records, a partition added, a new matching topic.
			if err := src.streams.AlterTopic(ctx, "telemetry", 4, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := src.streams.CreateTopic(ctx, stream.TopicConfig{Name: "events-a", Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			for p := range int32(4) {
				produce(t, src.streams, "telemetry", p, 100, 20)
			}
			produce(t, src.streams, "events-a", 1, 0, 10)
			waitCaughtUp(t, src.streams, dst, "edge-1", "telemetry", 30*time.Second)
			waitCaughtUp(t, src.streams, dst, "edge-1", "events-a", 30*time.Second)
			if n := checkMirrored(t, src.streams, dst.streams, "edge-1", "telemetry", nil); n != 50+51+52+80 {
				t.Fatalf("%d telemetry records mirrored", n)
			}
			checkMirrored(t, src.streams, dst.streams, "edge-1", "events-a", nil)
			if ti, err := dst.streams.Topic("telemetry"); err != nil || ti.Partitions != 4 {
				t.Fatalf("destination telemetry: %+v, %v", ti, err)
			}
			if _, err := dst.streams.Topic("private"); !errors.Is(err, stream.ErrUnknownTopic) {
				t.Fatalf("a topic the pattern does not match was mirrored: %v", err)
			}

			// Status: caught up; positions in the destination's log.
			st := m.Status()
			if !st.Connected || len(st.Partitions) != 6 {
				t.Fatalf("status %+v", st)
			}
			for _, p := range st.Partitions {
				if p.LagRecords != 0 || p.LagBytes != 0 || p.LagSeconds != 0 || p.Next != p.SourceEnd {
					t.Fatalf("caught-up partition with lag: %+v", p)
				}
			}
			// The counters follow each commit's outcome, which the
			// destination's state shows first.
			for deadline := time.Now().Add(10 * time.Second); m.Stats.Records.Load() < 50+51+52+80+10 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if got := testutil.ToFloat64(counterOf(t, reg, "twoway_mirror_records_total")); got != 50+51+52+80+10 {
				t.Fatalf("twoway_mirror_records_total %v", got)
			}
			rec := httptest.NewRecorder()
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/mirrors", dst.mirror.serveStatus)
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/mirrors", nil))
			var rep StatusReport
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err, rec.Body.String())
			}
			// events-a/0 has no records, so no position yet.
			if len(rep.Positions) != 5 || rep.Positions[0].Source != "edge-1" || rep.Positions[0].Topic != "events-a" {
				t.Fatalf("positions %+v", rep.Positions)
			}
			if p := rep.Positions[1]; p.Topic != "telemetry" || p.Partition != 0 || p.Next != 70 || p.Mirrored != 70 || p.End != 70 {
				t.Fatalf("telemetry/0 position %+v", p)
			}

			// Lag while the mirror is stopped shows records, bytes and age.
			lag := Lag(src.streams, mustPattern(t, "telemetry"), map[tp]Position{{"telemetry", 0}: {Next: 67}}, time.Now().Add(time.Minute))
			if l := lag[0]; l.LagRecords != 3 || l.LagBytes <= 0 || l.LagSeconds < 59 {
				t.Fatalf("lag %+v", l)
			}
		})
	}
}

func counterOf(t testing.TB, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := mf.GetMetric()[0].GetCounter().GetValue()
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return v })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// Two mirrors of the same source at once never copy a record twice.
func TestTwoMirrorsAtOnce(t *testing.T) {
	src := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	dstURL := "file://" + t.TempDir()
	dst := mustOpenSide(t, openURL(t, dstURL))
	dst2 := mustOpenSide(t, openURL(t, dstURL)) // the second mirror's own view of the destination
	ctx := context.Background()
	if err := src.streams.CreateTopic(ctx, stream.TopicConfig{Name: "telemetry", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 40 {
			produce(t, src.streams, "telemetry", int32(i%2), i*10, 10)
		}
	})
	m1 := runMirror(t, Config{Source: "edge", Topics: mustPattern(t, "telemetry"), From: src.streams, To: dst.streams, ToMirror: dst.mirror, MaxBytes: 500, Poll: 5 * time.Millisecond})
	m2 := runMirror(t, Config{Source: "edge", Topics: mustPattern(t, "telemetry"), From: src.streams, To: dst2.streams, ToMirror: dst2.mirror, MaxBytes: 500, Poll: 5 * time.Millisecond})
	wg.Wait()
	waitCaughtUp(t, src.streams, dst, "edge", "telemetry", 60*time.Second)
	if n := checkMirrored(t, src.streams, dst.streams, "edge", "telemetry", nil); n != 400 {
		t.Fatalf("%d records", n)
	}
	t.Logf("commits %d+%d, conflicts %d+%d", m1.Stats.Commits.Load(), m2.Stats.Commits.Load(), m1.Stats.Conflicts.Load(), m2.Stats.Conflicts.Load())
	if m1.Stats.Conflicts.Load()+m2.Stats.Conflicts.Load() == 0 {
		t.Log("the two mirrors never raced (the check above still holds)")
	}
}

// Records the source's retention removed before they were mirrored are
// skipped with a warning and counted; the rest arrive once.
func TestRetentionSkips(t *testing.T) {
	src := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	dst := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	ctx := context.Background()
	if err := src.streams.CreateTopic(ctx, stream.TopicConfig{Name: "telemetry", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produce(t, src.streams, "telemetry", 0, 0, 10)
	cfg := Config{Source: "edge", Topics: mustPattern(t, "telemetry"), From: src.streams, To: dst.streams, ToMirror: dst.mirror, Poll: 5 * time.Millisecond}
	m, stop := startMirror(t, cfg)
	waitCaughtUp(t, src.streams, dst, "edge", "telemetry", 30*time.Second)
	stop()
	if m.Stats.Records.Load() != 10 {
		t.Fatalf("%d records mirrored", m.Stats.Records.Load())
	}
	// While no mirror runs, the source writes and its retention removes
	// what was not mirrored yet: six batches of ten, the first three cut.
	for i := range 5 {
		produce(t, src.streams, "telemetry", 0, 10+i*10, 10)
	}
	ti, _ := src.streams.Topic("telemetry")
	keep := ti.PartitionsInfo[0].Bytes * 5 / 12 // two and a half batches of six
	if err := src.streams.AlterTopic(ctx, "telemetry", 0, nil, &keep); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ti, _ = src.streams.Topic("telemetry")
		if ti.PartitionsInfo[0].Start > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retention did not truncate the source")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if start := ti.PartitionsInfo[0].Start; start != 30 {
		t.Fatalf("retention cut at %d, the test expects 30", start)
	}
	m2 := runMirror(t, cfg)
	waitCaughtUp(t, src.streams, dst, "edge", "telemetry", 30*time.Second)
	got := readAll(t, dst.streams, "telemetry", 0)
	if len(got) != 10+30 {
		t.Fatalf("%d records at the destination, want 40", len(got))
	}
	if h := header(got[10], HeaderSource); h != "telemetry/0/30" {
		t.Fatalf("first record after the gap is from %s", h)
	}
	checkMirrored(t, src.streams, dst.streams, "edge", "telemetry", map[int32]int64{0: 30})
	if m2.Stats.Skipped.Load() != 20 {
		t.Fatalf("skipped %d, want 20", m2.Stats.Skipped.Load())
	}
	if p := dst.mirror.positionsOf("edge")[tp{"telemetry", 0}]; p.Skipped != 20 || p.Mirrored != 40 || p.Next != 60 {
		t.Fatalf("position %+v", p)
	}
}

// --rate paces the mirror: a backlog of 1 MiB at 256 KiB/s (one second of
// burst) cannot drain in less than three seconds. Only the lower bound is
// checked; a slow machine may take longer.
func TestRateLimit(t *testing.T) {
	src := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	dst := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	ctx := context.Background()
	if err := src.streams.CreateTopic(ctx, stream.TopicConfig{Name: "telemetry", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("x", 1024)
	for i := range 16 {
		recs := make([]records.Record, 64)
		for j := range recs {
			recs[j] = records.Record{Timestamp: 1, Value: []byte(value)}
		}
		if _, _, err := src.streams.Produce(ctx, "telemetry", []stream.Batch{{Partition: int32(i % 2), Records: recs}}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	m := runMirror(t, Config{Source: "edge", Topics: mustPattern(t, "telemetry"), From: src.streams, To: dst.streams, ToMirror: dst.mirror, Rate: 256 << 10, Poll: 5 * time.Millisecond})
	waitCaughtUp(t, src.streams, dst, "edge", "telemetry", 60*time.Second)
	if took := time.Since(start); took < 2500*time.Millisecond {
		t.Fatalf("1 MiB mirrored in %v at a rate of 256 KiB/s", took)
	}
	// The counters follow the commit's outcome, which the destination's
	// state shows first.
	for deadline := time.Now().Add(10 * time.Second); m.Stats.Bytes.Load() < 1<<20 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if b := m.Stats.Bytes.Load(); b < 1<<20 || b > 1<<20+8<<10 || m.Stats.Commits.Load() < 12 {
		t.Fatalf("%d bytes in %d commits", m.Stats.Bytes.Load(), m.Stats.Commits.Load())
	}
	checkMirrored(t, src.streams, dst.streams, "edge", "telemetry", nil)
}

type denyAll struct{}

func (denyAll) Check(principal, host, op, res, name string) error { return authz.ErrDenied }

// With authorization on, GET /v1/mirrors needs describe on the cluster.
func TestStatusNeedsDescribe(t *testing.T) {
	dst := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/mirrors", nil)
	dst.mirror.serveStatus(rec, req.WithContext(authz.With(req.Context(), "User:bob", "127.0.0.1", denyAll{})))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"forbidden"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	dst.mirror.serveStatus(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"positions":[]`) {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}
