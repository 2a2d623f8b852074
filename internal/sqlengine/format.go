package sqlengine

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The writers share the textual forms of values that WriteJSON documents.

// Time layouts of the textual forms.
const (
	layoutDate   = "2006-01-02"
	layoutTime   = "15:04:05.999999"
	layoutTimeTZ = "15:04:05.999999Z07:00"
)

// formatDecimal formats unscaled × 10^-scale with exactly scale decimals.
func formatDecimal(unscaled *big.Int, scale int) string {
	s := unscaled.String()
	if scale <= 0 {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	if neg {
		s = "-" + s
	}
	return s
}

// formatFloat formats f as its shortest exact decimal form, the way
// encoding/json does, and NaN and the infinities as words.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, bits)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		n := len(s)
		if n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return s
}

// formatTime formats t by the DuckDB type it came from.
func formatTime(t *dbType, v time.Time) string {
	name := ""
	if t != nil {
		name = t.name
	}
	switch name {
	case "DATE":
		return v.Format(layoutDate)
	case "TIME":
		return v.Format(layoutTime)
	case "TIMETZ":
		return v.Format(layoutTimeTZ)
	}
	return v.UTC().Format(time.RFC3339Nano)
}

// scalarText formats a value that is not a list, struct or map; ok is false
// for those (and for nil).
func scalarText(t *dbType, v any) (s string, ok bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case int:
		return strconv.FormatInt(int64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case float32:
		return formatFloat(float64(v), 32), true
	case float64:
		return formatFloat(v, 64), true
	case *big.Int:
		if v == nil {
			return "", false
		}
		if t != nil && t.name == "DECIMAL" {
			return formatDecimal(v, t.scale), true
		}
		return v.String(), true
	case []byte:
		return base64.StdEncoding.EncodeToString(v), true
	case time.Time:
		return formatTime(t, v), true
	case Interval:
		return v.String(), true
	case fmt.Stringer:
		return v.String(), true
	}
	return "", false
}

// isJSONNumber reports whether v is written as a bare JSON number.
func isJSONNumber(v any) bool {
	switch v := v.(type) {
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return true
	case float32:
		return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
	case float64:
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	return false
}

// textValue formats v for CSV and tables: scalars by their textual form,
// lists, structs and maps as JSON. nil gives "".
func textValue(t *dbType, v any) string {
	if v == nil {
		return ""
	}
	if s, ok := scalarText(t, v); ok {
		return s
	}
	return string(appendJSON(nil, t, v))
}

// elemType returns the element type of a LIST or ARRAY type, or nil.
func (t *dbType) elemType() *dbType {
	if t == nil {
		return nil
	}
	return t.elem
}

// fieldType returns the type of the named STRUCT field, or nil.
func (t *dbType) fieldType(name string) *dbType {
	if t == nil {
		return nil
	}
	for _, f := range t.fields {
		if f.name == name {
			return f.typ
		}
	}
	return nil
}

// appendJSON appends v as JSON to buf, in the textual forms above.
func appendJSON(buf []byte, t *dbType, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		return strconv.AppendBool(buf, v)
	case []any:
		buf = append(buf, '[')
		et := t.elemType()
		for i, e := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSON(buf, et, e)
		}
		return append(buf, ']')
	case map[string]any:
		return appendJSONObject(buf, t, v)
	case Map:
		var kt, vt *dbType
		if t != nil {
			kt, vt = t.key, t.value
		}
		buf = append(buf, '{')
		for i, e := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, textValue(kt, e.Key))
			buf = append(buf, ':')
			buf = appendJSON(buf, vt, e.Value)
		}
		return append(buf, '}')
	}
	if isJSONNumber(v) {
		s, _ := scalarText(t, v)
		return append(buf, s...)
	}
	if s, ok := scalarText(t, v); ok {
		return appendJSONString(buf, s)
	}
	return appendJSONString(buf, fmt.Sprint(v))
}

// appendJSONObject appends a struct (or decoded JSON object) with its keys
// in the order of the STRUCT type, or sorted when the type does not say.
func appendJSONObject(buf []byte, t *dbType, m map[string]any) []byte {
	buf = append(buf, '{')
	n := 0
	write := func(k string, v any, ft *dbType) {
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = appendJSON(buf, ft, v)
	}
	if t != nil && t.name == "STRUCT" && len(t.fields) == len(m) {
		complete := true
		for _, f := range t.fields {
			if _, ok := m[f.name]; !ok {
				complete = false
				break
			}
		}
		if complete {
			for _, f := range t.fields {
				write(f.name, m[f.name], f.typ)
			}
			return append(buf, '}')
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		write(k, m[k], t.fieldType(k))
	}
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// <, > and & stay as they are.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript that embeds JSON.
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
