//go:build !nosql

package sqlengine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// testCatalog is a Catalog of fixed relations and topics.
type testCatalog struct {
	rels       []Relation
	topics     map[string]Relation
	topicCalls map[string]int
}

var errUnknownTopic = errors.New("unknown topic")

func (c *testCatalog) Relations(context.Context) ([]Relation, error) { return c.rels, nil }

func (c *testCatalog) Topic(_ context.Context, name string) (Relation, error) {
	if c.topicCalls == nil {
		c.topicCalls = map[string]int{}
	}
	c.topicCalls[name]++
	r, ok := c.topics[name]
	if !ok {
		return Relation{}, fmt.Errorf("%w %q", errUnknownTopic, name)
	}
	return r, nil
}

// rowsTail yields rows, reusing one slice for all of them as a real Tail may.
func rowsTail(rows [][]any) func(context.Context, func([]any) bool) error {
	return func(ctx context.Context, yield func([]any) bool) error {
		var buf []any
		for _, r := range rows {
			buf = append(buf[:0], r...)
			if !yield(buf) {
				return nil
			}
		}
		return nil
	}
}

// writeParquet writes the rows of query to a Parquet file with an
// unconfined DuckDB.
func writeParquet(t testing.TB, path, query string) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(),
		fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", query, quoteString(path))); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}

// newEngine returns New(cfg), closed when the test ends.
func newEngine(t testing.TB, cfg Config) *Engine {
	e := New(cfg)
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("closing the engine: %v", err)
		}
	})
	return e
}

