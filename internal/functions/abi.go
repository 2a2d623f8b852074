package functions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"unicode/utf8"
)

// The ABI's encodings, host side (docs/FUNCTIONS.md, "ABI version 1").

const abiVersion = 1

// Event kinds.
const (
	KindHTTP   = 1
	KindRecord = 2
	KindTimer  = 3
	KindInvoke = 4
)

type enc struct{ b []byte }

func (e *enc) u32(v uint32)   { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *enc) i64(v int64)    { e.b = binary.LittleEndian.AppendUint64(e.b, uint64(v)) }
func (e *enc) bytes(v []byte) { e.u32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)   { e.u32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *enc) nullable(v []byte) {
	if v == nil {
		e.u32(math.MaxUint32)
		return
	}
	e.bytes(v)
}

func eventHeader(kind uint32, key, invocation string) *enc {
	e := &enc{}
	e.u32(abiVersion)
	e.u32(kind)
	e.str(key)
	e.str(invocation)
	return e
}

// httpEvent encodes a request; path is the part after /fn/{name}.
func httpEvent(invocation, method, path, query string, h http.Header, body []byte) []byte {
	e := eventHeader(KindHTTP, "", invocation)
	e.str(method)
	e.str(path)
	e.str(query)
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	e.u32(uint32(n))
	for name, vs := range h {
		for _, v := range vs {
			e.str(name)
			e.str(v)
		}
	}
	e.bytes(body)
	return e.b
}

// Record is an input record of a subscription.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   [][2][]byte
}

func recordEvent(key, invocation string, r *Record) []byte {
	e := eventHeader(KindRecord, key, invocation)
	e.str(r.Topic)
	e.u32(uint32(r.Partition))
	e.i64(r.Offset)
	e.i64(r.Timestamp)
	e.nullable(r.Key)
	e.nullable(r.Value)
	e.u32(uint32(len(r.Headers)))
	for _, h := range r.Headers {
		e.str(string(h[0]))
		e.bytes(h[1])
	}
	return e.b
}

func timerEvent(key, invocation, name string, atMs int64, payload []byte) []byte {
	e := eventHeader(KindTimer, key, invocation)
	e.str(name)
	e.i64(atMs)
	e.bytes(payload)
	return e.b
}

func invokeEvent(key, invocation, method string, body []byte) []byte {
	e := eventHeader(KindInvoke, key, invocation)
	e.str(method)
	e.bytes(body)
	return e.b
}

// Response is a decoded twoway_handle output (or http_fetch result).
type Response struct {
	Status  int
	Headers [][2]string
	Body    []byte
}

// OK reports whether the invocation succeeded (status below 400).
func (r *Response) OK() bool { return r.Status < 400 }

var errMalformed = errors.New("malformed")

type dec struct {
	b   []byte
	err error
}

func (d *dec) u32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.err = errMalformed
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.u32()
	if d.err != nil || uint64(n) > uint64(len(d.b)) {
		d.err = errMalformed
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	v := d.bytes()
	if !utf8.Valid(v) {
		d.err = errMalformed
	}
	return string(v)
}

// count reads a count of items of at least min bytes each, bounded by
// what is left, so a corrupt count never allocates much.
func (d *dec) count(min int) int {
	n := d.u32()
	if d.err != nil || uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.err = errMalformed
		return 0
	}
	return int(n)
}

// DecodeResponse decodes a guest's output. Empty output is 200.
func DecodeResponse(b []byte) (Response, error) {
	if len(b) == 0 {
		return Response{Status: 200}, nil
	}
	d := &dec{b: b}
	r := Response{Status: int(d.u32())}
	n := d.count(8)
	for range n {
		name, v := d.str(), d.str()
		if d.err != nil {
			break
		}
		r.Headers = append(r.Headers, [2]string{name, v})
	}
	r.Body = d.bytes()
	if d.err != nil {
		return Response{}, fmt.Errorf("the function's output is not a response (docs/FUNCTIONS.md): %w", d.err)
	}
	if r.Status == 0 {
		r.Status = 200
	}
	if r.Status < 100 || r.Status > 999 {
		return Response{}, fmt.Errorf("the function answered status %d", r.Status)
	}
	return r, nil
}

func encodeResponse(r *Response) []byte {
	e := &enc{}
	e.u32(uint32(r.Status))
	e.u32(uint32(len(r.Headers)))
	for _, h := range r.Headers {
		e.str(h[0])
		e.str(h[1])
	}
	e.bytes(r.Body)
	return e.b
}

// FetchRequest is a decoded http_fetch request.
type FetchRequest struct {
	Method, URL string
	Headers     [][2]string
	Body        []byte
}

// DecodeFetchRequest decodes an http_fetch argument.
func DecodeFetchRequest(b []byte) (FetchRequest, error) {
	d := &dec{b: b}
	r := FetchRequest{Method: d.str(), URL: d.str()}
	n := d.count(8)
	for range n {
		name, v := d.str(), d.str()
		if d.err != nil {
			break
		}
		r.Headers = append(r.Headers, [2]string{name, v})
	}
	r.Body = d.bytes()
	if d.err != nil {
		return FetchRequest{}, fmt.Errorf("malformed http_fetch request: %w", d.err)
	}
	return r, nil
}
