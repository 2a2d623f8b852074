package tables

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A record's JSON value decoded straight into the declared columns: one
// pass over the top-level object, keys matched to columns, each value
// parsed for its column's type, with no map and no reflection.
//
// The scanner only ever says yes when it is sure: it accepts a value only
// if it is valid JSON (RFC 8259, as encoding/json reads it) whose columns
// all convert, and it then yields exactly what rowDecoder.decodeStd (the
// encoding/json decoder, kept as the reference) yields. For anything else
// (a syntax error, a value of the wrong type, a number out of range, a
// required column missing, a value nested deeper than fastMaxDepth, bytes
// after the object) it says no and the caller runs decodeStd, whose value
// or error stands: errors are decodeStd's, word for word, and so is every
// decision on odd input. Lists and structs are cut out of the value by the
// scanner and decoded by encoding/json (UseNumber) and decodeValue.

// Kinds of a cell.
const (
	cellNull  uint8 = iota
	cellInt         // n: long, or int (in its range)
	cellFloat       // n: the float64's bits
	cellBool        // n: 0 or 1
	cellBytes       // b: a string's UTF-8 bytes, or binary's decoded bytes
	cellTime        // t: timestamp or date
	cellAny         // x: decimal (*big.Int), list ([]any), struct (map[string]any)
)

// cell is one decoded column value, unboxed; only the field its kind
// names is meaningful (the others may hold an earlier value). A string's
// bytes may point into the record's value or the decoder's scratch
// buffer: a cell is good until the next decode with the same scratch
// buffer, and as long as the value.
type cell struct {
	kind uint8
	n    int64
	b    []byte
	t    time.Time
	x    any
}

// value is the cell as decodeValue returns it for a column of kind k.
func (c *cell) value(k colKind) any {
	switch c.kind {
	case cellInt:
		if k == kindInt {
			return int32(c.n)
		}
		return c.n
	case cellFloat:
		return math.Float64frombits(uint64(c.n))
	case cellBool:
		return c.n != 0
	case cellBytes:
		if k == kindString {
			return string(c.b)
		}
		return c.b
	case cellTime:
		return c.t
	case cellAny:
		return c.x
	}
	return nil
}

// colKind is a column type's kind, as a small number.
type colKind uint8

const (
	kindString colKind = iota
	kindLong
	kindInt
	kindDouble
	kindBool
	kindTimestamp
	kindDate
	kindDecimal
	kindBinary
	kindNested // list, struct
)

func kindOf(t *Type) colKind {
	switch t.Kind {
	case "string":
		return kindString
	case "long":
		return kindLong
	case "int":
		return kindInt
	case "double":
		return kindDouble
	case "boolean":
		return kindBool
	case "timestamp":
		return kindTimestamp
	case "date":
		return kindDate
	case "decimal":
		return kindDecimal
	case "binary":
		return kindBinary
	}
	return kindNested
}

// fastMaxDepth bounds the nesting the scanner follows (the top-level
// object is 1); deeper values go to encoding/json, whose limit is 10000.
const fastMaxDepth = 64

// column returns the index of the column named key, or -1; next is the
// column after the last one matched, tried first (values usually list
// their keys in the schema's order).
func (d *rowDecoder) column(key []byte, next int) int {
	if next < len(d.cols) && string(key) == d.cols[next].Name {
		return next
	}
	if i, ok := d.index[string(key)]; ok {
		return i
	}
	return -1
}

// decodeFast decodes value into cells, one per declared column, and
// reports whether it did; on false, the caller runs decodeStd. Strings
// with escapes are unescaped into *scratch, which it appends to.
//
// decodeStd refuses a value that is not UTF-8; here, outside strings a
// byte that is not ASCII is a syntax error, and str checks the strings.
func (d *rowDecoder) decodeFast(value []byte, cells []cell, scratch *[]byte) bool {
	for i := range cells {
		cells[i].kind = cellNull // the other fields are read by kind
	}
	p := scanner{s: value, buf: *scratch}
	ok := d.object(&p, cells)
	*scratch = p.buf
	return ok
}

// object decodes the top-level object at p into cells.
func (d *rowDecoder) object(p *scanner, cells []cell) bool {
	p.ws()
	if !p.byte('{') {
		return false
	}
	p.ws()
	next := 0
	if !p.byte('}') {
		for {
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return false
			}
			key, ok := p.str(true)
			if !ok {
				return false
			}
			p.ws()
			if !p.byte(':') {
				return false
			}
			p.ws()
			col := d.column(key, next)
			if col < 0 {
				if !p.skip(1) {
					return false
				}
			} else {
				if !d.value(p, col, &cells[col]) {
					return false
				}
				next = col + 1
			}
			p.ws()
			if p.byte(',') {
				p.ws()
				continue
			}
			if p.byte('}') {
				break
			}
			return false
		}
	}
	p.ws()
	if p.i != len(p.s) {
		return false
	}
	for i := range cells {
		if cells[i].kind == cellNull && d.cols[i].Required {
			return false
		}
	}
	return true
}