func mustQuery(t testing.TB, e *Engine, cat Catalog, q string) *Result {
	t.Helper()
	res, err := e.Query(context.Background(), q, cat)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

// equalValue compares result values: *big.Int by value, time.Time by
// instant, lists and structs element by element.
func equalValue(a, b any) bool {
	switch x := a.(type) {
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !equalValue(x[k], y[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func checkRows(t *testing.T, res *Result, want [][]any) {
	t.Helper()
	if len(res.Rows) != len(want) {
		t.Fatalf("got %d rows, want %d: %v", len(res.Rows), len(want), res.Rows)
	}
	for i := range want {
		if len(res.Rows[i]) != len(want[i]) {
			t.Fatalf("row %d: got %d values, want %d", i, len(res.Rows[i]), len(want[i]))
		}
		for j := range want[i] {
			if !equalValue(res.Rows[i][j], want[i][j]) {
				t.Errorf("row %d, column %q: got %#v (%T), want %#v (%T)",
					i, res.Columns[j].Name, res.Rows[i][j], res.Rows[i][j], want[i][j], want[i][j])
			}
		}
	}
}

func checkColumns(t *testing.T, res *Result, want ...string) {
	t.Helper()
	var got []string
	for _, c := range res.Columns {
		got = append(got, c.Name+" "+c.Type)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("columns:\n got %q\nwant %q", got, want)
	}
}

// allTypes is a relation with a column of every twoway type, rows in two
// Parquet files and in its Tail.
var allTypesColumns = []Column{
	{"i", "int"}, {"l", "long"}, {"d", "double"}, {"b", "boolean"}, {"s", "string"},
	{"bin", "binary"}, {"ts", "timestamp"}, {"dt", "date"}, {"dec", "decimal(10,2)"},
	{"ll", "list<long>"}, {"st", "struct<a:int,b:string>"},
	{"hdrs", "list<struct<key:string,value:binary>>"},
}

func allTypesRelation(t testing.TB) (Relation, [][]any) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "f1.parquet")
	f2 := filepath.Join(dir, "f2.parquet")
	writeParquet(t, f1, `SELECT 1::INTEGER AS i, 10::BIGINT AS l, 1.5::DOUBLE AS d, true AS b, 'one' AS s,
		'\x01\x02'::BLOB AS bin, TIMESTAMPTZ '2024-01-02 03:04:05.123456+00' AS ts, DATE '2024-01-02' AS dt,
		12.50::DECIMAL(10,2) AS dec, [1, 2, 3]::BIGINT[] AS ll,
		{'a': 7, 'b': 'x'}::STRUCT(a INTEGER, b VARCHAR) AS st,
		[{'key': 'k1', 'value': '\xAA'::BLOB}]::STRUCT(key VARCHAR, value BLOB)[] AS hdrs`)
	writeParquet(t, f2, `SELECT * FROM (VALUES
		(2::INTEGER, 20::BIGINT, -2.25::DOUBLE, false, 'two', ''::BLOB, TIMESTAMPTZ '1969-12-31 23:59:59.5+00',
		 DATE '1969-12-31', -0.05::DECIMAL(10,2), []::BIGINT[], {'a': NULL, 'b': 'y'}::STRUCT(a INTEGER, b VARCHAR),
		 []::STRUCT(key VARCHAR, value BLOB)[]),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
		) AS v(i, l, d, b, s, bin, ts, dt, dec, ll, st, hdrs)`)
	tail := [][]any{
		{int32(4), int64(1 << 40), 3.0, true, "four ✓", []byte{0, 255},
			time.Date(2025, 6, 7, 8, 9, 10, 11000, time.UTC), time.Date(2025, 6, 7, 0, 0, 0, 0, time.UTC),
			big.NewInt(9999999999), []any{int64(5), nil, int64(-6)},
			map[string]any{"a": int32(-1), "b": nil},
			[]any{map[string]any{"key": "h", "value": []byte("v")}, map[string]any{"key": "n", "value": nil}}},
		{int32(5), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	}
	rel := Relation{Name: "events", Columns: allTypesColumns, Files: []string{f1, f2}, Tail: rowsTail(tail)}
	want := [][]any{
		{int32(1), int64(10), 1.5, true, "one", []byte{1, 2},
			time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
			big.NewInt(1250), []any{int64(1), int64(2), int64(3)}, map[string]any{"a": int32(7), "b": "x"},
			[]any{map[string]any{"key": "k1", "value": []byte{0xAA}}}},
		{int32(2), int64(20), -2.25, false, "two", []byte{},
			time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
			big.NewInt(-5), []any{}, map[string]any{"a": nil, "b": "y"}, []any{}},
		{int32(3), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		tail[0],
		tail[1],
	}
	return rel, want
}

func TestAllTypes(t *testing.T) {
	rel, want := allTypesRelation(t)
	cat := &testCatalog{rels: []Relation{rel}}
	e := newEngine(t, Config{})

	res := mustQuery(t, e, cat, `SELECT * FROM events ORDER BY i`)
	checkColumns(t, res, "i INTEGER", "l BIGINT", "d DOUBLE", "b BOOLEAN", "s VARCHAR", "bin BLOB",
		"ts TIMESTAMPTZ", "dt DATE", "dec DECIMAL(10,2)", "ll BIGINT[]", `st STRUCT("a" INTEGER, "b" VARCHAR)`,
		`hdrs STRUCT("key" VARCHAR, "value" BLOB)[]`)
	checkRows(t, res, want)

	res = mustQuery(t, e, cat, `SELECT count(*) AS n, sum(l) AS sl, max(dec) AS md, min(ts) AS mts,
		sum(len(ll)) AS nl, max(st.a) AS ma, count(hdrs[1].value) AS nh FROM events`)
	checkColumns(t, res, "n BIGINT", "sl HUGEINT", "md DECIMAL(10,2)", "mts TIMESTAMPTZ", "nl HUGEINT", "ma INTEGER", "nh BIGINT")
	checkRows(t, res, [][]any{{int64(5), big.NewInt(10 + 20 + 1<<40), big.NewInt(9999999999),
		time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC), big.NewInt(6), int32(7), int64(2)}})

	// Filters and projections push into both the files and the tail.
	res = mustQuery(t, e, cat, `SELECT s FROM events WHERE l > 15 ORDER BY s`)
	checkRows(t, res, [][]any{{"four ✓"}, {"two"}})

	// The tail can be read by itself, and a self join scans it twice.
	res = mustQuery(t, e, cat, `SELECT count(*) FROM twoway_tail('events')`)
	checkRows(t, res, [][]any{{int64(2)}})
	res = mustQuery(t, e, cat, `SELECT count(*) FROM events a JOIN events b ON a.i = b.i`)
	checkRows(t, res, [][]any{{int64(5)}})
}

func TestTailOnly(t *testing.T) {
	cat := &testCatalog{rels: []Relation{
		{Name: "t", Columns: []Column{{"a", "long"}, {"b", "string"}},
			Tail: rowsTail([][]any{{int64(1), "x"}, {2, "y"}, {uint8(3), nil}})},
		{Name: "empty", Columns: []Column{{"a", "decimal(38,10)"}, {"m", "list<struct<k:string,v:list<int>>>"}}},
	}}
	e := newEngine(t, Config{})
	res := mustQuery(t, e, cat, `SELECT a, b FROM t ORDER BY a`)
	checkRows(t, res, [][]any{{int64(1), "x"}, {int64(2), "y"}, {int64(3), nil}})

	res = mustQuery(t, e, cat, `SELECT * FROM empty`)
	checkColumns(t, res, "a DECIMAL(38,10)", `m STRUCT("k" VARCHAR, "v" INTEGER[])[]`)
	checkRows(t, res, nil)
}

func TestWideDecimal(t *testing.T) {
	huge, _ := new(big.Int).SetString("-12345678901234567890123456789012345678", 10)
	cat := &testCatalog{rels: []Relation{{Name: "t", Columns: []Column{{"x", "decimal(38,4)"}, {"y", "decimal(4,1)"}},
		Tail: rowsTail([][]any{{huge, big.NewInt(-999)}})}}}
	res := mustQuery(t, newEngine(t, Config{}), cat, `SELECT x, y, x::VARCHAR AS xs, y::VARCHAR AS ys FROM t`)
	checkRows(t, res, [][]any{{huge, big.NewInt(-999), "-1234567890123456789012345678901234.5678", "-99.9"}})

	// Too many digits for the column is an error naming it.
	cat.rels[0].Tail = rowsTail([][]any{{big.NewInt(1), big.NewInt(10000)}})
	_, err := newEngine(t, Config{}).Query(context.Background(), `SELECT * FROM t`, cat)
	if err == nil || !strings.Contains(err.Error(), `column "y"`) || !strings.Contains(err.Error(), "more than 4 digits") {
		t.Fatalf("got %v, want an error about too many digits in column y", err)
	}
}

func TestSchemaEvolution(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.parquet")
	cur := filepath.Join(dir, "new.parquet")
	// The oldest file lacks "the price"; no file has "tags" yet; the newer
	// file still has a dropped column and stores "id" as INTEGER.
	writeParquet(t, old, `SELECT 1::BIGINT AS id, 'a' AS name`)
	writeParquet(t, cur, `SELECT 2::INTEGER AS id, 'b' AS name, 9.5::DOUBLE AS "the price", 'gone' AS dropped`)
	cat := &testCatalog{rels: []Relation{{
		Name:    `my "odd" 'table'`,
		Columns: []Column{{"id", "long"}, {"name", "string"}, {"the price", "double"}, {"tags", "list<string>"}},
		Files:   []string{old, cur},
		Tail:    rowsTail([][]any{{int64(3), "c", 1.25, []any{"t1", "t2"}}}),
	}}}
	e := newEngine(t, Config{})
	res := mustQuery(t, e, cat, `SELECT * FROM "my ""odd"" 'table'" ORDER BY id`)
	checkColumns(t, res, "id BIGINT", "name VARCHAR", "the price DOUBLE", "tags VARCHAR[]")
	checkRows(t, res, [][]any{
		{int64(1), "a", nil, nil},
		{int64(2), "b", 9.5, nil},
		{int64(3), "c", 1.25, []any{"t1", "t2"}},
	})
	// The dropped column is not part of the table.
	if _, err := e.Query(context.Background(), `SELECT dropped FROM "my ""odd"" 'table'"`, cat); err == nil ||
		!strings.Contains(err.Error(), "dropped") {
		t.Fatalf("selecting a dropped column: got %v", err)
	}

	// Without a tail, a column no file has is still there, typed.
	cat.rels[0].Tail = nil
	res = mustQuery(t, e, cat, `SELECT count(*), count(tags), typeof(any_value(tags)) FROM "my ""odd"" 'table'"`)
	checkRows(t, res, [][]any{{int64(2), int64(0), "VARCHAR[]"}})
}

func TestTopic(t *testing.T) {
	cat := &testCatalog{topics: map[string]Relation{
		"orders": {Columns: []Column{{"partition", "int"}, {"offset", "long"}, {"key", "binary"}, {"value", "binary"},
			{"headers", "list<struct<key:string,value:binary>>"}},
			Tail: rowsTail([][]any{
				{int32(0), int64(0), []byte("k"), []byte("v0"), []any{}},
				{int32(0), int64(1), nil, []byte("v1"), []any{map[string]any{"key": "h", "value": []byte("x")}}},
				{int32(1), int64(0), nil, []byte("v2"), nil},
			})},
	}}
	e := newEngine(t, Config{})
	res := mustQuery(t, e, cat, `SELECT count(*), max("offset"), sum(len(headers)), string_agg(value::VARCHAR, ',' ORDER BY partition, "offset")
		FROM topic('orders') WHERE value IS NOT NULL`)
	checkRows(t, res, [][]any{{int64(3), int64(1), big.NewInt(1), "v0,v1,v2"}})
	if n := cat.topicCalls["orders"]; n != 1 {
		t.Errorf("Catalog.Topic was asked %d times for one query, want 1", n)
	}

	_, err := e.Query(context.Background(), `SELECT * FROM topic('missing')`, cat)
	if !errors.Is(err, errUnknownTopic) || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("topic('missing'): got %v, want the catalog's error naming it", err)
	}

	// A topic with Parquet files is refused clearly.
	cat.topics["withfiles"] = Relation{Columns: []Column{{"a", "int"}}, Files: []string{"/x.parquet"}}
	_, err = e.Query(context.Background(), `SELECT * FROM topic('withfiles')`, cat)
	if err == nil || !strings.Contains(err.Error(), "Parquet files") {
		t.Fatalf("topic with files: got %v", err)
	}
}

func TestTailErrors(t *testing.T) {
	boom := errors.New("segment 7 is corrupt")
	cat := &testCatalog{rels: []Relation{
		{Name: "bad", Columns: []Column{{"a", "long"}}, Tail: func(ctx context.Context, yield func([]any) bool) error {
			for i := range 5000 {
				if !yield([]any{int64(i)}) {
					return nil
				}
			}
			return boom
		}},
		{Name: "wrongtype", Columns: []Column{{"a", "long"}, {"b", "string"}},
			Tail: rowsTail([][]any{{int64(1), "ok"}, {int64(2), 42}})},
		{Name: "short", Columns: []Column{{"a", "long"}, {"b", "string"}}, Tail: rowsTail([][]any{{int64(1)}})},
		{Name: "badstruct", Columns: []Column{{"s", "struct<a:int>"}},
			Tail: rowsTail([][]any{{map[string]any{"a": int32(1), "zz": 2}}})},
		{Name: "panics", Columns: []Column{{"a", "long"}}, Tail: func(context.Context, func([]any) bool) error {
			panic("bad tail")
		}},
		{Name: "good", Columns: []Column{{"a", "long"}}, Tail: rowsTail([][]any{{int64(7)}})},
	}}
	e := newEngine(t, Config{})
	cases := []struct {
		sql  string
		want []string
		is   error
	}{
		{`SELECT sum(a) FROM bad`, []string{`table "bad"`, "segment 7 is corrupt"}, boom},
		{`SELECT * FROM wrongtype`, []string{`table "wrongtype"`, "row 2", `column "b"`, "string", "got int"}, nil},
		{`SELECT * FROM short`, []string{`table "short"`, "row 1 has 1 values", "2 columns"}, nil},
		{`SELECT * FROM badstruct`, []string{`no field "zz"`}, nil},
		{`SELECT * FROM panics`, []string{`table "panics"`, "panicked", "bad tail"}, nil},
	}
	for _, c := range cases {
		_, err := e.Query(context.Background(), c.sql, cat)
		if err == nil {
			t.Errorf("%s: no error", c.sql)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.sql, err, w)
			}
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: error %v is not %v", c.sql, err, c.is)
		}
		// The engine keeps serving.
		res := mustQuery(t, e, cat, `SELECT a FROM good`)
		checkRows(t, res, [][]any{{int64(7)}})
	}
}

func TestBadSQLThenGood(t *testing.T) {
	e := newEngine(t, Config{})
	cat := &testCatalog{rels: []Relation{{Name: "t", Columns: []Column{{"a", "int"}}, Tail: rowsTail([][]any{{int32(1)}})}}}

	_, err := e.Query(context.Background(), `SELEC a FROM t`, cat)
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.HasPrefix(err.Error(), "sql: Parser Error: syntax error at or near \"SELEC\"") {
		t.Fatalf("syntax error: got %v", err)
	}
	_, err = e.Query(context.Background(), `SELECT nosuch FROM t`, cat)
	if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "Binder Error") || !strings.Contains(qe.Msg, "nosuch") {
		t.Fatalf("binder error: got %v", err)
	}
	_, err = e.Query(context.Background(), `SELECT * FROM nosuch`, cat)
	if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "Catalog Error") || !strings.Contains(qe.Msg, "nosuch") {
		t.Fatalf("catalog error: got %v", err)
	}
	_, err = e.Query(context.Background(), `SELECT 1/0::INTEGER, 'x'::INTEGER`, cat)
	if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "Conversion Error") {
		t.Fatalf("conversion error: got %v", err)
	}
	res := mustQuery(t, e, cat, `SELECT a + 1 AS b FROM t;`)
	checkColumns(t, res, "b INTEGER")
	checkRows(t, res, [][]any{{int32(2)}})

	// Query forms other than a plain SELECT.
	for q, want := range map[string][][]any{
		`FROM t`:                                 {{int32(1)}},
		`WITH x AS (SELECT a FROM t) FROM x`:     {{int32(1)}},
		`VALUES (1), (2)`:                        {{int32(1)}, {int32(2)}},
		`SELECT column_name FROM (DESCRIBE t)`:   {{"a"}},
		`SELECT count FROM (SUMMARIZE t)`:        {{int64(1)}},
		`PIVOT t ON a IN (1, 2) USING count(*)`:  {{int64(1), int64(0)}},
		`SELECT 1 AS x, 2 AS x`:                  {{int32(1), int32(2)}},
		"SELECT 1 AS x; -- trailing comment":     {{int32(1)}},
		"/* leading */ SELECT 'a;b' AS x -- end": {{"a;b"}},
	} {
		res := mustQuery(t, e, cat, q)
		checkRows(t, res, want)
	}
}

