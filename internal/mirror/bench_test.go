package mirror

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// BenchmarkDrain mirrors a backlog of 64 MiB of 1 KiB records between two
// directories (a profile of the mirror's own work; the figures that count
// are twoway bench mirror's, against the destination's produce).
func BenchmarkDrain(b *testing.B) {
	src := mustOpenSide(b, openURL(b, "file://"+b.TempDir()))
	ctx := context.Background()
	if err := src.streams.CreateTopic(ctx, stream.TopicConfig{Name: "t", Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	recs := make([]records.Record, 64)
	for i := range recs {
		recs[i] = records.Record{Timestamp: 1, Value: bytes.Repeat([]byte{'v'}, 1024)}
	}
	for i := range 1024 {
		if _, _, err := src.streams.Produce(ctx, "t", []stream.Batch{{Partition: int32(i % 4), Records: recs}}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(64 << 20)
	for b.Loop() {
		dst := mustOpenSide(b, openURL(b, "file://"+b.TempDir()))
		m, stop := startMirror(b, Config{Source: "s", Topics: mustPattern(b, "t"), From: src.streams, To: dst.streams, ToMirror: dst.mirror, Poll: time.Millisecond})
		for m.Stats.Records.Load() < 64*1024 {
			time.Sleep(time.Millisecond)
		}
		stop()
	}
}
