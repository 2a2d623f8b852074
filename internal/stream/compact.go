package stream

// Compaction of the record index. Every commit that touches a partition adds
// one segment (a ref to a blob) to its index, so under steady load the index,
// and with it checkpoints and start-up, would grow with history, and small
// commits with inline data could never be collected. The agent holding the
// janitor lease therefore rewrites runs of small segments of one partition
// into one chunk (the blobs are concatenated Kafka batches, so their
// concatenation is a valid blob) and commits a TypeCompact entry that swaps
// the run for one segment. Apply accepts the swap only if the run is still
// exactly what was planned, so it is safe against concurrent retention and
// deterministic; the old chunks and commits become garbage.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
)

// TypeCompact replaces a run of segments with one (see above).
const TypeCompact uint16 = 107

type compactEntry struct {
	Topic     string `json:"topic"`
	ID        uint64 `json:"id"`
	Partition int32  `json:"p"`
	Base      int64  `json:"base"`
	End       int64  `json:"end"`
	Segments  int    `json:"segs"`
}

// CompactOptions tune index compaction. Zero values take the defaults.
type CompactOptions struct {
	// Interval between compaction passes. Default 10s.
	Interval time.Duration
	// Age: only segments appended at least this long ago are rewritten, so
	// fresh data is read from where it was written. Default 1m.
	Age time.Duration
	// Target is the size a rewritten segment aims for. Default 8 MiB.
	Target int64
	// MinSegments: a run shorter than this is rewritten only once it
	// reaches Target bytes. Default 32.
	MinSegments int
	// MaxBytesPerPass bounds the data one pass reads and writes. Default 64 MiB.
	MaxBytesPerPass int64
	// MaxKeyCompactBytes bounds the run of one partition that one key
	// compaction rewrites (keycompact.go). Default 256 MiB.
	MaxKeyCompactBytes int64
	// Disabled turns compaction off (index and key compaction).
	Disabled bool
}

func (o *CompactOptions) fill() {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Age <= 0 {
		o.Age = time.Minute
	}
	if o.Target <= 0 {
		o.Target = 8 << 20
	}
	if o.MinSegments <= 1 {
		o.MinSegments = 32
	}
	if o.MaxBytesPerPass <= 0 {
		o.MaxBytesPerPass = 64 << 20
	}
	if o.MaxKeyCompactBytes <= 0 {
		o.MaxKeyCompactBytes = 256 << 20
	}
}

// applyCompact swaps segments [base, end) of a partition for one, if they
// are still exactly the run that was rewritten.
func (s *state) applyCompact(e commitlog.Entry) any {
	var ce compactEntry
	if err := json.Unmarshal(e.Data, &ce); err != nil {
		return fmt.Errorf("malformed compact entry: %v", err)
	}
	t, ok := s.topics[ce.Topic]
	if !ok || t.ID != ce.ID {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, ce.Topic)
	}
	p, err := s.partition(ce.Topic, ce.Partition)
	if err != nil {
		return err
	}
	i := sort.Search(len(p.Segments), func(i int) bool { return p.Segments[i].Base >= ce.Base })
	if i == len(p.Segments) || p.Segments[i].Base != ce.Base || ce.Segments < 2 || i+ce.Segments > len(p.Segments) {
		return errCompactStale
	}
	run := p.Segments[i : i+ce.Segments]
	last := run[len(run)-1]
	if last.Base+last.Count != ce.End {
		return errCompactStale
	}
	for _, seg := range run {
		if seg.Compacted {
			// Its batches carry their own offsets; key compaction
			// merges those.
			return errCompactStale
		}
	}
	merged := segment{Base: ce.Base, Count: ce.End - ce.Base, Ref: e.Ref}
	var size int64
	for _, seg := range run {
		size += seg.Ref.Len
		merged.MaxTs = max(merged.MaxTs, seg.MaxTs)
		merged.AppendMs = max(merged.AppendMs, seg.AppendMs)
	}
	if size != e.Ref.Len {
		return errCompactStale
	}
	p.Segments = append(append(append([]segment{}, p.Segments[:i]...), merged), p.Segments[i+ce.Segments:]...)
	return nil
}

var errCompactStale = fmt.Errorf("compaction no longer matches the index")

// compactRun is a planned rewrite.
type compactRun struct {
	entry compactEntry
	refs  []commitlog.Ref
}

// planCompaction picks runs of small, old segments. It reads state only.
func (s *state) planCompaction(now time.Time, o CompactOptions) []compactRun {
	var runs []compactRun
	var budget = o.MaxBytesPerPass
	names := make([]string, 0, len(s.topics))
	for n := range s.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	cutoff := now.Add(-o.Age).UnixMilli()
	for _, name := range names {
		t := s.topics[name]
		if t.Config.Compacted() {
			continue // key compaction rewrites its segments
		}
		for pi, p := range t.Partitions {
			var cur []segment
			var size int64
			flush := func() {
				if len(cur) >= 2 && (size >= o.Target || len(cur) >= o.MinSegments) && budget >= size {
					r := compactRun{entry: compactEntry{Topic: name, ID: t.ID, Partition: int32(pi), Base: cur[0].Base, End: cur[len(cur)-1].Base + cur[len(cur)-1].Count, Segments: len(cur)}}
					for _, seg := range cur {
						r.refs = append(r.refs, seg.Ref)
					}
					runs = append(runs, r)
					budget -= size
				}
				cur, size = nil, 0
			}
			for _, seg := range p.Segments {
				if seg.AppendMs > cutoff {
					break
				}
				if seg.Ref.Len >= o.Target/2 || seg.Compacted {
					flush()
					continue
				}
				if size+seg.Ref.Len > o.Target {
					flush()
				}
				cur = append(cur, seg)
				size += seg.Ref.Len
			}
			flush()
		}
	}
	return runs
}

// Compact runs one compaction pass now and returns how many runs of
// segments it replaced.
func (s *Service) Compact(ctx context.Context) (int, error) {
	var runs []compactRun
	s.log.View(s.st, func() { runs = s.st.planCompaction(time.Now(), s.opts.Compact) })
	done := 0
	for _, r := range runs {
		var blob []byte
		for _, ref := range r.refs {
			b, err := s.readBlob(ctx, ref)
			if err != nil {
				return done, fmt.Errorf("compact %s/%d: %w", r.entry.Topic, r.entry.Partition, err)
			}
			blob = append(blob, b...)
		}
		refs, err := s.log.PutChunk(ctx, [][]byte{blob})
		if err != nil {
			return done, err
		}
		data, _ := json.Marshal(r.entry)
		_, res, err := s.log.Propose(ctx, commitlog.Entry{Type: TypeCompact, Data: data, Ref: refs[0]})
		if err != nil {
			return done, err
		}
		if res[0] == nil {
			done++
		}
	}
	return done, nil
}