func TestConfinement(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine.parquet")
	other := filepath.Join(dir, "other.parquet")
	writeParquet(t, mine, `SELECT 1::BIGINT AS a`)
	writeParquet(t, other, `SELECT 666::BIGINT AS a`)
	out := filepath.Join(dir, "out.csv")
	cat := &testCatalog{rels: []Relation{{Name: "t", Columns: []Column{{"a", "long"}}, Files: []string{mine}}}}
	e := newEngine(t, Config{})

	// The handed-in file is readable through the view.
	res := mustQuery(t, e, cat, `SELECT a FROM t`)
	checkRows(t, res, [][]any{{int64(1)}})
	// And the database is confined and locked while the query runs.
	res = mustQuery(t, e, cat, `SELECT current_setting('enable_external_access'), current_setting('lock_configuration'),
		current_setting('autoload_known_extensions'), current_setting('autoinstall_known_extensions'),
		current_setting('temp_directory'), current_setting('threads'), current_setting('TimeZone')`)
	checkRows(t, res, [][]any{{false, true, false, false, "", int64(2), "UTC"}})

	permission := []string{
		`SELECT * FROM read_csv('/etc/passwd')`,
		`SELECT * FROM read_csv_auto('/etc/passwd')`,
		`SELECT * FROM read_text('/etc/passwd')`,
		`SELECT * FROM read_blob('/etc/passwd')`,
		`SELECT * FROM read_json('/etc/passwd')`,
		`SELECT * FROM '/etc/passwd.csv'`,
		`SELECT * FROM sniff_csv('/etc/passwd')`,
		`SELECT * FROM glob('/etc/*')`,
		`SELECT * FROM glob(` + quoteString(dir+"/*") + `)`,
		`SELECT * FROM read_parquet(` + quoteString(other) + `)`,
		`SELECT * FROM ` + quoteString(other),
		`SELECT * FROM read_parquet(` + quoteString(dir+"/*.parquet") + `)`,
		`SELECT * FROM parquet_metadata(` + quoteString(other) + `)`,
		`SELECT * FROM read_parquet('https://example.com/x.parquet')`,
		`SELECT * FROM read_parquet('s3://bucket/x.parquet')`,
	}
	for _, q := range permission {
		_, err := e.Query(context.Background(), q, cat)
		var qe *QueryError
		if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "Permission Error") {
			t.Errorf("%s: got %v, want a DuckDB permission error", q, err)
		}
	}

	refused := map[string]string{
		`COPY (SELECT 1) TO ` + quoteString(out):              "found COPY",
		`COPY t TO ` + quoteString(out) + ` (FORMAT parquet)`: "found COPY",
		`EXPORT DATABASE ` + quoteString(dir+"/export"):       "found EXPORT",
		`INSTALL httpfs`:                     "found INSTALL",
		`LOAD httpfs`:                        "found LOAD",
		`LOAD 'parquet'`:                     "found LOAD",
		`ATTACH ':memory:' AS m`:             "found ATTACH",
		`ATTACH ` + quoteString(dir+"/x.db"): "found ATTACH",
		`DETACH memory`:                      "found DETACH",
		`SET threads = 8`:                    "found SET",
		`SET enable_external_access = true`:  "found SET",
		`RESET lock_configuration`:           "found RESET",
		`PRAGMA threads = 8`:                 "found PRAGMA",
		`CREATE TABLE x AS SELECT 1`:         "found CREATE",
		`CREATE MACRO f(x) AS x`:             "found CREATE",
		`INSERT INTO t VALUES (1)`:           "found INSERT",
		`CHECKPOINT`:                         "found CHECKPOINT",
		`CALL pragma_version()`:              "found CALL",
		`EXPLAIN SELECT 1`:                   "found EXPLAIN",
		`BEGIN`:                              "found BEGIN",
		`USE memory`:                         "found USE",
		`SELECT 1; SELECT 2`:                 "found more than one statement",
		`SELECT 1; COPY (SELECT 1) TO ` + quoteString(out):      "found more than one statement",
		`COPY (SELECT 1) TO ` + quoteString(out) + `; SELECT 1`: "found COPY",
		`PIVOT (SELECT 1 AS k, 2 AS v) ON k USING sum(v)`:       "runs more than one statement",
		``:              "found no statement",
		` ; -- nothing`: "found no statement",
	}
	for q, want := range refused {
		_, err := e.Query(context.Background(), q, cat)
		if !errors.Is(err, ErrNotReadOnly) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want ErrNotReadOnly saying %q", q, err, want)
		}
	}

	// Writes DuckDB cannot even bind (there are no tables, only views).
	for _, q := range []string{
		`WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x`,
		`SELECT * FROM '/etc/passwd'`,
	} {
		_, err := e.Query(context.Background(), q, cat)
		var qe *QueryError
		if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "Catalog Error") {
			t.Errorf("%s: got %v, want a DuckDB catalog error", q, err)
		}
	}

	// Inside a SELECT: query() runs only SELECTs.
	_, err := e.Query(context.Background(), `SELECT * FROM query('COPY (SELECT 1) TO `+strings.ReplaceAll(quoteString(out), "'", "''")+`')`, cat)
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "SELECT") {
		t.Errorf("query('COPY ...'): got %v", err)
	}
	if _, err := filepath.Glob(out); err != nil {
		t.Fatal(err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*")); len(matches) != 2 {
		t.Errorf("the directory holds %v, want only the two fixtures", matches)
	}
}

