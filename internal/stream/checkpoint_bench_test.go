package stream

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/twoway/twoway/internal/commitlog"
)

// BenchmarkCheckpointRestore measures what the record index costs a
// checkpoint: its size and the time to restore it, for an index of n
// segments (one per commit per partition touched, before compaction).
//
//	go test -run XXX -bench CheckpointRestore ./internal/stream
func BenchmarkCheckpointRestore(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("segments=%d", n), func(b *testing.B) {
			s := newState()
			data, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 16, RetentionMs: -1, RetentionBytes: -1}})
			s.Apply(1, commitlog.Entry{Type: TypeCreateTopic, Data: data})
			for i := range n {
				pe, _ := json.Marshal(produceEntry{Topic: "t", Partition: int32(i % 16), Count: 10, MaxTs: 1795598348613, AppendMs: 1795598348613})
				ref := commitlog.Ref{Key: fmt.Sprintf("chunks/%020d-9418bef3547fd81d-%d", 1795598348613+i, i), Off: int64(i * 1000), Len: 1000, CRC: uint32(i)}
				s.Apply(uint64(i+2), commitlog.Entry{Type: TypeProduce, Data: pe, Ref: ref})
			}
			snap, err := s.Snapshot()()
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := newState().Restore(snap); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(snap))/1e6, "checkpoint-MB")
		})
	}
}
