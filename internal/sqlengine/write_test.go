package sqlengine

import (
	"bytes"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// sampleResult is a Result as Query returns it, built by hand so that the
// writers are tested in the nosql build too.
func sampleResult() *Result {
	two100 := new(big.Int).Lsh(big.NewInt(1), 100)
	return &Result{
		Columns: []ResultColumn{
			{"id", "BIGINT"}, {"name", "VARCHAR"}, {"price", "DECIMAL(10,2)"}, {"ratio", "DOUBLE"},
			{"ok", "BOOLEAN"}, {"data", "BLOB"}, {"at", "TIMESTAMPTZ"}, {"day", "DATE"},
			{"tags", "VARCHAR[]"}, {"attrs", `STRUCT("a" INTEGER, "b c" VARCHAR)`}, {"big", "HUGEINT"},
			{"m", "MAP(VARCHAR, INTEGER)"}, {"iv", "INTERVAL"}, {"t", "TIME"},
			{"decs", "DECIMAL(4,3)[]"},
		},
		Rows: [][]any{
			{int64(1), "a\"b,c\nd", big.NewInt(1250), 0.1, true, []byte{0, 1, 2},
				time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
				[]any{"x", nil}, map[string]any{"a": int32(1), "b c": "y"}, two100,
				Map{{"k", int32(1)}, {"j", nil}}, Interval{Days: 1, Micros: 1_500_000},
				time.Date(1, 1, 1, 1, 2, 3, 0, time.UTC), []any{big.NewInt(5), big.NewInt(-1234)}},
			{int64(2), nil, nil, math.NaN(), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
			{int64(-3), "ünï", big.NewInt(-5), math.Inf(1), false, []byte{}, time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
				time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), []any{}, map[string]any{"a": nil, "b c": nil},
				big.NewInt(-1), Map{}, Interval{Months: -14}, time.Date(1, 1, 1, 23, 59, 59, 999999000, time.UTC), []any{nil}},
		},
	}
}

func TestWriteJSON(t *testing.T) {
	var b strings.Builder
	if err := sampleResult().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	want := `{"columns":[{"name":"id","type":"BIGINT"},{"name":"name","type":"VARCHAR"},{"name":"price","type":"DECIMAL(10,2)"},` +
		`{"name":"ratio","type":"DOUBLE"},{"name":"ok","type":"BOOLEAN"},{"name":"data","type":"BLOB"},` +
		`{"name":"at","type":"TIMESTAMPTZ"},{"name":"day","type":"DATE"},{"name":"tags","type":"VARCHAR[]"},` +
		`{"name":"attrs","type":"STRUCT(\"a\" INTEGER, \"b c\" VARCHAR)"},{"name":"big","type":"HUGEINT"},` +
		`{"name":"m","type":"MAP(VARCHAR, INTEGER)"},{"name":"iv","type":"INTERVAL"},{"name":"t","type":"TIME"},` +
		`{"name":"decs","type":"DECIMAL(4,3)[]"}],"rows":[` + "\n" +
		`[1,"a\"b,c\nd","12.50",0.1,true,"AAEC","2024-01-02T03:04:05.123456Z","2024-01-02",["x",null],{"a":1,"b c":"y"},` +
		`"1267650600228229401496703205376",{"k":1,"j":null},"1 day 00:00:01.5","01:02:03",["0.005","-1.234"]],` + "\n" +
		`[2,null,null,"NaN",null,null,null,null,null,null,null,null,null,null,null],` + "\n" +
		`[-3,"ünï","-0.05","Infinity",false,"","1969-12-31T23:59:59Z","1969-12-31",[],{"a":null,"b c":null},"-1",{},` +
		`"-1 year -2 months","23:59:59.999999",[null]]` + "\n" +
		`]}` + "\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	// No rows.
	b.Reset()
	empty := &Result{Columns: []ResultColumn{{"a", "INTEGER"}}}
	if err := empty.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if want := `{"columns":[{"name":"a","type":"INTEGER"}],"rows":[]}` + "\n"; b.String() != want {
		t.Errorf("empty: got %q, want %q", b.String(), want)
	}
}

func TestWriteJSONObjects(t *testing.T) {
	var b strings.Builder
	r := sampleResult()
	r.Columns, r.Rows = r.Columns[:4], [][]any{r.Rows[0][:4], r.Rows[1][:4]}
	if err := r.WriteJSONObjects(&b); err != nil {
		t.Fatal(err)
	}
	want := `[{"id":1,"name":"a\"b,c\nd","price":"12.50","ratio":0.1},` + "\n" +
		`{"id":2,"name":null,"price":null,"ratio":"NaN"}]` + "\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := (&Result{Columns: r.Columns}).WriteJSONObjects(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != "[]\n" {
		t.Errorf("empty: got %q", b.String())
	}
}