// value decodes the value at p into c, for column col.
func (d *rowDecoder) value(p *scanner, col int, c *cell) bool {
	if p.i >= len(p.s) {
		return false
	}
	if p.s[p.i] == 'n' {
		c.kind = cellNull
		return p.lit("null")
	}
	k := d.kinds[col]
	switch k {
	case kindString:
		if p.s[p.i] != '"' {
			return false
		}
		b, ok := p.str(true)
		if !ok {
			return false
		}
		c.kind, c.b = cellBytes, b
		return true
	case kindLong, kindInt:
		n, ok := p.integer()
		if !ok || k == kindInt && (n < math.MinInt32 || n > math.MaxInt32) {
			return false
		}
		c.kind, c.n = cellInt, n
		return true
	case kindDouble:
		lit, _, ok := p.number()
		if !ok {
			return false
		}
		f, ok := exactFloat(lit)
		if !ok {
			var err error
			if f, err = strconv.ParseFloat(string(lit), 64); err != nil {
				return false
			}
		}
		c.kind, c.n = cellFloat, int64(math.Float64bits(f))
		return true
	case kindBool:
		switch p.s[p.i] {
		case 't':
			c.kind, c.n = cellBool, 1
			return p.lit("true")
		case 'f':
			c.kind, c.n = cellBool, 0
			return p.lit("false")
		}
		return false
	case kindTimestamp:
		if p.s[p.i] == '"' {
			b, ok := p.str(true)
			if !ok {
				return false
			}
			ts, err := time.Parse(time.RFC3339Nano, string(b))
			if err != nil {
				return false
			}
			c.kind, c.t = cellTime, ts.UTC().Truncate(time.Microsecond)
			return true
		}
		ms, ok := p.integer()
		if !ok {
			return false
		}
		c.kind, c.t = cellTime, time.UnixMilli(ms).UTC()
		return true
	case kindDate:
		if p.s[p.i] != '"' {
			return false
		}
		b, ok := p.str(true)
		if !ok {
			return false
		}
		t, err := time.Parse("2006-01-02", string(b))
		if err != nil {
			return false
		}
		c.kind, c.t = cellTime, t
		return true
	case kindBinary:
		if p.s[p.i] != '"' {
			return false
		}
		b, ok := p.str(true)
		if !ok {
			return false
		}
		x, err := base64Decode(string(b))
		if err != nil {
			return false
		}
		c.kind, c.b = cellBytes, x
		return true
	case kindDecimal:
		var s []byte
		if p.s[p.i] == '"' {
			b, ok := p.str(true)
			if !ok {
				return false
			}
			s = b
		} else {
			lit, _, ok := p.number()
			if !ok {
				return false
			}
			s = lit
		}
		u, err := parseDecimal(string(s), d.types[col].Precision, d.types[col].Scale)
		if err != nil {
			return false
		}
		c.kind, c.x = cellAny, u
		return true
	}
	// A list or a struct: cut it out, then as decodeStd.
	start := p.i
	if !p.skip(1) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(p.s[start:p.i]))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	x, err := decodeValue(v, d.types[col], d.cols[col].Required, d.cols[col].Name)
	if err != nil {
		return false
	}
	c.kind, c.x = cellAny, x
	if x == nil {
		c.kind = cellNull
	}
	return true
}

// scanner walks a JSON text.
type scanner struct {
	s   []byte
	i   int
	buf []byte // unescaped strings
}

