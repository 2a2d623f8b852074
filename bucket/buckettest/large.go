package buckettest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"

	"github.com/twoway/twoway/bucket"
)

// pattern is reproducible pseudo-random content: byte i is a function of
// the seed and i, so a test can stream an object of any size and check any
// part of it without ever holding it.
type pattern struct{ seed uint64 }

// word returns the i'th 8 bytes (splitmix64 of the seed and i).
func (p pattern) word(i uint64) uint64 {
	x := p.seed<<40 ^ i
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// fill sets buf to the content at offset off.
func (p pattern) fill(buf []byte, off int64) {
	i := 0
	byteAt := func(pos int64) byte { return byte(p.word(uint64(pos)/8) >> (8 * (pos % 8))) }
	for ; i < len(buf) && (off+int64(i))%8 != 0; i++ {
		buf[i] = byteAt(off + int64(i))
	}
	for ; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], p.word(uint64(off+int64(i))/8))
	}
	for ; i < len(buf); i++ {
		buf[i] = byteAt(off + int64(i))
	}
}

// reader streams the first size bytes of the pattern. It is deliberately
// nothing but an io.Reader: no Seek, no WriterTo, no length.
func (p pattern) reader(size int64) io.Reader { return &patternReader{p: p, size: size} }

type patternReader struct {
	p         pattern
	off, size int64
}

func (r *patternReader) Read(buf []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(buf)), r.size-r.off)
	r.p.fill(buf[:n], r.off)
	r.off += n
	return int(n), nil
}

// testLargeObject streams an object larger than 64 MiB from a generator
// (never held in memory by the test), reads it back while hashing and
// comparing it, and reads ranges deep inside it.
func testLargeObject(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	const size = 64<<20 + 12345 // not a multiple of any buffer or part size
	p := pattern{seed: 64}
	const key = "large/object"

	sent := sha256.New()
	info, err := b.Put(ctx, key, io.TeeReader(p.reader(size), sent), size)
	if err != nil {
		t.Fatalf("Put of %d bytes: %v", size, err)
	}
	checkInfo(t, "Put", info, key, size)
	if st := stat(t, b, key); st.Size != size || st.Version != info.Version {
		t.Errorf("Stat = size %d, version %q; want %d, %q", st.Size, st.Version, size, info.Version)
	}

	rc, ginfo, err := b.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	checkInfo(t, "Get", ginfo, key, size)
	received := sha256.New()
	check := newChecker(p)
	if _, err := io.Copy(io.MultiWriter(received, check), rc); err != nil {
		t.Fatalf("reading the object back: %v", err)
	}
	if err := check.result(size); err != nil {
		t.Error(err)
	}
	if !bytes.Equal(sent.Sum(nil), received.Sum(nil)) {
		t.Errorf("SHA-256 of what was read %x, of what was written %x", received.Sum(nil), sent.Sum(nil))
	}

	for _, r := range []struct{ off, length int64 }{
		{0, 4096},
		{1<<20 - 3, 4096},
		{32<<20 + 7, 65536},
		{size - 100, 4096},
		{size - 1, -1},
		{size, -1},
	} {
		got, err := b.GetRange(ctx, key, r.off, r.length)
		if err != nil {
			t.Errorf("GetRange(%d, %d): %v", r.off, r.length, err)
			continue
		}
		n := size - r.off
		if r.length >= 0 {
			n = min(n, r.length)
		}
		want := make([]byte, n)
		p.fill(want, r.off)
		if !bytes.Equal(got, want) {
			t.Errorf("GetRange(%d, %d) returned %d bytes that differ from what was written (want %d)", r.off, r.length, len(got), n)
		}
	}
}
