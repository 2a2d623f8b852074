package stream

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/twoway/twoway/internal/commitlog"
)

// The streams snapshot. Capture (Snapshot, run with applying paused) copies
// only what Apply changes in place: the topic and partition headers and the
// idempotent producers' recent batches. A partition's segment slice is
// shared: Apply only ever appends to it or replaces it with a new slice
// (truncation, compaction), so the captured prefix never changes.
//
// Encoding 2 (binary, docs/FORMAT.md) is written once the fleet has enabled
// formatSnapshot2; until then, and for older checkpoints, encoding 1 is
// JSON. Restore reads both.
const formatSnapshot2 = "format:streams-snapshot:2"

// formatSnapshot3 adds topic configs and segment flags to encoding 2.
const formatSnapshot3 = "format:streams-snapshot:3"

// snapMagic starts an encoding-2 snapshot, snapMagic3 an encoding-3 one; a
// JSON one starts with '{'.
const (
	snapMagic  = "TWST\x02"
	snapMagic3 = "TWST\x03"
)

// formatEpochBump is the apply rule that accepts a batch of an idempotent
// producer at a higher epoch than allotted when it starts at sequence 0
// (the producer bumped its epoch itself). Every agent must apply produce
// entries alike, so the rule is a feature the fleet enables.
const formatEpochBump = "format:streams-producer-epoch-bump:1"

func (s *state) Formats() []string {
	return []string{formatSnapshot2, formatEpochBump, formatSnapshot3}
}

func (s *state) UseFeatures(enabled func(string) bool) { s.enabled = enabled }

type capturedPartition struct {
	start, end, bytes int64
	segs              []segment
	producers         []capturedProducer // sorted by id
}

type capturedProducer struct {
	id     int64
	epoch  int16
	recent []seqBatch
}

type capturedTopic struct {
	name       string
	config     TopicConfig
	id         uint64
	createdMs  int64
	partitions []capturedPartition
}

type captured struct {
	needs3    bool            // configs or compacted segments
	topics    []capturedTopic // sorted by name
	producers []capturedProducer
	nextPID   int64
	txn       json.RawMessage // nil: no transactions
}

func (s *state) capture() *captured {
	c := &captured{nextPID: s.nextPID, topics: make([]capturedTopic, 0, len(s.topics)), txn: s.txn.encode()}
	for id, epoch := range s.producers {
		c.producers = append(c.producers, capturedProducer{id: id, epoch: epoch})
	}
	sortProducers(c.producers)
	for name, t := range s.topics {
		if len(t.Config.Configs) > 0 {
			c.needs3 = true
		}
		ct := capturedTopic{name: name, config: t.Config, id: t.ID, createdMs: t.CreatedMs, partitions: make([]capturedPartition, len(t.Partitions))}
		for i, p := range t.Partitions {
			cp := capturedPartition{start: p.Start, end: p.End, bytes: p.Bytes, segs: p.Segments[:len(p.Segments):len(p.Segments)]}
			for k := 0; !c.needs3 && k < len(cp.segs); k++ {
				c.needs3 = cp.segs[k].Compacted
			}
			for id, ps := range p.Producers {
				cp.producers = append(cp.producers, capturedProducer{id: id, epoch: ps.Epoch, recent: append([]seqBatch(nil), ps.Recent...)})
			}
			sortProducers(cp.producers)
			ct.partitions[i] = cp
		}
		c.topics = append(c.topics, ct)
	}
	sort.Slice(c.topics, func(i, j int) bool { return c.topics[i].name < c.topics[j].name })
	return c
}

func sortProducers(ps []capturedProducer) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
}

// Snapshot captures the state cheaply; the returned function encodes it.
func (s *state) Snapshot() func() ([]byte, error) {
	c := s.capture()
	// Configs and compacted segments exist only once the fleet enabled the
	// gated types that make them, which every agent understanding them
	// also reads encoding 3 for.
	// (Encoding 1, JSON, carries them too.)
	if s.enabled != nil && (s.enabled(formatSnapshot3) || (c.needs3 && s.enabled(formatSnapshot2))) {
		return func() ([]byte, error) { return c.encodeBinary(3), nil }
	}
	if s.enabled != nil && s.enabled(formatSnapshot2) {
		return func() ([]byte, error) { return c.encodeBinary(2), nil }
	}
	return c.encodeJSON
}

