package fn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// The wire format of ABI version 1 (docs/FUNCTIONS.md, "ABI version 1:
// encodings"). Everything here is plain Go, shared by the wasip1 build
// and the native one, and tested natively.

const abiVersion = 1

// Event kinds.
const (
	kindHTTP   = 1
	kindRecord = 2
	kindTimer  = 3
	kindInvoke = 4
)

// nullLen is the length of a null nullable bytes (and of a null publish key).
const nullLen = 0xFFFFFFFF

// field is a name and a value: an HTTP header line (one per value).
type field struct {
	name, value string
}

// event is a decoded event. Byte slices point into the input, which is the
// event's own buffer (a fresh one per call).
type event struct {
	kind       uint32
	key        string
	invocation string

	// kindHTTP and kindInvoke (method); kindHTTP only for the rest.
	method  string
	path    string
	query   string
	headers []field
	body    []byte // also kindInvoke

	record Record // kindRecord
	timer  Timer  // kindTimer
}

// errTruncated is why a decoding stopped: the input ended inside a field.
var errTruncated = errors.New("truncated")

// reader reads ABI values from b; after the first error every read returns
// a zero value and err stays set.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w at byte %d (%s)", errTruncated, r.off, what)
	}
}

func (r *reader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail(what)
		return nil
	}
	end := r.off + int(n)
	p := r.b[r.off:end:end] // capped: appending to it cannot overwrite what follows
	r.off = end
	return p
}

func (r *reader) u32(what string) uint32 {
	p := r.take(4, what)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

func (r *reader) i64(what string) int64 {
	p := r.take(8, what)
	if p == nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(p))
}

// bytes reads a `bytes`: never nil once read, empty for length 0.
func (r *reader) bytes(what string) []byte {
	n := r.u32(what)
	if r.err != nil {
		return nil
	}
	return r.take(uint64(n), what)
}

// nullable reads a `nullable bytes`: nil for null, non-nil otherwise.
func (r *reader) nullable(what string) []byte {
	n := r.u32(what)
	if r.err != nil || n == nullLen {
		return nil
	}
	return r.take(uint64(n), what)
}

func (r *reader) str(what string) string { return string(r.bytes(what)) }

// count reads a u32 count of entries, each at least min bytes long, and
// refuses a count the rest of the input cannot hold (so a corrupt count
// never makes a huge allocation).
func (r *reader) count(min int, what string) int {
	n := r.u32(what)
	if r.err != nil {
		return 0
	}
	if uint64(n)*uint64(min) > uint64(len(r.b)-r.off) {
		r.fail(what)
		return 0
	}
	return int(n)
}

// errUnknownKind is decodeEvent's error for a well-formed prefix with a
// kind this SDK does not know: it answers 501, not 400.
type errUnknownKind uint32

func (e errUnknownKind) Error() string { return fmt.Sprintf("unknown event kind %d", uint32(e)) }

// decodeEvent decodes an event. It never panics; bytes after the fields it
// knows are ignored.
func decodeEvent(b []byte) (*event, error) {
	r := &reader{b: b}
	abi := r.u32("abi")
	kind := r.u32("kind")
	if r.err != nil {
		return nil, r.err
	}
	if abi != abiVersion {
		return nil, fmt.Errorf("ABI version %d, not %d", abi, abiVersion)
	}
	ev := &event{kind: kind}
	ev.key = r.str("key")
	ev.invocation = r.str("invocation")
	switch kind {
	case kindHTTP:
		ev.method = r.str("http method")
		ev.path = r.str("http path")
		ev.query = r.str("http query")
		n := r.count(8, "http header count")
		if n > 0 {
			ev.headers = make([]field, n)
		}
		for i := range n {
			ev.headers[i].name = r.str("http header name")
			ev.headers[i].value = r.str("http header value")
		}
		ev.body = r.bytes("http body")
	case kindRecord:
		rec := &ev.record
		rec.Topic = r.str("record topic")
		rec.Partition = int32(r.u32("record partition"))
		rec.Offset = r.i64("record offset")
		rec.Timestamp = time.UnixMilli(r.i64("record timestamp"))
		rec.Key = r.nullable("record key")
		rec.Value = r.nullable("record value")
		n := r.count(8, "record header count")
		if n > 0 {
			rec.Headers = make([]RecordHeader, n)
		}
		for i := range n {
			rec.Headers[i].Key = r.str("record header name")
			rec.Headers[i].Value = r.bytes("record header value")
		}
	case kindTimer:
		ev.timer.Name = r.str("timer name")
		ev.timer.Due = time.UnixMilli(r.i64("timer due"))
		ev.timer.Payload = r.bytes("timer payload")
	case kindInvoke:
		ev.method = r.str("invoke method")
		ev.body = r.bytes("invoke body")
	default:
		if r.err != nil {
			return nil, r.err
		}
		return ev, errUnknownKind(kind)
	}
	if r.err != nil {
		return nil, r.err
	}
	return ev, nil
}

