package mirror

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// rebatch builds the batch a mirror writes for one source partition: the
// records of the source batches at offsets from `from` on, each with its
// key, value, headers and timestamp as they are and the mirror's headers
// added, in one uncompressed batch (create time, no producer id). An
// uncompressed source record is copied span by span, without decoding
// its key, value or headers; a compressed batch is decoded first.

// span is one source record as rebatch copies it.
type span struct {
	ts     int64
	offset int64
	kv     []byte // the key and the value, with their lengths
	nh     int64  // header count
	hs     []byte // the headers
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errRecord = errors.New("malformed record")

func varint(b []byte) (int64, []byte, error) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, nil, errRecord
	}
	return v, b[n:], nil
}

// skipBytes skips a length-prefixed field (length -1: null).
func skipBytes(b []byte) ([]byte, error) {
	l, rest, err := varint(b)
	if err != nil || l > int64(len(rest)) {
		return nil, errRecord
	}
	if l < 0 {
		return rest, nil
	}
	return rest[l:], nil
}

// spans appends the records of the batch at the start of b whose offsets
// are at least from.
func spans(out []span, b []byte, from int64) ([]span, records.BatchMeta, error) {
	m, err := records.ParseMeta(b)
	if err != nil {
		return out, m, err
	}
	if m.Attributes&0x20 != 0 { // a control batch (transaction marker): no records
		return out, m, nil
	}
	if m.Codec() != records.CodecNone {
		// Decoded, then encoded uncompressed with their offsets, and
		// read as such.
		recs, _, err := records.Decode(b, stream.Decompress)
		if err != nil {
			return out, m, err
		}
		for i, r := range recs {
			if r.Offset != recs[0].Offset+int64(i) {
				return out, m, fmt.Errorf("%w: offsets not dense in a compressed batch", errRecord)
			}
		}
		if len(recs) == 0 {
			return out, m, nil
		}
		plain := records.Encode(recs)
		records.SetBaseOffset(plain, recs[0].Offset)
		out, _, err = spans(out, plain, from)
		return out, m, err
	}
	data := b[records.HeaderLen:m.Length]
	for i := int32(0); i < m.NumRecords; i++ {
		l, rest, err := varint(data)
		if err != nil || l < 0 || l > int64(len(rest)) {
			return out, m, fmt.Errorf("%w at record %d of the batch at %d", errRecord, i, m.BaseOffset)
		}
		body, next := rest[:l], rest[l:]
		data = next
		if len(body) < 1 {
			return out, m, errRecord
		}
		tsDelta, r, err := varint(body[1:])
		if err != nil {
			return out, m, err
		}
		offDelta, r, err := varint(r)
		if err != nil {
			return out, m, err
		}
		kvStart := r
		if r, err = skipBytes(r); err != nil { // key
			return out, m, err
		}
		if r, err = skipBytes(r); err != nil { // value
			return out, m, err
		}
		kv := kvStart[:len(kvStart)-len(r)]
		nh, hs, err := varint(r)
		if err != nil || nh < 0 || nh > int64(len(hs)) {
			return out, m, errRecord
		}
		off := m.BaseOffset + offDelta
		if off < from {
			continue
		}
		ts := m.BaseTimestamp + tsDelta
		if m.Attributes&0x08 != 0 { // log append time: every record carries the batch's max
			ts = m.MaxTimestamp
		}
		out = append(out, span{ts: ts, offset: off, kv: kv, nh: nh, hs: hs})
	}
	return out, m, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

// encodeSpans writes spans as one batch with offsets 0..n-1, adding to
// each the headers source (prefix + offset) and origin.
func encodeSpans(ss []span, prefix, origin string) []byte {
	base, maxTs := ss[0].ts, ss[0].ts
	size := records.HeaderLen
	for _, s := range ss {
		base, maxTs = min(base, s.ts), max(maxTs, s.ts)
		size += 40 + len(s.kv) + len(s.hs) + len(prefix) + len(origin) + len(HeaderSource) + len(HeaderOrigin)
	}
	b := make([]byte, records.HeaderLen, size)
	var body []byte
	var num [20]byte
	for i, s := range ss {
		body = body[:0]
		body = append(body, 0) // attributes
		body = binary.AppendVarint(body, s.ts-base)
		body = binary.AppendVarint(body, int64(i))
		body = append(body, s.kv...)
		body = binary.AppendVarint(body, s.nh+2)
		body = append(body, s.hs...)
		body = appendString(body, HeaderSource)
		digits := strconv.AppendInt(num[:0], s.offset, 10)
		body = binary.AppendVarint(body, int64(len(prefix)+len(digits)))
		body = append(append(body, prefix...), digits...)
		body = appendString(body, HeaderOrigin)
		body = appendString(body, origin)
		b = binary.AppendVarint(b, int64(len(body)))
		b = append(b, body...)
	}
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)
	be.PutUint32(b[8:], uint32(len(b)-12))
	be.PutUint32(b[12:], 0) // partition leader epoch
	b[16] = 2
	be.PutUint16(b[21:], 0) // no compression, create time
	be.PutUint32(b[23:], uint32(len(ss)-1))
	be.PutUint64(b[27:], uint64(base))
	be.PutUint64(b[35:], uint64(maxTs))
	be.PutUint64(b[43:], ^uint64(0)) // producer id -1
	be.PutUint16(b[51:], ^uint16(0)) // producer epoch -1
	be.PutUint32(b[53:], ^uint32(0)) // base sequence -1
	be.PutUint32(b[57:], uint32(len(ss)))
	be.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}
