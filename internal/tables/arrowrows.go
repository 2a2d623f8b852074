package tables

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
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
	rows   int
	bytes  int64 // a rough size of the values appended
}

func newRowBuilder(schema *arrow.Schema) *rowBuilder {
	return &rowBuilder{schema: schema, b: array.NewRecordBuilder(memory.DefaultAllocator, schema)}
}

// add appends one row; it has a value for every field of the schema.
func (rb *rowBuilder) add(row []any) error {
	if len(row) != len(rb.schema.Fields()) {
		return fmt.Errorf("row of %d values for %d columns", len(row), len(rb.schema.Fields()))
	}
	for i, v := range row {
		if err := rb.appendValue(rb.b.Field(i), v); err != nil {
			return fmt.Errorf("column %s: %v", rb.schema.Field(i).Name, err)
		}
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

// record takes the rows so far as a record; the builder starts again.
func (rb *rowBuilder) record() arrow.RecordBatch {
	r := rb.b.NewRecordBatch()
	rb.rows, rb.bytes = 0, 0
	return r
}

func (rb *rowBuilder) release() { rb.b.Release() }
