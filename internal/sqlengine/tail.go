//go:build !nosql

package sqlengine

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// The table functions every query has.
const (
	// tailFunction is twoway_tail('name'): the Tail rows of a relation.
	tailFunction = "twoway_tail"
	// topicFunction is topic('name'): the raw records of a topic.
	topicFunction = "topic"
)

// relation is a Relation checked and prepared for DuckDB.
type relation struct {
	name  string
	what  string // `table "name"` or `topic "name"`, for errors
	cols  []relColumn
	infos []duckdb.ColumnInfo // the columns of twoway_tail('name')
	files []string            // absolute paths
	tail  func(ctx context.Context, yield func(row []any) bool) error
}

type relColumn struct {
	name string
	typ  *colType
	conv converter
}

// newRelation checks r and prepares it; what names it in errors.
func newRelation(r Relation, what string) (*relation, error) {
	if r.Name == "" {
		return nil, fmt.Errorf("sql: a %s has no name", strings.Fields(what)[0])
	}
	if strings.ContainsRune(r.Name, 0) {
		return nil, fmt.Errorf("sql: %s: the name holds a NUL character", what)
	}
	if len(r.Columns) == 0 {
		return nil, fmt.Errorf("sql: %s has no columns", what)
	}
	rel := &relation{name: r.Name, what: what, tail: r.Tail}
	seen := map[string]bool{}
	for _, c := range r.Columns {
		if c.Name == "" || strings.ContainsRune(c.Name, 0) {
			return nil, fmt.Errorf("sql: %s: column name %q is empty or holds a NUL character", what, c.Name)
		}
		key := strings.ToLower(c.Name)
		if seen[key] {
			return nil, fmt.Errorf("sql: %s: two columns are named %q (SQL names ignore case)", what, c.Name)
		}
		seen[key] = true
		typ, err := parseColType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("sql: %s, column %q: %w", what, c.Name, err)
		}
		info, err := typeInfo(typ)
		if err != nil {
			return nil, fmt.Errorf("sql: %s, column %q: type %s: %w", what, c.Name, c.Type, err)
		}
		rel.cols = append(rel.cols, relColumn{name: c.Name, typ: typ, conv: converterFor(typ)})
		rel.infos = append(rel.infos, duckdb.ColumnInfo{Name: c.Name, T: info})
	}
	files, err := absFiles(r.Files)
	if err != nil {
		return nil, fmt.Errorf("sql: %s: %w", what, err)
	}
	rel.files = files
	return rel, nil
}

// loadRelations checks the catalog's relations.
func (q *query) loadRelations(rels []Relation) error {
	q.relations = make(map[string]*relation, len(rels))
	seen := map[string]string{}
	for _, r := range rels {
		what := fmt.Sprintf("table %q", r.Name)
		if other, dup := seen[strings.ToLower(r.Name)]; dup {
			return fmt.Errorf("sql: the catalog has two tables named %q and %q (SQL names ignore case)", other, r.Name)
		}
		seen[strings.ToLower(r.Name)] = r.Name
		rel, err := newRelation(r, what)
		if err != nil {
			return err
		}
		q.relations[r.Name] = rel
	}
	return nil
}

// viewSQL is the CREATE VIEW statement of the relation: its columns, in order
// and of their declared types, over its Parquet files and its Tail rows.
// UNION ALL BY NAME fills the columns a file lacks with NULL, and since
// twoway_tail has every column, each column exists even if no file has it.
func (r *relation) viewSQL() string {
	var b strings.Builder
	b.WriteString("CREATE VIEW ")
	b.WriteString(quoteIdent(r.name))
	b.WriteString(" AS SELECT ")
	for i, c := range r.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "CAST(%s AS %s) AS %s", quoteIdent(c.name), c.typ.sql(), quoteIdent(c.name))
	}
	b.WriteString(" FROM (")
	if len(r.files) > 0 {
		b.WriteString("SELECT * FROM read_parquet([")
		for i, f := range r.files {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteString(f))
		}
		b.WriteString("], union_by_name = true) UNION ALL BY NAME ")
	}
	fmt.Fprintf(&b, "SELECT * FROM %s(%s)) AS src", tailFunction, quoteString(r.name))
	return b.String()
}

