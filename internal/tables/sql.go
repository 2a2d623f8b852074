package tables

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/sqlengine"
	"github.com/twoway/twoway/internal/stream"
)

// SQL: every table is a view over its current snapshot's data files plus
// its fresh tail, the records committed to the topic after the offsets the
// snapshot covers, decoded here as the materializer would. The pointer and
// its offsets are one applied state, so a query sees each acknowledged
// record once: in a file or in the tail.

func (m *Module) engine() *sqlengine.Engine {
	m.engineOnce.Do(func() {
		m.sql = sqlengine.New(sqlengine.Config{MemoryLimit: m.cfg.SQLMemoryLimit, Threads: m.cfg.SQLThreads,
			Timeout: m.cfg.SQLTimeout, MaxRows: m.cfg.SQLMaxRows})
	})
	return m.sql
}

// Query runs one read-only SQL statement over the tables. It first
// catches up with the bucket, so it sees every record acknowledged before
// it was asked, by any agent.
func (m *Module) Query(ctx context.Context, q string) (*sqlengine.Result, error) {
	start := time.Now()
	if err := m.log.Sync(ctx); err != nil {
		return nil, err
	}
	cat := &catalog{m: m, ctx: ctx}
	defer cat.release()
	eng := m.engine()
	if eng == nil {
		return nil, errors.New("tables: the agent is closing; no query runs")
	}
	res, err := eng.Query(ctx, q, cat)
	m.met.querySeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		m.met.queries.WithLabelValues("error").Inc()
		return nil, err
	}
	m.met.queries.WithLabelValues("ok").Inc()
	return res, nil
}

// catalog is what one query sees.
type catalog struct {
	m        *Module
	ctx      context.Context // the request's: its principal
	mu       sync.Mutex
	releases []func()
}

func (c *catalog) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.releases {
		r()
	}
	c.releases = nil
}

func relColumns(cols []Column) []sqlengine.Column {
	out := make([]sqlengine.Column, len(cols))
	for i, c := range cols {
		t, _ := ParseType(c.Type)
		out[i] = sqlengine.Column{Name: c.Name, Type: t.String()}
	}
	return out
}