// encodeJSON writes encoding 1, the JSON of stateJSON.
func (c *captured) encodeJSON() ([]byte, error) {
	j := stateJSON{Topics: map[string]*topic{}, Producers: map[int64]int16{}, NextPID: c.nextPID, Txn: c.txn}
	for _, p := range c.producers {
		j.Producers[p.id] = p.epoch
	}
	for _, ct := range c.topics {
		t := &topic{Config: ct.config, ID: ct.id, CreatedMs: ct.createdMs}
		for _, cp := range ct.partitions {
			p := &partition{Start: cp.start, End: cp.end, Bytes: cp.bytes, Segments: cp.segs}
			if p.Segments == nil {
				p.Segments = []segment{}
			}
			if len(cp.producers) > 0 {
				p.Producers = map[int64]*producerSeqs{}
				for _, pr := range cp.producers {
					p.Producers[pr.id] = &producerSeqs{Epoch: pr.epoch, Recent: pr.recent}
				}
			}
			t.Partitions = append(t.Partitions, p)
		}
		j.Topics[ct.name] = t
	}
	return json.Marshal(j)
}

// encodeBinary writes encoding 2:
//
//	"TWST" 0x02
//	uvarint next_pid; uvarint n; n × (varint pid, varint epoch)
//	uvarint topics; each:
//	  string name; varint partitions, retention_ms, retention_bytes;
//	  uvarint id; varint created_ms; uvarint partitions; each:
//	    varint start, end, bytes
//	    uvarint producers; each: varint pid, epoch; uvarint n; n × varint first, last, base
//	    uvarint segments; each: varint base-(previous end; for the first
//	      segment its own base, so 0: restore places the segments so that
//	      the last ends at end), uvarint count,
//	      key: uvarint bytes shared with the previous segment's key, string rest;
//	      uvarint off, uvarint len, u32 crc (little endian),
//	      varint max_ts-(previous max_ts), varint append_ms-(previous append_ms)
//
// Strings are uvarint length and bytes. Keys are front-coded: chunk keys
// start with their time, so neighbours share most of it.
//
// Encoding 3 ("TWST" 0x03) is encoding 2 with, after each topic's
// created_ms, uvarint n and n × (string name, string value), the topic's
// configs sorted by name; the first segment's base relative to 0 (segments
// may have gaps, and need not end at the end offset); and after each
// segment's append_ms a uvarint of flags (1: compacted).
func (c *captured) encodeBinary(version int) []byte {
	var w snapWriter
	if version >= 3 {
		w.b = append(w.b, snapMagic3...)
	} else {
		w.b = append(w.b, snapMagic...)
	}
	w.uvarint(uint64(c.nextPID))
	w.uvarint(uint64(len(c.producers)))
	for _, p := range c.producers {
		w.varint(p.id)
		w.varint(int64(p.epoch))
	}
	w.uvarint(uint64(len(c.topics)))
	for _, t := range c.topics {
		w.str(t.name)
		w.varint(int64(t.config.Partitions))
		w.varint(t.config.RetentionMs)
		w.varint(t.config.RetentionBytes)
		w.uvarint(t.id)
		w.varint(t.createdMs)
		if version >= 3 {
			names := make([]string, 0, len(t.config.Configs))
			for k := range t.config.Configs {
				names = append(names, k)
			}
			sort.Strings(names)
			w.uvarint(uint64(len(names)))
			for _, k := range names {
				w.str(k)
				w.str(t.config.Configs[k])
			}
		}
		w.uvarint(uint64(len(t.partitions)))
		for _, p := range t.partitions {
			w.varint(p.start)
			w.varint(p.end)
			w.varint(p.bytes)
			w.uvarint(uint64(len(p.producers)))
			for _, pr := range p.producers {
				w.varint(pr.id)
				w.varint(int64(pr.epoch))
				w.uvarint(uint64(len(pr.recent)))
				for _, r := range pr.recent {
					w.varint(int64(r.First))
					w.varint(int64(r.Last))
					w.varint(r.Base)
				}
			}
			w.uvarint(uint64(len(p.segs)))
			var next, ts, am int64
			var key string
			if len(p.segs) > 0 && version < 3 {
				// Encoding 2 writes the first base as 0; restore puts
				// its segments back in place from the end offset.
				next = p.segs[0].Base
			}
			for _, seg := range p.segs {
				w.varint(seg.Base - next)
				w.uvarint(uint64(seg.Count))
				shared := commonPrefix(key, seg.Ref.Key)
				w.uvarint(uint64(shared))
				w.str(seg.Ref.Key[shared:])
				key = seg.Ref.Key
				w.uvarint(uint64(seg.Ref.Off))
				w.uvarint(uint64(seg.Ref.Len))
				w.b = binary.LittleEndian.AppendUint32(w.b, seg.Ref.CRC)
				w.varint(seg.MaxTs - ts)
				w.varint(seg.AppendMs - am)
				if version >= 3 {
					var flags uint64
					if seg.Compacted {
						flags |= 1
					}
					w.uvarint(flags)
				}
				next, ts, am = seg.Base+seg.Count, seg.MaxTs, seg.AppendMs
			}
		}
	}
	if c.txn != nil {
		// Only once a transaction entry (a gated type) was applied, so
		// every agent reading it knows the section.
		w.b = append(w.b, 'T')
		w.str(string(c.txn))
	}
	return w.b
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

type snapWriter struct{ b []byte }

func (w *snapWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *snapWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *snapWriter) str(s string)     { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }

func (s *state) Restore(b []byte) error {
	if len(b) >= len(snapMagic) && string(b[:len(snapMagic)]) == snapMagic {
		return s.restoreBinary(b[len(snapMagic):], 2)
	}
	if len(b) >= len(snapMagic3) && string(b[:len(snapMagic3)]) == snapMagic3 {
		return s.restoreBinary(b[len(snapMagic3):], 3)
	}
	if len(b) > 0 && b[0] != '{' {
		return fmt.Errorf("streams snapshot: unknown encoding (first bytes %q)", b[:min(len(b), 5)])
	}
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	s.Reset()
	if j.Topics != nil {
		s.topics = j.Topics
	}
	if j.Producers != nil {
		s.producers = j.Producers
	}
	s.nextPID = j.NextPID
	return s.txn.restore(j.Txn)
}

var errSnapTruncated = errors.New("streams snapshot: truncated or corrupt")

type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that must fit in what is left, each item taking at
// least min bytes, so a corrupt length cannot make restore allocate wildly.
func (r *snapReader) count(minBytes int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minBytes) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *snapReader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *snapReader) str() string { return string(r.bytes(r.count(1))) }

