package sqlengine

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// columnTypes parses the type of every column; a type it cannot parse is nil,
// and its values are then formatted by their Go types.
func (r *Result) columnTypes() []*dbType {
	types := make([]*dbType, len(r.Columns))
	for i, c := range r.Columns {
		types[i] = parseDBTypeOrNil(c.Type)
	}
	return types
}

// value returns row[i], or nil if the row is short.
func value(row []any, i int) any {
	if i < len(row) {
		return row[i]
	}
	return nil
}

// WriteJSON writes r as one JSON object:
//
//	{"columns":[{"name":"id","type":"BIGINT"},...],"rows":[[1,"a"],...]}
//
// with one row per line. Values take these forms, which the other writers
// share:
//
//	integers              JSON numbers
//	HUGEINT, BIGNUM       strings of decimal digits, so that no digit is lost
//	DECIMAL(P,S)          strings of the exact value with S decimals, e.g. "12.50"
//	FLOAT, DOUBLE         numbers in their shortest exact form; "NaN", "Infinity", "-Infinity"
//	timestamps            RFC 3339 in UTC, fractional seconds as needed: "2024-01-02T03:04:05.123456Z"
//	DATE                  "2024-01-02"
//	TIME, TIMETZ          "03:04:05.123456", "03:04:05+01:00"
//	INTERVAL              as DuckDB prints it: "1 year 2 months 3 days 04:05:06"
//	BLOB                  base64, standard alphabet with padding
//	LIST, ARRAY           arrays
//	STRUCT, MAP, JSON     objects (MAP keys in their textual form)
//	NULL                  null
//
// The error is the first error of w.
func (r *Result) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	types := r.columnTypes()
	buf := make([]byte, 0, 1024)
	buf = append(buf, `{"columns":[`...)
	for i, c := range r.Columns {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"name":`...)
		buf = appendJSONString(buf, c.Name)
		buf = append(buf, `,"type":`...)
		buf = appendJSONString(buf, c.Type)
		buf = append(buf, '}')
	}
	buf = append(buf, `],"rows":[`...)
	for n, row := range r.Rows {
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, "\n["...)
		for i := range r.Columns {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSON(buf, types[i], value(row, i))
		}
		buf = append(buf, ']')
		if len(buf) > 64<<10 {
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(r.Rows) > 0 {
		buf = append(buf, '\n')
	}
	buf = append(buf, "]}\n"...)
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteJSONObjects writes r as a JSON array of objects, one per row and line,
// keys in column order, as duckdb -json does:
//
//	[{"id":1,"name":"a"},
//	{"id":2,"name":"b"}]
//
// Values take the forms of WriteJSON. A name that several columns share
// repeats as a key. The error is the first error of w.
func (r *Result) WriteJSONObjects(w io.Writer) error {
	bw := bufio.NewWriter(w)
	types := r.columnTypes()
	buf := make([]byte, 0, 1024)
	buf = append(buf, '[')
	for n, row := range r.Rows {
		if n > 0 {
			buf = append(buf, ",\n"...)
		}
		buf = append(buf, '{')
		for i, c := range r.Columns {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, c.Name)
			buf = append(buf, ':')
			buf = appendJSON(buf, types[i], value(row, i))
		}
		buf = append(buf, '}')
		if len(buf) > 64<<10 {
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, "]\n"...)
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteCSV writes r as RFC 4180 CSV: a header line of the column names, then
// one line per row. Values take the forms of WriteJSON without JSON's
// quotes (lists, structs and maps are JSON text); NULL is an empty field.
// The error is the first error of w.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	types := r.columnTypes()
	record := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		record[i] = c.Name
	}
	if err := cw.Write(record); err != nil {
		return err
	}
	for _, row := range r.Rows {
		for i := range r.Columns {
			record[i] = textValue(types[i], value(row, i))
		}
		if err := cw.Write(record); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTable writes r as a text table for a terminal, like psql:
//
//	 id | name
//	----+------
//	  1 | a
//	(1 row)
//
// Numbers are right-aligned, other values left-aligned. Values take the
// forms of WriteCSV, NULL shows as NULL, and control characters (newlines,
// tabs) show escaped so that every row stays on one line. The error is the
// first error of w.
func (r *Result) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	types := r.columnTypes()
	ncol := len(r.Columns)
	cells := make([][]string, len(r.Rows))
	widths := make([]int, ncol)
	right := make([]bool, ncol)
	for i, c := range r.Columns {
		widths[i] = utf8.RuneCountInString(tableCell(c.Name))
		right[i] = isNumericType(types[i])
	}
	for n, row := range r.Rows {
		cells[n] = make([]string, ncol)
		for i := range r.Columns {
			v := value(row, i)
			s := "NULL"
			if v != nil {
				s = tableCell(textValue(types[i], v))
			}
			cells[n][i] = s
			widths[i] = max(widths[i], utf8.RuneCountInString(s))
		}
	}
	line := func(vals []string, header bool) {
		var b strings.Builder
		for i, s := range vals {
			if i > 0 {
				b.WriteString(" |")
			}
			pad := widths[i] - utf8.RuneCountInString(s)
			b.WriteByte(' ')
			if right[i] && !header {
				b.WriteString(strings.Repeat(" ", pad))
				b.WriteString(s)
			} else {
				b.WriteString(s)
				if i < len(vals)-1 {
					b.WriteString(strings.Repeat(" ", pad))
				}
			}
		}
		b.WriteByte('\n')
		bw.WriteString(strings.TrimRight(b.String(), " \n") + "\n")
	}
	if ncol > 0 {
		header := make([]string, ncol)
		for i, c := range r.Columns {
			header[i] = tableCell(c.Name)
		}
		line(header, true)
		var b strings.Builder
		for i := range r.Columns {
			if i > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.Repeat("-", widths[i]+2))
		}
		b.WriteByte('\n')
		bw.WriteString(b.String())
		for _, row := range cells {
			line(row, false)
		}
	}
	if len(r.Rows) == 1 {
		bw.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(bw, "(%d rows)\n", len(r.Rows))
	}
	return bw.Flush()
}

// tableCell escapes control characters so that s stays on one line.
func tableCell(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isNumericType reports whether values of t are numbers (right-aligned in a
// table).
func isNumericType(t *dbType) bool {
	if t == nil {
		return false
	}
	switch t.name {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
		"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
		"FLOAT", "DOUBLE", "DECIMAL", "BIGNUM":
		return true
	}
	return false
}