func (c *catalog) Relations(ctx context.Context) ([]sqlengine.Relation, error) {
	var out []sqlengine.Relation
	for _, t := range c.m.List() {
		// A table the principal may not read is not there for it (nor
		// its dead-letter table).
		if !authz.Allowed(c.ctx, authz.OpRead, authz.ResTable, t.Def.Name) {
			continue
		}
		for _, dlq := range []bool{false, true} {
			r, err := c.relation(ctx, t, dlq)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func (c *catalog) relation(ctx context.Context, t *Table, dlq bool) (sqlengine.Relation, error) {
	name, p := t.Def.Name, t.Main
	if dlq {
		name, p = name+DLQSuffix, t.DLQ
	}
	r := sqlengine.Relation{Name: name, Columns: relColumns(defColumns(&t.Def, dlq))}
	if p.Metadata != "" {
		keys, err := c.m.dataFiles(ctx, name, p.Metadata)
		if err != nil {
			return r, fmt.Errorf("table %s: %w", name, err)
		}
		for _, k := range keys {
			path, release, err := c.m.cache.Path(ctx, k)
			if err != nil {
				return r, fmt.Errorf("table %s: %w", name, err)
			}
			c.mu.Lock()
			c.releases = append(c.releases, release)
			c.mu.Unlock()
			r.Files = append(r.Files, path)
		}
	}
	var dec *rowDecoder
	if t.Def.Schema != nil {
		var err error
		if dec, err = newRowDecoder(t.Def.Schema); err != nil {
			return r, err
		}
	}
	offsets := t.Offsets
	r.Tail = func(ctx context.Context, yield func([]any) bool) error {
		return c.m.tail(ctx, t.Def.Topic, offsets, func(part int32, rec *records.Record) bool {
			row := systemRow(part, rec)
			if dec == nil {
				if dlq {
					return true
				}
				return yield(append(row, valueOrNil(rec.Value)))
			}
			full, err := dec.decode(rec.Value, row)
			switch {
			case err == nil && !dlq:
				return yield(full)
			case err != nil && dlq:
				return yield(append(row[:len(systemColumns):len(systemColumns)], valueOrNil(rec.Value), err.Error()))
			}
			return true
		})
	}
	return r, nil
}

func (c *catalog) Topic(ctx context.Context, name string) (sqlengine.Relation, error) {
	if err := authz.Check(c.ctx, authz.OpRead, authz.ResTopic, name); err != nil {
		return sqlengine.Relation{}, err
	}
	if _, err := c.m.streams.Topic(name); err != nil {
		return sqlengine.Relation{}, fmt.Errorf("topic %q: %w", name, err)
	}
	r := sqlengine.Relation{Name: name, Columns: relColumns(columns(nil))}
	r.Tail = func(ctx context.Context, yield func([]any) bool) error {
		return c.m.tail(ctx, name, nil, func(part int32, rec *records.Record) bool {
			return yield(append(systemRow(part, rec), valueOrNil(rec.Value)))
		})
	}
	return r, nil
}

func valueOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// systemRow is the system columns of a record.
func systemRow(part int32, r *records.Record) []any {
	row := make([]any, 0, len(systemColumns)+8)
	row = append(row, part, r.Offset, time.UnixMilli(r.Timestamp).UTC(), valueOrNil(r.Key))
	if len(r.Headers) == 0 {
		return append(row, nil)
	}
	hs := make([]any, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = map[string]any{"key": h.Key, "value": valueOrNil(h.Value)}
	}
	return append(row, hs)
}

// tail calls fn with every committed record of topic from offsets (the
// partition's start where none is given) to the end as it is now.
func (m *Module) tail(ctx context.Context, topic string, offsets map[int32]int64, fn func(int32, *records.Record) bool) error {
	for _, p := range m.partitionsOf(topic) {
		off, ok := offsets[p.Partition]
		if !ok || off < p.Start {
			off = p.Start
		}
		// Committed records only, as the materializer reads them: up to
		// the last stable offset, without aborted transactions. The view
		// is taken before reading, so every transaction with records below
		// its last stable offset has ended and its aborted ranges are in
		// it.
		view, err := m.streams.TxnView(topic, p.Partition, off, p.End)
		if err != nil {
			return fmt.Errorf("reading %s/%d at %d: %w", topic, p.Partition, off, err)
		}
		end := min(p.End, view.LastStable)
		for off < end {
			res, err := m.streams.Fetch(ctx, topic, p.Partition, off, 8<<20, 0)
			if err != nil {
				var oor *stream.OffsetOutOfRangeError
				if errors.As(err, &oor) && oor.Start > off {
					off = oor.Start
					continue
				}
				return fmt.Errorf("reading %s/%d at %d: %w", topic, p.Partition, off, err)
			}
			next := off
			for _, b := range res.Batches {
				recs, m, err := records.Decode(b, stream.Decompress)
				if err != nil {
					return fmt.Errorf("decoding %s/%d at %d: %w", topic, p.Partition, off, err)
				}
				for i := range recs {
					r := &recs[i]
					if r.Offset < off || r.Offset >= end {
						continue
					}
					if !view.Committed(m, r.Offset) {
						next = r.Offset + 1 // a transaction marker or an aborted record, not a row
						continue
					}
					if !fn(p.Partition, r) {
						return nil
					}
					next = r.Offset + 1
				}
			}
			if next == off {
				if res.LogStart > off {
					next = res.LogStart
				} else {
					break // nothing more readable now
				}
			}
			off = next
		}
	}
	return nil
}

// dataFiles lists the data files of the current snapshot of a metadata
// file (cached: a metadata file never changes).
func (m *Module) dataFiles(ctx context.Context, name, metaKey string) ([]string, error) {
	m.filesMu.Lock()
	if keys, ok := m.files[metaKey]; ok {
		m.filesMu.Unlock()
		return keys, nil
	}
	m.filesMu.Unlock()
	meta, err := loadMetadata(ctx, m.b, metaKey)
	if err != nil {
		return nil, err
	}
	fio := newBucketIO(ctx, m.b)
	var keys []string
	if meta.CurrentSnapshot() != nil {
		tbl := table.New(table.Identifier{Namespace, name}, meta, fio.URL(metaKey), m.fsF(fio), nil)
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
			k, err := fio.Key(t.File.FilePath())
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	m.filesMu.Lock()
	if len(m.files) > 256 {
		clear(m.files)
	}
	m.files[metaKey] = keys
	m.filesMu.Unlock()
	return keys, nil
}
