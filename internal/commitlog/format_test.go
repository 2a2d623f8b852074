package commitlog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func sampleCommit() []byte {
	entries := []Entry{
		{Type: 100, Data: []byte(`{"a":1}`)},
		{Type: 104, Data: []byte("x"), Ref: Ref{Off: 0, Len: 5, CRC: CRC([]byte("hello"))}},
		{Type: 104, Data: nil, Ref: Ref{Key: "chunks/00000000000000000001-a-1", Off: 8, Len: 3, CRC: 7}},
	}
	return encodeCommit(42, [16]byte{1, 2, 3}, entries, []byte("hello"))
}

func TestCommitRoundTrip(t *testing.T) {
	b := sampleCommit()
	c, err := DecodeCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Seq != 42 || c.ID != [16]byte{1, 2, 3} || len(c.Entries) != 3 {
		t.Fatalf("decoded %+v", c)
	}
	in := c.Entries[1].Ref
	if in.Key != LogKey(42) || in.Len != 5 {
		t.Fatalf("inline ref %+v", in)
	}
	// The inline ref is an absolute range of the commit object.
	if err := VerifyBlob(in, b[in.Off:in.Off+in.Len]); err != nil {
		t.Fatal(err)
	}
	if got := c.Entries[2].Ref; got.Key != "chunks/00000000000000000001-a-1" || got.Off != 8 || got.Len != 3 || got.CRC != 7 {
		t.Fatalf("object ref %+v", got)
	}
	if !c.Entries[0].Ref.IsZero() || string(c.Entries[0].Data) != `{"a":1}` {
		t.Fatalf("plain entry %+v", c.Entries[0])
	}
}

func TestCommitCorruption(t *testing.T) {
	b := sampleCommit()
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x40
		if _, err := DecodeCommit(bad); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	for n := range len(b) {
		if _, err := DecodeCommit(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncation to %d: %v", n, err)
		}
	}
	newer := bytes.Clone(b)
	newer[5] = 9
	if _, err := DecodeCommit(newer); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("newer version: %v", err)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	parts := []cpPart{
		{Name: "leases", Seq: 3, Key: SnapshotKey("leases", 3), Size: 40, CRC: 1},
		{Name: "streams", Seq: 7, Key: SnapshotKey("streams", 7), Size: 1 << 20, CRC: 2},
	}
	b := encodeCheckpoint(7, parts)
	ci, err := decodeCheckpoint(b)
	if err != nil || ci.seq != 7 || ci.version != 2 || !slices.Equal(ci.parts, parts) {
		t.Fatalf("got %+v %v", ci, err)
	}
	b[len(b)-5] ^= 1
	if _, err := decodeCheckpoint(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt checkpoint: %v", err)
	}
	// A part newer than the checkpoint, or whose key is not its name's, is
	// corrupt.
	bad := encodeCheckpoint(5, parts)
	if _, err := decodeCheckpoint(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("part above the checkpoint: %v", err)
	}
	// Version 1 (the N-1 rule) still reads.
	v1 := encodeCheckpointV1(4, map[string][]byte{"streams": []byte(`{}`)})
	ci, err = decodeCheckpoint(v1)
	if err != nil || ci.seq != 4 || ci.version != 1 || string(ci.legacy["streams"]) != "{}" {
		t.Fatalf("v1: %+v %v", ci, err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	b := encodeSnapshot("streams", 12, []byte("state"))
	name, seq, body, err := DecodeSnapshot(b)
	if err != nil || name != "streams" || seq != 12 || string(body) != "state" {
		t.Fatalf("got %q %d %q %v", name, seq, body, err)
	}
	for n := range len(b) {
		if _, _, _, err := DecodeSnapshot(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncation to %d: %v", n, err)
		}
	}
}

func TestKeys(t *testing.T) {
	if LogKey(1) != "log/00000000000000000001" {
		t.Fatal(LogKey(1))
	}
	if s, ok := parseSeq(LogKey(123456), LogPrefix); !ok || s != 123456 {
		t.Fatal(s, ok)
	}
	for _, k := range []string{"log/1", "log/0000000000000000000x", "checkpoints/00000000000000000001"} {
		if _, ok := parseSeq(k, LogPrefix); ok {
			t.Fatalf("%q parsed as a log key", k)
		}
	}
}

// FuzzDecodeCommit: no input panics, and whatever decodes re-encodes to the
// same bytes.
func FuzzDecodeCommit(f *testing.F) {
	f.Add(sampleCommit())
	f.Add(encodeCommit(1, [16]byte{}, nil, nil))
	f.Add([]byte("TWLC"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommit(b)
		if err != nil {
			return
		}
		// Rebuild the inline section and relative refs, then compare.
		inlineLen := int(uint32(b[commitHeaderLen])<<24 | uint32(b[commitHeaderLen+1])<<16 | uint32(b[commitHeaderLen+2])<<8 | uint32(b[commitHeaderLen+3]))
		inline := b[inlineStart : inlineStart+inlineLen]
		entries := make([]Entry, len(c.Entries))
		for i, e := range c.Entries {
			entries[i] = e
			if e.Ref.Key == LogKey(c.Seq) {
				entries[i].Ref.Key = ""
				entries[i].Ref.Off -= inlineStart
			}
		}
		again := encodeCommit(c.Seq, c.ID, entries, inline)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(9, []cpPart{{Name: "streams", Seq: 9, Key: SnapshotKey("streams", 9), Size: 10, CRC: 3}}))
	f.Add(encodeCheckpointV1(9, map[string][]byte{"streams": []byte("{}")}))
	f.Add([]byte("TWCP\x00\x02\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ci, err := decodeCheckpoint(b)
		if err != nil || ci.version != 2 {
			return
		}
		if again := encodeCheckpoint(ci.seq, ci.parts); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot("groups", 3, []byte("{}")))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, seq, body, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		if again := encodeSnapshot(name, seq, body); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// encodeCheckpointV1 writes the version-1 layout, which this version no
// longer writes but still reads (the N-1 rule).
func encodeCheckpointV1(seq uint64, snaps map[string][]byte) []byte {
	body, _ := json.Marshal(snaps)
	b := make([]byte, 0, 24+len(body)+4)
	b = append(b, checkpointMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, CRC(b))
}
