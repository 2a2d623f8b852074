package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
)

// Object names. Sequence numbers are zero-padded to 20 digits so that the
// lexicographic order of keys is the numeric order of sequences.
const (
	LogPrefix        = "log/"
	ChunkPrefix      = "chunks/"
	CheckpointPrefix = "checkpoints/"
)

// LogKey is the key of commit seq.
func LogKey(seq uint64) string { return fmt.Sprintf("%s%020d", LogPrefix, seq) }

// CheckpointKey is the key of the checkpoint taken after applying commit seq.
func CheckpointKey(seq uint64) string { return fmt.Sprintf("%s%020d", CheckpointPrefix, seq) }

// parseSeq extracts the sequence number of a log or checkpoint key.
func parseSeq(key, prefix string) (uint64, bool) {
	if len(key) != len(prefix)+20 || key[:len(prefix)] != prefix {
		return 0, false
	}
	n, err := strconv.ParseUint(key[len(prefix):], 10, 64)
	return n, err == nil
}

// Format versions written by this code. Readers accept these and the
// previous version (see docs/FORMAT.md for the rule).
const (
	commitVersion     = 1
	chunkVersion      = 1
	checkpointVersion = 2
	snapshotVersion   = 1
)

var (
	commitMagic     = [4]byte{'T', 'W', 'L', 'C'}
	chunkMagic      = [4]byte{'T', 'W', 'C', 'K'}
	checkpointMagic = [4]byte{'T', 'W', 'C', 'P'}
	snapshotMagic   = [4]byte{'T', 'W', 'S', 'N'}
)

// ErrCorrupt marks an object that does not decode: bad magic, bad checksum,
// truncated, or fields out of range.
var ErrCorrupt = errors.New("corrupt object")

// ErrNewerFormat marks an object written by a newer version of twoway than
// this one can read.
var ErrNewerFormat = errors.New("object written in a newer format; upgrade twoway")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC-32C (Castagnoli) of b, the checksum used in every
// twoway object.
func CRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Ref locates a blob of bytes in the bucket: a range of a chunk or of a commit
// (inline data). The CRC covers exactly those bytes.
type Ref struct {
	Key string
	Off int64
	Len int64
	CRC uint32
}

// IsZero reports whether r refers to nothing.
func (r Ref) IsZero() bool { return r.Key == "" }

// Entry is one typed item of a commit. The log core gives no meaning to Type
// or Data beyond its own entry types; the owner of the type does.
type Entry struct {
	Type uint16
	Data []byte
	// Ref locates the entry's blob, if it has one. When proposing, leave it
	// zero and set Blob; the log decides where the blob lives.
	Ref Ref
	// Blob is the payload to store with the entry (proposals only; never
	// decoded from a commit, read it through Ref).
	Blob []byte
}

// Commit is one decoded commit object.
type Commit struct {
	Seq uint64
	// ID is chosen at random by the writer once per commit body and kept
	// across re-sequencing, so a writer recognises its own commit after an
	// unknown-outcome write.
	ID      [16]byte
	Entries []Entry
}

// Commit layout (version 1), all integers big-endian:
//
//	magic "TWLC" | version u16 | flags u16 | seq u64 | id [16]
//	inline_len u32 | inline bytes
//	entry_count u32 | entries...
//	crc32c u32 (of everything before it)
//
// entry: type u16 | ref_kind u8 (0 none, 1 inline, 2 object)
//
//	[ref_kind 2: key_len u16 | key]
//	[ref_kind 1,2: off u64 | len u32 | crc u32]
//	data_len u32 | data
//
// Inline offsets are relative to the start of the inline bytes; the decoder
// turns them into absolute offsets in the commit object.
const (
	commitHeaderLen = 4 + 2 + 2 + 8 + 16
	inlineStart     = commitHeaderLen + 4
	refNone         = 0
	refInline       = 1
	refObject       = 2
	maxEntries      = 1 << 20
)

// encodeCommit encodes c with inline as its inline data section. Entries whose
// Ref.Key is "" but whose Ref.Len > 0 refer to inline data at Ref.Off
// (relative to the start of inline).
func encodeCommit(seq uint64, id [16]byte, entries []Entry, inline []byte) []byte {
	size := inlineStart + len(inline) + 4 + 4
	for _, e := range entries {
		size += 2 + 1 + 2 + len(e.Ref.Key) + 16 + 4 + len(e.Data)
	}
	b := make([]byte, 0, size)
	b = append(b, commitMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, commitVersion)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(inline)))
	b = append(b, inline...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, e.Type)
		switch {
		case e.Ref.Key == "" && e.Ref.Len == 0:
			b = append(b, refNone)
		case e.Ref.Key == "":
			b = append(b, refInline)
		default:
			b = append(b, refObject)
			b = binary.BigEndian.AppendUint16(b, uint16(len(e.Ref.Key)))
			b = append(b, e.Ref.Key...)
		}
		if e.Ref.Key != "" || e.Ref.Len != 0 {
			b = binary.BigEndian.AppendUint64(b, uint64(e.Ref.Off))
			b = binary.BigEndian.AppendUint32(b, uint32(e.Ref.Len))
			b = binary.BigEndian.AppendUint32(b, e.Ref.CRC)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
		b = append(b, e.Data...)
	}
	return binary.BigEndian.AppendUint32(b, CRC(b))
}

