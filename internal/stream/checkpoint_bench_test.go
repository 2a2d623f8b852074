package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

// indexEntries builds the entries of an index of n segments over 16
// partitions, each with a chunk key of its own (the worst case for the
// key table: in practice a chunk holds many partitions' batches).
func indexEntries(n int, now int64) []commitlog.Entry {
	out := make([]commitlog.Entry, 0, n)
	for i := range n {
		pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: int32(i % 16), Count: 10, MaxTs: now + int64(i), AppendMs: now + int64(i)})
		ref := commitlog.Ref{Key: fmt.Sprintf("chunks/%020d-9418bef3547fd81d-%d", now+int64(i/16), i), Off: int64(i%16) * 1000, Len: 1000, CRC: uint32(i)}
		out = append(out, commitlog.Entry{Type: TypeProduce, Data: pe, Ref: ref})
	}
	return out
}

func createT() commitlog.Entry {
	data, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 16, RetentionMs: -1, RetentionBytes: -1}})
	return commitlog.Entry{Type: TypeCreateTopic, Data: data}
}

// BenchmarkCheckpointRestore measures what the record index costs a
// checkpoint: the streams snapshot's size and the time to restore it, for
// an index of n segments (one per commit per partition touched, before
// compaction). The binary encoding (2) is timed; vs-json is its restore
// time over the JSON encoding's (1), measured in the same run.
//
//	go test -run XXX -bench CheckpointRestore ./internal/stream
func BenchmarkCheckpointRestore(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("segments=%d", n), func(b *testing.B) {
			s := newState()
			s.Apply(1, createT())
			for i, e := range indexEntries(n, 1795598348613) {
				s.Apply(uint64(i+2), e)
			}
			c := s.capture()
			js, err := c.encodeJSON()
			if err != nil {
				b.Fatal(err)
			}
			bin := c.encodeBinary(2)
			jsonTime := time.Duration(1 << 62)
			for range 3 {
				start := time.Now()
				if err := newState().Restore(js); err != nil {
					b.Fatal(err)
				}
				jsonTime = min(jsonTime, time.Since(start))
			}
			b.ResetTimer()
			for range b.N {
				if err := newState().Restore(bin); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			perOp := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(len(bin))/1e6, "snapshot-MB")
			b.ReportMetric(float64(len(js))/1e6, "json-MB")
			b.ReportMetric(jsonTime.Seconds(), "json-restore-s")
			b.ReportMetric(float64(perOp)/float64(jsonTime), "vs-json")
		})
	}
}

// BenchmarkCheckpointStall measures how long a checkpoint pauses applying
// (Stats.CheckpointStallNs: the capture, with applies paused) on a real
// log over a directory bucket whose streams index holds n segments, while
// a producer keeps committing. Each op is one checkpoint of a changed
// streams state; stall-p99-ms and stall-max-ms are over the ops, and
// produce-p99-ms / produce-p99-idle-ms compare the producer's ack latency
// during checkpoints with the same producer's without them, in this run.
//
//	go test -run XXX -bench CheckpointStall -benchtime 20x ./internal/stream
func BenchmarkCheckpointStall(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("segments=%d", n), func(b *testing.B) {
			bk, err := filebucket.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			svc, err := Open(ctx, bk, Options{Log: commitlog.Options{NoJanitor: true, Logger: quietLogger()}})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			l := svc.Log()
			// The binary snapshot encoding, as a janitor enables it.
			enable := commitlog.Entry{Type: commitlog.TypeFeatures, Data: []byte(`{"enable":["` + formatSnapshot2 + `"]}`)}
			if _, _, err := l.Propose(ctx, enable, createT()); err != nil {
				b.Fatal(err)
			}
			all := indexEntries(n, time.Now().UnixMilli())
			for chunk := range slices.Chunk(all, 10_000) {
				if _, _, err := l.Propose(ctx, chunk...); err != nil {
					b.Fatal(err)
				}
			}
			produce := func(stop <-chan struct{}, lat *[]time.Duration, done chan<- struct{}) {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					if _, errs, err := svc.Produce(ctx, "t", []Batch{{Partition: int32(i % 16), Records: benchRecords}}); err != nil || errs[0] != nil {
						b.Error(err, errs)
						return
					}
					*lat = append(*lat, time.Since(start))
				}
			}
			// The producer alone, as the baseline.
			var idle []time.Duration
			stop, done := make(chan struct{}), make(chan struct{})
			go produce(stop, &idle, done)
			time.Sleep(time.Second)
			close(stop)
			<-done

			var busy []time.Duration
			stop, done = make(chan struct{}), make(chan struct{})
			go produce(stop, &busy, done)
			stalls := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				l.Stats.CheckpointStallNs.Store(0)
				if err := l.Checkpoint(ctx); err != nil {
					b.Fatal(err)
				}
				stalls = append(stalls, time.Duration(l.Stats.CheckpointStallNs.Load()))
			}
			b.StopTimer()
			close(stop)
			<-done
			b.ReportMetric(ms(pct(stalls, 0.99)), "stall-p99-ms")
			b.ReportMetric(ms(pct(stalls, 1)), "stall-max-ms")
			b.ReportMetric(ms(pct(busy, 0.99)), "produce-p99-ms")
			b.ReportMetric(ms(pct(idle, 0.99)), "produce-p99-idle-ms")
		})
	}
}

var benchRecords = []records.Record{{Value: make([]byte, 100)}}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// pct is the q-quantile (nearest rank) of ds; 1 is the maximum.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
