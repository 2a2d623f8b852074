// Package records encodes and decodes record batches in the Kafka
// RecordBatch v2 format (magic 2), which is how twoway stores record data in
// the bucket. Keeping Kafka's documented format means a Kafka fetch is served
// from stored bytes with only the base offset patched in, and any tool that
// reads Kafka batches can read twoway's chunks.
//
// Layout (big-endian; varints are zig-zag, as in Kafka):
//
//	baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 |
//	crc u32 (CRC-32C of attributes..end) | attributes i16 | lastOffsetDelta i32 |
//	baseTimestamp i64 | maxTimestamp i64 | producerId i64 | producerEpoch i16 |
//	baseSequence i32 | recordCount i32 | records...
//
//	record: length varint | attributes i8 | timestampDelta varlong |
//	        offsetDelta varint | keyLen varint (-1 = null) | key |
//	        valueLen varint (-1 = null) | value | headerCount varint |
//	        headers: keyLen varint | key | valueLen varint | value
package records

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Record is one record as users see it.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the Unix epoch
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header is a record header; Kafka allows repeated keys and a null value.
type Header struct {
	Key   string
	Value []byte
}

// HeaderLen is the length of the fixed batch header.
const HeaderLen = 61

// Compression codecs, in the low three bits of the batch attributes.
const (
	CodecNone   = 0
	CodecGzip   = 1
	CodecSnappy = 2
	CodecLZ4    = 3
	CodecZstd   = 4
)

// ErrInvalid marks bytes that are not a valid v2 record batch.
var ErrInvalid = errors.New("invalid record batch")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchMeta is what a batch header says, without decoding the records.
type BatchMeta struct {
	BaseOffset      int64
	Length          int // whole batch, header included
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Codec is the compression codec of the batch.
func (m BatchMeta) Codec() int { return int(m.Attributes & 7) }

// Encode builds one uncompressed batch holding recs with offsets 0..n-1 and
// the records' own timestamps, for a producer without idempotence.
func Encode(recs []Record) []byte {
	if len(recs) == 0 {
		return nil
	}
	base, maxTs := recs[0].Timestamp, recs[0].Timestamp
	for _, r := range recs {
		base = min(base, r.Timestamp)
		maxTs = max(maxTs, r.Timestamp)
	}
	size := HeaderLen
	for _, r := range recs {
		size += 32 + len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += 10 + len(h.Key) + len(h.Value)
		}
	}
	b := make([]byte, HeaderLen, size)
	var body []byte
	for i, r := range recs {
		body = body[:0]
		body = append(body, 0) // attributes
		body = binary.AppendVarint(body, r.Timestamp-base)
		body = binary.AppendVarint(body, int64(i))
		body = appendBytes(body, r.Key)
		body = appendBytes(body, r.Value)
		body = binary.AppendVarint(body, int64(len(r.Headers)))
		for _, h := range r.Headers {
			body = appendBytes(body, []byte(h.Key))
			body = appendBytes(body, h.Value)
		}
		b = binary.AppendVarint(b, int64(len(body)))
		b = append(b, body...)
	}
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)
	be.PutUint32(b[8:], uint32(len(b)-12))
	be.PutUint32(b[12:], 0) // partition leader epoch
	b[16] = 2
	be.PutUint16(b[21:], 0) // attributes: no compression, create time
	be.PutUint32(b[23:], uint32(len(recs)-1))
	be.PutUint64(b[27:], uint64(base))
	be.PutUint64(b[35:], uint64(maxTs))
	be.PutUint64(b[43:], ^uint64(0)) // producer id -1
	be.PutUint16(b[51:], ^uint16(0)) // producer epoch -1
	be.PutUint32(b[53:], ^uint32(0)) // base sequence -1
	be.PutUint32(b[57:], uint32(len(recs)))
	be.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// ParseMeta reads and checks the header of the batch at the start of b
// (magic, length, CRC). It does not decode the records.
func ParseMeta(b []byte) (BatchMeta, error) {
	if len(b) < HeaderLen {
		return BatchMeta{}, fmt.Errorf("%w: %d bytes, a batch header needs %d", ErrInvalid, len(b), HeaderLen)
	}
	be := binary.BigEndian
	n := int(int32(be.Uint32(b[8:]))) + 12
	if n < HeaderLen || n > len(b) {
		return BatchMeta{}, fmt.Errorf("%w: batch length %d with %d bytes available", ErrInvalid, n-12, len(b)-12)
	}
	if b[16] != 2 {
		return BatchMeta{}, fmt.Errorf("%w: magic %d (only record batch v2, magic 2, is supported)", ErrInvalid, b[16])
	}
	if got, want := crc32.Checksum(b[21:n], castagnoli), be.Uint32(b[17:]); got != want {
		return BatchMeta{}, fmt.Errorf("%w: CRC %08x, header says %08x", ErrInvalid, got, want)
	}
	m := BatchMeta{
		BaseOffset:      int64(be.Uint64(b[0:])),
		Length:          n,
		Attributes:      int16(be.Uint16(b[21:])),
		LastOffsetDelta: int32(be.Uint32(b[23:])),
		BaseTimestamp:   int64(be.Uint64(b[27:])),
		MaxTimestamp:    int64(be.Uint64(b[35:])),
		ProducerID:      int64(be.Uint64(b[43:])),
		ProducerEpoch:   int16(be.Uint16(b[51:])),
		BaseSequence:    int32(be.Uint32(b[53:])),
		NumRecords:      int32(be.Uint32(b[57:])),
	}
	if m.LastOffsetDelta < 0 || m.NumRecords < 0 || m.NumRecords > m.LastOffsetDelta+1 {
		return BatchMeta{}, fmt.Errorf("%w: %d records with last offset delta %d", ErrInvalid, m.NumRecords, m.LastOffsetDelta)
	}
	return m, nil
}