// bindTail binds twoway_tail('name').
func (q *query) bindTail(_ map[string]any, args ...any) (duckdb.ChunkTableSource, error) {
	name, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("%s() needs the name of a table", tailFunction)
	}
	rel := q.relations[name]
	if rel == nil {
		return nil, fmt.Errorf("%s(): there is no table named %q", tailFunction, name)
	}
	return &tailSource{q: q, rel: rel}, nil
}

// bindTopic binds topic('name'), asking the catalog once per name.
func (q *query) bindTopic(_ map[string]any, args ...any) (duckdb.ChunkTableSource, error) {
	name, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("%s() needs the name of a topic", topicFunction)
	}
	q.topicMu.Lock()
	entry, cached := q.topics[name]
	q.topicMu.Unlock()
	if !cached {
		entry.rel, entry.err = q.loadTopic(name)
		q.topicMu.Lock()
		q.topics[name] = entry
		q.topicMu.Unlock()
	}
	if entry.err != nil {
		q.fail(entry.err)
		return nil, entry.err
	}
	return &tailSource{q: q, rel: entry.rel}, nil
}

func (q *query) loadTopic(name string) (*relation, error) {
	if q.cat == nil {
		return nil, fmt.Errorf("sql: there is no topic %q (no catalog)", name)
	}
	r, err := q.cat.Topic(q.ctx, name)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("topic %q", name)
	if len(r.Files) > 0 {
		return nil, fmt.Errorf("sql: %s: %s() reads only the rows Tail yields, but the catalog gave %d Parquet files",
			what, topicFunction, len(r.Files))
	}
	if r.Name == "" {
		r.Name = name
	}
	return newRelation(r, what)
}

// tailBatch is up to one DuckDB vector of rows (n rows of len(cols) values,
// converted for DataChunk.SetValue), or the error that ended the Tail.
type tailBatch struct {
	vals []any
	n    int
	err  error
}

// tailSource is one scan of twoway_tail or topic. DuckDB calls Init and then
// FillChunk from one thread at a time. The Tail runs on a goroutine of its
// own, which FillChunk starts on its first call (when the projection is
// known) and which hands over batches of converted rows.
type tailSource struct {
	q   *query
	rel *relation

	started   bool
	batches   chan tailBatch
	free      chan []any // batches' value slices to reuse
	projected []int      // the columns DuckDB reads
	ctx       context.Context
	cancel    context.CancelFunc
}

func (s *tailSource) ColumnInfos() []duckdb.ColumnInfo { return s.rel.infos }

func (s *tailSource) Cardinality() *duckdb.CardinalityInfo { return nil }

// Init is called before each execution of the scan. A scan that runs again
// (as in a recursive query) reads the Tail again from its start.
func (s *tailSource) Init() {
	if s.cancel != nil {
		s.cancel()
	}
	s.started = false
}

func (s *tailSource) start(chunk *duckdb.DataChunk) {
	s.started = true
	ncols := len(s.rel.cols)
	mask := make([]bool, ncols)
	s.projected = s.projected[:0]
	for i := range ncols {
		if _, err := chunk.GetVector(i); err == nil {
			mask[i] = true
			s.projected = append(s.projected, i)
		}
	}
	s.batches = make(chan tailBatch, 2)
	s.free = make(chan []any, 3)
	s.ctx, s.cancel = s.q.runContext()
	if s.rel.tail == nil {
		close(s.batches)
		return
	}
	s.q.tails.Add(1)
	go s.produce(s.ctx, s.batches, s.free, mask)
}