func (r *snapReader) u32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *snapReader) fail() {
	if r.err == nil {
		r.err = errSnapTruncated
	}
	r.b = nil
}

func (s *state) restoreBinary(b []byte, version int) error {
	r := &snapReader{b: b}
	ns := newState()
	ns.enabled = s.enabled
	ns.nextPID = int64(r.uvarint())
	for range r.count(2) {
		id := r.varint()
		ns.producers[id] = int16(r.varint())
	}
	for range r.count(1) {
		name := r.str()
		t := &topic{}
		t.Config.Name = name
		t.Config.Partitions = int32(r.varint())
		t.Config.RetentionMs = r.varint()
		t.Config.RetentionBytes = r.varint()
		t.ID = r.uvarint()
		t.CreatedMs = r.varint()
		if version >= 3 {
			if n := r.count(2); n > 0 {
				t.Config.Configs = make(map[string]string, n)
				for range n {
					k := r.str()
					t.Config.Configs[k] = r.str()
				}
			}
		}
		np := r.count(4)
		t.Partitions = make([]*partition, np)
		for i := range np {
			p := &partition{Start: r.varint(), End: r.varint(), Bytes: r.varint()}
			if n := r.count(3); n > 0 {
				p.Producers = make(map[int64]*producerSeqs, n)
				for range n {
					id := r.varint()
					ps := &producerSeqs{Epoch: int16(r.varint())}
					nr := r.count(3)
					ps.Recent = make([]seqBatch, nr)
					for k := range ps.Recent {
						ps.Recent[k] = seqBatch{First: int32(r.varint()), Last: int32(r.varint()), Base: r.varint()}
					}
					p.Producers[id] = ps
				}
			}
			nseg := r.count(11)
			p.Segments = make([]segment, nseg)
			var next, ts, am int64
			var key string
			for k := range p.Segments {
				seg := &p.Segments[k]
				seg.Base = next + r.varint()
				seg.Count = int64(r.uvarint())
				shared := r.uvarint()
				rest := r.bytes(r.count(1))
				switch {
				case shared > uint64(len(key)):
					r.fail()
				case len(rest) > 0 || shared < uint64(len(key)):
					key = key[:shared] + string(rest)
				}
				if r.err != nil {
					break
				}
				seg.Ref = commitlog.Ref{Key: key, Off: int64(r.uvarint()), Len: int64(r.uvarint()), CRC: r.u32()}
				seg.MaxTs = ts + r.varint()
				seg.AppendMs = am + r.varint()
				if version >= 3 {
					seg.Compacted = r.uvarint()&1 != 0
				}
				next, ts, am = seg.Base+seg.Count, seg.MaxTs, seg.AppendMs
			}
			if version < 3 && len(p.Segments) > 0 {
				// Encoding 2 lost the first segment's base; its segments
				// have no gaps and end at the partition's end offset.
				shift := p.End - next
				for k := range p.Segments {
					p.Segments[k].Base += shift
				}
			}
			t.Partitions[i] = p
		}
		if r.err != nil {
			break
		}
		ns.topics[name] = t
	}
	var txn []byte
	if r.err == nil && len(r.b) > 0 && r.b[0] == 'T' {
		r.b = r.b[1:]
		txn = r.bytes(r.count(1))
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("streams snapshot: %d bytes after the end", len(r.b))
	}
	if r.err != nil {
		return r.err
	}
	if err := ns.txn.restore(txn); err != nil {
		return err
	}
	*s = *ns
	return nil
}
