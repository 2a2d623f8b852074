package records

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Batch attribute bits beyond the codec.
const (
	AttrLogAppendTime = 0x08
	AttrTransactional = 0x10
	AttrControl       = 0x20
)

// SetLogAppendTime marks the batch at the start of b as stamped with the
// log append time ts, as a Kafka broker does for a topic with
// message.timestamp.type=LogAppendTime: the timestamp type bit is set and
// the max timestamp becomes ts (consumers read it as every record's
// timestamp). The CRC is recomputed; the records are unchanged.
func SetLogAppendTime(b []byte, ts int64) error {
	m, err := ParseMeta(b)
	if err != nil {
		return err
	}
	be := binary.BigEndian
	be.PutUint16(b[21:], uint16(m.Attributes)|AttrLogAppendTime)
	be.PutUint64(b[35:], uint64(ts))
	be.PutUint32(b[17:], crc32.Checksum(b[21:m.Length], castagnoli))
	return nil
}

// RecordRef is one record of a decoded batch, for filtering.
type RecordRef struct {
	Record
	// Tombstone: the value is null.
	Tombstone bool
	raw       []byte // the record's bytes, length prefix included
}

// Records decodes the records of the batch at the start of b, keeping
// each one's bytes so that Filter can rebuild the batch without them.
func Records(b []byte, decompress Decompressor) ([]RecordRef, BatchMeta, error) {
	m, err := ParseMeta(b)
	if err != nil {
		return nil, m, err
	}
	recs, _, err := Decode(b, decompress)
	if err != nil {
		return nil, m, err
	}
	data := b[HeaderLen:m.Length]
	if m.Codec() != CodecNone {
		if decompress == nil {
			return nil, m, fmt.Errorf("%w: compressed batch without a decompressor", ErrInvalid)
		}
		if data, err = decompress(m.Codec(), data); err != nil {
			return nil, m, fmt.Errorf("%w: codec %d: %v", ErrInvalid, m.Codec(), err)
		}
	}
	out := make([]RecordRef, len(recs))
	for i := range recs {
		n, k := binary.Varint(data)
		if k <= 0 || int(n) < 0 || k+int(n) > len(data) {
			return nil, m, fmt.Errorf("%w: bad record length", ErrInvalid)
		}
		out[i] = RecordRef{Record: recs[i], Tombstone: recs[i].Value == nil, raw: data[:k+int(n)]}
		data = data[k+int(n):]
	}
	return out, m, nil
}

// Filter rebuilds batch b (whose records recs are, from Records) with only
// the records keep says, as Kafka's log cleaner does: the batch keeps its
// base offset, last offset delta, timestamps, producer fields and
// attributes, and each kept record its offset and timestamp deltas, so
// offsets stay what they were (with gaps). The result is uncompressed. It
// returns nil when no record is kept.
func Filter(b []byte, m BatchMeta, recs []RecordRef, keep []bool) []byte {
	n := 0
	size := HeaderLen
	for i, r := range recs {
		if keep[i] {
			n++
			size += len(r.raw)
		}
	}
	if n == 0 {
		return nil
	}
	if n == len(recs) {
		return append([]byte(nil), b[:m.Length]...)
	}
	out := make([]byte, HeaderLen, size)
	copy(out, b[:HeaderLen])
	for i, r := range recs {
		if keep[i] {
			out = append(out, r.raw...)
		}
	}
	be := binary.BigEndian
	be.PutUint32(out[8:], uint32(len(out)-12))
	be.PutUint16(out[21:], uint16(m.Attributes)&^7) // no compression
	be.PutUint32(out[57:], uint32(n))
	be.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out
}

// LastRecordOffset returns the offset of the last record of the batch at
// the start of b (header m), which is below BaseOffset+LastOffsetDelta when
// compaction removed the batch's last records. A compressed batch is read
// as dense (compaction writes filtered batches uncompressed).
func LastRecordOffset(b []byte, m BatchMeta) int64 {
	last := m.BaseOffset + int64(m.LastOffsetDelta)
	if m.Codec() != CodecNone || m.NumRecords == 0 {
		return last
	}
	c := &cursor{b: b[HeaderLen:m.Length]}
	var delta int64 = -1
	for i := int32(0); i < m.NumRecords && c.err == nil; i++ {
		n := c.varint()
		rec := &cursor{b: c.take(int(n))}
		rec.take(1)
		rec.varint()
		if d := rec.varint(); rec.err == nil {
			delta = d
		}
	}
	if c.err != nil || delta < 0 {
		return last
	}
	return m.BaseOffset + delta
}
