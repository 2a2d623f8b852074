package tables

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"github.com/twoway/twoway/internal/records"
)

// The scanner (decodeFast) against the encoding/json decoder it replaces
// (decodeStd): whatever the scanner takes, decodeStd takes too, with the
// same values; whatever it does not take goes to decodeStd, so decode's
// decisions and errors are decodeStd's.

var fastTestSchemas = []*Schema{
	{Columns: []Column{
		{Name: "id", Type: "long", Required: true},
		{Name: "amount", Type: "double"},
		{Name: "item", Type: "string"},
	}},
	{Columns: []Column{
		{Name: "s", Type: "string"},
		{Name: "l", Type: "long"},
		{Name: "i", Type: "int"},
		{Name: "d", Type: "double"},
		{Name: "b", Type: "boolean"},
		{Name: "ts", Type: "timestamp"},
		{Name: "dt", Type: "date"},
		{Name: "dec", Type: "decimal(10,2)"},
		{Name: "bin", Type: "binary"},
		{Name: "lst", Type: "list<long>"},
		{Name: "st", Type: "struct<a:string,b:list<int>>"},
		{Name: "req", Type: "string", Required: true},
	}},
}

// fastCorpus: values for either schema.
var fastCorpus = []string{
	// The benchmark's records and their neighbours.
	`{"id": 1, "amount": 0.25, "item": "item-1"}`,
	`{"id":1,"amount":0.25,"item":"item-1"}`,
	`{"item":"x","amount":1,"id":2}`,
	`{"id": 9223372036854775807}`,
	`{"id": -9223372036854775808}`,
	`{"id": 9223372036854775808}`,
	`{"id": -9223372036854775809}`,
	`{"id": 99999999999999999999}`,
	`{"id": 1.0}`,
	`{"id": 1e3}`,
	`{"id": -0}`,
	`{"id": 01}`,
	`{"id": 1, "amount": 1e308}`,
	`{"id": 1, "amount": 1e309}`,
	`{"id": 1, "amount": -1e400}`,
	`{"id": 1, "amount": 1e-400}`,
	`{"id": 1, "amount": -0.0}`,
	`{"id": 1, "amount": 0.1e+2}`,
	`{"id": 1, "amount": 1.}`,
	`{"id": 1, "amount": .5}`,
	`{"id": 1, "amount": 1e}`,
	`{"id": 1, "amount": +1}`,
	`{"id": 1, "amount": "x"}`,
	`{"id": 1, "amount": null}`,
	`{"id": null}`,
	`{"amount": 1}`,
	`{"id": "1"}`,
	`{"id": true}`,
	`{"id": [1]}`,
	`{"id": {"a": 1}}`,
	`{"id": 1, "item": 5}`,
	`{"id": 1, "item": null}`,
	// Duplicate keys: the last wins.
	`{"id": 1, "id": 2}`,
	`{"id": "x", "id": 2}`,
	`{"id": 2, "id": "x"}`,
	`{"id": 2, "id": null}`,
	`{"item": "a", "id": 1, "item": "b"}`,
	// Escapes and unicode, in values and keys.
	`{"id": 1, "item": "a\"b\\c\/d\be\ff\ng\rh\ti"}`,
	`{"id": 1, "item": "\u0041\u00e9\u4e2d\ud83d\ude00"}`,
	`{"id": 1, "item": "\ud83d"}`,
	`{"id": 1, "item": "\ud83dx"}`,
	`{"id": 1, "item": "\ud83d\u0041"}`,
	`{"id": 1, "item": "\ude00\ud83d"}`,
	`{"id": 1, "item": "\ud83d\ud83d\ude00"}`,
	`{"id": 1, "item": "\u00"}`,
	`{"id": 1, "item": "\uzzzz"}`,
	`{"id": 1, "item": "\x"}`,
	`{"id": 1, "item": "\u0000"}`,
	`{"id": 1, "item": "tab	inside"}`,
	`{"id": 1, "item": "line` + "\n" + `break"}`,
	`{"id": 1, "item": "é中😀"}`,
	`{"id": 1, "item": "` + "\u2028\u2029" + `"}`,
	`{"\u0069d": 7}`,
	`{"id": 1, "\u0069d": 2}`,
	`{"id": 1, "item": "a", "it\u0065m": "b"}`,
	`{"i\u0064": 7, "item": "k"}`,
	`{"id\u0000": 7, "id": 8}`,
	`{"ID": 7, "id": 8}`,
	`{"id": 1, "\ud800": 2}`,
	`{"id": 1, "item": "` + strings.Repeat("long ", 100) + `"}`,
	// Whitespace and trailing data.
	" \t\r\n{ \"id\" : 1 , \"item\" : \"x\" } \n\t ",
	`{"id": 1}x`,
	`{"id": 1} {"id": 2}`,
	`{"id": 1}]`,
	`{"id": 1} }`,
	`{"id": 1}}garbage`,
	`{"id": 1},`,
	`{"id": 1} 2`,
	"{\"id\": 1}\x00",
	"{\"id\":\v1}",
	"{\"id\":\f1}",
	"\ufeff{\"id\": 1}",
	// Broken objects.
	``,
	` `,
	`{`,
	`}`,
	`{"id"`,
	`{"id":`,
	`{"id": 1`,
	`{"id": 1,}`,
	`{,"id": 1}`,
	`{"id" 1}`,
	`{id: 1}`,
	`{'id': 1}`,
	`{"id": 1 "item": "x"}`,
	`{"id": tru}`,
	`{"id": 1, "x": tru}`,
	`{"id": 1, "x": nul}`,
	`{"id": 1, "x": [1, 2,]}`,
	`{"id": 1, "x": [1 2]}`,
	`{"id": 1, "x": {"a" 1}}`,
	`{"id": 1, "x": {"a": 1,}}`,
	`{"id": 1, "x": "unterminated}`,
	"{\"id\": 1, \"x\": \"\xff\"}",
	"{\"id\": 1, \"item\": \"\xc3\x28\"}",
	// Non-object values.
	`null`,
	`true`,
	`1`,
	`"str"`,
	`[1, 2]`,
	`[{"id": 1}]`,
	`{}`,
	`{} `,
	// Unknown keys of every shape, skipped.
	`{"id": 1, "x": {"a": [1, {"b": null}, "c\"", -1.5e-3, true, false]}, "y": [], "z": {}}`,
	`{"id": 1, "x": [[[[[[[[[[]]]]]]]]]]}`,
	`{"id": 1, "x": ` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	`{"id": 1, "x": ` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`{"id": 1, "x": ` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat("}", 100) + `}`,
	`{"id": 1, "x": ` + strings.Repeat("[", 5) + strings.Repeat("]", 4) + `}`,
	// Every type.
	`{"req": "r", "s": "x", "l": 5, "i": -5, "d": 2.5, "b": true, "ts": "2024-01-02T03:04:05.123456789Z", "dt": "2024-02-29", "dec": 12.34, "bin": "aGVsbG8=", "lst": [1, null, 3], "st": {"a": "q", "b": [1, 2]}}`,
	`{"req": "r", "b": false, "ts": 1700000000123, "dec": "-0.5", "bin": "aGVsbG8", "lst": [], "st": {}}`,
	`{"req": "r", "ts": "2024-01-02T03:04:05+02:00"}`,
	`{"req": "r", "ts": "2024-01-02T03:04:05.999999999-07:30"}`,
	`{"req": "r", "ts": "2024-01-02 03:04:05Z"}`,
	`{"req": "r", "ts": "2024-01-02T03:04:05\u005a"}`,
	`{"req": "r", "ts": 1.5}`,
	`{"req": "r", "ts": -1}`,
	`{"req": "r", "ts": 9223372036854775807}`,
	`{"req": "r", "ts": 9223372036854775808}`,
	`{"req": "r", "ts": true}`,
	`{"req": "r", "dt": "2024-02-30"}`,
	`{"req": "r", "dt": "2024-1-2"}`,
	`{"req": "r", "dt": 20240102}`,
	`{"req": "r", "dec": 12.345}`,
	`{"req": "r", "dec": 123456789.01}`,
	`{"req": "r", "dec": 12345678.01}`,
	`{"req": "r", "dec": -99999999.99}`,
	`{"req": "r", "dec": 1e2}`,
	`{"req": "r", "dec": "1e2"}`,
	`{"req": "r", "dec": "1/3"}`,
	`{"req": "r", "dec": " 1"}`,
	`{"req": "r", "dec": "abc"}`,
	`{"req": "r", "dec": true}`,
	`{"req": "r", "bin": "!!!"}`,
	`{"req": "r", "bin": ""}`,
	`{"req": "r", "bin": "aGVsbG8\u003d"}`,
	`{"req": "r", "bin": 5}`,
	`{"req": "r", "i": 2147483647}`,
	`{"req": "r", "i": 2147483648}`,
	`{"req": "r", "i": -2147483648}`,
	`{"req": "r", "i": -2147483649}`,
	`{"req": "r", "i": 1e1}`,
	`{"req": "r", "l": -0}`,
	`{"req": "r", "b": "true"}`,
	`{"req": "r", "b": 1}`,
	`{"req": "r", "b": tRue}`,
	`{"req": "r", "s": 1}`,
	`{"req": "r", "s": ["a"]}`,
	`{"req": "r", "lst": [1, "x"]}`,
	`{"req": "r", "lst": [1.5]}`,
	`{"req": "r", "lst": {"a": 1}}`,
	`{"req": "r", "lst": null}`,
	`{"req": "r", "lst": [1, 2,]}`,
	`{"req": "r", "lst": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	`{"req": "r", "st": {"a": 1}}`,
	`{"req": "r", "st": {"a": "x", "a": "y", "c": [1]}}`,
	`{"req": "r", "st": {"b": [2147483648]}}`,
	`{"req": "r", "st": []}`,
	`{"req": "r", "st": null}`,
	`{"req": "r", "st": {"a": "\ud800"}}`,
	`{"req": null}`,
	`{"s": "x"}`,
	`{"req": ""}`,
	`{"req": "r", "req": 1}`,
}

func fastTestDecoders(t testing.TB) []*rowDecoder {
	var ds []*rowDecoder
	for _, s := range fastTestSchemas {
		d, err := newRowDecoder(s)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

// checkDecode compares the scanner with decodeStd on value.
func checkDecode(t testing.TB, d *rowDecoder, value []byte) (fast bool) {
	t.Helper()
	cells := make([]cell, len(d.cols))
	var scratch []byte
	fast = d.decodeFast(value, cells, &scratch)
	want, werr := d.decodeStd(value, nil)
	got, gerr := d.decode(value, nil)
	if fast && werr != nil {
		t.Fatalf("%q: the scanner takes it, encoding/json says %v", value, werr)
	}
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("%q: decode says %v, decodeStd %v", value, gerr, werr)
	}
	if werr != nil {
		return fast
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d values, want %d", value, len(got), len(want))
	}
	for i := range want {
		if msg := sameValue(got[i], want[i]); msg != "" {
			t.Fatalf("%q: column %s: %s", value, d.cols[i].Name, msg)
		}
	}
	return fast
}

// sameValue compares decoded values exactly ("" when they are the same).
func sameValue(a, b any) string {
	diff := func() string { return fmt.Sprintf("got %#v, want %#v", a, b) }
	switch y := b.(type) {
	case nil:
		if a != nil {
			return diff()
		}
	case float64:
		x, ok := a.(float64)
		if !ok || math.Float64bits(x) != math.Float64bits(y) {
			return diff()
		}
	case time.Time:
		x, ok := a.(time.Time)
		if !ok || !x.Equal(y) || x.Location() != y.Location() || x.UnixMicro() != y.UnixMicro() {
			return diff()
		}
	case *big.Int:
		x, ok := a.(*big.Int)
		if !ok || x.Cmp(y) != 0 {
			return diff()
		}
	case []byte:
		x, ok := a.([]byte)
		if !ok || !bytes.Equal(x, y) || (x == nil) != (y == nil) {
			return diff()
		}
	case []any:
		x, ok := a.([]any)
		if !ok || len(x) != len(y) {
			return diff()
		}
		for i := range y {
			if m := sameValue(x[i], y[i]); m != "" {
				return fmt.Sprintf("[%d]: %s", i, m)
			}
		}
	case map[string]any:
		x, ok := a.(map[string]any)
		if !ok || len(x) != len(y) {
			return diff()
		}
		for k, v := range y {
			w, ok := x[k]
			if !ok {
				return diff()
			}
			if m := sameValue(w, v); m != "" {
				return k + ": " + m
			}
		}
	default:
		if a != b {
			return diff()
		}
	}
	return ""
}

func TestDecodeFastMatchesStd(t *testing.T) {
	fastN := 0
	for _, d := range fastTestDecoders(t) {
		for _, v := range fastCorpus {
			if checkDecode(t, d, []byte(v)) {
				fastN++
			}
		}
	}
	if fastN < 40 {
		t.Errorf("the scanner took only %d of the corpus's values", fastN)
	}
}

// The scanner takes the ordinary values itself (it is not just falling
// back), and leaves the odd ones to decodeStd.
func TestDecodeFastTakes(t *testing.T) {
	ds := fastTestDecoders(t)
	for _, c := range []struct {
		d    int
		v    string
		fast bool
	}{
		{0, `{"id": 1, "amount": 0.25, "item": "item-1"}`, true},
		{0, `{"item":"x","amount":1,"id":2,"other":{"a":[1,2,{"b":"\u00e9"}]}}`, true},
		{0, `{"id": 1, "item": "a\"b\u00e9\ud83d\ude00\ud800"}`, true},
		{0, `{"id": 1, "id": 2}`, true},
		{0, `{"id": "x", "id": 2}`, false}, // taken by decodeStd: the last wins
		{0, ` {"id": 1} `, true},
		{0, `{"id": 1}]`, false}, // decodeStd takes it too: see TestDecodeStdQuirks
		{0, `{"amount": 1}`, false},
		{0, `{"id": 1.5}`, false},
		{0, `{"id": 1, "x": ` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, false},
		{1, fastCorpus[slicesIndex(fastCorpus, `{"req": "r", "s": "x", "l": 5`)], true},
		{1, `{"req": "r", "b": false, "ts": 1700000000123, "dec": "-0.5", "bin": "aGVsbG8", "lst": [], "st": {}}`, true},
	} {
		if got := checkDecode(t, ds[c.d], []byte(c.v)); got != c.fast {
			t.Errorf("%q: taken by the scanner %v, want %v", c.v, got, c.fast)
		}
	}
}

func slicesIndex(vs []string, prefix string) int {
	for i, v := range vs {
		if strings.HasPrefix(v, prefix) {
			return i
		}
	}
	panic(prefix)
}

// decodeStd's decisions on odd input stand (the scanner leaves them to
// it): encoding/json's Decoder stops after the first value and More
// reports no more data before a closing bracket or brace.
func TestDecodeStdQuirks(t *testing.T) {
	d := fastTestDecoders(t)[0]
	for v, want := range map[string]string{
		`{"id": 1}]`:               "",
		`{"id": 1}}garbage`:        "",
		`{"id": 1}x`:               "value has data after its JSON object",
		`{"id": 1} 2`:              "value has data after its JSON object",
		`[1]`:                      "value is an array, not a JSON object",
		`"x"`:                      `value is "x", not a JSON object`,
		`{"id": "x"}`:              `id: expected an integer, got "x"`,
		`{"id": 1, "amount": "x"}`: `amount: expected a number, got "x"`,
		`{"id": 1.5}`:              "id: 1.5 is not a 64-bit integer",
		`{"amount": 1}`:            "id: required but missing or null",
		"{\"id\": \"\xff\"}":       "value is not UTF-8 JSON",
		`{"id": 1`:                 "value is not JSON: unexpected EOF",
	} {
		_, err := d.decode([]byte(v), nil)
		if got := fmt.Sprint(err); want == "" && err != nil || want != "" && got != want {
			t.Errorf("%q: %v, want %q", v, err, want)
		}
	}
}

// FuzzDecodeRow runs both decoders over the value as it comes, and as the
// value of each column (in an object with the required columns), to
// reach every type's parsing.
func FuzzDecodeRow(f *testing.F) {
	for _, v := range fastCorpus {
		f.Add([]byte(v))
	}
	for _, v := range []string{`1`, `-0.5e3`, `1e99999999`, `{"amount": 1e99999999}`, `"x\u00e9"`, `[1,null]`, `{"a":"b"}`, `true`, `null`, `"2024-01-02T03:04:05Z"`, `"2024-01-02"`, `"aGk="`, `12.34`} {
		f.Add([]byte(v))
	}
	ds := fastTestDecoders(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		for _, d := range ds {
			checkDecode(t, d, value)
			for _, c := range d.cols {
				var b bytes.Buffer
				b.WriteByte('{')
				for _, r := range d.cols {
					if r.Required && r.Name != c.Name {
						fmt.Fprintf(&b, "%q: %s, ", r.Name, map[bool]string{true: `"r"`, false: "1"}[r.Type == "string"])
					}
				}
				fmt.Fprintf(&b, "%q: ", c.Name)
				b.Write(value)
				b.WriteByte('}')
				checkDecode(t, d, b.Bytes())
			}
		}
	})
}

func BenchmarkDecodeRow(b *testing.B) {
	d := fastTestDecoders(b)[0]
	value := []byte(`{"id": 123456, "amount": 1234.25, "item": "item-123456"}`)
	b.Run("fast", func(b *testing.B) {
		cells := make([]cell, len(d.cols))
		var scratch []byte
		b.ReportAllocs()
		for b.Loop() {
			scratch = scratch[:0]
			if !d.decodeFast(value, cells, &scratch) {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("std", func(b *testing.B) {
		row := make([]any, 0, 8)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.decodeStd(value, row[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The rows the materializer builds from cells (addSystem, addCells) are
// the rows add builds from decodeStd's values, and count the same bytes.
func TestAddCellsMatchesAdd(t *testing.T) {
	recs := []records.Record{
		{Offset: 7, Timestamp: 1700000000123},
		{Offset: 8, Timestamp: -5, Key: []byte("k")},
		{Offset: 9, Timestamp: 0, Key: []byte{}, Headers: []records.Header{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
	}
	for si, s := range fastTestSchemas {
		d, err := newRowDecoder(s)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := icebergSchema(columns(s))
		if err != nil {
			t.Fatal(err)
		}
		asc, err := table.SchemaToArrowSchema(sc, nil, true, false)
		if err != nil {
			t.Fatal(err)
		}
		direct, ref := newRowBuilder(asc), newRowBuilder(asc)
		defer direct.release()
		defer ref.release()
		if !direct.direct(len(s.Columns)) {
			t.Fatalf("schema %d: no direct appends", si)
		}
		var fr fastRow
		n := 0
		for _, v := range fastCorpus {
			for i := range recs {
				r := recs[i]
				r.Value = []byte(v)
				cells := fr.reset(len(d.cols))
				if !d.decodeFast(r.Value, cells, &fr.buf) {
					continue
				}
				if err := direct.addSystem(int32(i), &r); err != nil {
					t.Fatal(err)
				}
				if err := direct.addCells(cells, d.kinds); err != nil {
					t.Fatal(err)
				}
				row, err := d.decodeStd(r.Value, sysRow(int32(i), &r, len(ref.fields)))
				if err != nil {
					t.Fatal(err)
				}
				if err := ref.add(row); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
		if n == 0 || direct.rows != n || ref.rows != n || direct.bytes != ref.bytes {
			t.Fatalf("schema %d: rows %d and %d of %d, bytes %d, want %d", si, direct.rows, ref.rows, n, direct.bytes, ref.bytes)
		}
		a, b := oneRecord(t, direct), oneRecord(t, ref)
		if !array.RecordEqual(a, b) {
			t.Errorf("schema %d: records differ:\n%v\n%v", si, a, b)
		}
		a.Release()
		b.Release()
	}
	// A raw value, and a null one.
	sc, _ := icebergSchema(columns(nil))
	asc, err := table.SchemaToArrowSchema(sc, nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	direct, ref := newRowBuilder(asc), newRowBuilder(asc)
	defer direct.release()
	defer ref.release()
	for i, v := range [][]byte{[]byte("raw"), nil, {}} {
		r := recs[i]
		r.Value = v
		if err := direct.addSystem(int32(i), &r); err != nil {
			t.Fatal(err)
		}
		if err := direct.addRaw(r.Value); err != nil {
			t.Fatal(err)
		}
		if err := ref.add(append(sysRow(int32(i), &r, 6), rawOrNil(r.Value))); err != nil {
			t.Fatal(err)
		}
	}
	a, b := oneRecord(t, direct), oneRecord(t, ref)
	defer a.Release()
	defer b.Release()
	if !array.RecordEqual(a, b) || direct.bytes != ref.bytes {
		t.Errorf("raw values: records differ:\n%v\n%v", a, b)
	}
}

// oneRecord takes the rows of rb, appended directly, as one record.
func oneRecord(t *testing.T, rb *rowBuilder) arrow.RecordBatch {
	t.Helper()
	recs := rb.take()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	return recs[0]
}

// exactFloat is strconv.ParseFloat where it answers.
func TestExactFloat(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	taken := 0
	for range 200000 {
		var b strings.Builder
		if rnd.IntN(2) == 0 {
			b.WriteByte('-')
		}
		n := 1 + rnd.IntN(17)
		if rnd.IntN(4) == 0 {
			b.WriteByte('0')
		} else {
			b.WriteByte(byte('1' + rnd.IntN(9)))
			for range rnd.IntN(n) {
				b.WriteByte(byte('0' + rnd.IntN(10)))
			}
		}
		if rnd.IntN(3) > 0 {
			b.WriteByte('.')
			for range 1 + rnd.IntN(n) {
				b.WriteByte(byte('0' + rnd.IntN(10)))
			}
		}
		if rnd.IntN(8) == 0 {
			fmt.Fprintf(&b, "e%d", rnd.IntN(40)-20)
		}
		lit := b.String()
		want, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		got, ok := exactFloat([]byte(lit))
		if !ok {
			continue
		}
		taken++
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: %v, want %v", lit, got, want)
		}
	}
	if taken < 50000 {
		t.Errorf("exactFloat took %d", taken)
	}
}

// BenchmarkAddRecord is the read-ahead's work per record after the fetch:
// the value decoded and the row appended, in chunks of 16,384 rows.
func BenchmarkAddRecord(b *testing.B) {
	d := fastTestDecoders(b)[0]
	sc, err := icebergSchema(columns(fastTestSchemas[0]))
	if err != nil {
		b.Fatal(err)
	}
	asc, err := table.SchemaToArrowSchema(sc, nil, true, false)
	if err != nil {
		b.Fatal(err)
	}
	main, dlq := newRowBuilder(asc), newRowBuilder(asc)
	defer main.release()
	defer dlq.release()
	const chunk = 16384
	recs := make([]records.Record, chunk)
	for i := range recs {
		recs[i] = records.Record{Offset: int64(i), Timestamp: 1700000000000 + int64(i),
			Value: fmt.Appendf(nil, `{"id": %d, "amount": %g, "item": "item-%d"}`, i, float64(i%10000)/4, i)}
	}
	var fr fastRow
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := addRecord(1, &recs[n%chunk], d, &fr, main, dlq); err != nil {
			b.Fatal(err)
		}
		if n++; n%chunk == 0 {
			main.cut().release()
		}
	}
}
