package tables

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/iceberg-go"
)

// A table's columns: the record's system columns, then either the raw value
// or the columns of a declared schema, parsed from JSON values.

// Column is a declared column.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required,omitempty"`
	Doc      string `json:"doc,omitempty"`
}

// Schema is the --schema file: {"columns": [...]}.
type Schema struct {
	Columns []Column `json:"columns"`
}

// System columns, in order, before the value or the declared columns.
var systemColumns = []Column{
	{Name: "_partition", Type: "int", Required: true},
	{Name: "_offset", Type: "long", Required: true},
	{Name: "_timestamp", Type: "timestamp", Required: true},
	{Name: "_key", Type: "binary"},
	{Name: "_headers", Type: "list<struct<key:string,value:binary>>"},
}

// rawValue is the last column of a table without a schema.
var rawValue = Column{Name: "value", Type: "binary"}

// dlqColumns are the columns of a dead-letter table.
var dlqColumns = append(append([]Column{}, systemColumns...),
	Column{Name: "value", Type: "binary"},
	Column{Name: "error", Type: "string", Required: true})

// Type is a parsed column type.
type Type struct {
	// Kind is one of string, long, int, double, boolean, timestamp, date,
	// decimal, binary, list, struct.
	Kind           string
	Precision      int     // decimal
	Scale          int     // decimal
	Elem           *Type   // list
	ElemRequired   bool    // list: never set by the type syntax
	Fields         []Field // struct
	FieldsRequired bool
}

// Field is a struct's field.
type Field struct {
	Name string
	Type *Type
}

func (t *Type) String() string {
	switch t.Kind {
	case "decimal":
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	case "list":
		return "list<" + t.Elem.String() + ">"
	case "struct":
		var b strings.Builder
		b.WriteString("struct<")
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f.Name + ":" + f.Type.String())
		}
		b.WriteByte('>')
		return b.String()
	}
	return t.Kind
}

var primitives = map[string]bool{"string": true, "long": true, "int": true, "double": true,
	"boolean": true, "timestamp": true, "date": true, "binary": true}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseType parses a type string: a primitive, decimal(P,S), list<T> or
// struct<name:T,...>.
func ParseType(s string) (*Type, error) {
	p := &typeParser{s: s}
	t, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("type %q: %v", s, err)
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("type %q: unexpected %q", s, p.s[p.i:])
	}
	return t, nil
}

type typeParser struct {
	s string
	i int
}

func (p *typeParser) space() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *typeParser) word() string {
	p.space()
	j := p.i
	for p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
		p.i++
	}
	return p.s[j:p.i]
}

func (p *typeParser) expect(c byte) error {
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != c {
		return fmt.Errorf("expected %q at position %d", c, p.i)
	}
	p.i++
	return nil
}

