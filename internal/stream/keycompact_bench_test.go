package stream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

// BenchmarkKeyCompaction measures one key compaction of a partition of
// 100k updates over 1k keys (100 segments of 1000 records, and a head of
// one record): reading every
// segment, finding each key's latest offset, rewriting the run and writing
// the new chunk. The baseline, measured in the same run on the same data,
// is index compaction's rewrite of the run (read and concatenate, write the
// chunk); vs-index is key compaction's time over it.
//
//	go test -run XXX -bench KeyCompaction ./internal/stream
func BenchmarkKeyCompaction(b *testing.B) {
	ctx := context.Background()
	bk, err := filebucket.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(ctx, bk, Options{Log: commitlog.Options{Linger: time.Millisecond, Logger: quietLogger(), NoJanitor: true}, Compact: CompactOptions{Disabled: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cfg := TopicConfig{Name: "kv", Partitions: 1, RetentionMs: -1, RetentionBytes: -1, Configs: map[string]string{"cleanup.policy": "compact"}}
	if err := s.CreateTopic(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	for seg := range 100 {
		recs := make([]records.Record, 1000)
		for i := range recs {
			recs[i] = records.Record{Key: fmt.Appendf(nil, "key-%04d", (seg*1000+i)%1000), Value: fmt.Appendf(nil, "value-%d-%d", seg, i), Timestamp: 1}
		}
		if _, errs, err := s.Produce(ctx, "kv", []Batch{{Partition: 0, Records: recs}}); err != nil || errs[0] != nil {
			b.Fatal(err, errs)
		}
	}
	// The head: one record, never compacted.
	if _, errs, err := s.Produce(ctx, "kv", []Batch{{Partition: 0, Records: []records.Record{{Key: []byte("marker"), Value: []byte("m")}}}}); err != nil || errs[0] != nil {
		b.Fatal(err, errs)
	}
	var run keyRun
	var bytes int64
	s.log.View(s.st, func() {
		runs := s.st.planKeyCompaction(time.Now().Add(time.Hour), 1<<30)
		run = runs[0]
		for _, seg := range run.rewrite {
			bytes += seg.Ref.Len
		}
	})
	var key, index time.Duration
	var out int
	for b.Loop() {
		start := time.Now()
		blob, err := s.keyCompactBlob(ctx, run)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.log.PutChunk(ctx, [][]byte{blob}); err != nil {
			b.Fatal(err)
		}
		key += time.Since(start)
		out = len(blob)

		start = time.Now()
		var cat []byte
		for _, seg := range run.rewrite {
			bb, err := s.readBlob(ctx, seg.Ref)
			if err != nil {
				b.Fatal(err)
			}
			cat = append(cat, bb...)
		}
		if _, err := s.log.PutChunk(ctx, [][]byte{cat}); err != nil {
			b.Fatal(err)
		}
		index += time.Since(start)
	}
	b.ReportMetric(float64(bytes)/key.Seconds()*float64(b.N)/1e6, "MB/s")
	b.ReportMetric(key.Seconds()/index.Seconds(), "vs-index")
	b.ReportMetric(float64(out), "out-bytes")
	b.ReportMetric(float64(bytes), "in-bytes")
}
