package stream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

// Many small commits leave many index segments; compaction rewrites them so
// the index (and the checkpoint) stays small, every record reads back the
// same, and the commits that held inline data become collectable.
func TestCompactionKeepsRecordsAndShrinksIndex(t *testing.T) {
	ctx := context.Background()
	b := fileBucket(t)
	opts := Options{
		Log: commitlog.Options{
			Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 10 * time.Millisecond,
			Grace: 400 * time.Millisecond, LeaseDuration: 150 * time.Millisecond,
			CheckpointCommits: 20, CheckpointInterval: 50 * time.Millisecond,
			Logger: quietLogger(),
		},
		Compact: CompactOptions{Interval: 30 * time.Millisecond, Age: time.Millisecond, MinSegments: 8, Target: 4 << 10},
	}
	s, err := Open(ctx, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, TopicConfig{Name: "c", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var want [2][]string
	for i := range 200 {
		p := int32(i % 2)
		v := fmt.Sprintf("record-%03d", i)
		if _, errs, err := s.Produce(ctx, "c", []Batch{{Partition: p, Records: []records.Record{{Value: []byte(v)}}}}); err != nil || errs[0] != nil {
			t.Fatal(err, errs)
		}
		want[p] = append(want[p], v)
	}
	segments := func() (n int) {
		s.log.View(s.st, func() {
			for _, p := range s.st.topics["c"].Partitions {
				n += len(p.Segments)
			}
		})
		return n
	}
	deadline := time.Now().Add(15 * time.Second)
	for segments() > 60 {
		if time.Now().After(deadline) {
			t.Fatalf("index still has %d segments for 200 produces", segments())
		}
		time.Sleep(20 * time.Millisecond)
	}
	check := func(svc *Service) {
		t.Helper()
		for p := int32(0); p < 2; p++ {
			recs, _, err := svc.Read(ctx, "c", p, 0, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(want[p]) {
				t.Fatalf("partition %d: %d records, want %d", p, len(recs), len(want[p]))
			}
			for i, r := range recs {
				if r.Offset != int64(i) || string(r.Value) != want[p][i] {
					t.Fatalf("partition %d record %d: offset %d value %q, want %q", p, i, r.Offset, r.Value, want[p][i])
				}
			}
		}
	}
	check(s)
	// The commits whose inline data was rewritten are collected.
	for {
		keys, err := bucket.Keys(ctx, b, commitlog.LogPrefix, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) < 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d commit objects remain after compaction and GC", len(keys))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A new agent, starting from a checkpoint of the compacted index, reads
	// the same records.
	s2, err := Open(ctx, b, Options{Log: commitlog.Options{Logger: quietLogger(), NoJanitor: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2)
	t.Logf("segments after compaction: %d (from 200); rewritten %d bytes", segments(), s.log.Stats.RewrittenBytes.Load())
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