func (p *typeParser) parse() (*Type, error) {
	w := strings.ToLower(p.word())
	switch {
	case primitives[w]:
		return &Type{Kind: w}, nil
	case w == "decimal":
		if err := p.expect('('); err != nil {
			return nil, err
		}
		prec, err := strconv.Atoi(p.word())
		if err != nil {
			return nil, errors.New("decimal precision must be a number")
		}
		if err := p.expect(','); err != nil {
			return nil, err
		}
		scale, err := strconv.Atoi(p.word())
		if err != nil {
			return nil, errors.New("decimal scale must be a number")
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		if prec < 1 || prec > 38 || scale < 0 || scale > prec {
			return nil, fmt.Errorf("decimal(%d,%d): precision must be 1 to 38 and scale 0 to the precision", prec, scale)
		}
		return &Type{Kind: "decimal", Precision: prec, Scale: scale}, nil
	case w == "list":
		if err := p.expect('<'); err != nil {
			return nil, err
		}
		e, err := p.parse()
		if err != nil {
			return nil, err
		}
		if err := p.expect('>'); err != nil {
			return nil, err
		}
		return &Type{Kind: "list", Elem: e}, nil
	case w == "struct":
		if err := p.expect('<'); err != nil {
			return nil, err
		}
		t := &Type{Kind: "struct"}
		seen := map[string]bool{}
		for {
			name := p.word()
			if !nameRE.MatchString(name) {
				return nil, fmt.Errorf("bad struct field name %q", name)
			}
			if seen[name] {
				return nil, fmt.Errorf("struct field %q twice", name)
			}
			seen[name] = true
			if err := p.expect(':'); err != nil {
				return nil, err
			}
			ft, err := p.parse()
			if err != nil {
				return nil, err
			}
			t.Fields = append(t.Fields, Field{Name: name, Type: ft})
			p.space()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			break
		}
		if err := p.expect('>'); err != nil {
			return nil, err
		}
		return t, nil
	case w == "":
		return nil, fmt.Errorf("expected a type at position %d", p.i)
	}
	return nil, fmt.Errorf("unknown type %q (types: string, long, int, double, boolean, timestamp, date, decimal(P,S), binary, list<T>, struct<name:T,...>)", w)
}

// ParseSchema reads a --schema file.
func ParseSchema(b []byte) (*Schema, error) {
	var s Schema
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("schema: %v (expected {\"columns\": [{\"name\": \"x\", \"type\": \"long\", \"required\": true}, ...]})", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks column names and types.
func (s *Schema) Validate() error {
	if len(s.Columns) == 0 {
		return errors.New("schema: no columns")
	}
	seen := map[string]bool{}
	for _, c := range s.Columns {
		if !nameRE.MatchString(c.Name) {
			return fmt.Errorf("schema: bad column name %q (letters, digits and _, not starting with a digit)", c.Name)
		}
		if strings.HasPrefix(c.Name, "_") && isSystem(c.Name) {
			return fmt.Errorf("schema: column %q is a system column", c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("schema: column %q twice", c.Name)
		}
		seen[c.Name] = true
		if _, err := ParseType(c.Type); err != nil {
			return fmt.Errorf("schema: column %q: %v", c.Name, err)
		}
	}
	return nil
}

func isSystem(name string) bool {
	for _, c := range systemColumns {
		if c.Name == name {
			return true
		}
	}
	return false
}

// Evolves reports whether next is cur with optional columns added at the
// end: the only change a table takes.
func (s *Schema) Evolves(next *Schema) error {
	if len(next.Columns) < len(s.Columns) {
		return errors.New("schema change: columns cannot be removed")
	}
	for i, c := range s.Columns {
		n := next.Columns[i]
		if n.Name != c.Name {
			return fmt.Errorf("schema change: column %d is %q, was %q (columns cannot be renamed or reordered; add new ones at the end)", i+1, n.Name, c.Name)
		}
		a, _ := ParseType(c.Type)
		b, _ := ParseType(n.Type)
		if a.String() != b.String() || c.Required != n.Required {
			return fmt.Errorf("schema change: column %q changed its type or required flag", c.Name)
		}
	}
	for _, c := range next.Columns[len(s.Columns):] {
		if c.Required {
			return fmt.Errorf("schema change: added column %q must be optional (old records have no value for it)", c.Name)
		}
	}
	return nil
}

// columns lists all columns of a table: system columns, then the declared
// ones or the raw value.
func columns(s *Schema) []Column {
	out := append([]Column{}, systemColumns...)
	if s == nil {
		return append(out, rawValue)
	}
	return append(out, s.Columns...)
}

// ---- Iceberg schema ----

// icebergSchema is the Iceberg schema of cols, with ids assigned in order
// (NewMetadata assigns fresh ids again; the names are what match).
func icebergSchema(cols []Column) (*iceberg.Schema, error) {
	id := 0
	next := func() int { id++; return id }
	var fields []iceberg.NestedField
	for _, c := range cols {
		t, err := ParseType(c.Type)
		if err != nil {
			return nil, err
		}
		fid := next()
		fields = append(fields, iceberg.NestedField{ID: fid, Name: c.Name, Type: toIceberg(t, next), Required: c.Required, Doc: c.Doc})
	}
	return iceberg.NewSchema(0, fields...), nil
}

func toIceberg(t *Type, next func() int) iceberg.Type {
	switch t.Kind {
	case "string":
		return iceberg.PrimitiveTypes.String
	case "long":
		return iceberg.PrimitiveTypes.Int64
	case "int":
		return iceberg.PrimitiveTypes.Int32
	case "double":
		return iceberg.PrimitiveTypes.Float64
	case "boolean":
		return iceberg.PrimitiveTypes.Bool
	case "timestamp":
		return iceberg.PrimitiveTypes.TimestampTz
	case "date":
		return iceberg.PrimitiveTypes.Date
	case "binary":
		return iceberg.PrimitiveTypes.Binary
	case "decimal":
		return iceberg.DecimalTypeOf(t.Precision, t.Scale)
	case "list":
		eid := next()
		return &iceberg.ListType{ElementID: eid, Element: toIceberg(t.Elem, next), ElementRequired: false}
	case "struct":
		st := &iceberg.StructType{}
		for _, f := range t.Fields {
			fid := next()
			st.FieldList = append(st.FieldList, iceberg.NestedField{ID: fid, Name: f.Name, Type: toIceberg(f.Type, next)})
		}
		return st
	}
	panic("unknown type " + t.Kind)
}

// ---- JSON values ----

// Values in Go, the form both the Parquet writer and SQL take: nil; int32;
// int64; float64; bool; string; []byte; time.Time (UTC) for timestamp and
// date; *big.Int (unscaled) for decimal; []any; map[string]any.

// decodeValue converts a JSON value (decoded with UseNumber) to column
// type t. path names the value in errors.
func decodeValue(v any, t *Type, required bool, path string) (any, error) {
	if v == nil {
		if required {
			return nil, fmt.Errorf("%s: required but missing or null", path)
		}
		return nil, nil
	}
	bad := func(want string) error {
		return fmt.Errorf("%s: expected %s, got %s", path, want, jsonKind(v))
	}
	switch t.Kind {
	case "string":
		s, ok := v.(string)
		if !ok {
			return nil, bad("a string")
		}
		return s, nil
	case "long", "int":
		n, ok := v.(json.Number)
		if !ok {
			return nil, bad("an integer")
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s is not a 64-bit integer", path, n)
		}
		if t.Kind == "int" {
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, fmt.Errorf("%s: %d does not fit an int (32 bits)", path, i)
			}
			return int32(i), nil
		}
		return i, nil
	case "double":
		n, ok := v.(json.Number)
		if !ok {
			return nil, bad("a number")
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s is not a double", path, n)
		}
		return f, nil
	case "boolean":
		b, ok := v.(bool)
		if !ok {
			return nil, bad("true or false")
		}
		return b, nil
	case "timestamp":
		switch x := v.(type) {
		case string:
			ts, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not an RFC 3339 timestamp", path, x)
			}
			return ts.UTC().Truncate(time.Microsecond), nil
		case json.Number:
			ms, err := strconv.ParseInt(x.String(), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %s is not epoch milliseconds", path, x)
			}
			return time.UnixMilli(ms).UTC(), nil
		}
		return nil, bad("an RFC 3339 string or epoch milliseconds")
	case "date":
		s, ok := v.(string)
		if !ok {
			return nil, bad("a date string (2006-01-02)")
		}
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a date (2006-01-02)", path, s)
		}
		return d, nil
	case "binary":
		s, ok := v.(string)
		if !ok {
			return nil, bad("a base64 string")
		}
		b, err := base64Decode(s)
		if err != nil {
			return nil, fmt.Errorf("%s: not base64: %v", path, err)
		}
		return b, nil
	case "decimal":
		var s string
		switch x := v.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = x
		default:
			return nil, bad("a decimal number")
		}
		u, err := parseDecimal(s, t.Precision, t.Scale)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return u, nil
	case "list":
		a, ok := v.([]any)
		if !ok {
			return nil, bad("an array")
		}
		out := make([]any, len(a))
		for i, e := range a {
			x, err := decodeValue(e, t.Elem, false, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case "struct":
		o, ok := v.(map[string]any)
		if !ok {
			return nil, bad("an object")
		}
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			x, err := decodeValue(o[f.Name], f.Type, false, path+"."+f.Name)
			if err != nil {
				return nil, err
			}
			out[f.Name] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: unknown type %s", path, t.Kind)
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return strconv.Quote(x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// parseDecimal parses s as a decimal with at most scale fractional digits
// and precision digits in all, returning the unscaled value.
func parseDecimal(s string, precision, scale int) (*big.Int, error) {
	// An exponent far beyond 38 digits either way cannot fit (or would
	// only cost time to find out: big.Rat computes 10^exponent).
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+")); err != nil || e > 100 || e < -100 {
			return nil, fmt.Errorf("%s does not fit decimal(%d,%d)", s, precision, scale)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !r.IsInt() {
		return nil, fmt.Errorf("%s has more than %d decimal places", s, scale)
	}
	u := new(big.Int).Set(r.Num())
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	if new(big.Int).Abs(u).Cmp(limit) >= 0 {
		return nil, fmt.Errorf("%s does not fit decimal(%d,%d)", s, precision, scale)
	}
	return u, nil
}

// rowDecoder turns a record's JSON value into the declared columns.
type rowDecoder struct {
	cols  []Column
	types []*Type
	kinds []colKind
	index map[string]int // column name -> index
}

func newRowDecoder(s *Schema) (*rowDecoder, error) {
	d := &rowDecoder{cols: s.Columns, index: make(map[string]int, len(s.Columns))}
	for i, c := range s.Columns {
		t, err := ParseType(c.Type)
		if err != nil {
			return nil, err
		}
		d.types = append(d.types, t)
		d.kinds = append(d.kinds, kindOf(t))
		d.index[c.Name] = i
	}
	return d, nil
}

// decode appends the declared columns' values of value to row: the
// scanner's (decodeFast) when it takes the value, else decodeStd's.
func (d *rowDecoder) decode(value []byte, row []any) ([]any, error) {
	cells := make([]cell, len(d.cols))
	var scratch []byte
	if !d.decodeFast(value, cells, &scratch) {
		return d.decodeStd(value, row)
	}
	for i := range cells {
		row = append(row, cells[i].value(d.kinds[i]))
	}
	return row, nil
}

// decodeStd is decode with encoding/json: the value decoded into a map,
// then each column converted by decodeValue. It is the reference the
// scanner is tested against, and the decoder of every value the scanner
// does not take (so every error is its).
func (d *rowDecoder) decodeStd(value []byte, row []any) ([]any, error) {
	if !utf8.Valid(value) {
		return nil, errors.New("value is not UTF-8 JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("value is not JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("value has data after its JSON object")
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("value is %s, not a JSON object", jsonKind(v))
	}
	for i, c := range d.cols {
		x, err := decodeValue(o[c.Name], d.types[i], c.Required, c.Name)
		if err != nil {
			return nil, err
		}
		row = append(row, x)
	}
	return row, nil
}
