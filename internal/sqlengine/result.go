package sqlengine

import (
	"fmt"
	"strings"
)

// Result is the outcome of one query: its columns and all its rows.
//
// Rows hold the Go types listed in the package documentation, and for the
// types twoway columns do not have:
//
//	TINYINT, SMALLINT, UTINYINT ... UBIGINT   int8, int16, uint8 ... uint64
//	FLOAT                                     float32
//	HUGEINT, UHUGEINT, BIGNUM                 *big.Int
//	DECIMAL(P,S) of any width                 *big.Int, unscaled, as for decimal
//	TIMESTAMP, TIMESTAMP_S/_MS/_NS            time.Time (UTC)
//	TIME, TIMETZ                              time.Time on 0001-01-01 (TIMETZ keeps its offset)
//	INTERVAL                                  Interval
//	UUID                                      string (xxxxxxxx-xxxx-...)
//	ENUM, BIT                                 string
//	BLOB, GEOMETRY                            []byte
//	LIST, ARRAY                               []any
//	STRUCT                                    map[string]any
//	MAP                                       Map (ordered entries)
//	UNION                                     the value of the member it holds
//	JSON                                      the decoded JSON value (map[string]any, []any, float64, string, bool)
//
// A Result is not tied to a database: it can be kept, and written any number
// of times.
type Result struct {
	Columns []ResultColumn
	Rows    [][]any
}

// ResultColumn is one column of a Result. Type is DuckDB's name for its type
// as duckdb-go reports it, e.g. "BIGINT", "DECIMAL(10,2)", "VARCHAR[]",
// "TIMESTAMPTZ" (TIMESTAMP WITH TIME ZONE) or `STRUCT("a" INTEGER, "b" VARCHAR)`.
type ResultColumn struct {
	Name string
	Type string
}

// Interval is a DuckDB INTERVAL: months, days and microseconds, each signed
// and independent of the others.
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}

// String formats i as DuckDB does, e.g. "1 year 2 months 3 days 04:05:06.5".
func (i Interval) String() string {
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		s := fmt.Sprintf("%d %s", n, unit)
		if n != 1 && n != -1 {
			s += "s"
		}
		parts = append(parts, s)
	}
	plural(int64(i.Months/12), "year")
	plural(int64(i.Months%12), "month")
	plural(int64(i.Days), "day")
	if i.Micros != 0 || len(parts) == 0 {
		m := i.Micros
		sign := ""
		if m < 0 {
			sign = "-"
			m = -m
		}
		h, m := m/3_600_000_000, m%3_600_000_000
		min, m := m/60_000_000, m%60_000_000
		sec, frac := m/1_000_000, m%1_000_000
		s := fmt.Sprintf("%s%02d:%02d:%02d", sign, h, min, sec)
		if frac != 0 {
			s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// Map is a DuckDB MAP value: its entries in order.
type Map []MapEntry

// MapEntry is one key and value of a Map.
type MapEntry struct {
	Key   any
	Value any
}
