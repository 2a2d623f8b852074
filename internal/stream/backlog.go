package stream

import "sort"

// Backlog describes what a partition holds from an offset on: what a
// reader positioned there (a mirror, say) has yet to read.
type Backlog struct {
	Start, End int64 // the partition's log start and end offsets
	// Records is End minus the offset (from Start when the offset is below
	// it); Bytes the stored bytes of the batches holding them (a batch
	// straddling the offset counts whole).
	Records, Bytes int64
	// OldestAppendMs is the append time of the batch holding the first of
	// them (0 when there are none).
	OldestAppendMs int64
}

// Backlog returns the partition's backlog from offset on.
func (s *Service) Backlog(topicName string, part int32, offset int64) (Backlog, error) {
	var b Backlog
	err := s.viewPartition(topicName, part, func(p *partition) {
		b.Start, b.End = p.Start, p.End
		from := max(offset, p.Start)
		if from >= p.End {
			return
		}
		b.Records = p.End - from
		i := sort.Search(len(p.Segments), func(i int) bool { return p.Segments[i].Base+p.Segments[i].Count > from })
		if i < len(p.Segments) {
			b.OldestAppendMs = p.Segments[i].AppendMs
		}
		for ; i < len(p.Segments); i++ {
			b.Bytes += int64(p.Segments[i].Ref.Len)
		}
	})
	return b, err
}
