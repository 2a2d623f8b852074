package stream

// Key compaction (cleanup.policy=compact), Kafka's log cleaner on a
// bucket. The agent holding the janitor lease picks, in each partition of
// a compacted topic, the run of segments from the oldest up to (not
// including) the first one appended less than min.compaction.lag.ms ago
// and never the partition's newest segment (the active head). Once
// min.cleanable.dirty.ratio of the run's bytes were appended since the
// run was last compacted, it reads the whole partition, notes the latest
// offset of every key, and rewrites the run keeping only each key's
// latest record, minus tombstones (null values) appended more than
// delete.retention.ms ago. The rewritten blob is one segment whose
// batches keep their base offsets, last offset deltas, timestamps and
// producer fields, and whose records keep their offsets: offsets stay as
// they were, with gaps, as on Kafka. Transactional and control batches
// are kept whole, and their records never make an older record of their
// key obsolete (the transaction may have been aborted).
//
// A TypeKeyCompact entry swaps the run for the new segment (or, when
// nothing of it is left, removes it) only if the partition still holds
// exactly that run: a digest of the run's refs is part of the entry. So a
// compaction racing retention, index compaction or another compaction is
// rejected, deterministically, and its chunk is garbage.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"sort"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

// TypeKeyCompact replaces a run of segments with its key-compacted rewrite.
const TypeKeyCompact uint16 = 110

