package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// This file holds the JSON shapes of the API, shared by the server and the
// client. Keys, values and header values are bytes; on the wire they are a
// JSON string when they are valid UTF-8 and standard base64 (with padding)
// in a "_b64" field otherwise. A null key or value is written as an absent
// field.

// Topic is a topic as the API shows it.
type Topic struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	// RetentionMs: records older than this are removed; -1 means forever.
	RetentionMs int64 `json:"retention_ms"`
	// RetentionBytes bounds each partition; -1 means unlimited.
	RetentionBytes int64 `json:"retention_bytes"`
	// Configs are the other Kafka topic configs the topic sets
	// (docs/KAFKA.md), such as cleanup.policy or max.message.bytes; those
	// not listed have their defaults.
	Configs   map[string]string `json:"configs,omitempty"`
	CreatedMs int64             `json:"created_ms"`
	// PartitionInfo is filled by describe, not by list.
	PartitionInfo []Partition `json:"partition_info,omitempty"`
}

// Partition is one partition's offsets: records StartOffset to EndOffset-1
// are readable; EndOffset is the offset the next record will get.
type Partition struct {
	Partition   int32 `json:"partition"`
	StartOffset int64 `json:"start_offset"`
	EndOffset   int64 `json:"end_offset"`
	Bytes       int64 `json:"bytes"`
}

func topicFrom(ti stream.TopicInfo) Topic {
	t := Topic{
		Name:           ti.Name,
		Partitions:     ti.Partitions,
		RetentionMs:    ti.RetentionMs,
		RetentionBytes: ti.RetentionBytes,
		Configs:        ti.Configs,
		CreatedMs:      ti.CreatedMs,
	}
	for _, p := range ti.PartitionsInfo {
		t.PartitionInfo = append(t.PartitionInfo, Partition{Partition: p.Partition, StartOffset: p.Start, EndOffset: p.End, Bytes: p.Bytes})
	}
	return t
}

// createTopicRequest is the body of POST /v1/topics; alterTopicRequest of
// PATCH /v1/topics/{topic}. Retention is either a duration ("7d",
// "forever") or retention_ms.
type createTopicRequest struct {
	Name           string  `json:"name"`
	Partitions     *int32  `json:"partitions,omitempty"`
	Retention      *string `json:"retention,omitempty"`
	RetentionMs    *int64  `json:"retention_ms,omitempty"`
	RetentionBytes *int64  `json:"retention_bytes,omitempty"`
	// Configs: Kafka topic configs by name (docs/KAFKA.md).
	Configs map[string]string `json:"configs,omitempty"`
}

type alterTopicRequest struct {
	Retention      *string `json:"retention,omitempty"`
	RetentionMs    *int64  `json:"retention_ms,omitempty"`
	RetentionBytes *int64  `json:"retention_bytes,omitempty"`
	// Configs: Kafka topic configs to set; null returns one to its default.
	Configs map[string]*string `json:"configs,omitempty"`
}

type addPartitionsRequest struct {
	Partitions *int32 `json:"partitions"`
}

// retentionMs resolves the two ways of giving retention. Nil means not
// given.
func retentionMs(retention *string, ms *int64) (*int64, error) {
	switch {
	case retention != nil && ms != nil:
		return nil, &fieldError{"retention", errors.New("give retention or retention_ms, not both")}
	case ms != nil:
		return ms, nil
	case retention == nil:
		return nil, nil
	}
	if r := strings.TrimSpace(*retention); r == "forever" || r == "-1" {
		v := int64(-1)
		return &v, nil
	}
	d, err := ParseDuration(*retention)
	if err != nil {
		return nil, &fieldError{"retention", err}
	}
	if d < 1e6 {
		return nil, &fieldError{"retention", fmt.Errorf("retention %q is shorter than 1ms", *retention)}
	}
	v := d.Milliseconds()
	return &v, nil
}

// ProduceRecord is a record to produce.
type ProduceRecord struct {
	// Partition is where the record goes; nil lets the agent choose:
	// murmur2 of the key as Kafka's default partitioner, or spread over the
	// partitions when there is no key.
	Partition *int32
	// Key and Value: nil is null (a null value is a tombstone to
	// compacting consumers); an empty slice is empty.
	Key, Value []byte
	Headers    []records.Header
	// Timestamp in milliseconds since the Unix epoch; 0 means the agent's
	// clock at produce time.
	Timestamp int64
}

