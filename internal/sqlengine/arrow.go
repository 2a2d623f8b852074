package sqlengine

import (
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// arrowBatchRows is the most rows of one Arrow record batch WriteArrow
// writes.
const arrowBatchRows = 64 * 1024

// WriteArrow writes r as an Arrow IPC stream: the schema, then the rows in
// record batches of up to 65536 rows (one empty batch if r has no rows).
//
// Column types map to Arrow types as follows:
//
//	BOOLEAN                      bool
//	TINYINT ... BIGINT           int8 ... int64
//	UTINYINT ... UBIGINT         uint8 ... uint64
//	FLOAT, DOUBLE                float32, float64
//	VARCHAR, ENUM, UUID, BIT     utf8
//	BLOB, GEOMETRY               binary
//	TIMESTAMPTZ                  timestamp[us, tz=UTC]
//	TIMESTAMP                    timestamp[us] (_S, _MS, _NS: s, ms, ns)
//	DATE                         date32
//	TIME                         time64[us]
//	INTERVAL                     month_day_nano_interval
//	DECIMAL(P,S)                 decimal128(P, S)
//	T[], T[n]                    list<T>, fixed_size_list<T>[n]
//	STRUCT(...)                  struct<...>
//	MAP(K, V)                    map<K, V>
//
// Any other type (HUGEINT, UHUGEINT, BIGNUM, TIMETZ, JSON, UNION, ...) is
// written as utf8 in its WriteCSV form. Every field is nullable.
// The error is the first error of w, or one saying which value did not fit
// its column's type.
func (r *Result) WriteArrow(w io.Writer) error {
	types := r.columnTypes()
	fields := make([]arrow.Field, len(r.Columns))
	for i, c := range r.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: arrowType(types[i]), Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	mem := memory.NewGoAllocator()
	iw := ipc.NewWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(mem))

	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	flush := func() error {
		rec := rb.NewRecordBatch()
		defer rec.Release()
		return iw.Write(rec)
	}
	for n, row := range r.Rows {
		for i := range r.Columns {
			if err := appendArrow(rb.Field(i), types[i], value(row, i)); err != nil {
				iw.Close()
				return fmt.Errorf("sqlengine: row %d, column %q: %w", n+1, r.Columns[i].Name, err)
			}
		}
		if (n+1)%arrowBatchRows == 0 {
			if err := flush(); err != nil {
				iw.Close()
				return err
			}
		}
	}
	if len(r.Rows) == 0 || len(r.Rows)%arrowBatchRows != 0 {
		if err := flush(); err != nil {
			iw.Close()
			return err
		}
	}
	return iw.Close()
}

// arrowType maps a DuckDB type to the Arrow type WriteArrow writes; nil (an
// unparsed type) and unmapped types give utf8.
func arrowType(t *dbType) arrow.DataType {
	if t == nil {
		return arrow.BinaryTypes.String
	}
	switch t.name {
	case "BOOLEAN":
		return arrow.FixedWidthTypes.Boolean
	case "TINYINT":
		return arrow.PrimitiveTypes.Int8
	case "SMALLINT":
		return arrow.PrimitiveTypes.Int16
	case "INTEGER":
		return arrow.PrimitiveTypes.Int32
	case "BIGINT":
		return arrow.PrimitiveTypes.Int64
	case "UTINYINT":
		return arrow.PrimitiveTypes.Uint8
	case "USMALLINT":
		return arrow.PrimitiveTypes.Uint16
	case "UINTEGER":
		return arrow.PrimitiveTypes.Uint32
	case "UBIGINT":
		return arrow.PrimitiveTypes.Uint64
	case "FLOAT":
		return arrow.PrimitiveTypes.Float32
	case "DOUBLE":
		return arrow.PrimitiveTypes.Float64
	case "BLOB", "GEOMETRY":
		return arrow.BinaryTypes.Binary
	case "TIMESTAMPTZ":
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case "TIMESTAMP":
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	case "TIMESTAMP_S":
		return &arrow.TimestampType{Unit: arrow.Second}
	case "TIMESTAMP_MS":
		return &arrow.TimestampType{Unit: arrow.Millisecond}
	case "TIMESTAMP_NS":
		return &arrow.TimestampType{Unit: arrow.Nanosecond}
	case "DATE":
		return arrow.FixedWidthTypes.Date32
	case "TIME":
		return arrow.FixedWidthTypes.Time64us
	case "INTERVAL":
		return arrow.FixedWidthTypes.MonthDayNanoInterval
	case "DECIMAL":
		if t.width >= 1 && t.width <= 38 {
			return &arrow.Decimal128Type{Precision: int32(t.width), Scale: int32(t.scale)}
		}
	case "LIST":
		return arrow.ListOf(arrowType(t.elem))
	case "ARRAY":
		return arrow.FixedSizeListOf(int32(t.size), arrowType(t.elem))
	case "STRUCT":
		fs := make([]arrow.Field, len(t.fields))
		for i, f := range t.fields {
			fs[i] = arrow.Field{Name: f.name, Type: arrowType(f.typ), Nullable: true}
		}
		return arrow.StructOf(fs...)
	case "MAP":
		return arrow.MapOf(arrowType(t.key), arrowType(t.value))
	}
	return arrow.BinaryTypes.String
}