func TestTimeout(t *testing.T) {
	e := newEngine(t, Config{Timeout: 300 * time.Millisecond})
	cat := &testCatalog{rels: []Relation{{Name: "slow", Columns: []Column{{"a", "long"}},
		Tail: func(ctx context.Context, yield func([]any) bool) error {
			for i := int64(0); ; i++ {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Millisecond):
				}
				if !yield([]any{i}) {
					return nil
				}
			}
		}}}}
	for _, q := range []string{
		`SELECT count(*) FROM range(1000000000000)`,
		`SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = -1`,
		`SELECT count(*) FROM slow`,
	} {
		start := time.Now()
		_, err := e.Query(context.Background(), q, cat)
		elapsed := time.Since(start)
		if !errors.Is(err, ErrTimeout) || err.Error() != "sql: query ran past the 300ms limit" {
			t.Errorf("%s: got %v, want ErrTimeout", q, err)
		}
		if elapsed > 5*time.Second {
			t.Errorf("%s: returned after %v", q, elapsed)
		}
	}
	// The engine keeps serving.
	res := mustQuery(t, e, cat, `SELECT 42 AS answer`)
	checkRows(t, res, [][]any{{int32(42)}})

	// A caller's cancellation is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := newEngine(t, Config{}).Query(ctx, `SELECT count(*) FROM range(1000000000000)`, cat)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("canceled: got %v", err)
	}
}

