package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func lz4Of(b []byte) []byte {
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zstdOf(b []byte) []byte {
	e, _ := zstd.NewWriter(nil)
	defer e.Close()
	return e.EncodeAll(b, nil)
}

// xerialOf frames b as the Java client does, in blocks of at most block
// bytes.
func xerialOf(b []byte, block int) []byte {
	out := append([]byte{}, xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 1)
	for len(b) > 0 {
		n := min(block, len(b))
		enc := snappy.Encode(nil, b[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(enc)))
		out = append(out, enc...)
		b = b[n:]
	}
	return out
}

func TestDecompressEveryCodec(t *testing.T) {
	plain := bytes.Repeat([]byte("twoway records; "), 5000)
	cases := []struct {
		name  string
		codec int
		data  []byte
	}{
		{"none", records.CodecNone, plain},
		{"gzip", records.CodecGzip, gzipOf(plain)},
		{"snappy raw", records.CodecSnappy, snappy.Encode(nil, plain)},
		{"snappy xerial", records.CodecSnappy, xerialOf(plain, 32<<10)},
		{"lz4 frame", records.CodecLZ4, lz4Of(plain)},
		{"zstd", records.CodecZstd, zstdOf(plain)},
	}
	for _, c := range cases {
		got, err := Decompress(c.codec, c.data)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: %d bytes, %v", c.name, len(got), err)
		}
		if c.codec == records.CodecNone {
			continue
		}
		bad := bytes.Clone(c.data)
		bad = bad[:len(bad)/2]
		if _, err := Decompress(c.codec, bad); err == nil {
			t.Errorf("%s: truncated data decompressed without error", c.name)
		}
	}
	if _, err := Decompress(7, plain); err == nil {
		t.Error("codec 7 accepted")
	}
}

func TestDecompressBounded(t *testing.T) {
	huge := make([]byte, MaxDecompressed+1)
	for name, data := range map[string][]byte{
		"zstd": zstdOf(huge),
		"lz4":  lz4Of(huge),
	} {
		c := map[string]int{"zstd": records.CodecZstd, "lz4": records.CodecLZ4}[name]
		if _, err := Decompress(c, data); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s bomb of %d bytes: %v, want ErrTooLarge", name, len(data), err)
		}
	}
	// A snappy block whose header claims more than the limit is refused
	// before anything is allocated.
	claim := binary.AppendUvarint(nil, MaxDecompressed+1)
	if _, err := Decompress(records.CodecSnappy, append(claim, 0, 0, 0)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("snappy claim: %v", err)
	}
}

// Importing the package installs the codecs for every reader of batches.
func TestInstalled(t *testing.T) {
	if stream.Decompress == nil {
		t.Fatal("stream.Decompress not installed")
	}
	b := records.Encode([]records.Record{{Timestamp: 1, Value: []byte("v")}})
	// Recompress the records section with zstd and fix the header.
	section := zstdOf(b[records.HeaderLen:])
	out := append(bytes.Clone(b[:records.HeaderLen]), section...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint16(out[21:], records.CodecZstd)
	binary.BigEndian.PutUint32(out[17:], crc(out[21:]))
	recs, _, err := records.Decode(out, stream.Decompress)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("decode zstd batch: %v %v", recs, err)
	}
}

func FuzzDecompress(f *testing.F) {
	plain := []byte("some records")
	f.Add(byte(records.CodecGzip), gzipOf(plain))
	f.Add(byte(records.CodecSnappy), snappy.Encode(nil, plain))
	f.Add(byte(records.CodecSnappy), xerialOf(plain, 4))
	f.Add(byte(records.CodecLZ4), lz4Of(plain))
	f.Add(byte(records.CodecZstd), zstdOf(plain))
	f.Fuzz(func(t *testing.T, codec byte, data []byte) {
		out, err := Decompress(int(codec%8), data)
		if err == nil && len(out) > MaxDecompressed {
			t.Fatalf("%d bytes out", len(out))
		}
	})
}

func crc(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
