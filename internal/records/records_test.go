package records

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func sample() []Record {
	return []Record{
		{Timestamp: 1700000000000, Key: []byte("k1"), Value: []byte("v1"), Headers: []Header{{Key: "h", Value: []byte("x")}, {Key: "n", Value: nil}}},
		{Timestamp: 1700000000005, Key: nil, Value: []byte{}},
		{Timestamp: 1699999999999, Key: []byte{}, Value: nil},
	}
}

// TestEncodeReadsInKafkaDecoder checks our encoding with franz-go's
// independent implementation of the format.
func TestEncodeReadsInKafkaDecoder(t *testing.T) {
	b := Encode(sample())
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if rb.Magic != 2 || rb.NumRecords != 3 || rb.LastOffsetDelta != 2 || rb.FirstTimestamp != 1699999999999 || rb.MaxTimestamp != 1700000000005 {
		t.Fatalf("header %+v", rb)
	}
	if uint32(rb.CRC) != crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)) {
		t.Fatal("CRC does not cover attributes..end")
	}
	recs := rb.Records
	for i, want := range sample() {
		var r kmsg.Record
		n, used := binary.Varint(recs)
		if err := r.ReadFrom(recs); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		recs = recs[int(n)+used:]
		if !bytes.Equal(r.Key, want.Key) || (r.Key == nil) != (want.Key == nil) || !bytes.Equal(r.Value, want.Value) || (r.Value == nil) != (want.Value == nil) {
			t.Fatalf("record %d: key %q value %q", i, r.Key, r.Value)
		}
		if rb.FirstTimestamp+r.TimestampDelta64 != want.Timestamp || int(r.OffsetDelta) != i {
			t.Fatalf("record %d: ts delta %d offset delta %d", i, r.TimestampDelta64, r.OffsetDelta)
		}
		if len(r.Headers) != len(want.Headers) {
			t.Fatalf("record %d: %d headers", i, len(r.Headers))
		}
	}
}

func TestRoundTripAndBaseOffset(t *testing.T) {
	b := Encode(sample())
	SetBaseOffset(b, 1000)
	recs, m, err := Decode(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.BaseOffset != 1000 || len(recs) != 3 {
		t.Fatalf("meta %+v, %d records", m, len(recs))
	}
	for i, r := range recs {
		w := sample()[i]
		if r.Offset != 1000+int64(i) || r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) || (r.Value == nil) != (w.Value == nil) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if h := recs[0].Headers; len(h) != 2 || h[0].Key != "h" || string(h[0].Value) != "x" || h[1].Value != nil {
		t.Fatalf("headers %+v", h)
	}
}

func TestGzipBatch(t *testing.T) {
	plain := Encode(sample())
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain[HeaderLen:])
	zw.Close()
	b := append(append([]byte(nil), plain[:HeaderLen]...), z.Bytes()...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint16(b[21:], CodecGzip)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	recs, _, err := Decode(b, nil)
	if err != nil || len(recs) != 3 || string(recs[0].Value) != "v1" {
		t.Fatalf("gzip: %v %d", err, len(recs))
	}
}

func TestRejectsBadBatches(t *testing.T) {
	b := Encode(sample())
	for _, bad := range [][]byte{nil, b[:10], b[:len(b)-1]} {
		if _, err := Split(bad); !errors.Is(err, ErrInvalid) && bad != nil {
			t.Fatalf("truncated batch accepted: %v", err)
		}
	}
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	if _, err := ParseMeta(c); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad CRC accepted: %v", err)
	}
	c = bytes.Clone(b)
	c[16] = 1
	if _, err := ParseMeta(c); !errors.Is(err, ErrInvalid) {
		t.Fatalf("magic 1 accepted: %v", err)
	}
	two := append(bytes.Clone(b), b...)
	if metas, err := Split(two); err != nil || len(metas) != 2 {
		t.Fatalf("two batches: %v %d", err, len(metas))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(sample()))
	f.Add(Encode([]Record{{Value: []byte("x")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		metas, err := Split(b)
		if err != nil {
			return
		}
		for _, m := range metas {
			if _, _, err := Decode(b[:m.Length], nil); err != nil {
				return
			}
			b = b[m.Length:]
		}
	})
}