func TestMaxRows(t *testing.T) {
	e := newEngine(t, Config{MaxRows: 10})
	cat := &testCatalog{}
	res := mustQuery(t, e, cat, `SELECT range AS n FROM range(10) ORDER BY n DESC`)
	if len(res.Rows) != 10 || res.Rows[0][0] != int64(9) || res.Rows[9][0] != int64(0) {
		t.Fatalf("got %v", res.Rows)
	}
	for _, q := range []string{
		`SELECT * FROM range(11)`,
		`SELECT * FROM range(1000000000000)`, // stops early: no huge result is built
		`SELECT 1 AS x, 2 AS x FROM range(11)`,
	} {
		start := time.Now()
		_, err := e.Query(context.Background(), q, cat)
		if !errors.Is(err, ErrTooManyRows) || !strings.Contains(err.Error(), "more than 10 rows") {
			t.Errorf("%s: got %v, want ErrTooManyRows", q, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s took %v", q, time.Since(start))
		}
	}
}

func TestResultTypes(t *testing.T) {
	res := mustQuery(t, newEngine(t, Config{}), &testCatalog{}, `SELECT
		1::TINYINT AS ti, 2::UBIGINT AS ub, 1.5::FLOAT AS f,
		170141183460469231731687303715884105727::HUGEINT AS h,
		'01234567-89ab-cdef-0123-456789abcdef'::UUID AS u,
		INTERVAL '1 year 2 months 3 days 04:05:06.5' AS iv,
		TIME '01:02:03.25' AS tm, TIMESTAMP '2024-01-02 03:04:05' AS tsn,
		MAP {'k': 1, 'j': 2} AS m, [1, 2]::INTEGER[2] AS arr,
		'{"a": [1, "x"]}'::JSON AS j, union_value(n := 5) AS un, 'b'::ENUM('a', 'b') AS en,
		'101'::BIT AS bits`)
	h, _ := new(big.Int).SetString("170141183460469231731687303715884105727", 10)
	checkRows(t, res, [][]any{{int8(1), uint64(2), float32(1.5), h,
		"01234567-89ab-cdef-0123-456789abcdef", Interval{Months: 14, Days: 3, Micros: 14706500000},
		time.Date(1, 1, 1, 1, 2, 3, 250000000, time.UTC), time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Map{{"k", int32(1)}, {"j", int32(2)}}, []any{int32(1), int32(2)},
		map[string]any{"a": []any{float64(1), "x"}}, int32(5), "b", "101"}})
	checkColumns(t, res, "ti TINYINT", "ub UBIGINT", "f FLOAT", "h HUGEINT", "u UUID", "iv INTERVAL",
		"tm TIME", "tsn TIMESTAMP", "m MAP(VARCHAR, INTEGER)", "arr INTEGER[2]", "j JSON",
		`un UNION("n" INTEGER)`, "en ENUM", "bits BIT")

	// All writers take every type.
	var b strings.Builder
	for _, w := range []func(*strings.Builder) error{
		func(b *strings.Builder) error { return res.WriteJSON(b) },
		func(b *strings.Builder) error { return res.WriteJSONObjects(b) },
		func(b *strings.Builder) error { return res.WriteCSV(b) },
		func(b *strings.Builder) error { return res.WriteTable(b) },
		func(b *strings.Builder) error { return res.WriteArrow(b) },
	} {
		if err := w(&b); err != nil {
			t.Fatal(err)
		}
	}
	var jb strings.Builder
	if err := res.WriteJSONObjects(&jb); err != nil {
		t.Fatal(err)
	}
	const wantJSON = `[{"ti":1,"ub":2,"f":1.5,"h":"170141183460469231731687303715884105727",` +
		`"u":"01234567-89ab-cdef-0123-456789abcdef","iv":"1 year 2 months 3 days 04:05:06.5",` +
		`"tm":"01:02:03.25","tsn":"2024-01-02T03:04:05Z","m":{"k":1,"j":2},"arr":[1,2],` +
		`"j":{"a":[1,"x"]},"un":5,"en":"b","bits":"101"}]` + "\n"
	if jb.String() != wantJSON {
		t.Errorf("JSON objects:\n got %s\nwant %s", jb.String(), wantJSON)
	}
}

func TestVariantColumnIsRefusedClearly(t *testing.T) {
	_, err := newEngine(t, Config{}).Query(context.Background(), `SELECT 1::VARIANT AS v`, &testCatalog{})
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), `column "v" has type VARIANT`) {
		t.Fatalf("got %v", err)
	}
}

