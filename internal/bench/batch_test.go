package bench

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/records"
)

// Moving a CRC over the tail and combining gives the CRC of the whole.
func TestCRCCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 7, 8, 100, 4095, 65536, 1 << 20} {
		data := make([]byte, 50+n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		head, tail := data[:50], data[50:]
		op := zerosOperator(len(tail))
		got := op.times(crc32.Checksum(head, castagnoli)) ^ crc32.Checksum(tail, castagnoli)
		if want := crc32.Checksum(data, castagnoli); got != want {
			t.Errorf("tail of %d bytes: combined CRC %08x, want %08x", n, got, want)
		}
	}
}

// Stamped batches are valid batches that carry the send time, whatever
// the shape.
func TestBatchTemplate(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{1})
	for _, c := range []struct{ n, size int }{{1, 8}, {1, 100}, {10, 100}, {64, 1024}, {3, 200000}} {
		bt, err := newBatchTemplate(rng, c.n, c.size)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		epoch := time.Now()
		for i := range 3 {
			now := epoch.Add(time.Duration(i) * 1234567 * time.Microsecond)
			recs, meta, err := records.Decode(bt.stamp(epoch, now), nil)
			if err != nil {
				t.Fatalf("%+v: %v", c, err)
			}
			if len(recs) != c.n || meta.MaxTimestamp != now.UnixMilli() || recs[c.n-1].Timestamp != now.UnixMilli() {
				t.Fatalf("%+v: %d records, max timestamp %d; want %d, %d", c, len(recs), meta.MaxTimestamp, c.n, now.UnixMilli())
			}
			if got := time.Duration(binary.BigEndian.Uint64(recs[0].Value)); got != now.Sub(epoch) || len(recs[0].Value) != c.size {
				t.Fatalf("%+v: send time %v in a %d-byte value, want %v", c, got, len(recs[0].Value), now.Sub(epoch))
			}
			offs, err := valueOffsets(bt.raw, c.n)
			if err != nil || len(offs) != c.n {
				t.Fatalf("%+v: valueOffsets = %v, %v", c, offs, err)
			}
		}
	}
}
