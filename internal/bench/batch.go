package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/twoway/twoway/internal/records"
)

// batchTemplate is one producer's record batch, encoded once and stamped
// before each call with the call's time. Producers stand for clients on
// other machines, which encode and checksum their batches on their own
// CPUs; stamping costs next to nothing, so that on a benchmark machine the
// producers leave the CPU to the agents they measure. The batches still go
// through the agent's full validation (Service.Produce with Raw, the Kafka
// front door's path).
//
// The first 8 bytes of the first record's value carry the send time, as a
// duration since the run's epoch: a batch is one produce call, and all its
// records were sent at that time. The rest is random.
type batchTemplate struct {
	raw []byte
	// sendAt is where the send time goes: the first value's first bytes.
	sendAt int
	// The batch CRC covers raw[21:]; only its head, raw[21:sendAt+8],
	// changes from call to call. tailCRC is the CRC of the rest and
	// overTail the operator that moves a CRC over that many bytes.
	tailCRC  uint32
	overTail gf2Matrix
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcStart is where a batch's CRC starts: at the attributes.
const crcStart = 21

func newBatchTemplate(rng io.Reader, n, size int) (*batchTemplate, error) {
	recs := make([]records.Record, n)
	for i := range recs {
		recs[i].Value = make([]byte, size)
		_, _ = rng.Read(recs[i].Value)
	}
	t := &batchTemplate{raw: records.Encode(recs)}
	offs, err := valueOffsets(t.raw, 1)
	if err != nil || len(offs) != 1 {
		return nil, fmt.Errorf("encoding a record batch: %v", err)
	}
	t.sendAt = offs[0]
	tail := t.raw[t.sendAt+8:]
	t.tailCRC = crc32.Checksum(tail, castagnoli)
	t.overTail = zerosOperator(len(tail))

	// Check the whole construction by reading a stamped batch back:
	// Decode verifies the CRC.
	epoch := time.Now()
	got, _, err := records.Decode(t.stamp(epoch, epoch.Add(42)), nil)
	if err != nil || len(got) != n {
		return nil, fmt.Errorf("encoding a record batch: %d records read back of %d (%v)", len(got), n, err)
	}
	if len(got[0].Value) != size || binary.BigEndian.Uint64(got[0].Value) != 42 {
		return nil, errors.New("encoding a record batch: the send time is not where it was written")
	}
	return t, nil
}

// stamp writes the send time, as an offset from epoch, into the first
// record and now as the batch's timestamps, and returns the batch. The
// previous batch must no longer be in use, which holds because a producer
// makes one call at a time.
func (t *batchTemplate) stamp(epoch, now time.Time) []byte {
	binary.BigEndian.PutUint64(t.raw[t.sendAt:], uint64(now.Sub(epoch)))
	// Every record's timestamp delta is 0: base and max are the time.
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(t.raw[27:], ms)
	binary.BigEndian.PutUint64(t.raw[35:], ms)
	// CRC(head || tail) = CRC(head) moved over len(tail) zero bytes, xor
	// CRC(tail): zlib's crc32_combine, with the operator computed once.
	head := crc32.Checksum(t.raw[crcStart:t.sendAt+8], castagnoli)
	binary.BigEndian.PutUint32(t.raw[17:], t.overTail.times(head)^t.tailCRC)
	return t.raw
}

// valueOffsets walks the first n records (or all, if fewer) of b, an
// uncompressed v2 record batch, and returns where each one's value starts.
// Every value must hold at least 8 bytes. The layout is Kafka's (see package
// records): per record a length, attributes, timestamp and offset deltas,
// key, value length and value, then headers.
func valueOffsets(b []byte, n int) ([]int, error) {
	if len(b) < records.HeaderLen || b[crcStart]&7 != records.CodecNone {
		return nil, errors.New("not an uncompressed record batch")
	}
	pos := records.HeaderLen
	bad := false
	varint := func() int64 {
		if bad || pos >= len(b) {
			bad = true
			return 0
		}
		v, k := binary.Varint(b[pos:])
		if k <= 0 {
			bad = true
			return 0
		}
		pos += k
		return v
	}
	var offs []int
	for len(offs) < n && pos < len(b) {
		length := varint()
		end := pos + int(length)
		pos++    // attributes
		varint() // timestamp delta
		varint() // offset delta
		if k := varint(); k > 0 {
			pos += int(k)
		}
		size := varint()
		if bad || length < 0 || end > len(b) || size < 8 || pos+int(size) > end {
			return offs, fmt.Errorf("record %d: no value of 8 bytes or more where expected", len(offs))
		}
		offs = append(offs, pos)
		pos = end
	}
	return offs, nil
}

// gf2Matrix is a linear map on CRC-32 registers over GF(2): column i is the
// image of bit i.
type gf2Matrix [32]uint32

func (m *gf2Matrix) times(v uint32) uint32 {
	var sum uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

// then returns the map that applies m, then next.
func (m *gf2Matrix) then(next *gf2Matrix) gf2Matrix {
	var r gf2Matrix
	for i := range r {
		r[i] = next.times(m[i])
	}
	return r
}

// zerosOperator returns the map that moves a CRC-32C over n zero bytes, by
// squaring the one-zero-bit map (as zlib's crc32_combine does).
func zerosOperator(n int) gf2Matrix {
	var op, id gf2Matrix // op: over 2^k zero bits, for k rising
	op[0] = 0x82f63b78   // Castagnoli, reflected
	for i := 1; i < 32; i++ {
		op[i] = 1 << (i - 1)
	}
	for i := range id {
		id[i] = 1 << i
	}
	op = op.then(&op) // 2 bits
	op = op.then(&op) // 4 bits
	op = op.then(&op) // 8 bits: one byte
	result := id
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			result = result.then(&op)
		}
		op = op.then(&op)
	}
	return result
}