func TestCatalogErrors(t *testing.T) {
	e := newEngine(t, Config{})
	for _, c := range []struct {
		rels []Relation
		want string
	}{
		{[]Relation{{Name: "t", Columns: []Column{{"a", "integer"}}}}, `unknown type "integer"`},
		{[]Relation{{Name: "t", Columns: []Column{{"a", "decimal(40,2)"}}}}, "out of range"},
		{[]Relation{{Name: "t", Columns: []Column{{"a", "list<int"}}}}, `expected '>'`},
		{[]Relation{{Name: "t", Columns: []Column{{"a", "int"}, {"A", "int"}}}}, `two columns are named "A"`},
		{[]Relation{{Name: "t", Columns: []Column{{"a", "int"}}}, {Name: "T", Columns: []Column{{"a", "int"}}}}, "two tables"},
		{[]Relation{{Name: "t"}}, `table "t" has no columns`},
		{[]Relation{{Name: "t", Columns: []Column{{"a", "int"}}, Files: []string{"/data/part[1].parquet"}}}, "glob character"},
	} {
		_, err := e.Query(context.Background(), `SELECT 1`, &testCatalog{rels: c.rels})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error with %q", c.rels, err, c.want)
		}
	}
	// A missing Parquet file is DuckDB's IO error, naming it.
	missing := filepath.Join(t.TempDir(), "gone.parquet")
	_, err := e.Query(context.Background(), `SELECT 1`, &testCatalog{rels: []Relation{
		{Name: "t", Columns: []Column{{"a", "int"}}, Files: []string{missing}}}})
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.HasPrefix(err.Error(), `sql: table "t": IO Error`) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: got %v", err)
	}
	// Parameters have no values.
	_, err = e.Query(context.Background(), `SELECT $1 + ?`, nil)
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "parameters") {
		t.Errorf("parameters: got %v", err)
	}
}

