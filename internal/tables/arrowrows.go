package tables

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/twoway/twoway/internal/records"
)

func base64Decode(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// rowBuilder accumulates rows of Go values (see decodeValue) into an Arrow
// record of a fixed schema.
type rowBuilder struct {
	schema *arrow.Schema
	b      *array.RecordBuilder
	fields []array.Builder // b's, one per field of the schema
	rows   int
	bytes  int64 // a rough size of the values appended

	// The first inBatches rows are out of b: in batches (added, or cut
	// from b), or taken from there already (take); b's rows follow them.
	batches   []arrow.RecordBatch
	inBatches int

	// The system columns' builders, when the schema starts with them as
	// systemColumns declares them (else nil, and addRecord goes through
	// add).
	part   *array.Int32Builder
	offset *array.Int64Builder
	ts     *array.TimestampBuilder
	key    *array.BinaryBuilder
}

func newRowBuilder(schema *arrow.Schema) *rowBuilder {
	rb := &rowBuilder{schema: schema, b: array.NewRecordBuilder(memory.DefaultAllocator, schema)}
	rb.fields = rb.b.Fields()
	if len(rb.fields) > len(systemColumns) {
		part, ok1 := rb.fields[0].(*array.Int32Builder)
		offset, ok2 := rb.fields[1].(*array.Int64Builder)
		ts, ok3 := rb.fields[2].(*array.TimestampBuilder)
		key, ok4 := rb.fields[3].(*array.BinaryBuilder)
		if ok1 && ok2 && ok3 && ok4 {
			rb.part, rb.offset, rb.ts, rb.key = part, offset, ts, key
		}
	}
	return rb
}

// add appends one row; it has a value for every field of the schema.
func (rb *rowBuilder) add(row []any) error {
	if len(row) != len(rb.fields) {
		return fmt.Errorf("row of %d values for %d columns", len(row), len(rb.fields))
	}
	for i, v := range row {
		if err := rb.appendValue(rb.fields[i], v); err != nil {
			return fmt.Errorf("column %s: %v", rb.schema.Field(i).Name, err)
		}
	}
	rb.rows++
	return nil
}

// direct reports whether addSystem and addCells can take rows with n
// declared columns (or the raw value, n = 1).
func (rb *rowBuilder) direct(n int) bool {
	return rb.part != nil && len(rb.fields) == len(systemColumns)+n
}

// addSystem appends a record's system columns, as add appends
// systemRow's values; the row's other columns must follow (addCells, or
// appendValue on each) before the next row. rb.direct must hold.
func (rb *rowBuilder) addSystem(part int32, r *records.Record) error {
	rb.part.Append(part)
	rb.offset.Append(r.Offset)
	rb.ts.Append(arrow.Timestamp(time.UnixMilli(r.Timestamp).UTC().UnixMicro()))
	rb.bytes += 4 + 8 + 8
	if r.Key != nil {
		rb.key.Append(r.Key)
		rb.bytes += int64(len(r.Key)) + 4
	} else {
		rb.key.AppendNull()
	}
	return rb.appendValue(rb.fields[4], headersValue(r.Headers))
}

// headersValue is the _headers column's value of a record's headers.
func headersValue(headers []records.Header) any {
	if len(headers) == 0 {
		return nil
	}
	hs := make([]any, len(headers))
	for i, h := range headers {
		var v any
		if h.Value != nil {
			v = h.Value
		}
		hs[i] = map[string]any{"key": h.Key, "value": v}
	}
	return hs
}

// addCells appends the declared columns of a row (after addSystem) from
// decoded cells of kinds, and counts the row.
func (rb *rowBuilder) addCells(cells []cell, kinds []colKind) error {
	fields := rb.fields[len(systemColumns):]
	for i := range cells {
		c := &cells[i]
		if c.kind == cellNull {
			fields[i].AppendNull()
			continue
		}
		switch b := fields[i].(type) {
		case *array.Int64Builder:
			if c.kind == cellInt {
				b.Append(c.n)
				rb.bytes += 8
				continue
			}
		case *array.Float64Builder:
			if c.kind == cellFloat {
				b.Append(math.Float64frombits(uint64(c.n)))
				rb.bytes += 8
				continue
			}
		case *array.StringBuilder:
			if c.kind == cellBytes {
				b.BinaryBuilder.Append(c.b)
				rb.bytes += int64(len(c.b)) + 4
				continue
			}
		case *array.Int32Builder:
			if c.kind == cellInt {
				b.Append(int32(c.n))
				rb.bytes += 4
				continue
			}
		case *array.BooleanBuilder:
			if c.kind == cellBool {
				b.Append(c.n != 0)
				rb.bytes++
				continue
			}
		case *array.TimestampBuilder:
			if c.kind == cellTime {
				b.Append(arrow.Timestamp(c.t.UnixMicro()))
				rb.bytes += 8
				continue
			}
		case *array.Date32Builder:
			if c.kind == cellTime {
				b.Append(arrow.Date32FromTime(c.t))
				rb.bytes += 4
				continue
			}
		case *array.BinaryBuilder:
			if c.kind == cellBytes {
				b.Append(c.b)
				rb.bytes += int64(len(c.b)) + 4
				continue
			}
		}
		if err := rb.appendValue(fields[i], c.value(kinds[i])); err != nil {
			return fmt.Errorf("column %s: %v", rb.schema.Field(len(systemColumns)+i).Name, err)
		}
	}
	rb.rows++
	return nil
}

// addRaw appends the raw value column of a row (after addSystem) and
// counts the row.
func (rb *rowBuilder) addRaw(value []byte) error {
	var v any
	if value != nil {
		v = value
	}
	if err := rb.appendValue(rb.fields[len(systemColumns)], v); err != nil {
		return fmt.Errorf("column %s: %v", rb.schema.Field(len(systemColumns)).Name, err)
	}
	rb.rows++
	return nil
}

func (rb *rowBuilder) appendValue(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.Int32Builder:
		b.Append(v.(int32))
		rb.bytes += 4
	case *array.Int64Builder:
		b.Append(v.(int64))
		rb.bytes += 8
	case *array.Float64Builder:
		b.Append(v.(float64))
		rb.bytes += 8
	case *array.BooleanBuilder:
		b.Append(v.(bool))
		rb.bytes++
	case *array.StringBuilder:
		s := v.(string)
		b.Append(s)
		rb.bytes += int64(len(s)) + 4
	case *array.LargeStringBuilder:
		s := v.(string)
		b.Append(s)
		rb.bytes += int64(len(s)) + 8
	case *array.BinaryBuilder:
		x := v.([]byte)
		b.Append(x)
		rb.bytes += int64(len(x)) + 4
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(v.(time.Time).UnixMicro()))
		rb.bytes += 8
	case *array.Date32Builder:
		b.Append(arrow.Date32FromTime(v.(time.Time)))
		rb.bytes += 4
	case *array.Decimal128Builder:
		n := v.(*big.Int)
		b.Append(decimal128.FromBigInt(n))
		rb.bytes += 16
	case *array.ListBuilder:
		b.Append(true)
		for _, e := range v.([]any) {
			if err := rb.appendValue(b.ValueBuilder(), e); err != nil {
				return err
			}
		}
	case *array.StructBuilder:
		b.Append(true)
		m := v.(map[string]any)
		st := b.Type().(*arrow.StructType)
		for i := 0; i < b.NumField(); i++ {
			if err := rb.appendValue(b.FieldBuilder(i), m[st.Field(i).Name]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("no builder for %T", b)
	}
	return nil
}

// cut takes the rows built so far, for another builder of the same schema
// to add; the builder starts again.
func (rb *rowBuilder) cut() rowBatch {
	out := rowBatch{recs: rb.take(), rows: rb.rows, bytes: rb.bytes}
	rb.rows, rb.bytes, rb.inBatches = 0, 0, 0
	return out
}

// addBatch adds rows built apart (cut from another builder of the same
// schema), after the rows so far.
func (rb *rowBuilder) addBatch(x rowBatch) {
	if x.rows == 0 {
		return
	}
	rb.flush()
	rb.batches = append(rb.batches, x.recs...)
	rb.rows += x.rows
	rb.bytes += x.bytes
	rb.inBatches = rb.rows
}

// flush moves the rows in the Arrow builder into rb.batches.
func (rb *rowBuilder) flush() {
	if rb.rows > rb.inBatches {
		rb.batches = append(rb.batches, rb.b.NewRecordBatch())
		rb.inBatches = rb.rows
	}
}

// take takes the rows so far that are not taken yet as records, in
// order; the rows stay counted.
func (rb *rowBuilder) take() []arrow.RecordBatch {
	rb.flush()
	out := rb.batches
	rb.batches = nil
	return out
}

// rowBatch is rows built apart, for a rowBuilder to add.
type rowBatch struct {
	recs  []arrow.RecordBatch
	rows  int
	bytes int64
}

func (x rowBatch) release() {
	for _, r := range x.recs {
		r.Release()
	}
}

func (rb *rowBuilder) release() {
	for _, r := range rb.batches {
		r.Release()
	}
	rb.batches = nil
	rb.b.Release()
}
