package main

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/records"
)

const (
	consumePage = 1000             // records per read
	consumeWait = 30 * time.Second // long poll of --follow
)

const consumeHelp = `
Print the records of TOPIC, one per line: the value as it is (--format
value), or a JSON object with partition, offset, timestamp (ms), key, value
and headers (--format json; keys and values that are not UTF-8 are in
key_b64 and value_b64, as in the HTTP API).

Without --follow, consume stops at the end of each partition as of its
start (or after --max records). With --follow it then waits for new records
and prints them as they arrive, until interrupted.

Without --partition, all partitions are read: up to the end offsets as of
the start, their records are merged by timestamp (ties by partition, then
offset), each partition's records staying in offset order; with --follow,
newer records are printed as they arrive, in offset order per partition.

--from is earliest (the first record kept), latest (only records written
from now on, with --follow) or an offset, which needs --partition.

--isolation read_committed prints only records of committed transactions
(and records written outside transactions), as Kafka's read_committed
consumers see them: it stops at a partition's last stable offset, the first
offset of its oldest open transaction, until that transaction ends, and
skips the records of aborted transactions. The default, read_uncommitted,
prints every record.
`

func runConsume(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("consume", "twoway consume TOPIC [--partition N] [--from earliest|latest|OFFSET] [--max N] [--follow] [--format value|json] [--isolation read_uncommitted|read_committed]", consumeHelp+connectHelp)
	var partition partitionFlag
	fs.Var(&partition, "partition", "read only partition `N`")
	from := fs.String("from", "earliest", "where to start: earliest, latest or an `offset`")
	maxRecords := fs.Int("max", 0, "stop after `N` records (0: no limit)")
	follow := fs.Bool("follow", false, "keep waiting for new records until interrupted")
	format := fs.String("format", "value", "output `format`: value or json")
	keySep := fs.String("key-separator", "", "with --format value, print KEY `SEP` VALUE")
	isolation := fs.String("isolation", "read_uncommitted", "`level`: read_uncommitted (every record) or read_committed (only committed transactions)")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "topic")
	if err != nil {
		return err
	}
	c := &consumer{topic: pos[0], max: *maxRecords, out: bufio.NewWriter(e.stdout), stderr: e.stderr}
	switch *from {
	case "earliest":
		c.from = httpapi.OffsetEarliest
	case "latest":
		c.from = httpapi.OffsetLatest
	default:
		n, err := strconv.ParseInt(*from, 10, 64)
		if err != nil || n < 0 {
			return conn.usageError(e, fmt.Errorf("--from %q: use earliest, latest or an offset", *from))
		}
		if !partition.set {
			return conn.usageError(e, fmt.Errorf("--from %d needs --partition: offsets belong to one partition", n))
		}
		c.from = n
	}
	switch *format {
	case "value":
		c.keySep = *keySep
	case "json":
		c.json = true
		if *keySep != "" {
			return conn.usageError(e, errors.New("--key-separator goes with --format value"))
		}
	default:
		return conn.usageError(e, fmt.Errorf("--format %q: use value or json", *format))
	}
	switch *isolation {
	case "read_uncommitted":
	case "read_committed":
		c.committed = true
	default:
		return conn.usageError(e, fmt.Errorf("--isolation %q: use read_uncommitted or read_committed", *isolation))
	}
	if *maxRecords < 0 {
		return conn.usageError(e, fmt.Errorf("--max %d: use a positive count, or 0 for no limit", *maxRecords))
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		c.s = s
		t, err := s.Topic(ctx, c.topic)
		if err != nil {
			return err
		}
		parts := t.PartitionInfo
		if partition.set {
			if partition.p >= t.Partitions {
				return fmt.Errorf("topic %s has partitions 0 to %d, not %d", c.topic, t.Partitions-1, partition.p)
			}
			parts = parts[partition.p : partition.p+1]
		}
		err = c.run(ctx, parts, *follow)
		if errors.Is(err, errEnough) || ctx.Err() != nil {
			err = nil // --max reached, or interrupted
		}
		return errors.Join(err, c.out.Flush())
	})
}

// errEnough stops a consumer that printed --max records.
var errEnough = errors.New("enough records")

type consumer struct {
	s      streams
	topic  string
	from   int64
	max    int
	json   bool
	keySep string
	// committed: read_committed isolation.
	committed bool
	out       *bufio.Writer
	stderr    io.Writer
	printed   int
}

// cursor is where a partition is read: next, up to end (exclusive), with
// the records read and not yet printed in buf.
type cursor struct {
	p         int32
	next, end int64
	buf       []records.Record
}

func (c *consumer) run(ctx context.Context, parts []httpapi.Partition, follow bool) error {
	var curs []*cursor
	for _, pi := range parts {
		cur := &cursor{p: pi.Partition, next: c.from, end: pi.EndOffset}
		switch c.from {
		case httpapi.OffsetEarliest:
			cur.next = pi.StartOffset
		case httpapi.OffsetLatest:
			cur.next = pi.EndOffset
			if c.committed {
				// The last stable offset: an open transaction's records
				// are printed once it commits.
				res, err := c.s.ReadCommitted(ctx, c.topic, pi.Partition, httpapi.OffsetLatest, 1, 0)
				if err != nil {
					return err
				}
				cur.next = res.NextOffset
			}
		default:
			if c.from < pi.StartOffset || c.from > pi.EndOffset {
				return fmt.Errorf("--from %d is out of range: partition %d has offsets %d to %d", c.from, pi.Partition, pi.StartOffset, pi.EndOffset)
			}
		}
		curs = append(curs, cur)
	}
	if err := c.catchUp(ctx, curs); err != nil || !follow {
		return err
	}
	return c.follow(ctx, curs)
}

