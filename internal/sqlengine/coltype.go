package sqlengine

import (
	"fmt"
	"strconv"
	"strings"
)

// colKind is the kind of a twoway column type.
type colKind int

const (
	kindInt colKind = iota
	kindLong
	kindDouble
	kindBoolean
	kindString
	kindBinary
	kindTimestamp
	kindDate
	kindDecimal
	kindList
	kindStruct
)

// colType is a parsed twoway type string (see Column).
type colType struct {
	kind      colKind
	precision int        // decimal
	scale     int        // decimal
	elem      *colType   // list
	fields    []colField // struct, in order
}

// colField is one field of a struct type.
type colField struct {
	name string
	typ  *colType
}

// maxDecimalPrecision is the widest DECIMAL DuckDB has.
const maxDecimalPrecision = 38

// parseColType parses a twoway type string such as "long" or
// "list<struct<key:string,value:binary>>". Spaces around names and types are
// allowed. The error says what is wrong and where.
func parseColType(s string) (*colType, error) {
	p := typeParser{s: s}
	t, err := p.parse()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("type %q: unexpected %q at offset %d", s, p.s[p.pos:], p.pos)
	}
	return t, nil
}

type typeParser struct {
	s   string
	pos int
}

func (p *typeParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

// word reads a type name: letters, digits and underscores.
func (p *typeParser) word() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

// expect consumes c (after spaces) or fails.
func (p *typeParser) expect(c byte) error {
	p.skipSpace()
	if p.pos >= len(p.s) || p.s[p.pos] != c {
		return p.errorf("expected %q", c)
	}
	p.pos++
	return nil
}

func (p *typeParser) errorf(format string, args ...any) error {
	at := "at the end"
	if p.pos < len(p.s) {
		at = fmt.Sprintf("at offset %d (%q)", p.pos, p.s[p.pos:])
	}
	return fmt.Errorf("type %q: %s %s", p.s, fmt.Sprintf(format, args...), at)
}

func (p *typeParser) parse() (*colType, error) {
	start := p.pos
	name := strings.ToLower(p.word())
	switch name {
	case "int":
		return &colType{kind: kindInt}, nil
	case "long":
		return &colType{kind: kindLong}, nil
	case "double":
		return &colType{kind: kindDouble}, nil
	case "boolean":
		return &colType{kind: kindBoolean}, nil
	case "string":
		return &colType{kind: kindString}, nil
	case "binary":
		return &colType{kind: kindBinary}, nil
	case "timestamp":
		return &colType{kind: kindTimestamp}, nil
	case "date":
		return &colType{kind: kindDate}, nil
	case "decimal":
		return p.parseDecimal()
	case "list":
		if err := p.expect('<'); err != nil {
			return nil, err
		}
		elem, err := p.parse()
		if err != nil {
			return nil, err
		}
		if err := p.expect('>'); err != nil {
			return nil, err
		}
		return &colType{kind: kindList, elem: elem}, nil
	case "struct":
		return p.parseStruct()
	case "":
		return nil, p.errorf("expected a type")
	default:
		p.pos = start
		return nil, p.errorf("unknown type %q (want int, long, double, boolean, string, binary, timestamp, date, decimal(P,S), list<T> or struct<name:T,...>)", name)
	}
}

func (p *typeParser) parseDecimal() (*colType, error) {
	if err := p.expect('('); err != nil {
		return nil, err
	}
	prec, err := strconv.Atoi(p.word())
	if err != nil {
		return nil, p.errorf("expected the precision of decimal")
	}
	if err := p.expect(','); err != nil {
		return nil, err
	}
	scale, err := strconv.Atoi(p.word())
	if err != nil {
		return nil, p.errorf("expected the scale of decimal")
	}
	if err := p.expect(')'); err != nil {
		return nil, err
	}
	if prec < 1 || prec > maxDecimalPrecision || scale < 0 || scale > prec {
		return nil, fmt.Errorf("type %q: decimal(%d,%d) is out of range: want 1 <= precision <= %d and 0 <= scale <= precision",
			p.s, prec, scale, maxDecimalPrecision)
	}
	return &colType{kind: kindDecimal, precision: prec, scale: scale}, nil
}

func (p *typeParser) parseStruct() (*colType, error) {
	if err := p.expect('<'); err != nil {
		return nil, err
	}
	t := &colType{kind: kindStruct}
	seen := map[string]bool{}
	for {
		p.skipSpace()
		start := p.pos
		for p.pos < len(p.s) && !strings.ContainsRune(":,<>", rune(p.s[p.pos])) {
			p.pos++
		}
		name := strings.TrimSpace(p.s[start:p.pos])
		if name == "" {
			p.pos = start
			return nil, p.errorf("expected a struct field name")
		}
		key := strings.ToLower(name)
		if seen[key] {
			p.pos = start
			return nil, p.errorf("duplicate struct field %q", name)
		}
		seen[key] = true
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		ft, err := p.parse()
		if err != nil {
			return nil, err
		}
		t.fields = append(t.fields, colField{name: name, typ: ft})
		p.skipSpace()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			continue
		}
		if err := p.expect('>'); err != nil {
			return nil, err
		}
		return t, nil
	}
}

// sql returns the DuckDB type of t as SQL, e.g. "DECIMAL(10,2)" or
// `STRUCT("key" VARCHAR, "value" BLOB)[]`.
func (t *colType) sql() string {
	switch t.kind {
	case kindInt:
		return "INTEGER"
	case kindLong:
		return "BIGINT"
	case kindDouble:
		return "DOUBLE"
	case kindBoolean:
		return "BOOLEAN"
	case kindString:
		return "VARCHAR"
	case kindBinary:
		return "BLOB"
	case kindTimestamp:
		return "TIMESTAMPTZ"
	case kindDate:
		return "DATE"
	case kindDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.precision, t.scale)
	case kindList:
		return t.elem.sql() + "[]"
	case kindStruct:
		var b strings.Builder
		b.WriteString("STRUCT(")
		for i, f := range t.fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteIdent(f.name))
			b.WriteByte(' ')
			b.WriteString(f.typ.sql())
		}
		b.WriteByte(')')
		return b.String()
	}
	panic("sqlengine: unknown column kind")
}

// String returns t as a twoway type string.
func (t *colType) String() string {
	switch t.kind {
	case kindInt:
		return "int"
	case kindLong:
		return "long"
	case kindDouble:
		return "double"
	case kindBoolean:
		return "boolean"
	case kindString:
		return "string"
	case kindBinary:
		return "binary"
	case kindTimestamp:
		return "timestamp"
	case kindDate:
		return "date"
	case kindDecimal:
		return fmt.Sprintf("decimal(%d,%d)", t.precision, t.scale)
	case kindList:
		return "list<" + t.elem.String() + ">"
	case kindStruct:
		parts := make([]string, len(t.fields))
		for i, f := range t.fields {
			parts[i] = f.name + ":" + f.typ.String()
		}
		return "struct<" + strings.Join(parts, ",") + ">"
	}
	return "?"
}

// quoteIdent quotes name as a DuckDB identifier: "name", with " doubled.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteString quotes s as a DuckDB string literal: 's', with ' doubled.
// DuckDB's standard strings have no backslash escapes.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