func TestWriteCSV(t *testing.T) {
	var b strings.Builder
	if err := sampleResult().WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	want := "id,name,price,ratio,ok,data,at,day,tags,attrs,big,m,iv,t,decs\n" +
		`1,"a""b,c` + "\n" + `d",12.50,0.1,true,AAEC,2024-01-02T03:04:05.123456Z,2024-01-02,"[""x"",null]","{""a"":1,""b c"":""y""}",` +
		`1267650600228229401496703205376,"{""k"":1,""j"":null}",1 day 00:00:01.5,01:02:03,"[""0.005"",""-1.234""]"` + "\n" +
		"2,,,NaN,,,,,,,,,,,\n" +
		`-3,ünï,-0.05,Infinity,false,,1969-12-31T23:59:59Z,1969-12-31,[],"{""a"":null,""b c"":null}",-1,{},-1 year -2 months,23:59:59.999999,[null]` + "\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	r := sampleResult()
	r.Columns = r.Columns[:5]
	for i := range r.Rows {
		r.Rows[i] = r.Rows[i][:5]
	}
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		" id | name     | price | ratio    | ok\n" +
		"----+----------+-------+----------+-------\n" +
		"  1 | a\"b,c\\nd | 12.50 |      0.1 | true\n" +
		"  2 | NULL     |  NULL |      NaN | NULL\n" +
		" -3 | ünï      | -0.05 | Infinity | false\n" +
		"(3 rows)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	r.Rows = r.Rows[:1]
	r.WriteTable(&b)
	if !strings.HasSuffix(b.String(), "\n(1 row)\n") {
		t.Errorf("one row: got\n%s", b.String())
	}
}

func TestWriteArrow(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleResult().WriteArrow(&buf); err != nil {
		t.Fatal(err)
	}
	rdr, err := ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()

	wantTypes := []string{
		"int64", "utf8", "decimal(10, 2)", "float64", "bool", "binary", "timestamp[us, tz=UTC]", "date32",
		"list<item: utf8, nullable>", "struct<a: int32 nullable, b c: utf8 nullable>", "utf8", "map<utf8, int32, items_nullable>",
		"month_day_nano_interval", "time64[us]", "list<item: decimal(4, 3), nullable>",
	}
	for i, f := range rdr.Schema().Fields() {
		if got := f.Type.String(); i >= len(wantTypes) || got != wantTypes[i] {
			t.Errorf("field %d %q: type %s, want %s", i, f.Name, got, wantTypes[i])
		}
	}
	if !rdr.Next() {
		t.Fatalf("no record batch: %v", rdr.Err())
	}
	rec := rdr.RecordBatch()
	if rec.NumRows() != 3 {
		t.Fatalf("got %d rows", rec.NumRows())
	}
	id := rec.Column(0).(*array.Int64)
	name := rec.Column(1).(*array.String)
	price := rec.Column(2).(*array.Decimal128)
	ratio := rec.Column(3).(*array.Float64)
	data := rec.Column(5).(*array.Binary)
	at := rec.Column(6).(*array.Timestamp)
	day := rec.Column(7).(*array.Date32)
	tags := rec.Column(8).(*array.List)
	attrs := rec.Column(9).(*array.Struct)
	bigCol := rec.Column(10).(*array.String)
	m := rec.Column(11).(*array.Map)
	iv := rec.Column(12).(*array.MonthDayNanoInterval)
	tm := rec.Column(13).(*array.Time64)

	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("id", id.Value(2), int64(-3))
	check("name", name.Value(0), "a\"b,c\nd")
	check("name null", name.IsNull(1), true)
	check("price", price.Value(0).BigInt().String(), "1250")
	check("price neg", price.Value(2).BigInt().String(), "-5")
	check("ratio nan", math.IsNaN(ratio.Value(1)), true)
	check("data", string(data.Value(0)), "\x00\x01\x02")
	check("at", at.Value(0), arrow.Timestamp(time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC).UnixMicro()))
	check("day", day.Value(2), arrow.Date32(-1))
	check("day 0", day.Value(0).ToTime().Format(time.DateOnly), "2024-01-02")
	check("tags", tags.ValueStr(0), `["x",null]`)
	check("tags empty", tags.ValueStr(2), `[]`)
	check("tags null", tags.IsNull(1), true)
	check("attrs.a", attrs.Field(0).(*array.Int32).Value(0), int32(1))
	check("attrs.b c", attrs.Field(1).(*array.String).Value(0), "y")
	check("attrs null", attrs.IsNull(1), true)
	check("attrs.a null", attrs.Field(0).IsNull(2), true)
	check("big", bigCol.Value(0), "1267650600228229401496703205376")
	check("map keys", m.Keys().(*array.String).Value(1), "j")
	check("map items", m.Items().(*array.Int32).Value(0), int32(1))
	check("map item null", m.Items().IsNull(1), true)
	check("iv", iv.Value(0), arrow.MonthDayNanoInterval{Days: 1, Nanoseconds: 1_500_000_000})
	check("time", tm.Value(0), arrow.Time64(3723_000_000))
	if rdr.Next() {
		t.Error("more than one record batch")
	}
}