func (s *tailSource) FillChunk(chunk duckdb.DataChunk) error {
	if !s.started {
		s.start(&chunk)
	}
	var b tailBatch
	var ok bool
	select {
	case b, ok = <-s.batches:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	if !ok {
		return chunk.SetSize(0)
	}
	if b.err != nil {
		s.q.fail(b.err)
		return b.err
	}
	ncols := len(s.rel.cols)
	for r := range b.n {
		row := b.vals[r*ncols : (r+1)*ncols]
		for _, c := range s.projected {
			if err := chunk.SetValue(c, r, row[c]); err != nil {
				err = fmt.Errorf("sql: reading the rows of %s, column %q: %s", s.rel.what, s.rel.cols[c].name, duckMessage(err))
				s.q.fail(err)
				return err
			}
		}
	}
	if err := chunk.SetSize(b.n); err != nil {
		return err
	}
	select {
	case s.free <- b.vals[:0]:
	default:
	}
	return nil
}

// produce runs the Tail, converting and batching its rows, until it returns
// or ctx ends. It closes batches when done.
func (s *tailSource) produce(ctx context.Context, batches chan<- tailBatch, free <-chan []any, mask []bool) {
	defer s.q.tails.Done()
	defer close(batches)
	ncols := len(s.rel.cols)
	capRows := duckdb.GetDataChunkCapacity()
	newVals := func() []any {
		select {
		case v := <-free:
			return v
		default:
			return make([]any, 0, capRows*ncols)
		}
	}
	send := func(b tailBatch) bool {
		select {
		case batches <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	vals := newVals()
	n, total := 0, 0
	var rowErr error
	err := callTail(ctx, s.rel.tail, func(row []any) bool {
		if rowErr != nil || ctx.Err() != nil {
			return false
		}
		total++
		if len(row) != ncols {
			rowErr = fmt.Errorf("row %d has %d values, but there are %d columns", total, len(row), ncols)
			return false
		}
		for c, v := range row {
			if !mask[c] || v == nil {
				vals = append(vals, nil)
				continue
			}
			cv, err := s.rel.cols[c].conv(v)
			if err != nil {
				rowErr = fmt.Errorf("row %d, column %q: %w", total, s.rel.cols[c].name, err)
				return false
			}
			vals = append(vals, cv)
		}
		n++
		if n == capRows {
			if !send(tailBatch{vals: vals, n: n}) {
				return false
			}
			vals, n = newVals(), 0
		}
		return true
	})
	if rowErr != nil {
		err = rowErr
	}
	if err != nil {
		send(tailBatch{err: fmt.Errorf("sql: reading the rows of %s: %w", s.rel.what, err)})
		return
	}
	if n > 0 {
		send(tailBatch{vals: vals, n: n})
	}
}

// callTail calls tail, turning a panic into an error so that one bad Tail
// fails its query and not the process.
func callTail(ctx context.Context, tail func(context.Context, func([]any) bool) error, yield func([]any) bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the Tail panicked: %v", r)
		}
	}()
	return tail(ctx, yield)
}

// typeInfo returns the DuckDB type of a twoway column type.
func typeInfo(t *colType) (duckdb.TypeInfo, error) {
	switch t.kind {
	case kindInt:
		return duckdb.NewTypeInfo(duckdb.TYPE_INTEGER)
	case kindLong:
		return duckdb.NewTypeInfo(duckdb.TYPE_BIGINT)
	case kindDouble:
		return duckdb.NewTypeInfo(duckdb.TYPE_DOUBLE)
	case kindBoolean:
		return duckdb.NewTypeInfo(duckdb.TYPE_BOOLEAN)
	case kindString:
		return duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	case kindBinary:
		return duckdb.NewTypeInfo(duckdb.TYPE_BLOB)
	case kindTimestamp:
		return duckdb.NewTypeInfo(duckdb.TYPE_TIMESTAMP_TZ)
	case kindDate:
		return duckdb.NewTypeInfo(duckdb.TYPE_DATE)
	case kindDecimal:
		return duckdb.NewDecimalInfo(uint8(t.precision), uint8(t.scale))
	case kindList:
		elem, err := typeInfo(t.elem)
		if err != nil {
			return nil, err
		}
		return duckdb.NewListInfo(elem)
	case kindStruct:
		entries := make([]duckdb.StructEntry, len(t.fields))
		for i, f := range t.fields {
			info, err := typeInfo(f.typ)
			if err != nil {
				return nil, err
			}
			if entries[i], err = duckdb.NewStructEntry(info, f.name); err != nil {
				return nil, err
			}
		}
		return duckdb.NewStructInfo(entries[0], entries[1:]...)
	}
	return nil, fmt.Errorf("unknown type %s", t)
}

// converter checks a non-nil Tail value against its column type and returns
// it in the form DataChunk.SetValue takes.
type converter func(v any) (any, error)

func typeMismatch(want string, t *colType, v any) error {
	return fmt.Errorf("type %s takes Go %s, got %T", t, want, v)
}

func outOfRange(t *colType, v any) error {
	return fmt.Errorf("%v is out of range for type %s", v, t)
}

// converterFor returns the converter of a column type. Integer columns take
// any Go integer type whose value fits; the other types take exactly the Go
// types of the package documentation (and binary takes a string too).
func converterFor(t *colType) converter {
	switch t.kind {
	case kindInt:
		return func(v any) (any, error) {
			if _, ok := v.(int32); ok {
				return v, nil
			}
			i, ok, inRange := asInt64(v)
			if !ok {
				return nil, typeMismatch("int32", t, v)
			}
			if !inRange || i < math.MinInt32 || i > math.MaxInt32 {
				return nil, outOfRange(t, v)
			}
			return int32(i), nil
		}
	case kindLong:
		return func(v any) (any, error) {
			if _, ok := v.(int64); ok {
				return v, nil
			}
			i, ok, inRange := asInt64(v)
			if !ok {
				return nil, typeMismatch("int64", t, v)
			}
			if !inRange {
				return nil, outOfRange(t, v)
			}
			return i, nil
		}
	case kindDouble:
		return func(v any) (any, error) {
			switch x := v.(type) {
			case float64:
				return v, nil
			case float32:
				return float64(x), nil
			}
			return nil, typeMismatch("float64", t, v)
		}
	case kindBoolean:
		return func(v any) (any, error) {
			if _, ok := v.(bool); ok {
				return v, nil
			}
			return nil, typeMismatch("bool", t, v)
		}
	case kindString:
		return func(v any) (any, error) {
			if _, ok := v.(string); ok {
				return v, nil
			}
			return nil, typeMismatch("string", t, v)
		}
	case kindBinary:
		return func(v any) (any, error) {
			switch v.(type) {
			case []byte, string:
				return v, nil
			}
			return nil, typeMismatch("[]byte", t, v)
		}
	case kindTimestamp:
		return func(v any) (any, error) {
			if _, ok := v.(time.Time); ok {
				return v, nil
			}
			return nil, typeMismatch("time.Time", t, v)
		}
	case kindDate:
		return func(v any) (any, error) {
			x, ok := v.(time.Time)
			if !ok {
				return nil, typeMismatch("time.Time", t, v)
			}
			// duckdb-go takes the calendar date in the time's location;
			// the date of a twoway row is the UTC date.
			if x.Location() != time.UTC {
				return x.UTC(), nil
			}
			return v, nil
		}
	case kindDecimal:
		limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.precision)), nil)
		return func(v any) (any, error) {
			x, ok := v.(*big.Int)
			if !ok {
				return nil, typeMismatch("*big.Int (unscaled)", t, v)
			}
			if x == nil {
				return nil, nil
			}
			if x.CmpAbs(limit) >= 0 {
				return nil, fmt.Errorf("unscaled value %s has more than %d digits, too many for type %s", x, t.precision, t)
			}
			if t.precision <= 18 {
				// DuckDB stores these in 16, 32 or 64 bits; duckdb-go
				// takes them as int64.
				return x.Int64(), nil
			}
			return x, nil
		}
	case kindList:
		elem := converterFor(t.elem)
		return func(v any) (any, error) {
			x, ok := v.([]any)
			if !ok {
				return nil, typeMismatch("[]any", t, v)
			}
			out := make([]any, len(x))
			for i, e := range x {
				if e == nil {
					continue
				}
				ce, err := elem(e)
				if err != nil {
					return nil, fmt.Errorf("element %d: %w", i, err)
				}
				out[i] = ce
			}
			return out, nil
		}
	case kindStruct:
		convs := make([]converter, len(t.fields))
		for i, f := range t.fields {
			convs[i] = converterFor(f.typ)
		}
		return func(v any) (any, error) {
			x, ok := v.(map[string]any)
			if !ok {
				return nil, typeMismatch("map[string]any", t, v)
			}
			out := make(map[string]any, len(t.fields))
			matched := 0
			for i, f := range t.fields {
				e, present := x[f.name]
				if present {
					matched++
				}
				if e == nil {
					out[f.name] = nil
					continue
				}
				ce, err := convs[i](e)
				if err != nil {
					return nil, fmt.Errorf("field %q: %w", f.name, err)
				}
				out[f.name] = ce
			}
			if len(x) > matched {
				for k := range x {
					if _, ok := out[k]; !ok {
						return nil, fmt.Errorf("%s has no field %q", t, k)
					}
				}
			}
			return out, nil
		}
	}
	return func(v any) (any, error) { return nil, fmt.Errorf("unknown type %s", t) }
}