func (p *scanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (p *scanner) byte(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// lit consumes the literal w (true, false, null).
func (p *scanner) lit(w string) bool {
	if len(p.s)-p.i >= len(w) && string(p.s[p.i:p.i+len(w)]) == w {
		p.i += len(w)
		return true
	}
	return false
}

// str consumes the string at p.i (its opening quote) and returns its
// value, unescaped as encoding/json unescapes (an unpaired surrogate
// escape is U+FFFD) when want is set. A string that is not UTF-8 is
// refused.
func (p *scanner) str(want bool) ([]byte, bool) {
	s := p.s
	i := p.i + 1
	start := i
	var high byte
	for i < len(s) {
		c := s[i]
		if c == '"' {
			if high >= utf8.RuneSelf && !utf8.Valid(s[start:i]) {
				return nil, false
			}
			p.i = i + 1
			return s[start:i:i], true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, false
		}
		high |= c
		i++
	}
	if i >= len(s) {
		return nil, false
	}
	if high >= utf8.RuneSelf && !utf8.Valid(s[start:i]) {
		return nil, false
	}
	// Escapes.
	mark := len(p.buf)
	if want {
		p.buf = append(p.buf, s[start:i]...)
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.i = i + 1
			if !want {
				return nil, true
			}
			return p.buf[mark:len(p.buf):len(p.buf)], true
		case c < 0x20:
			return nil, false
		case c != '\\':
			// Copy up to the next quote or backslash.
			j := i + 1
			for j < len(s) && s[j] != '"' && s[j] != '\\' && s[j] >= 0x20 {
				j++
			}
			if !utf8.Valid(s[i:j]) {
				return nil, false
			}
			if want {
				p.buf = append(p.buf, s[i:j]...)
			}
			i = j
			continue
		}
		if i+1 >= len(s) {
			return nil, false
		}
		var out byte
		switch s[i+1] {
		case '"', '\\', '/':
			out = s[i+1]
		case 'b':
			out = '\b'
		case 'f':
			out = '\f'
		case 'n':
			out = '\n'
		case 'r':
			out = '\r'
		case 't':
			out = '\t'
		case 'u':
			r := hex4(s[i:])
			if r < 0 {
				return nil, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2 := hex4(s[i:]); r2 >= 0 {
					if dr := utf16.DecodeRune(r, r2); dr != unicode.ReplacementChar {
						i += 6
						if want {
							p.buf = utf8.AppendRune(p.buf, dr)
						}
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			if want {
				p.buf = utf8.AppendRune(p.buf, r)
			}
			continue
		default:
			return nil, false
		}
		if want {
			p.buf = append(p.buf, out)
		}
		i += 2
	}
	return nil, false
}

// hex4 reads \uXXXX at the start of s, or returns -1 (encoding/json's
// getu4).
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number consumes a JSON number and returns its text, and whether it is
// an integer (no fraction, no exponent).
func (p *scanner) number() (lit []byte, integer, ok bool) {
	s := p.s
	i := p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return nil, false, false
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return nil, false, false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		integer = false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return nil, false, false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		integer = false
	}
	lit = s[p.i:i]
	p.i = i
	return lit, integer, true
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat converts a JSON number's text the way strconv.ParseFloat does
// when the result is exact: digits that fit 53 bits, scaled by a power of
// ten a float64 holds exactly (one correctly rounded operation, as
// strconv's own fast path). Otherwise it returns false.
func exactFloat(lit []byte) (float64, bool) {
	i := 0
	neg := lit[0] == '-'
	if neg {
		i++
	}
	var mant uint64
	digits, exp := 0, 0
	for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
		mant = mant*10 + uint64(lit[i]-'0')
		digits++
	}
	if i < len(lit) && lit[i] == '.' {
		for i++; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
			mant = mant*10 + uint64(lit[i]-'0')
			digits++
			exp--
		}
	}
	if i != len(lit) || digits > 15 || mant>>53 != 0 || exp < -22 {
		return 0, false // an exponent, or too many digits
	}
	f := float64(mant) / pow10[-exp]
	if neg {
		f = -f
	}
	return f, true
}

// integer consumes a JSON number that is a 64-bit integer (as
// strconv.ParseInt reads its text).
func (p *scanner) integer() (int64, bool) {
	lit, integer, ok := p.number()
	if !ok || !integer {
		return 0, false
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	if len(lit) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range lit {
		u = u*10 + uint64(c-'0')
	}
	// 19 digits fit a uint64; the int64 range is checked here.
	switch {
	case !neg && u > math.MaxInt64:
		return 0, false
	case neg && u > 1<<63:
		return 0, false
	case neg:
		return -int64(u), true
	}
	return int64(u), true
}

// skip consumes one JSON value, checking it; depth is that of the value
// holding it.
func (p *scanner) skip(depth int) bool {
	if p.i >= len(p.s) {
		return false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		_, ok := p.str(false)
		return ok
	case c == '-' || c >= '0' && c <= '9':
		_, _, ok := p.number()
		return ok
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	case c == '{':
		if depth+1 > fastMaxDepth {
			return false
		}
		p.i++
		p.ws()
		if p.byte('}') {
			return true
		}
		for {
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return false
			}
			if _, ok := p.str(false); !ok {
				return false
			}
			p.ws()
			if !p.byte(':') {
				return false
			}
			p.ws()
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			if p.byte(',') {
				p.ws()
				continue
			}
			return p.byte('}')
		}
	case c == '[':
		if depth+1 > fastMaxDepth {
			return false
		}
		p.i++
		p.ws()
		if p.byte(']') {
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			if p.byte(',') {
				p.ws()
				continue
			}
			return p.byte(']')
		}
	}
	return false
}