func TestWriteArrowEmptyAndBatches(t *testing.T) {
	r := &Result{Columns: []ResultColumn{{"n", "BIGINT"}, {"odd", "SOMETHING(1, 2)"}}}
	var buf bytes.Buffer
	if err := r.WriteArrow(&buf); err != nil {
		t.Fatal(err)
	}
	rdr, err := ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := rdr.Schema().Field(1).Type.String(); got != "utf8" {
		t.Errorf("unknown type maps to %s, want utf8", got)
	}
	total := 0
	for rdr.Next() {
		total += int(rdr.RecordBatch().NumRows())
	}
	if total != 0 {
		t.Errorf("got %d rows", total)
	}
	rdr.Release()

	for i := range arrowBatchRows + 5 {
		r.Rows = append(r.Rows, []any{int64(i), "x"})
	}
	buf.Reset()
	if err := r.WriteArrow(&buf); err != nil {
		t.Fatal(err)
	}
	rdr, err = ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	var batches []int64
	var last int64
	for rdr.Next() {
		rec := rdr.RecordBatch()
		batches = append(batches, rec.NumRows())
		last = rec.Column(0).(*array.Int64).Value(int(rec.NumRows()) - 1)
	}
	if len(batches) != 2 || batches[0] != arrowBatchRows || batches[1] != 5 || last != arrowBatchRows+4 {
		t.Errorf("batches %v, last value %d", batches, last)
	}

	// A value of the wrong Go type is an error naming the cell.
	r.Rows = [][]any{{"not a number", nil}}
	if err := r.WriteArrow(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `row 1, column "n"`) {
		t.Errorf("bad value: got %v", err)
	}
}

func TestParseDBType(t *testing.T) {
	for in, want := range map[string]string{
		"BIGINT":                                 "BIGINT",
		"DECIMAL(10,2)":                          "DECIMAL(10,2)",
		"VARCHAR[][]":                            "LIST<LIST<VARCHAR>>",
		"INTEGER[3]":                             "ARRAY3<INTEGER>",
		`STRUCT("a ""q""" INTEGER, b VARCHAR[])`: `STRUCT{a "q":INTEGER,b:LIST<VARCHAR>}`,
		"MAP(VARCHAR, STRUCT(\"x\" DOUBLE))":     "MAP<VARCHAR,STRUCT{x:DOUBLE}>",
		"TIMESTAMP WITH TIME ZONE":               "TIMESTAMPTZ",
		"ENUM('a', 'b')[]":                       "LIST<ENUM>",
	} {
		got, err := parseDBType(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if s := got.debug(); s != want {
			t.Errorf("%s: got %s, want %s", in, s, want)
		}
	}
	for _, bad := range []string{"", "DECIMAL(10", `STRUCT("a INTEGER)`, "INTEGER[x]"} {
		if _, err := parseDBType(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// debug renders a dbType compactly for tests.
func (t *dbType) debug() string {
	switch t.name {
	case "DECIMAL":
		return "DECIMAL(" + itoa(t.width) + "," + itoa(t.scale) + ")"
	case "LIST":
		return "LIST<" + t.elem.debug() + ">"
	case "ARRAY":
		return "ARRAY" + itoa(t.size) + "<" + t.elem.debug() + ">"
	case "MAP":
		return "MAP<" + t.key.debug() + "," + t.value.debug() + ">"
	case "STRUCT", "UNION":
		parts := make([]string, len(t.fields))
		for i, f := range t.fields {
			parts[i] = f.name + ":" + f.typ.debug()
		}
		return t.name + "{" + strings.Join(parts, ",") + "}"
	}
	return t.name
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestParseColType(t *testing.T) {
	for in, want := range map[string]string{
		"int":                                   "INTEGER",
		"LONG":                                  "BIGINT",
		"decimal( 38 , 0 )":                     "DECIMAL(38,0)",
		"list<struct<key:string,value:binary>>": `STRUCT("key" VARCHAR, "value" BLOB)[]`,
		"struct<a b : list<date>, c:timestamp>": `STRUCT("a b" DATE[], "c" TIMESTAMPTZ)`,
	} {
		got, err := parseColType(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got.sql() != want {
			t.Errorf("%s: got %s, want %s", in, got.sql(), want)
		}
	}
	for in, want := range map[string]string{
		"":                    "expected a type",
		"varchar":             `unknown type "varchar"`,
		"decimal(0,0)":        "out of range",
		"decimal(5,6)":        "out of range",
		"list<int":            `expected '>'`,
		"struct<>":            "expected a struct field name",
		"struct<a:int,a:int>": `duplicate struct field "a"`,
		"int extra":           "unexpected",
	} {
		_, err := parseColType(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error with %q", in, err, want)
		}
	}
}