// asInt64 returns the value of any Go integer; ok is false for other types,
// inRange false for a uint64 past MaxInt64.
func asInt64(v any) (i int64, ok, inRange bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true, true
	case int8:
		return int64(x), true, true
	case int16:
		return int64(x), true, true
	case int32:
		return int64(x), true, true
	case int64:
		return x, true, true
	case uint8:
		return int64(x), true, true
	case uint16:
		return int64(x), true, true
	case uint32:
		return int64(x), true, true
	case uint:
		return int64(x), true, uint64(x) <= math.MaxInt64
	case uint64:
		return int64(x), true, x <= math.MaxInt64
	}
	return 0, false, false
}

// normalize turns a value duckdb-go returned into the package's form (see
// Result): DECIMAL to its unscaled *big.Int, UUID to its text, duckdb-go's
// Interval, OrderedMap and Union to Interval, Map and the member's value.
func normalize(t *dbType, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case duckdb.Decimal:
		return x.Value
	case duckdb.Interval:
		return Interval{Months: x.Months, Days: x.Days, Micros: x.Micros}
	case []byte:
		if t != nil && t.name == "UUID" && len(x) == 16 {
			return formatUUID(x)
		}
		return x
	case duckdb.UUID:
		return formatUUID(x[:])
	case *duckdb.UUID:
		if x == nil {
			return nil
		}
		return formatUUID(x[:])
	case duckdb.Bit:
		return x.String()
	case []any:
		et := t.elemType()
		for i, e := range x {
			x[i] = normalize(et, e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(t.fieldType(k), e)
		}
		return x
	case duckdb.OrderedMap:
		var kt, vt *dbType
		if t != nil {
			kt, vt = t.key, t.value
		}
		keys, values := x.Keys(), x.Values()
		m := make(Map, len(keys))
		for i := range keys {
			m[i] = MapEntry{Key: normalize(kt, keys[i]), Value: normalize(vt, values[i])}
		}
		return m
	case duckdb.Union:
		return normalize(t.fieldType(x.Tag), x.Value)
	}
	return v
}

// formatUUID formats 16 bytes as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func formatUUID(b []byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], b[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], b[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], b[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], b[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], b[10:16])
	return string(buf[:])
}
