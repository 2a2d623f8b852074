package mirror

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/twoway/twoway/internal/records"
)

// withAttributes rewrites an uncompressed batch's attributes: gzip
// compression (codec 1) and/or log-append time, with the CRC made again.
func withAttributes(t *testing.T, b []byte, gz, appendTime bool, maxTs int64) []byte {
	t.Helper()
	out := append([]byte(nil), b[:records.HeaderLen]...)
	data := b[records.HeaderLen:]
	attr := uint16(0)
	if gz {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
		data = buf.Bytes()
		attr |= 1
	}
	if appendTime {
		attr |= 0x08
		binary.BigEndian.PutUint64(out[35:], uint64(maxTs))
	}
	out = append(out, data...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint16(out[21:], attr)
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out
}

// Records of plain, gzip and log-append-time batches come out of rebatch
// with their keys (null ones too), values, headers and timestamps, the
// mirror's two headers, from the offset asked on.
func TestRebatch(t *testing.T) {
	mk := func(first int) []records.Record {
		var rs []records.Record
		for i := first; i < first+5; i++ {
			r := records.Record{Timestamp: 1000 + int64(i*3), Value: fmt.Appendf(nil, "v%d", i)}
			if i%2 == 0 {
				r.Key = fmt.Appendf(nil, "k%d", i)
				r.Headers = []records.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: nil}}
			}
			rs = append(rs, r)
		}
		return rs
	}
	plain := records.Encode(mk(0))
	records.SetBaseOffset(plain, 100)
	gz := withAttributes(t, records.Encode(mk(5)), true, false, 0)
	records.SetBaseOffset(gz, 105)
	appendTime := withAttributes(t, records.Encode(mk(10)), false, true, 7777)
	records.SetBaseOffset(appendTime, 110)

	var ss []span
	var err error
	for _, b := range [][]byte{plain, gz, appendTime} {
		if ss, _, err = spans(ss, b, 102); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := records.Decode(encodeSpans(ss, "t/3/", "edge"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []records.Record
	for _, r := range append(append(mk(0), mk(5)...), mk(10)...) {
		want = append(want, r)
	}
	want = want[2:]
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		off := int64(102 + i)
		ts := w.Timestamp
		if off >= 110 {
			ts = 7777
		}
		if g.Offset != int64(i) || g.Timestamp != ts || !bytes.Equal(g.Key, w.Key) || (g.Key == nil) != (w.Key == nil) || !bytes.Equal(g.Value, w.Value) {
			t.Fatalf("record %d: %+v, want %+v at ts %d", i, g, w, ts)
		}
		if len(g.Headers) != len(w.Headers)+2 {
			t.Fatalf("record %d headers %v", i, g.Headers)
		}
		for j, h := range w.Headers {
			if g.Headers[j].Key != h.Key || !bytes.Equal(g.Headers[j].Value, h.Value) {
				t.Fatalf("record %d header %d: %v", i, j, g.Headers[j])
			}
		}
		n := len(w.Headers)
		if g.Headers[n].Key != HeaderSource || string(g.Headers[n].Value) != fmt.Sprintf("t/3/%d", off) ||
			g.Headers[n+1].Key != HeaderOrigin || string(g.Headers[n+1].Value) != "edge" {
			t.Fatalf("record %d: mirror headers %v", i, g.Headers[n:])
		}
	}
	// A truncated record is an error, not a panic.
	if _, _, err := spans(nil, plain[:len(plain)-3], 0); err == nil {
		t.Fatal("a truncated batch was read")
	}
}

// spans reads batches from the source's bucket: whatever the bytes, an
// error or spans that encode again, never a panic.
func FuzzSpans(f *testing.F) {
	plain := records.Encode([]records.Record{{Timestamp: 5, Key: []byte("k"), Value: []byte("v"), Headers: []records.Header{{Key: "h", Value: []byte("x")}}}})
	f.Add(plain, int64(0))
	f.Add(plain[:40], int64(0))
	f.Fuzz(func(t *testing.T, b []byte, from int64) {
		ss, _, err := spans(nil, b, from)
		if err != nil || len(ss) == 0 {
			return
		}
		if _, _, err := records.Decode(encodeSpans(ss, "t/0/", "o"), nil); err != nil {
			t.Fatalf("re-encoded spans do not decode: %v", err)
		}
	})
}
