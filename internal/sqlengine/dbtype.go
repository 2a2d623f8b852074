package sqlengine

import (
	"fmt"
	"strconv"
	"strings"
)

// dbType is a parsed DuckDB type name as ResultColumn.Type holds it, e.g.
// "BIGINT", "DECIMAL(10,2)", "VARCHAR[]", "INTEGER[3]",
// `STRUCT("a" INTEGER, "b" VARCHAR)`, "MAP(VARCHAR, BIGINT)" or
// `UNION("n" INTEGER, "s" VARCHAR)`. The writers use it to format values the
// Go type alone does not tell apart (a DATE from a TIMESTAMP, the scale of a
// DECIMAL) and to choose Arrow types.
type dbType struct {
	// name is the upper-case base name: BOOLEAN, INTEGER, ..., DECIMAL,
	// LIST (for T[]), ARRAY (for T[n]), STRUCT, MAP, UNION.
	name   string
	width  int       // DECIMAL
	scale  int       // DECIMAL
	size   int       // ARRAY
	elem   *dbType   // LIST, ARRAY
	fields []dbField // STRUCT, UNION
	key    *dbType   // MAP
	value  *dbType   // MAP
}

type dbField struct {
	name string
	typ  *dbType
}

// parseDBType parses a DuckDB type name. Names it does not know stay opaque
// (only name is set), so the error is for malformed text only.
func parseDBType(s string) (*dbType, error) {
	p := dbTypeParser{s: s}
	t, err := p.parse()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("type %q: unexpected %q", s, p.s[p.pos:])
	}
	return t, nil
}

type dbTypeParser struct {
	s   string
	pos int
}

func (p *dbTypeParser) skipSpace() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *dbTypeParser) peek() byte {
	p.skipSpace()
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *dbTypeParser) expect(c byte) error {
	if p.peek() != c {
		return fmt.Errorf("type %q: expected %q at offset %d", p.s, c, p.pos)
	}
	p.pos++
	return nil
}

// word reads letters, digits, underscores and inner spaces of multi-word
// names such as "TIMESTAMP WITH TIME ZONE".
func (p *dbTypeParser) word() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			p.pos++
			continue
		}
		// A space continues the name if a letter follows (WITH TIME ZONE).
		if c == ' ' && p.pos+1 < len(p.s) && isLetter(p.s[p.pos+1]) {
			p.pos++
			continue
		}
		break
	}
	return strings.TrimSpace(p.s[start:p.pos])
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// name reads a struct field or union member name: quoted ("a ""b""") or bare.
func (p *dbTypeParser) name() (string, error) {
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		var b strings.Builder
		p.pos++
		for p.pos < len(p.s) {
			c := p.s[p.pos]
			p.pos++
			if c == '"' {
				if p.pos < len(p.s) && p.s[p.pos] == '"' {
					b.WriteByte('"')
					p.pos++
					continue
				}
				return b.String(), nil
			}
			b.WriteByte(c)
		}
		return "", fmt.Errorf("type %q: unterminated quoted name", p.s)
	}
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] != ' ' {
		p.pos++
	}
	if start == p.pos {
		return "", fmt.Errorf("type %q: expected a field name at offset %d", p.s, p.pos)
	}
	return p.s[start:p.pos], nil
}

func (p *dbTypeParser) number() (int, error) {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	n, err := strconv.Atoi(p.s[start:p.pos])
	if err != nil {
		return 0, fmt.Errorf("type %q: expected a number at offset %d", p.s, start)
	}
	return n, nil
}

func (p *dbTypeParser) parse() (*dbType, error) {
	w := strings.ToUpper(p.word())
	if w == "" {
		return nil, fmt.Errorf("type %q: expected a type name at offset %d", p.s, p.pos)
	}
	t := &dbType{name: canonicalDBName(w)}
	switch {
	case t.name == "DECIMAL" && p.peek() == '(':
		p.pos++
		var err error
		if t.width, err = p.number(); err != nil {
			return nil, err
		}
		if err = p.expect(','); err != nil {
			return nil, err
		}
		if t.scale, err = p.number(); err != nil {
			return nil, err
		}
		if err = p.expect(')'); err != nil {
			return nil, err
		}
	case (t.name == "STRUCT" || t.name == "UNION") && p.peek() == '(':
		p.pos++
		for {
			n, err := p.name()
			if err != nil {
				return nil, err
			}
			ft, err := p.parse()
			if err != nil {
				return nil, err
			}
			t.fields = append(t.fields, dbField{name: n, typ: ft})
			if p.peek() == ',' {
				p.pos++
				continue
			}
			if err := p.expect(')'); err != nil {
				return nil, err
			}
			break
		}
	case t.name == "MAP" && p.peek() == '(':
		p.pos++
		var err error
		if t.key, err = p.parse(); err != nil {
			return nil, err
		}
		if err = p.expect(','); err != nil {
			return nil, err
		}
		if t.value, err = p.parse(); err != nil {
			return nil, err
		}
		if err = p.expect(')'); err != nil {
			return nil, err
		}
	case p.peek() == '(':
		// Parameters of a type we do not look into, e.g. ENUM('a', 'b').
		depth := 0
		for p.pos < len(p.s) {
			c := p.s[p.pos]
			p.pos++
			if c == '(' {
				depth++
			} else if c == ')' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
	}
	// Suffixes: T[] is a LIST of T, T[n] an ARRAY of n T.
	for p.peek() == '[' {
		p.pos++
		if p.peek() == ']' {
			p.pos++
			t = &dbType{name: "LIST", elem: t}
			continue
		}
		n, err := p.number()
		if err != nil {
			return nil, err
		}
		if err := p.expect(']'); err != nil {
			return nil, err
		}
		t = &dbType{name: "ARRAY", size: n, elem: t}
	}
	return t, nil
}

// canonicalDBName maps DuckDB's aliases of a type to the name duckdb-go
// reports.
func canonicalDBName(w string) string {
	switch w {
	case "INT", "INT4", "SIGNED":
		return "INTEGER"
	case "INT8", "LONG":
		return "BIGINT"
	case "INT2", "SHORT":
		return "SMALLINT"
	case "INT1":
		return "TINYINT"
	case "FLOAT8":
		return "DOUBLE"
	case "FLOAT4", "REAL":
		return "FLOAT"
	case "BOOL", "LOGICAL":
		return "BOOLEAN"
	case "STRING", "TEXT", "CHAR", "BPCHAR":
		return "VARCHAR"
	case "BYTEA", "BINARY", "VARBINARY":
		return "BLOB"
	case "TIMESTAMP WITH TIME ZONE":
		return "TIMESTAMPTZ"
	case "TIME WITH TIME ZONE":
		return "TIMETZ"
	case "DATETIME", "TIMESTAMP_US":
		return "TIMESTAMP"
	case "NUMERIC":
		return "DECIMAL"
	}
	return w
}

// parseDBTypeOrNil is parseDBType for the writers: a name it cannot parse
// gives nil, and the writers then format by the Go type of each value.
func parseDBTypeOrNil(s string) *dbType {
	t, err := parseDBType(s)
	if err != nil {
		return nil
	}
	return t
}
