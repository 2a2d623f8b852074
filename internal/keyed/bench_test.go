package keyed

import (
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
)

// BenchmarkIndex measures an index of n keys whose values are 1 KiB each,
// packed 8192 to an 8 MiB chunk as group commit writes them: the snapshot
// size, the time to restore it (ns/op), the capture's pause (capture-us,
// the apply stall of a checkpoint) and the encoding time. Baselines from
// the same run: the JSON of the same map (json-restore-s, vs-json) and
// cloning the map (clone-ms), which is what a capture without
// copy-on-write would pause applying for.
//
//	go test -run XXX -bench Index ./internal/keyed
func BenchmarkIndex(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			x := New()
			plain := make(map[string]commitlog.Ref, n)
			for i := range n {
				chunk := i / 8192
				r := commitlog.Ref{Key: fmt.Sprintf("chunks/%020d-9418bef3547fd81d-%d", 1795598348613+int64(chunk)*40, chunk), Off: int64(i%8192)*1024 + 16, Len: 1024, CRC: uint32(i * 2654435761)}
				k := fmt.Sprintf("actor/%016x", uint64(i)*0x9E3779B97F4A7C15)
				x.Set(k, r, 1)
				plain[k] = r
			}
			start := time.Now()
			f := x.Capture()
			capture := time.Since(start)
			start = time.Now()
			enc := f.Encode()
			encode := time.Since(start)
			start = time.Now()
			_ = maps.Clone(plain)
			clone := time.Since(start)
			js, _ := json.Marshal(plain)
			start = time.Now()
			var back map[string]commitlog.Ref
			if err := json.Unmarshal(js, &back); err != nil {
				b.Fatal(err)
			}
			jsonRestore := time.Since(start)
			b.ResetTimer()
			for range b.N {
				if err := New().Restore(enc); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			perOp := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(len(enc))/1e6, "snapshot-MB")
			b.ReportMetric(float64(capture.Microseconds()), "capture-us")
			b.ReportMetric(float64(clone)/1e6, "clone-ms")
			b.ReportMetric(encode.Seconds(), "encode-s")
			b.ReportMetric(jsonRestore.Seconds(), "json-restore-s")
			b.ReportMetric(float64(perOp)/float64(jsonRestore), "vs-json")
		})
	}
}