// reader is a bounds-checked cursor; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: truncated", ErrCorrupt)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// checkEnvelope verifies magic, version and trailing CRC and returns the body
// without the CRC.
func checkEnvelope(b []byte, magic [4]byte, newest uint16, what string) ([]byte, uint16, error) {
	if len(b) < 8+4 {
		return nil, 0, fmt.Errorf("%w: %s of %d bytes is too short", ErrCorrupt, what, len(b))
	}
	if [4]byte(b[:4]) != magic {
		return nil, 0, fmt.Errorf("%w: %s has bad magic %q", ErrCorrupt, what, b[:4])
	}
	version := binary.BigEndian.Uint16(b[4:6])
	if version > newest {
		return nil, 0, fmt.Errorf("%w: %s format version %d, this build reads up to %d", ErrNewerFormat, what, version, newest)
	}
	if version == 0 {
		return nil, 0, fmt.Errorf("%w: %s format version 0", ErrCorrupt, what)
	}
	body := b[:len(b)-4]
	if got, want := CRC(body), binary.BigEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, 0, fmt.Errorf("%w: %s checksum mismatch (stored %08x, computed %08x)", ErrCorrupt, what, want, got)
	}
	return body, version, nil
}

// DecodeCommit decodes and verifies a commit object. Inline refs are resolved
// to absolute ranges of the commit's own key.
func DecodeCommit(b []byte) (*Commit, error) {
	body, _, err := checkEnvelope(b, commitMagic, commitVersion, "commit")
	if err != nil {
		return nil, err
	}
	r := &reader{b: body[8:]}
	c := &Commit{Seq: r.u64()}
	copy(c.ID[:], r.take(16))
	inlineLen := int64(r.u32())
	r.take(int(inlineLen))
	n := r.u32()
	if r.err == nil && n > maxEntries {
		return nil, fmt.Errorf("%w: commit claims %d entries", ErrCorrupt, n)
	}
	key := LogKey(c.Seq)
	for i := uint32(0); i < n && r.err == nil; i++ {
		e := Entry{Type: r.u16()}
		kind := r.u8()
		switch kind {
		case refNone:
		case refInline, refObject:
			if kind == refObject {
				e.Ref.Key = string(r.take(int(r.u16())))
				if r.err == nil && e.Ref.Key == "" {
					r.err = fmt.Errorf("%w: entry %d has an empty object ref", ErrCorrupt, i)
				}
			}
			e.Ref.Off = int64(r.u64())
			e.Ref.Len = int64(r.u32())
			e.Ref.CRC = r.u32()
			if kind == refInline {
				if r.err == nil && (e.Ref.Len == 0 || e.Ref.Off < 0 || e.Ref.Off+e.Ref.Len > inlineLen) {
					r.err = fmt.Errorf("%w: entry %d inline range [%d,+%d) outside %d inline bytes", ErrCorrupt, i, e.Ref.Off, e.Ref.Len, inlineLen)
				}
				e.Ref.Key = key
				e.Ref.Off += inlineStart
			} else if r.err == nil && (e.Ref.Off < 0 || e.Ref.Key == key) {
				r.err = fmt.Errorf("%w: entry %d has a bad object ref", ErrCorrupt, i)
			}
		default:
			r.err = fmt.Errorf("%w: entry %d has unknown ref kind %d", ErrCorrupt, i, kind)
		}
		e.Data = r.take(int(r.u32()))
		c.Entries = append(c.Entries, e)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after commit entries", ErrCorrupt, len(r.b))
	}
	return c, nil
}

// Chunk layout (version 1): magic "TWCK" | version u16 | flags u16 | blobs.
// A chunk has no index of its own: the commits that reference it hold the
// ranges and CRCs of its blobs.
const chunkHeaderLen = 8

func chunkHeader() []byte {
	b := append([]byte(nil), chunkMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, chunkVersion)
	return binary.BigEndian.AppendUint16(b, 0)
}

// VerifyBlob checks that data is what ref promises.
func VerifyBlob(ref Ref, data []byte) error {
	if int64(len(data)) != ref.Len {
		return fmt.Errorf("%w: %s [%d,+%d): read %d bytes", ErrCorrupt, ref.Key, ref.Off, ref.Len, len(data))
	}
	if got := CRC(data); got != ref.CRC {
		return fmt.Errorf("%w: %s [%d,+%d): checksum %08x, want %08x", ErrCorrupt, ref.Key, ref.Off, ref.Len, got, ref.CRC)
	}
	return nil
}