// appendArrow appends v to b, whose type arrowType(t) made.
func appendArrow(b array.Builder, t *dbType, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	mismatch := func() error {
		return fmt.Errorf("cannot write a %T as Arrow %s", v, b.Type())
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.Append(textValue(t, v))
	case *array.BooleanBuilder:
		x, ok := v.(bool)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Int8Builder:
		x, ok := v.(int8)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Int16Builder:
		x, ok := v.(int16)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Int32Builder:
		x, ok := v.(int32)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Int64Builder:
		x, ok := v.(int64)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Uint8Builder:
		x, ok := v.(uint8)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Uint16Builder:
		x, ok := v.(uint16)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Uint32Builder:
		x, ok := v.(uint32)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Uint64Builder:
		x, ok := v.(uint64)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Float32Builder:
		x, ok := v.(float32)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.Float64Builder:
		x, ok := v.(float64)
		if !ok {
			return mismatch()
		}
		b.Append(x)
	case *array.BinaryBuilder:
		switch x := v.(type) {
		case []byte:
			b.Append(x)
		case string:
			b.AppendString(x)
		default:
			return mismatch()
		}
	case *array.TimestampBuilder:
		x, ok := v.(time.Time)
		if !ok {
			return mismatch()
		}
		var ts int64
		switch b.Type().(*arrow.TimestampType).Unit {
		case arrow.Second:
			ts = x.Unix()
		case arrow.Millisecond:
			ts = x.UnixMilli()
		case arrow.Nanosecond:
			ts = x.UnixNano()
		default:
			ts = x.UnixMicro()
		}
		b.Append(arrow.Timestamp(ts))
	case *array.Date32Builder:
		x, ok := v.(time.Time)
		if !ok {
			return mismatch()
		}
		b.Append(arrow.Date32(floorDiv(x.Unix(), 86400)))
	case *array.Time64Builder:
		x, ok := v.(time.Time)
		if !ok {
			return mismatch()
		}
		micros := int64(x.Hour())*3_600_000_000 + int64(x.Minute())*60_000_000 +
			int64(x.Second())*1_000_000 + int64(x.Nanosecond()/1000)
		b.Append(arrow.Time64(micros))
	case *array.MonthDayNanoIntervalBuilder:
		x, ok := v.(Interval)
		if !ok {
			return mismatch()
		}
		b.Append(arrow.MonthDayNanoInterval{Months: x.Months, Days: x.Days, Nanoseconds: x.Micros * 1000})
	case *array.Decimal128Builder:
		x, ok := v.(*big.Int)
		if !ok {
			return mismatch()
		}
		if x.BitLen() > 127 {
			return fmt.Errorf("decimal %s does not fit decimal128", x)
		}
		b.Append(decimal128.FromBigInt(x))
	case *array.ListBuilder:
		x, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		b.Append(true)
		for _, e := range x {
			if err := appendArrow(b.ValueBuilder(), t.elemType(), e); err != nil {
				return err
			}
		}
	case *array.FixedSizeListBuilder:
		x, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		if n := int(b.Type().(*arrow.FixedSizeListType).Len()); len(x) != n {
			return fmt.Errorf("array of %d values where the type has %d", len(x), n)
		}
		b.Append(true)
		for _, e := range x {
			if err := appendArrow(b.ValueBuilder(), t.elemType(), e); err != nil {
				return err
			}
		}
	case *array.StructBuilder:
		x, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		b.Append(true)
		for i, f := range t.fields {
			if err := appendArrow(b.FieldBuilder(i), f.typ, x[f.name]); err != nil {
				return err
			}
		}
	case *array.MapBuilder:
		x, ok := v.(Map)
		if !ok {
			return mismatch()
		}
		b.Append(true)
		for _, e := range x {
			if err := appendArrow(b.KeyBuilder(), t.key, e.Key); err != nil {
				return err
			}
			if err := appendArrow(b.ItemBuilder(), t.value, e.Value); err != nil {
				return err
			}
		}
	default:
		return mismatch()
	}
	return nil
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