// BenchmarkTail measures rows per second fed through twoway_tail: a Tail of
// a long, a string and an int column, summed by DuckDB.
func BenchmarkTail(b *testing.B) {
	const rowsPerQuery = 1 << 20
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("customer-%04d", i)
	}
	cat := &testCatalog{rels: []Relation{{
		Name:    "t",
		Columns: []Column{{"id", "long"}, {"name", "string"}, {"qty", "int"}},
		Tail: func(ctx context.Context, yield func([]any) bool) error {
			row := make([]any, 3)
			for i := range rowsPerQuery {
				row[0], row[1], row[2] = int64(i), names[i%len(names)], int32(i%100)
				if !yield(row) {
					return nil
				}
			}
			return nil
		},
	}}}
	e := newEngine(b, Config{})
	for b.Loop() {
		res, err := e.Query(context.Background(), `SELECT count(*), sum(id), max(name), sum(qty) FROM t`, cat)
		if err != nil {
			b.Fatal(err)
		}
		if res.Rows[0][0] != int64(rowsPerQuery) {
			b.Fatalf("got %v rows", res.Rows[0][0])
		}
	}
	b.ReportMetric(float64(rowsPerQuery)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func TestTailLifecycle(t *testing.T) {
	var calls, running atomic.Int32
	const total = 1_000_000
	cat := &testCatalog{rels: []Relation{{Name: "t", Columns: []Column{{"a", "long"}},
		Tail: func(ctx context.Context, yield func([]any) bool) error {
			calls.Add(1)
			running.Add(1)
			defer running.Add(-1)
			for i := range total {
				if !yield([]any{int64(i)}) {
					return nil
				}
			}
			return nil
		}}}}
	e := newEngine(t, Config{})
	for _, c := range []struct {
		sql   string
		calls int32
		want  [][]any
	}{
		// Preparing (views, the statement, the row-limited statement) calls no Tail.
		{`SELECT count(*) FROM t`, 1, [][]any{{int64(total)}}},
		{`SELECT a FROM t LIMIT 2`, 1, [][]any{{int64(0)}, {int64(1)}}},
		{`SELECT (SELECT count(*) FROM t) + (SELECT max(a) FROM t)`, 2, [][]any{{int64(2*total - 1)}}},
		// A recursive query re-runs its scan of t in every iteration.
		{`WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < (SELECT min(a) + 3 FROM t))
			SELECT count(*) FROM r`, -1, [][]any{{int64(3)}}},
		{`SELECT 1 FROM t WHERE false`, -1, [][]any{}},
	} {
		calls.Store(0)
		res := mustQuery(t, e, cat, c.sql)
		checkRows(t, res, c.want)
		if c.calls >= 0 && calls.Load() != c.calls {
			t.Errorf("%s: Tail called %d times, want %d", c.sql, calls.Load(), c.calls)
		}
		if n := running.Load(); n != 0 {
			t.Errorf("%s: %d Tails still running after Query returned", c.sql, n)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	e := newEngine(t, Config{MemoryLimit: "64MB"})
	// A sort too big for 64MB fails: the query cannot spill to disk.
	_, err := e.Query(context.Background(), `SELECT count(*) FROM (
		SELECT range::VARCHAR || 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' AS s FROM range(3000000) ORDER BY s)`, nil)
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.HasPrefix(qe.Msg, "Out of Memory Error") || !strings.Contains(qe.Msg, "cannot spill") ||
		strings.Contains(qe.Msg, "SET ") {
		t.Fatalf("got %v, want an out of memory error", err)
	}
	res := mustQuery(t, e, nil, `SELECT current_setting('memory_limit') AS m`)
	if s, _ := res.Rows[0][0].(string); !strings.Contains(s, "MiB") && !strings.Contains(s, "MB") {
		t.Errorf("memory_limit is %v", res.Rows[0][0])
	}

	_, err = newEngine(t, Config{MemoryLimit: "lots"}).Query(context.Background(), `SELECT 1`, nil)
	if err == nil || !strings.Contains(err.Error(), `memory limit "lots"`) {
		t.Errorf("bad memory limit: got %v", err)
	}
}

func TestNilCatalog(t *testing.T) {
	e := newEngine(t, Config{})
	res := mustQuery(t, e, nil, `SELECT 1 AS one`)
	checkRows(t, res, [][]any{{int32(1)}})
	if _, err := e.Query(context.Background(), `SELECT * FROM topic('x')`, nil); err == nil ||
		!strings.Contains(err.Error(), `no topic "x"`) {
		t.Errorf("topic without a catalog: got %v", err)
	}
}

// BenchmarkQueryOverhead measures the fixed cost of one query: a database,
// its setup and confinement, for SELECT 1. "ready": a database opened ahead
// is ready when each query starts, as when queries do not come back to back
// or take longer than opening one (some 15 ms); "back-to-back": one query
// after the other, limited by how fast DuckDB opens databases; "no-prewarm":
// each query opens its own.
func BenchmarkQueryOverhead(b *testing.B) {
	run := func(b *testing.B, cfg Config, wait bool) {
		e := newEngine(b, cfg)
		for range b.N {
			if wait {
				b.StopTimer()
				waitReady(b, e)
				b.StartTimer()
			}
			if _, err := e.Query(context.Background(), `SELECT 1`, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("ready", func(b *testing.B) { run(b, Config{}, true) })
	b.Run("back-to-back", func(b *testing.B) { run(b, Config{}, false) })
	b.Run("no-prewarm", func(b *testing.B) { run(b, Config{Prewarm: -1}, false) })
}