type keyCompactEntry struct {
	Topic     string `json:"topic"`
	ID        uint64 `json:"id"`
	Partition int32  `json:"p"`
	Base      int64  `json:"base"`
	End       int64  `json:"end"`
	Segments  int    `json:"segs"`
	// Digest is the CRC-32C of the run's refs (runDigest).
	Digest uint32 `json:"src"`
	// Empty: nothing of the run is left; the entry has no blob.
	Empty bool `json:"empty,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// runDigest identifies a run of segments exactly.
func runDigest(run []segment) uint32 {
	var b []byte
	for _, seg := range run {
		b = binary.AppendVarint(b, seg.Base)
		b = binary.AppendVarint(b, seg.Count)
		b = append(b, seg.Ref.Key...)
		b = binary.AppendVarint(b, seg.Ref.Off)
		b = binary.AppendVarint(b, seg.Ref.Len)
		b = binary.BigEndian.AppendUint32(b, seg.Ref.CRC)
	}
	return crc32.Checksum(b, castagnoli)
}

func (s *state) applyKeyCompact(e commitlog.Entry) any {
	var ce keyCompactEntry
	if err := json.Unmarshal(e.Data, &ce); err != nil {
		return fmt.Errorf("malformed key compaction entry: %v", err)
	}
	t, ok := s.topics[ce.Topic]
	if !ok || t.ID != ce.ID {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, ce.Topic)
	}
	p, err := s.partition(ce.Topic, ce.Partition)
	if err != nil {
		return err
	}
	if ce.Empty != e.Ref.IsZero() || ce.Segments < 1 {
		return fmt.Errorf("malformed key compaction entry: blob and empty disagree")
	}
	i := sort.Search(len(p.Segments), func(i int) bool { return p.Segments[i].Base >= ce.Base })
	if i == len(p.Segments) || p.Segments[i].Base != ce.Base || i+ce.Segments > len(p.Segments) {
		return errCompactStale
	}
	run := p.Segments[i : i+ce.Segments]
	if last := run[len(run)-1]; last.Base+last.Count != ce.End || runDigest(run) != ce.Digest {
		return errCompactStale
	}
	var merged []segment
	if !ce.Empty {
		m := segment{Base: ce.Base, Count: ce.End - ce.Base, Ref: e.Ref, Compacted: true}
		for _, seg := range run {
			m.MaxTs = max(m.MaxTs, seg.MaxTs)
			m.AppendMs = max(m.AppendMs, seg.AppendMs)
		}
		merged = []segment{m}
		p.Bytes += e.Ref.Len
	}
	for _, seg := range run {
		p.Bytes -= seg.Ref.Len
	}
	p.Segments = append(append(append([]segment{}, p.Segments[:i]...), merged...), p.Segments[i+ce.Segments:]...)
	return nil
}

// keyRun is a planned key compaction of one partition: the run to rewrite
// (rewrite) and the segments after it (head), read for their keys only.
type keyRun struct {
	entry          keyCompactEntry
	start          int64 // the partition's start offset
	rewrite, head  []segment
	deleteBeforeMs int64 // tombstones appended before this go
}

// planKeyCompaction picks the partitions of compacted topics to compact.
// It reads state only.
func (s *state) planKeyCompaction(now time.Time, maxBytes int64) []keyRun {
	var runs []keyRun
	names := make([]string, 0, len(s.topics))
	for n, t := range s.topics {
		if t.Config.Compacted() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		t := s.topics[name]
		cutoff := now.UnixMilli() - t.Config.MinCompactionLagMs()
		for pi, p := range t.Partitions {
			n := 0
			var total, dirty int64
			for n < len(p.Segments)-1 && p.Segments[n].AppendMs <= cutoff {
				seg := p.Segments[n]
				if n > 0 && total+seg.Ref.Len > maxBytes {
					break
				}
				total += seg.Ref.Len
				if !seg.Compacted {
					dirty += seg.Ref.Len
				}
				n++
			}
			if n == 0 || dirty == 0 || float64(dirty) < t.Config.DirtyRatio()*float64(total) {
				continue
			}
			run := p.Segments[:n:n]
			last := run[n-1]
			runs = append(runs, keyRun{
				entry: keyCompactEntry{Topic: name, ID: t.ID, Partition: int32(pi), Base: run[0].Base, End: last.Base + last.Count,
					Segments: n, Digest: runDigest(run)},
				start:          p.Start,
				rewrite:        run,
				head:           p.Segments[n:len(p.Segments):len(p.Segments)],
				deleteBeforeMs: now.UnixMilli() - t.Config.DeleteRetentionMs(),
			})
		}
	}
	return runs
}

// KeyCompact runs one key compaction pass now and returns how many
// partitions it rewrote.
func (s *Service) KeyCompact(ctx context.Context) (int, error) {
	if !s.log.Enabled(fmt.Sprintf("type:%d", TypeKeyCompact)) {
		return 0, nil // no compacted topic can exist yet either
	}
	var runs []keyRun
	s.log.View(s.st, func() { runs = s.st.planKeyCompaction(time.Now(), s.opts.Compact.MaxKeyCompactBytes) })
	done := 0
	for _, r := range runs {
		blob, err := s.keyCompactBlob(ctx, r)
		if err != nil {
			return done, fmt.Errorf("key compaction of %s/%d: %w", r.entry.Topic, r.entry.Partition, err)
		}
		e := commitlog.Entry{Type: TypeKeyCompact}
		if len(blob) == 0 {
			r.entry.Empty = true
		} else {
			refs, err := s.log.PutChunk(ctx, [][]byte{blob})
			if err != nil {
				return done, err
			}
			e.Ref = refs[0]
		}
		e.Data, _ = json.Marshal(r.entry)
		_, res, err := s.log.Propose(ctx, e)
		if err != nil {
			return done, err
		}
		if res[0] == nil {
			done++
		}
	}
	return done, nil
}

// wholeBatch reports whether a batch is kept as it is: transactional and
// control batches are never filtered.
func wholeBatch(m records.BatchMeta) bool {
	return m.Attributes&(records.AttrTransactional|records.AttrControl) != 0
}

// keyCompactBlob reads the partition, finds every key's latest offset and
// returns the rewritten run.
func (s *Service) keyCompactBlob(ctx context.Context, r keyRun) ([]byte, error) {
	latest := map[string]int64{}
	scan := func(segs []segment, rewrite bool, out *[]byte) error {
		for _, seg := range segs {
			blob, err := s.readBlob(ctx, seg.Ref)
			if err != nil {
				return err
			}
			err = eachBatch(seg, blob, func(b []byte, base int64, m records.BatchMeta) error {
				if wholeBatch(m) {
					if rewrite && base+int64(m.LastOffsetDelta) >= r.start {
						nb := append([]byte(nil), b...)
						records.SetBaseOffset(nb, base)
						*out = append(*out, nb...)
					}
					return nil
				}
				nb := append([]byte(nil), b...)
				records.SetBaseOffset(nb, base)
				recs, m, err := records.Records(nb, Decompress)
				if err != nil {
					return err
				}
				if !rewrite {
					for _, rec := range recs {
						if rec.Key != nil {
							latest[string(rec.Key)] = rec.Offset
						}
					}
					return nil
				}
				keep := make([]bool, len(recs))
				for i, rec := range recs {
					keep[i] = rec.Key != nil && rec.Offset >= r.start && latest[string(rec.Key)] == rec.Offset &&
						!(rec.Tombstone && seg.AppendMs < r.deleteBeforeMs)
				}
				*out = append(*out, records.Filter(nb, m, recs, keep)...)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := scan(r.rewrite, false, nil); err != nil {
		return nil, err
	}
	if err := scan(r.head, false, nil); err != nil {
		return nil, err
	}
	var out []byte
	if err := scan(r.rewrite, true, &out); err != nil {
		return nil, err
	}
	return out, nil
}