// writer appends ABI values.
type writer struct {
	b []byte
}

func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) i64(v int64)  { w.b = binary.LittleEndian.AppendUint64(w.b, uint64(v)) }

func (w *writer) bytes(p []byte) {
	w.u32(uint32(len(p)))
	w.b = append(w.b, p...)
}

func (w *writer) str(s string) {
	w.u32(uint32(len(s)))
	w.b = append(w.b, s...)
}

func (w *writer) nullable(p []byte) {
	if p == nil {
		w.u32(nullLen)
		return
	}
	w.bytes(p)
}

// headerFields flattens h into one field per value, names sorted (values
// keep their order), so an encoding is deterministic.
func headerFields(h http.Header) []field {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []field
	for _, name := range names {
		for _, v := range h[name] {
			out = append(out, field{name, v})
		}
	}
	return out
}

func (w *writer) fields(fs []field) {
	w.u32(uint32(len(fs)))
	for _, f := range fs {
		w.str(f.name)
		w.str(f.value)
	}
}

// encodeResponse encodes twoway_handle's output (and http_fetch's result).
func encodeResponse(status int, h http.Header, body []byte) []byte {
	fs := headerFields(h)
	size := 12 + len(body)
	for _, f := range fs {
		size += 8 + len(f.name) + len(f.value)
	}
	w := &writer{b: make([]byte, 0, size)}
	w.u32(uint32(status))
	w.fields(fs)
	w.bytes(body)
	return w.b
}

// decodeResponse decodes a response (http_fetch's result); status 0 is 200.
func decodeResponse(b []byte) (status int, h http.Header, body []byte, err error) {
	r := &reader{b: b}
	status = int(r.u32("status"))
	n := r.count(8, "header count")
	h = make(http.Header, n)
	for range n {
		name := r.str("header name")
		value := r.str("header value")
		if r.err == nil {
			h[name] = append(h[name], value)
		}
	}
	body = r.bytes("body")
	if r.err != nil {
		return 0, nil, nil, r.err
	}
	if status == 0 {
		status = http.StatusOK
	}
	return status, h, body, nil
}

// encodeFetch encodes an http_fetch request.
func encodeFetch(method, url string, h http.Header, body []byte) []byte {
	w := &writer{}
	w.str(method)
	w.str(url)
	w.fields(headerFields(h))
	w.bytes(body)
	return w.b
}

// decodeFetch decodes an http_fetch request (the native build performs it).
func decodeFetch(b []byte) (method, url string, h http.Header, body []byte, err error) {
	r := &reader{b: b}
	method = r.str("method")
	url = r.str("url")
	n := r.count(8, "header count")
	h = make(http.Header, n)
	for range n {
		name := r.str("header name")
		value := r.str("header value")
		if r.err == nil {
			h[name] = append(h[name], value)
		}
	}
	body = r.bytes("body")
	if r.err != nil {
		return "", "", nil, nil, r.err
	}
	return method, url, h, body, nil
}