// Split checks every batch in b (a concatenation of batches, as a Kafka
// produce request carries) and returns their headers.
func Split(b []byte) ([]BatchMeta, error) {
	var metas []BatchMeta
	for len(b) > 0 {
		m, err := ParseMeta(b)
		if err != nil {
			return nil, err
		}
		metas = append(metas, m)
		b = b[m.Length:]
	}
	return metas, nil
}

// SetBaseOffset patches the base offset of the batch at the start of b. The
// CRC does not cover it.
func SetBaseOffset(b []byte, base int64) {
	binary.BigEndian.PutUint64(b[0:], uint64(base))
}

// Decompressor turns a compressed records section into plain records bytes.
// Codecs other than gzip are registered by the Kafka front door's codecs.
type Decompressor func(codec int, src []byte) ([]byte, error)

// Decode decodes every record of the batch at the start of b, using the base
// offset in its header. decompress may be nil for uncompressed or gzip data.
func Decode(b []byte, decompress Decompressor) ([]Record, BatchMeta, error) {
	m, err := ParseMeta(b)
	if err != nil {
		return nil, m, err
	}
	data := b[HeaderLen:m.Length]
	switch c := m.Codec(); {
	case c == CodecNone:
	case c == CodecGzip && decompress == nil:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, m, fmt.Errorf("%w: gzip: %v", ErrInvalid, err)
		}
		if data, err = io.ReadAll(io.LimitReader(zr, 256<<20)); err != nil {
			return nil, m, fmt.Errorf("%w: gzip: %v", ErrInvalid, err)
		}
	case decompress != nil:
		if data, err = decompress(c, data); err != nil {
			return nil, m, fmt.Errorf("%w: codec %d: %v", ErrInvalid, c, err)
		}
	default:
		return nil, m, fmt.Errorf("%w: compression codec %d is not supported here", ErrInvalid, c)
	}
	recs := make([]Record, 0, min(int(m.NumRecords), len(data))) // never trust a count for allocation
	r := &cursor{b: data}
	for i := int32(0); i < m.NumRecords && r.err == nil; i++ {
		n := r.varint()
		body := &cursor{b: r.take(int(n))}
		body.take(1) // attributes
		rec := Record{Timestamp: m.BaseTimestamp + body.varint()}
		rec.Offset = m.BaseOffset + body.varint()
		rec.Key = body.bytes()
		rec.Value = body.bytes()
		nh := body.varint()
		if nh < 0 || nh > int64(len(body.b)) {
			body.fail("header count")
		}
		for j := int64(0); j < nh && body.err == nil; j++ {
			k := body.bytes()
			rec.Headers = append(rec.Headers, Header{Key: string(k), Value: body.bytes()})
		}
		if body.err != nil {
			return nil, m, body.err
		}
		if m.Attributes&0x08 != 0 { // log append time: every record carries the batch max
			rec.Timestamp = m.MaxTimestamp
		}
		recs = append(recs, rec)
	}
	if r.err != nil {
		return nil, m, r.err
	}
	return recs, m, nil
}

type cursor struct {
	b   []byte
	err error
}

func (c *cursor) fail(what string) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: bad %s in record", ErrInvalid, what)
	}
}

func (c *cursor) take(n int) []byte {
	if c.err != nil || n < 0 || n > len(c.b) {
		c.fail("length")
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) varint() int64 {
	if c.err != nil {
		return 0
	}
	v, n := binary.Varint(c.b)
	if n <= 0 {
		c.fail("varint")
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) bytes() []byte {
	n := c.varint()
	if n == -1 {
		return nil
	}
	v := c.take(int(n))
	if v == nil && c.err == nil {
		return []byte{}
	}
	return v
}

// Batch attributes a transaction sets (Kafka's).
const (
	attrTransactional int16 = 0x10
	attrControl       int16 = 0x20
)

// IsControl reports whether the batch is a control batch (a transaction
// marker), which consumers skip.
func (m BatchMeta) IsControl() bool { return m.Attributes&attrControl != 0 }

// IsTransactional reports whether the batch belongs to a transaction.
func (m BatchMeta) IsTransactional() bool { return m.Attributes&attrTransactional != 0 }

// EncodeControl builds the control batch that ends a transaction of
// producer pid at epoch, as Kafka writes it: transactional and control
// attributes, base sequence -1, and one record whose key is version 0 and
// the marker type (0 abort, 1 commit) and whose value is version 0 and the
// coordinator epoch.
func EncodeControl(pid int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) []byte {
	key := []byte{0, 0, 0, 0}
	if commit {
		key[3] = 1
	}
	value := binary.BigEndian.AppendUint32([]byte{0, 0}, uint32(coordinatorEpoch))
	var body []byte
	body = append(body, 0)
	body = binary.AppendVarint(body, 0)
	body = binary.AppendVarint(body, 0)
	body = appendBytes(body, key)
	body = appendBytes(body, value)
	body = binary.AppendVarint(body, 0)
	b := make([]byte, HeaderLen, HeaderLen+len(body)+2)
	b = binary.AppendVarint(b, int64(len(body)))
	b = append(b, body...)
	be := binary.BigEndian
	be.PutUint32(b[8:], uint32(len(b)-12))
	b[16] = 2
	be.PutUint16(b[21:], uint16(attrTransactional|attrControl))
	be.PutUint64(b[27:], uint64(ts))
	be.PutUint64(b[35:], uint64(ts))
	be.PutUint64(b[43:], uint64(pid))
	be.PutUint16(b[51:], uint16(epoch))
	be.PutUint32(b[53:], ^uint32(0))
	be.PutUint32(b[57:], 1)
	be.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}