// produceRecordJSON is one record of a produce request.
type produceRecordJSON struct {
	Key       *string    `json:"key,omitempty"`
	KeyB64    *string    `json:"key_b64,omitempty"`
	Value     *string    `json:"value,omitempty"`
	ValueB64  *string    `json:"value_b64,omitempty"`
	Headers   headerList `json:"headers,omitempty"`
	Partition *int32     `json:"partition,omitempty"`
	Timestamp *int64     `json:"timestamp,omitempty"`
}

// produceFields names the fields of a produce record, for error messages.
const produceFields = "key, key_b64, value, value_b64, headers, partition, timestamp"

// ProduceOffset is the outcome of one produced record, in request order:
// its partition and offset, or the error that kept it out of the log
// (Offset is then -1).
type ProduceOffset struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Error     string `json:"error,omitempty"`
	Code      string `json:"code,omitempty"`
}

type produceResponse struct {
	Offsets []ProduceOffset `json:"offsets"`
}

// headerJSON is a header in the array form, the form responses use.
type headerJSON struct {
	Key      *string `json:"key,omitempty"`
	KeyB64   *string `json:"key_b64,omitempty"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
}

// headerList reads headers as an object {"k": "v", ...} (string or null
// values; order and repeated keys are kept) or as an array of headerJSON.
type headerList []records.Header

func (h *headerList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case 'n':
		*h = nil
		return nil
	case '{':
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil {
			return &fieldError{"headers", err}
		}
		list := headerList{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return &fieldError{"headers", err}
			}
			k, _ := t.(string)
			var v *string
			if err := dec.Decode(&v); err != nil {
				return &fieldError{"headers." + k, errors.New("a header value must be a string or null (use the array form with value_b64 for binary values)")}
			}
			list = append(list, records.Header{Key: k, Value: bytesOf(v)})
		}
		*h = list
		return nil
	case '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			return &fieldError{"headers", err}
		}
		list := make(headerList, 0, len(raws))
		for i, raw := range raws {
			field := fmt.Sprintf("headers[%d]", i)
			if raw[0] != '{' {
				return &fieldError{field, fmt.Errorf("a header must be an object {\"key\": ..., \"value\": ...}, not %s", jsonKind(raw[0]))}
			}
			var hj headerJSON
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&hj); err != nil {
				err = describeJSONError(err, "key, key_b64, value, value_b64")
				if fe, ok := errors.AsType[*fieldError](err); ok {
					return &fieldError{field + "." + fe.field, fe.err}
				}
				return &fieldError{field, err}
			}
			k, err := pickBytes(field+".key", hj.Key, hj.KeyB64)
			if err != nil {
				return err
			}
			if k == nil {
				return &fieldError{field + ".key", errors.New("a header needs a key or key_b64")}
			}
			v, err := pickBytes(field+".value", hj.Value, hj.ValueB64)
			if err != nil {
				return err
			}
			list = append(list, records.Header{Key: string(k), Value: v})
		}
		*h = list
		return nil
	}
	return &fieldError{"headers", errors.New("headers must be an object {\"name\": \"value\"} or an array [{\"key\": ..., \"value\": ...}]")}
}

// pickBytes reads a field given as a UTF-8 string or as base64 in its
// "_b64" twin; nil means neither (null).
func pickBytes(field string, s, b64 *string) ([]byte, error) {
	switch {
	case s != nil && b64 != nil:
		return nil, &fieldError{field, fmt.Errorf("give %s or %s_b64, not both", lastPart(field), lastPart(field))}
	case s != nil:
		return bytesOf(s), nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, &fieldError{field + "_b64", fmt.Errorf("not standard base64: %v", err)}
		}
		return b, nil
	}
	return nil, nil
}

func lastPart(field string) string { return field[strings.LastIndexByte(field, '.')+1:] }

func bytesOf(s *string) []byte {
	if s == nil {
		return nil
	}
	b := make([]byte, len(*s)) // never nil: "" is an empty value, not null
	copy(b, *s)
	return b
}

// fieldError is a bad value in a request, with the field it is in.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.err.Error()
	}
	return e.field + ": " + e.err.Error()
}
func (e *fieldError) Unwrap() error { return e.err }

// bodyError is a produce body that cannot be read, with where.
type bodyError struct {
	record int // index, -1 when not within one record
	line   int
	field  string
	err    error
}

func (e *bodyError) Error() string {
	var where string
	if e.record >= 0 {
		where = fmt.Sprintf("records[%d] (line %d)", e.record, e.line)
	} else {
		where = fmt.Sprintf("line %d", e.line)
	}
	if e.field != "" {
		return fmt.Sprintf("%s: %s: %v", where, e.field, e.err)
	}
	return fmt.Sprintf("%s: %v", where, e.err)
}

func (e *bodyError) Unwrap() error { return e.err }

// parseProduceBody reads the records of a produce request: a JSON array of
// record objects, or NDJSON (JSON objects separated by newlines). The first
// character that is not white space tells which. Nothing is produced unless
// every record is valid, so an error names the first bad one.
func parseProduceBody(body []byte) ([]ProduceRecord, error) {
	start := len(body) - len(bytes.TrimLeft(body, " \t\r\n"))
	if start == len(body) {
		return nil, &bodyError{record: -1, line: 1, err: errors.New("no records: the body is empty")}
	}
	lineAt := func(off int64) int {
		off = min(max(off, 0), int64(len(body)))
		return 1 + bytes.Count(body[:off], []byte("\n"))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	array := body[start] == '['
	if array {
		if _, err := dec.Token(); err != nil {
			return nil, &bodyError{record: -1, line: 1, err: err}
		}
	}
	var out []ProduceRecord
	for {
		if array && !dec.More() {
			break
		}
		at := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF && !array {
			break
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				at = se.Offset
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = errors.New("unexpected end of the body")
				at = int64(len(body))
			}
			return nil, &bodyError{record: -1, line: lineAt(at), err: fmt.Errorf("invalid JSON: %v", err)}
		}
		// InputOffset was before the separator and white space.
		at += int64(len(body[at:]) - len(bytes.TrimLeft(body[at:], " \t\r\n,")))
		r, err := decodeRecord(raw)
		if err != nil {
			be := &bodyError{record: len(out), line: lineAt(at), err: err}
			if fe, ok := errors.AsType[*fieldError](err); ok {
				be.field, be.err = fe.field, fe.err
			}
			return nil, be
		}
		out = append(out, r)
	}
	if array {
		if _, err := dec.Token(); err != nil {
			return nil, &bodyError{record: -1, line: lineAt(dec.InputOffset()), err: fmt.Errorf("invalid JSON: %v", err)}
		}
		if t, err := dec.Token(); err != io.EOF {
			if err == nil {
				err = fmt.Errorf("unexpected %v", t)
			}
			return nil, &bodyError{record: -1, line: lineAt(dec.InputOffset()), err: fmt.Errorf("data after the array: %v", err)}
		}
	}
	if len(out) == 0 {
		return nil, &bodyError{record: -1, line: 1, err: errors.New("no records")}
	}
	return out, nil
}

func decodeRecord(raw []byte) (ProduceRecord, error) {
	if raw[0] != '{' {
		return ProduceRecord{}, fmt.Errorf("a record must be a JSON object, not %s", jsonKind(raw[0]))
	}
	var rj produceRecordJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rj); err != nil {
		return ProduceRecord{}, describeJSONError(err, produceFields)
	}
	var r ProduceRecord
	var err error
	if r.Key, err = pickBytes("key", rj.Key, rj.KeyB64); err != nil {
		return r, err
	}
	if r.Value, err = pickBytes("value", rj.Value, rj.ValueB64); err != nil {
		return r, err
	}
	if rj.Partition != nil && *rj.Partition < 0 {
		return r, &fieldError{"partition", fmt.Errorf("%d is negative; leave it out to let the agent choose", *rj.Partition)}
	}
	if rj.Timestamp != nil && *rj.Timestamp < 0 {
		return r, &fieldError{"timestamp", fmt.Errorf("%d is negative: give milliseconds since the Unix epoch, or leave it out", *rj.Timestamp)}
	}
	r.Partition = rj.Partition
	if rj.Timestamp != nil {
		r.Timestamp = *rj.Timestamp
	}
	r.Headers = rj.Headers
	return r, nil
}

// describeJSONError turns encoding/json's messages, which name Go types,
// into ones that name the request's fields.
func describeJSONError(err error, fields string) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		want := "a string"
		switch te.Type.Kind().String() {
		case "int32", "int64":
			want = "an integer"
			if strings.HasPrefix(te.Value, "number") {
				want = fmt.Sprintf("an integer that fits %s", te.Type.Kind())
			}
		case "slice":
			want = "an array"
		}
		return &fieldError{te.Field, fmt.Errorf("want %s, got %s", want, te.Value)}
	}
	if fe, ok := errors.AsType[*fieldError](err); ok {
		return fe
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if name, err := strconv.Unquote(f); err == nil {
			return &fieldError{name, fmt.Errorf("unknown field (the fields are %s)", fields)}
		}
		return fmt.Errorf("unknown field %s (the fields are %s)", f, fields)
	}
	return errors.New(strings.TrimPrefix(msg, "json: "))
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// encodeProduceRecords writes records as a produce request body (a JSON
// array), the inverse of parseProduceBody.
func encodeProduceRecords(recs []ProduceRecord) ([]byte, error) {
	out := make([]produceRecordJSON, len(recs))
	for i, r := range recs {
		rj := produceRecordJSON{Partition: r.Partition}
		rj.Key, rj.KeyB64 = wireBytes(r.Key)
		rj.Value, rj.ValueB64 = wireBytes(r.Value)
		if r.Timestamp != 0 {
			ts := r.Timestamp
			rj.Timestamp = &ts
		}
		rj.Headers = r.Headers
		out[i] = rj
	}
	return json.Marshal(out)
}

// MarshalJSON writes headers in the array form.
func (h headerList) MarshalJSON() ([]byte, error) { return json.Marshal(headersJSON(h)) }

func headersJSON(hs []records.Header) []headerJSON {
	out := make([]headerJSON, len(hs))
	for i, h := range hs {
		out[i].Key, out[i].KeyB64 = wireBytes([]byte(h.Key))
		out[i].Value, out[i].ValueB64 = wireBytes(h.Value)
	}
	return out
}

// wireBytes is the JSON form of b: a string when it is UTF-8, base64
// otherwise, neither for nil.
func wireBytes(b []byte) (s, b64 *string) {
	if b == nil {
		return nil, nil
	}
	if utf8.Valid(b) {
		v := string(b)
		return &v, nil
	}
	v := base64.StdEncoding.EncodeToString(b)
	return nil, &v
}

// Record is a record as reads return it.
type Record struct {
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp int64        `json:"timestamp"`
	Key       *string      `json:"key,omitempty"`
	KeyB64    *string      `json:"key_b64,omitempty"`
	Value     *string      `json:"value,omitempty"`
	ValueB64  *string      `json:"value_b64,omitempty"`
	Headers   []headerJSON `json:"headers"`
}

// NewRecord is the JSON form of a record of partition p.
func NewRecord(p int32, r records.Record) Record {
	out := Record{Partition: p, Offset: r.Offset, Timestamp: r.Timestamp, Headers: headersJSON(r.Headers)}
	out.Key, out.KeyB64 = wireBytes(r.Key)
	out.Value, out.ValueB64 = wireBytes(r.Value)
	return out
}

// Decode turns the JSON form back into a record.
func (r Record) Decode() (records.Record, error) {
	out := records.Record{Offset: r.Offset, Timestamp: r.Timestamp}
	var err error
	if out.Key, err = pickBytes("key", r.Key, r.KeyB64); err != nil {
		return out, err
	}
	if out.Value, err = pickBytes("value", r.Value, r.ValueB64); err != nil {
		return out, err
	}
	for i, h := range r.Headers {
		k, err := pickBytes(fmt.Sprintf("headers[%d].key", i), h.Key, h.KeyB64)
		if err != nil {
			return out, err
		}
		v, err := pickBytes(fmt.Sprintf("headers[%d].value", i), h.Value, h.ValueB64)
		if err != nil {
			return out, err
		}
		out.Headers = append(out.Headers, records.Header{Key: string(k), Value: v})
	}
	return out, nil
}

// readResponse is the answer of a read.
type readResponse struct {
	Records       []Record `json:"records"`
	NextOffset    int64    `json:"next_offset"`
	HighWatermark int64    `json:"high_watermark"`
	// LastStableOffset: below it every transaction has ended.
	LastStableOffset int64 `json:"last_stable_offset"`
	LogStartOffset   int64 `json:"log_start_offset"`
}