// catchUp prints the records up to the cursors' ends, merged by timestamp.
func (c *consumer) catchUp(ctx context.Context, curs []*cursor) error {
	h := &cursorHeap{}
	for _, cur := range curs {
		if err := c.fill(ctx, cur); err != nil {
			return err
		}
		if len(cur.buf) > 0 {
			heap.Push(h, cur)
		}
	}
	for h.Len() > 0 {
		cur := (*h)[0]
		if err := c.print(cur.p, cur.buf[0]); err != nil {
			return err
		}
		cur.buf = cur.buf[1:]
		if len(cur.buf) == 0 {
			if err := c.out.Flush(); err != nil {
				return err
			}
			if err := c.fill(ctx, cur); err != nil {
				return err
			}
		}
		if len(cur.buf) == 0 {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	return c.out.Flush()
}

// fill reads the next page of a cursor below its end (read_committed:
// below the last stable offset too).
func (c *consumer) fill(ctx context.Context, cur *cursor) error {
	for empty := 0; cur.next < cur.end && len(cur.buf) == 0; {
		if empty == 3 {
			return fmt.Errorf("partition %d: no records at offset %d although the partition ends at %d", cur.p, cur.next, cur.end)
		}
		before := cur.next
		res, err := c.read(ctx, cur, int(min(cur.end-cur.next, consumePage)), 0)
		if err != nil {
			return err
		}
		if c.committed {
			// Past the last stable offset nothing is decided yet:
			// catching up ends there.
			cur.end = min(cur.end, max(res.LastStableOffset, cur.next))
		}
		if cur.next > before {
			empty = 0 // markers or aborted records skipped: progress
		} else {
			empty++
		}
		for _, r := range res.Records {
			if r.Offset < cur.end {
				cur.buf = append(cur.buf, r)
			}
		}
	}
	return nil
}

// read reads from cur.next and moves it on. Records removed by retention
// meanwhile are skipped, with a note on stderr.
func (c *consumer) read(ctx context.Context, cur *cursor, max int, wait time.Duration) (httpapi.ReadResult, error) {
	for {
		read := c.s.Read
		if c.committed {
			read = c.s.ReadCommitted
		}
		res, err := read(ctx, c.topic, cur.p, cur.next, max, wait)
		if ae, ok := errors.AsType[*httpapi.Error](err); ok && ae.Code == httpapi.CodeOffsetOutOfRange && ae.LogStartOffset != nil && cur.next < *ae.LogStartOffset {
			fmt.Fprintf(c.stderr, "twoway: partition %d: offsets %d to %d were removed by retention; continuing at %d\n", cur.p, cur.next, *ae.LogStartOffset-1, *ae.LogStartOffset)
			cur.next = *ae.LogStartOffset
			continue
		}
		if err != nil {
			return res, err
		}
		cur.next = res.NextOffset
		return res, nil
	}
}

// follow long-polls every partition and prints records as they come.
func (c *consumer) follow(ctx context.Context, curs []*cursor) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		p    int32
		recs []records.Record
		err  error
	}
	pages := make(chan page)
	for _, cur := range curs {
		go func() {
			for ctx.Err() == nil {
				res, err := c.read(ctx, cur, consumePage, consumeWait)
				if ae, ok := errors.AsType[*httpapi.Error](err); ok && ae.RetryAfter > 0 {
					// The agent is busy or restarting: wait as asked.
					select {
					case <-time.After(ae.RetryAfter):
					case <-ctx.Done():
					}
					continue
				}
				if err != nil || len(res.Records) > 0 {
					select {
					case pages <- page{cur.p, res.Records, err}:
					case <-ctx.Done():
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for {
		select {
		case pg := <-pages:
			if pg.err != nil {
				return pg.err
			}
			for _, r := range pg.recs {
				if err := c.print(pg.p, r); err != nil {
					return err
				}
			}
			if err := c.out.Flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// print prints a record, and says errEnough after the --max'th.
func (c *consumer) print(p int32, r records.Record) error {
	if c.json {
		b, err := json.Marshal(httpapi.NewRecord(p, r))
		if err != nil {
			return err
		}
		c.out.Write(b)
	} else {
		if c.keySep != "" {
			c.out.Write(r.Key)
			c.out.WriteString(c.keySep)
		}
		c.out.Write(r.Value)
	}
	if err := c.out.WriteByte('\n'); err != nil {
		return err
	}
	if c.printed++; c.max > 0 && c.printed >= c.max {
		return errEnough
	}
	return nil
}

// cursorHeap orders cursors by their next record: timestamp, then
// partition (offsets within a partition are in order already).
type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].buf[0], h[j].buf[0]
	if a.Timestamp != b.Timestamp {
		return a.Timestamp < b.Timestamp
	}
	return h[i].p < h[j].p
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
