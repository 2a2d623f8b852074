package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// worker is a running materializer of one table.
type worker struct {
	cancel context.CancelFunc
	fin    chan struct{}
}

func (w *worker) stop() { w.cancel(); <-w.fin }
func (w *worker) done() bool {
	select {
	case <-w.fin:
		return true
	default:
		return false
	}
}

func (m *Module) startWorker(ctx context.Context, name string) *worker {
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{cancel: cancel, fin: make(chan struct{})}
	go func() {
		defer close(w.fin)
		m.materialize(wctx, name)
	}()
	return w
}

// materialize runs sessions for the table while this agent holds its
// lease. A session that fails (a conflict, a bucket error) is started
// again from the committed pointer: what it had pending is read again.
func (m *Module) materialize(ctx context.Context, name string) {
	log := m.logger.With("table", name)
	for ctx.Err() == nil {
		err := m.session(ctx, name, log)
		if ctx.Err() != nil || errors.Is(err, errStopped) {
			return
		}
		if errors.Is(err, ErrConflict) {
			m.met.conflicts.WithLabelValues(name).Inc()
			log.Info("table commit conflicted; building it again on the new pointer", "err", err)
		} else if err != nil {
			m.met.failures.WithLabelValues(name).Inc()
			log.Warn("materializing failed; starting again from the committed pointer", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
		m.log.Sync(ctx)
	}
}

// side is one of the Iceberg tables a materializer writes: the table or
// its dead-letter table.
type side struct {
	name   string // Iceberg table name
	meta   table.Metadata
	key    string // metadata key ("" before the first commit)
	ver    int
	schema *arrow.Schema
	rows   *rowBuilder
	live   map[string]bool
	app    *appendStream // the pending rows' append, once there are some
	// retention: rows older than this (by _timestamp) are deleted by
	// maintenance (0: kept for ever).
	retention time.Duration
}

func (m *Module) newSide(ctx context.Context, fio *bucketIO, d *Def, dlq bool, p Pointer) (*side, error) {
	s := &side{name: d.Name, key: p.Metadata, ver: p.Version, retention: time.Duration(d.RetentionMs) * time.Millisecond}
	if dlq {
		s.name = d.Name + DLQSuffix
	}
	var err error
	if p.Metadata != "" {
		s.meta, err = loadMetadata(ctx, m.b, p.Metadata)
	} else {
		s.meta, err = newMetadata(d, dlq, fio.URL(tablePrefix(s.name)))
	}
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", s.name, err)
	}
	if err := s.reset(); err != nil {
		return nil, err
	}
	return s, nil
}

// reset starts the pending rows again, in the metadata's current schema.
func (s *side) reset() error {
	sc, err := table.SchemaToArrowSchema(s.meta.CurrentSchema(), nil, true, false)
	if err != nil {
		return fmt.Errorf("arrow schema of %s: %w", s.name, err)
	}
	if s.rows != nil {
		s.rows.release()
	}
	s.schema, s.rows = sc, newRowBuilder(sc)
	return nil
}

func (m *Module) fsF(fio *bucketIO) table.FSysF {
	return func(context.Context) (icebergio.IO, error) { return fio, nil }
}

// stage runs f on a transaction of s and writes the next metadata file.
// It returns the staged result; nothing is committed to the log.
func (m *Module) stage(ctx context.Context, fio *bucketIO, s *side, f func(tx *table.Transaction) error) (*staging, error) {
	st := &staging{b: m.b, fio: fio, name: s.name, base: s.meta, version: s.ver}
	loc := ""
	if s.key != "" {
		loc = fio.URL(s.key)
	}
	tbl := table.New(table.Identifier{Namespace, s.name}, s.meta, loc, m.fsF(fio), st)
	tx := tbl.NewTransaction()
	if err := f(tx); err != nil {
		return nil, err
	}
	if _, err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	if !st.commited {
		return nil, nil // nothing changed
	}
	return st, nil
}

// Namespace is the one Iceberg namespace twoway's tables are in.
const Namespace = "default"

// session materializes from the committed pointer until an error, a
// conflict or a schema change (which starts a new session).
func (m *Module) session(ctx context.Context, name string, log *slog.Logger) error {
	t, ok := m.Get(name)
	if !ok || !m.holds(name) {
		return errStopped
	}
	fio := newBucketIO(ctx, m.b)
	main, err := m.newSide(ctx, fio, &t.Def, false, t.Main)
	if err != nil {
		return err
	}
	dlq, err := m.newSide(ctx, fio, &t.Def, true, t.DLQ)
	if err != nil {
		return err
	}
	manifests := map[string][]string{}
	if t.SchemaRev != t.Applied {
		return m.evolve(ctx, fio, t, main, dlq, manifests)
	}
	dec, err := m.decoderFor(t, main)
	if err != nil {
		return err
	}
	pos := maps.Clone(t.Offsets)
	if pos == nil {
		pos = map[int32]int64{}
	}
	interval := time.Duration(t.Def.CommitIntervalMs) * time.Millisecond
	flushAfter := interval - min(2*time.Second, interval/5)
	var firstPending time.Time
	moved := false // offsets advanced past records that are not rows (retention, markers, aborted transactions)
	lastMaint := time.Now()
	ra := m.newReadAhead(ctx, t.Def.Topic, dec, main, dlq)
	defer ra.close()
	defer main.abortAppend()
	defer dlq.abortAppend()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cur, ok := m.Get(name)
		if !ok || cur.Incarnation != t.Incarnation || !m.holds(name) {
			return errStopped
		}
		if cur.SchemaRev != t.Applied {
			// Commit what is pending in the old schema first.
			if main.rows.rows+dlq.rows.rows > 0 || moved {
				if err := m.commitPending(ctx, fio, t, main, dlq, pos, manifests); err != nil {
					return err
				}
			}
			return nil
		}
		changed := m.log.Changed()
		got := false
		for _, p := range m.partitionsOf(t.Def.Topic) {
			off, known := pos[p.Partition]
			if !known || off < p.Start {
				if known && off < p.Start {
					log.Warn("records were deleted by the topic's retention before they were materialized", "partition", p.Partition, "from", off, "to", p.Start)
					m.met.skipped.WithLabelValues(name).Add(float64(p.Start - off))
				}
				off, moved = p.Start, true
				pos[p.Partition] = off
			}
			// Committed records only: a partition with an open
			// transaction waits at its first offset (the last stable
			// offset), so the table's offsets never pass a record whose
			// transaction is undecided.
			end := p.End
			if off < end {
				if v, err := m.streams.TxnView(t.Def.Topic, p.Partition, off, off); err == nil {
					end = min(end, v.LastStable)
				}
			}
			if off >= end || main.rows.bytes+dlq.rows.bytes >= m.cfg.FlushBytes {
				continue
			}
			c, err := ra.get(ctx, p.Partition, off)
			if err != nil {
				return err
			}
			if c.err != nil {
				ra.release(c)
				var oor *stream.OffsetOutOfRangeError
				if errors.As(c.err, &oor) {
					continue // retention moved the start: seen next round
				}
				return c.err
			}
			if c.main.rows+c.dlq.rows > 0 {
				if main.rows.rows+dlq.rows.rows == 0 {
					firstPending = time.Now()
				}
				m.pend(ctx, fio, main, c.main, t.Def.Name)
				m.pend(ctx, fio, dlq, c.dlq, t.Def.Name)
				got = true
			} else if c.next > off {
				// Only markers or aborted records: the offsets move on
				// all the same, so the table says it has read them.
				moved = true
			}
			off = c.next
			pos[p.Partition] = off
			if off < end {
				ra.ahead(p.Partition, off)
			}
		}
		pending := main.rows.rows + dlq.rows.rows
		pendingBytes := main.rows.bytes + dlq.rows.bytes
		// Due: the oldest pending row has waited about the interval, or
		// a file's worth is pending, or a backlog has just been read to
		// its end (a quarter of a flush pending and nothing more to
		// read): waiting then only delays rows already there.
		due := pending > 0 && (time.Since(firstPending) >= flushAfter || pendingBytes >= m.cfg.FlushBytes ||
			!got && pendingBytes >= m.cfg.FlushBytes/4)
		if due || moved && pending == 0 {
			if err := m.commitPending(ctx, fio, t, main, dlq, pos, manifests); err != nil {
				return err
			}
			moved = false
			continue
		}
		if pending == 0 && time.Since(lastMaint) >= m.cfg.MaintenanceEvery {
			lastMaint = time.Now()
			if err := m.maintain(ctx, fio, t, main, dlq, pos, manifests); err != nil {
				return err
			}
			continue
		}
		if got {
			continue
		}
		wait := 250 * time.Millisecond
		if pending > 0 {
			wait = min(wait, max(time.Millisecond, flushAfter-time.Since(firstPending)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// decoderFor decodes values into the columns the table's Iceberg schema
// has now (a schema change reaches it in its own commit).
func (m *Module) decoderFor(t *Table, main *side) (*rowDecoder, error) {
	if t.Def.Schema == nil {
		return nil, nil
	}
	n := main.meta.CurrentSchema().NumFields() - len(systemColumns)
	if n < 0 || n > len(t.Def.Schema.Columns) {
		return nil, fmt.Errorf("table %s: its Iceberg schema has %d columns, its definition %d", t.Def.Name, n, len(t.Def.Schema.Columns))
	}
	return newRowDecoder(&Schema{Columns: t.Def.Schema.Columns[:n]})
}

// streamAppends writes pending rows into data files as they are added
// (else all at once when the commit is due).
const streamAppends = true

// appendStream is the append of a side's pending rows: an Iceberg append
// staged (m.stage) on a goroutine of its own, fed the rows as the session
// adds them, so that Parquet is written while the next records are read
// and decoded. commitPending ends the feed and takes what it staged;
// nothing is committed before that, so the commit is what it was: the
// pending rows, and the offsets after them.
type appendStream struct {
	feed   chan arrow.RecordBatch
	cancel context.CancelFunc
	done   chan struct{}
	lost   bool     // rows were not fed (the session's context ended)
	st     *staging // set when done is closed
	err    error
}

func (m *Module) startAppend(ctx context.Context, fio *bucketIO, s *side, tableName string) *appendStream {
	ctx, cancel := context.WithCancel(ctx)
	a := &appendStream{feed: make(chan arrow.RecordBatch, 4), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.st, a.err = m.stage(ctx, fio, s, func(tx *table.Transaction) error {
			rdr := &feedReader{schema: s.schema, ctx: ctx, feed: a.feed}
			rdr.refs.Store(1)
			defer rdr.Release()
			return tx.Append(ctx, rdr, iceberg.Properties{"twoway.table": tableName})
		})
	}()
	return a
}

// pend adds rows built apart to a side's pending rows.
func (m *Module) pend(ctx context.Context, fio *bucketIO, s *side, x rowBatch, tableName string) {
	if x.rows == 0 {
		return
	}
	s.rows.addBatch(x)
	if streamAppends {
		m.feed(ctx, fio, s, tableName)
	}
}

// feed gives the pending rows not given yet to the side's append,
// starting it.
func (m *Module) feed(ctx context.Context, fio *bucketIO, s *side, tableName string) {
	if s.app == nil {
		s.app = m.startAppend(ctx, fio, s, tableName)
	}
	for _, rec := range s.rows.take() {
		select {
		case s.app.feed <- rec:
		case <-s.app.done: // it failed: finishAppend says why
			rec.Release()
		case <-ctx.Done():
			rec.Release()
			s.app.lost = true
		}
	}
}

// finishAppend ends the feed of the side's append (all its pending rows)
// and returns what it staged.
func (m *Module) finishAppend(ctx context.Context, fio *bucketIO, s *side, tableName string) (*staging, error) {
	m.feed(ctx, fio, s, tableName)
	if s.app.lost {
		s.abortAppend()
		return nil, fmt.Errorf("pending rows not written: %w", context.Cause(ctx))
	}
	a := s.app
	s.app = nil
	close(a.feed)
	<-a.done
	a.cancel()
	return a.st, a.err
}

// abortAppend stops the side's append, if any, staging nothing (the data
// files it wrote are garbage).
func (s *side) abortAppend() {
	if a := s.app; a != nil {
		s.app = nil
		a.cancel()
		<-a.done
		for {
			select {
			case rec := <-a.feed:
				rec.Release()
			default:
				return
			}
		}
	}
}

// feedReader reads the records of an append's feed until it is closed.
type feedReader struct {
	refs   atomic.Int64
	schema *arrow.Schema
	ctx    context.Context
	feed   chan arrow.RecordBatch
	cur    arrow.RecordBatch
	err    error
}

func (r *feedReader) Retain() { r.refs.Add(1) }
func (r *feedReader) Release() {
	if r.refs.Add(-1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}
func (r *feedReader) Schema() *arrow.Schema          { return r.schema }
func (r *feedReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *feedReader) Record() arrow.RecordBatch      { return r.cur }
func (r *feedReader) Err() error                     { return r.err }
func (r *feedReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	select {
	case rec, ok := <-r.feed:
		if !ok {
			return false
		}
		r.cur = rec
		return true
	case <-r.ctx.Done():
		r.err = r.ctx.Err()
		return false
	}
}

// readAheadChunks is how many chunks the read-ahead may build before the
// session asks for them (one per partition at most).
const readAheadChunks = 4

// readAhead reads a session's records on a goroutine of its own: a chunk
// is one fetch of a partition from an offset, its records decoded and
// built into Arrow batches (the table's rows and the dead-letter rows),
// exactly what the session did inline. The session takes chunks in its
// own order and adds them to its pending rows whole, so its offsets and
// commits are what they were; meanwhile the goroutine builds the next
// ones (ahead, for the partition the session just took) while the session
// adds, waits or commits.
type readAhead struct {
	m      *Module
	topic  string
	dec    *rowDecoder
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan *chunk
	fin    chan struct{}

	queued map[int32]*chunk // by partition, asked for ahead and not taken
	stale  []*chunk         // asked for ahead from an offset that went by

	// The goroutine's.
	fr        fastRow
	main, dlq *rowBuilder
}

// chunk is one fetch's rows.
type chunk struct {
	part int32
	from int64
	done chan struct{}
	// Set when done is closed.
	err       error // the error the session returns (or OffsetOutOfRange)
	next      int64 // the offset after the last record taken
	main, dlq rowBatch
}

func (m *Module) newReadAhead(ctx context.Context, topic string, dec *rowDecoder, main, dlq *side) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{m: m, topic: topic, dec: dec, ctx: ctx, cancel: cancel,
		jobs: make(chan *chunk, 2*readAheadChunks+2), fin: make(chan struct{}),
		queued: map[int32]*chunk{},
		main:   newRowBuilder(main.schema), dlq: newRowBuilder(dlq.schema)}
	go ra.run()
	return ra
}

func (ra *readAhead) run() {
	defer close(ra.fin)
	for c := range ra.jobs {
		if ra.ctx.Err() != nil {
			c.err = ra.ctx.Err()
		} else {
			ra.build(c)
		}
		close(c.done)
	}
}

// build fetches and decodes c.
func (ra *readAhead) build(c *chunk) {
	off := c.from
	defer func() {
		c.next = off
		if c.err != nil {
			// What was built goes with the builders (a row may be half
			// built): the session returns the error or reads again.
			ra.main.release()
			ra.dlq.release()
			ra.main, ra.dlq = newRowBuilder(ra.main.schema), newRowBuilder(ra.dlq.schema)
			return
		}
		c.main, c.dlq = ra.main.cut(), ra.dlq.cut()
	}()
	res, err := ra.m.streams.Fetch(ra.ctx, ra.topic, c.part, off, 4<<20, 0)
	if err != nil {
		var oor *stream.OffsetOutOfRangeError
		if errors.As(err, &oor) {
			c.err = err
		} else {
			c.err = fmt.Errorf("read %s/%d at %d: %w", ra.topic, c.part, off, err)
		}
		return
	}
	// Taken after the fetch, the view has every aborted transaction of
	// the records below its last stable offset: they have all ended.
	view, err := ra.m.streams.TxnView(ra.topic, c.part, off, res.HighWatermark)
	if err != nil {
		c.err = fmt.Errorf("read %s/%d at %d: %w", ra.topic, c.part, off, err)
		return
	}
	end := min(res.HighWatermark, view.LastStable)
	for _, batch := range res.Batches {
		recs, m, err := records.Decode(batch, stream.Decompress)
		if err != nil {
			c.err = fmt.Errorf("decode %s/%d at %d: %w", ra.topic, c.part, off, err)
			return
		}
		for i := range recs {
			r := &recs[i]
			if r.Offset < off {
				continue
			}
			if r.Offset >= end {
				return // undecided: read again once its transaction ends
			}
			if !view.Committed(m, r.Offset) {
				off = r.Offset + 1 // a transaction marker or an aborted record, not a row
				continue
			}
			if err := addRecord(c.part, r, ra.dec, &ra.fr, ra.main, ra.dlq); err != nil {
				c.err = err
				return
			}
			off = r.Offset + 1
		}
	}
}

func (ra *readAhead) submit(part int32, from int64) *chunk {
	c := &chunk{part: part, from: from, done: make(chan struct{})}
	ra.jobs <- c
	return c
}

// ahead starts on the chunk of part from offset from, if there is room.
func (ra *readAhead) ahead(part int32, from int64) {
	ra.sweep()
	if _, ok := ra.queued[part]; ok || len(ra.queued)+len(ra.stale) >= readAheadChunks {
		return
	}
	ra.queued[part] = ra.submit(part, from)
}

// get returns the chunk of part from offset from: the one built ahead, or
// one built now.
func (ra *readAhead) get(ctx context.Context, part int32, from int64) (*chunk, error) {
	c := ra.queued[part]
	delete(ra.queued, part)
	if c != nil && c.from != from {
		ra.stale = append(ra.stale, c)
		c = nil
	}
	if c == nil {
		c = ra.submit(part, from)
	}
	select {
	case <-c.done:
		return c, nil
	case <-ctx.Done():
		ra.stale = append(ra.stale, c)
		return nil, ctx.Err()
	}
}

// sweep releases the stale chunks that are done.
func (ra *readAhead) sweep() {
	keep := ra.stale[:0]
	for _, c := range ra.stale {
		select {
		case <-c.done:
			ra.release(c)
		default:
			keep = append(keep, c)
		}
	}
	clear(ra.stale[len(keep):])
	ra.stale = keep
}

func (ra *readAhead) release(c *chunk) {
	c.main.release()
	c.dlq.release()
}

// close stops the goroutine and drops what it built.
func (ra *readAhead) close() {
	ra.cancel()
	close(ra.jobs)
	<-ra.fin
	for _, c := range ra.queued {
		ra.release(c)
	}
	for _, c := range ra.stale {
		ra.release(c)
	}
	ra.main.release()
	ra.dlq.release()
}

// addRecord adds a record's row to main, or to dlq (the dead-letter
// table's rows) with the reason it does not fit. fr is the caller's
// scratch.
func addRecord(part int32, r *records.Record, dec *rowDecoder, fr *fastRow, main, dlq *rowBuilder) error {
	if dec == nil {
		if main.direct(1) {
			if err := main.addSystem(part, r); err != nil {
				return err
			}
			return main.addRaw(r.Value)
		}
		return main.add(append(sysRow(part, r, len(main.fields)), rawOrNil(r.Value)))
	}
	var full []any
	var err error
	sys := func() []any { return sysRow(part, r, len(main.fields)) }
	if cells := fr.reset(len(dec.cols)); main.direct(len(cells)) {
		if dec.decodeFast(r.Value, cells, &fr.buf) {
			if err := main.addSystem(part, r); err != nil {
				return err
			}
			return main.addCells(cells, dec.kinds)
		}
		full, err = dec.decodeStd(r.Value, sys())
	} else {
		full, err = dec.decode(r.Value, sys())
	}
	if err == nil {
		return main.add(full)
	}
	return dlq.add(append(append(sys(), rawOrNil(r.Value)), err.Error()))
}

// rawOrNil is a raw value as a row value: nil for a null value.
func rawOrNil(v []byte) any {
	if v == nil {
		return nil
	}
	return v
}

// fastRow is the scratch of decodeFast for one goroutine.
type fastRow struct {
	cells []cell
	buf   []byte
}

// reset makes the scratch ready for a record of n columns; cells of the
// record before are gone.
func (fr *fastRow) reset(n int) []cell {
	if cap(fr.cells) < n {
		fr.cells = make([]cell, n)
	}
	fr.buf = fr.buf[:0]
	return fr.cells[:n]
}

// sysRow is the system columns of a record as row values, in a row of
// capacity n.
func sysRow(part int32, r *records.Record, n int) []any {
	row := make([]any, 0, n)
	row = append(row, part, r.Offset, time.UnixMilli(r.Timestamp).UTC())
	if r.Key != nil {
		row = append(row, r.Key)
	} else {
		row = append(row, nil)
	}
	return append(row, headersValue(r.Headers))
}

// commitPending writes the pending rows and commits the pointer with the
// offsets read so far.
func (m *Module) commitPending(ctx context.Context, fio *bucketIO, t *Table, main, dlq *side, pos map[int32]int64, manifests map[string][]string) error {
	start := time.Now()
	c := commit{Name: t.Def.Name, Incarnation: t.Incarnation, BaseMain: t.Main.Version, BaseDLQ: t.DLQ.Version,
		Offsets: maps.Clone(pos), Applied: t.Applied, AtMs: time.Now().UnixMilli()}
	var staged [2]*staging
	for i, s := range []*side{main, dlq} {
		if s.rows.rows == 0 {
			continue
		}
		n := int64(s.rows.rows)
		st, err := m.finishAppend(ctx, fio, s, t.Def.Name)
		if err != nil {
			return fmt.Errorf("write %s: %w", s.name, err)
		}
		staged[i] = st
		if i == 0 {
			c.Main, c.Rows = Pointer{Version: st.wrote, Metadata: st.key}, n
		} else {
			c.DLQ, c.DLQRows = Pointer{Version: st.wrote, Metadata: st.key}, n
		}
	}
	if err := m.commitPointer(ctx, fio, t, main, dlq, staged, &c, manifests, start); err != nil {
		return err
	}
	m.met.rows.WithLabelValues(t.Def.Name).Add(float64(c.Rows))
	m.met.deadLetters.WithLabelValues(t.Def.Name).Add(float64(c.DLQRows))
	m.met.commitSeconds.WithLabelValues(t.Def.Name).Observe(time.Since(start).Seconds())
	return nil
}

// commitPointer commits c, the pointer to the staged metadata, and on
// success moves the session onto it.
func (m *Module) commitPointer(ctx context.Context, fio *bucketIO, t *Table, main, dlq *side, staged [2]*staging, c *commit, manifests map[string][]string, written time.Time) error {
	live := map[string]bool{}
	for i, s := range []*side{main, dlq} {
		meta, key := s.meta, s.key
		if staged[i] != nil {
			meta, key = staged[i].written, staged[i].key
		}
		if key == "" {
			continue
		}
		l, err := liveFiles(fio, key, meta, manifests)
		if err != nil {
			return err
		}
		maps.Copy(live, l)
		live[versionHintKey(s.name)] = true
	}
	for k := range live {
		if !t.Live[k] {
			c.Add = append(c.Add, k)
		}
	}
	for k := range t.Live {
		if !live[k] {
			c.Drop = append(c.Drop, k)
		}
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, res, err := m.log.ProposeFresh(ctx, written, commitlog.Entry{Type: TypeCommit, Data: data})
	if err != nil {
		// The outcome is unknown: it is ours if the pointer is.
		if serr := m.log.Sync(ctx); serr != nil {
			return err
		}
		cur, ok := m.Get(t.Def.Name)
		if !ok || cur.Incarnation != t.Incarnation || cur.Main != pick(c.Main, t.Main) || cur.DLQ != pick(c.DLQ, t.DLQ) || !maps.Equal(cur.Offsets, mergeOffsets(t.Offsets, c.Offsets)) {
			return err
		}
	} else if rerr, ok := res[0].(error); ok {
		return rerr
	}
	// Committed: the session goes on from the new pointer.
	for i, s := range []*side{main, dlq} {
		if staged[i] == nil {
			continue
		}
		s.meta, s.key, s.ver = staged[i].written, staged[i].key, staged[i].wrote
		if err := s.reset(); err != nil {
			return err
		}
		hint := fmt.Appendf(nil, "%d", s.ver)
		if err := fio.WriteFile(fio.URL(versionHintKey(s.name)), hint); err != nil {
			m.logger.Warn("writing version-hint.text failed (the log has the pointer)", "table", s.name, "err", err)
		}
	}
	t.Main, t.DLQ = pick(c.Main, t.Main), pick(c.DLQ, t.DLQ)
	t.Offsets = mergeOffsets(t.Offsets, c.Offsets)
	t.Applied = c.Applied
	t.Live = live
	t.Rows += c.Rows
	t.DLQRows += c.DLQRows
	return nil
}

func pick(p, old Pointer) Pointer {
	if p.Version != 0 {
		return p
	}
	return old
}

func mergeOffsets(old, add map[int32]int64) map[int32]int64 {
	out := maps.Clone(old)
	if out == nil {
		out = map[int32]int64{}
	}
	maps.Copy(out, add)
	return out
}

// evolve commits the table's new schema revision: the columns added since
// the Iceberg schema was written become optional Iceberg columns (a new
// schema id; old files stay readable, their rows read null there).
func (m *Module) evolve(ctx context.Context, fio *bucketIO, t *Table, main, dlq *side, manifests map[string][]string) error {
	start := time.Now()
	have := main.meta.CurrentSchema().NumFields() - len(systemColumns)
	added := t.Def.Schema.Columns[have:]
	c := commit{Name: t.Def.Name, Incarnation: t.Incarnation, BaseMain: t.Main.Version, BaseDLQ: t.DLQ.Version,
		Applied: t.SchemaRev, AtMs: time.Now().UnixMilli()}
	var staged [2]*staging
	if len(added) > 0 {
		st, err := m.stage(ctx, fio, main, func(tx *table.Transaction) error {
			u := tx.UpdateSchema(true, false)
			for _, col := range added {
				typ, err := ParseType(col.Type)
				if err != nil {
					return err
				}
				id := 0
				u = u.AddColumn([]string{col.Name}, toIceberg(typ, func() int { id++; return id }), col.Doc, false, nil)
			}
			return u.Commit()
		})
		if err != nil {
			return fmt.Errorf("evolve the schema of %s: %w", t.Def.Name, err)
		}
		if st != nil {
			staged[0] = st
			c.Main = Pointer{Version: st.wrote, Metadata: st.key}
		}
	}
	if err := m.commitPointer(ctx, fio, t, main, dlq, staged, &c, manifests, start); err != nil {
		return err
	}
	m.logger.Info("table schema evolved", "table", t.Def.Name, "columns_added", len(added), "revision", t.SchemaRev)
	return nil
}

// maintain merges small data files and expires old snapshots, each side in
// one commit. Nothing is pending when it runs.
func (m *Module) maintain(ctx context.Context, fio *bucketIO, t *Table, main, dlq *side, pos map[int32]int64, manifests map[string][]string) error {
	for i, s := range []*side{main, dlq} {
		if s.key == "" {
			continue
		}
		start := time.Now()
		st, merged, expired, err := m.maintainSide(ctx, fio, s)
		if err != nil {
			return fmt.Errorf("maintain %s: %w", s.name, err)
		}
		if st == nil {
			continue
		}
		c := commit{Name: t.Def.Name, Incarnation: t.Incarnation, BaseMain: t.Main.Version, BaseDLQ: t.DLQ.Version,
			Applied: t.Applied, AtMs: time.Now().UnixMilli()}
		var staged [2]*staging
		staged[i] = st
		p := Pointer{Version: st.wrote, Metadata: st.key}
		if i == 0 {
			c.Main = p
		} else {
			c.DLQ = p
		}
		if err := m.commitPointer(ctx, fio, t, main, dlq, staged, &c, manifests, start); err != nil {
			return err
		}
		m.met.merged.WithLabelValues(t.Def.Name).Add(float64(merged))
		m.met.expired.WithLabelValues(t.Def.Name).Add(float64(expired))
		m.logger.Info("table maintained", "table", s.name, "files_merged", merged, "snapshots_expired", expired)
	}
	return nil
}

// maintainSide stages a merge of small files and an expiry of snapshots,
// or returns nil when there is nothing to do.
func (m *Module) maintainSide(ctx context.Context, fio *bucketIO, s *side) (*staging, int, int, error) {
	loc := fio.URL(s.key)
	tbl := table.New(table.Identifier{Namespace, s.name}, s.meta, loc, m.fsF(fio), nil)
	// The table's own retention, in a commit of its own: rows older than
	// it are deleted (copy-on-write: files wholly older are dropped,
	// files partly older rewritten; partitioning by day(_timestamp)
	// makes it whole files).
	if s.retention > 0 && s.meta.CurrentSnapshot() != nil {
		filter := iceberg.LessThan(iceberg.Reference("_timestamp"), iceberg.Timestamp(time.Now().Add(-s.retention).UnixMicro()))
		tasks, err := tbl.Scan(table.WithRowFilter(filter)).PlanFiles(ctx)
		if err != nil {
			return nil, 0, 0, err
		}
		if len(tasks) > 0 {
			st, err := m.stage(ctx, fio, s, func(tx *table.Transaction) error {
				return tx.Delete(ctx, filter, iceberg.Properties{"twoway.retention": s.retention.String()})
			})
			if st != nil {
				m.logger.Info("table rows past its retention deleted", "table", s.name, "retention", s.retention, "files", len(tasks))
			}
			return st, 0, 0, err
		}
	}
	var groups []table.CompactionTaskGroup
	merged := 0
	if s.meta.CurrentSnapshot() != nil {
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			return nil, 0, 0, err
		}
		target := m.cfg.TargetFileSize
		cfg := compaction.Config{TargetFileSizeBytes: target, MinFileSizeBytes: target * 3 / 4, MaxFileSizeBytes: target * 9 / 5,
			MinInputFiles: uint(m.cfg.MinMergeFiles), DeleteFileThreshold: 5, PackingLookback: compaction.DefaultPackingLookback}
		plan, err := cfg.PlanCompaction(tasks)
		if err != nil {
			return nil, 0, 0, err
		}
		for _, g := range plan.Groups {
			groups = append(groups, table.CompactionTaskGroup{PartitionKey: g.PartitionKey, Tasks: g.Tasks, TotalSizeBytes: g.TotalSizeBytes})
			merged += len(g.Tasks)
		}
	}
	now := time.Now()
	expired := 0
	snaps := s.meta.Snapshots()
	cur := s.meta.CurrentSnapshot()
	if len(snaps) > m.cfg.SnapshotsKeep {
		for i, sn := range snaps {
			if i < len(snaps)-m.cfg.SnapshotsKeep && now.Sub(time.UnixMilli(sn.TimestampMs)) > m.cfg.SnapshotMaxAge && (cur == nil || sn.SnapshotID != cur.SnapshotID) {
				expired++
			}
		}
	}
	if len(groups) == 0 && expired == 0 {
		return nil, 0, 0, nil
	}
	st, err := m.stage(ctx, fio, s, func(tx *table.Transaction) error {
		if len(groups) > 0 {
			if _, err := tx.RewriteDataFiles(ctx, groups, table.RewriteDataFilesOptions{}); err != nil {
				return err
			}
		}
		if expired > 0 {
			return tx.ExpireSnapshots(table.WithRetainLast(m.cfg.SnapshotsKeep), table.WithOlderThan(m.cfg.SnapshotMaxAge), table.WithPostCommit(false))
		}
		return nil
	})
	return st, merged, expired, err
}
