package stream

import (
	"context"
	"math"
	"time"

	"github.com/twoway/twoway/internal/records"
)

// Committed reports whether a read_committed reader sees the record at
// offset of a batch described by m, as Kafka's read_committed consumers
// decide: the record is below the last stable offset, is not a
// transaction marker, and is not in an aborted transaction (a
// transactional batch whose producer has an aborted range holding the
// offset). Records at or above LastStable are not decided yet: a reader
// stops there and waits, it does not skip them.
//
// The view must have been taken after the batches were read, or cover
// them: every transaction with records below its LastStable has ended,
// so its aborted ranges are all in Aborted (TxnView from the first offset
// read).
func (v *TxnView) Committed(m records.BatchMeta, offset int64) bool {
	if offset >= v.LastStable || m.IsControl() {
		return false
	}
	if !m.IsTransactional() {
		return true
	}
	for _, a := range v.Aborted {
		if a.PID == m.ProducerID && a.First <= offset && offset <= a.Last {
			return false
		}
	}
	return true
}

// ReadOptions tune ReadRecords.
type ReadOptions struct {
	// Max is the most records returned (at least one is asked for).
	Max int
	// Wait is how long to wait when there is nothing to return yet.
	Wait time.Duration
	// Committed reads as Kafka's read_committed isolation: only records
	// below the last stable offset, without those of aborted
	// transactions. Otherwise every record is returned (read_uncommitted),
	// transaction markers excepted.
	Committed bool
}

// ReadResult is what ReadRecords returns.
type ReadResult struct {
	Records []records.Record
	// Next is where the next read continues: after the last record
	// returned, or after the transaction markers and aborted records
	// skipped. It never passes an undecided record (read_committed).
	Next          int64
	HighWatermark int64
	LogStart      int64
	// LastStable is the partition's last stable offset as of the read.
	LastStable int64
}

// ReadRecords returns up to opt.Max records of a partition from offset,
// decoded, waiting up to opt.Wait when there are none yet to return. It is
// the one definition of what HTTP readers, tables and SQL see of a
// partition in either isolation.
func (s *Service) ReadRecords(ctx context.Context, topicName string, part int32, offset int64, opt ReadOptions) (ReadResult, error) {
	opt.Max = max(opt.Max, 1)
	deadline := time.Now().Add(opt.Wait)
	for {
		changed := s.log.Changed()
		wait := time.Until(deadline)
		if opt.Committed {
			wait = 0 // waited for below, on the last stable offset
		}
		res, err := s.Fetch(ctx, topicName, part, offset, 1<<20, max(wait, 0))
		out := ReadResult{Next: offset, HighWatermark: res.HighWatermark, LogStart: res.LogStart, LastStable: res.HighWatermark}
		if err != nil {
			return out, err
		}
		view := TxnView{LastStable: math.MaxInt64}
		if v, err := s.TxnView(topicName, part, offset, res.HighWatermark); err == nil {
			out.LastStable = v.LastStable
			if opt.Committed {
				view = v
			}
		} else if opt.Committed {
			return out, err
		}
		if err := collect(res, offset, &view, opt.Max, &out); err != nil {
			return out, err
		}
		if !opt.Committed || len(out.Records) > 0 || out.Next > offset {
			return out, nil
		}
		// Nothing decided at offset yet: wait for the log to move.
		left := time.Until(deadline)
		if left <= 0 {
			return out, nil
		}
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return out, ctx.Err()
		}
		t.Stop()
	}
}

// collect decodes the fetched batches into out from offset, keeping what
// view says is committed, and moves out.Next past what it took or
// skipped.
func collect(res FetchResult, offset int64, view *TxnView, limit int, out *ReadResult) error {
	start := max(offset, res.LogStart)
	for _, b := range res.Batches {
		recs, m, err := records.Decode(b, Decompress)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Offset < start {
				continue
			}
			if r.Offset >= view.LastStable || len(out.Records) >= limit {
				return nil
			}
			if view.Committed(m, r.Offset) {
				out.Records = append(out.Records, r)
			}
			out.Next = r.Offset + 1
		}
	}
	return nil
}
