package fn

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// encodeEvent is the host's side of the event encoding, for tests.
func encodeEvent(ev *event) []byte {
	w := &writer{}
	w.u32(abiVersion)
	w.u32(ev.kind)
	w.str(ev.key)
	w.str(ev.invocation)
	switch ev.kind {
	case kindHTTP:
		w.str(ev.method)
		w.str(ev.path)
		w.str(ev.query)
		w.fields(ev.headers)
		w.bytes(ev.body)
	case kindRecord:
		r := ev.record
		w.str(r.Topic)
		w.u32(uint32(r.Partition))
		w.i64(r.Offset)
		w.i64(r.Timestamp.UnixMilli())
		w.nullable(r.Key)
		w.nullable(r.Value)
		w.u32(uint32(len(r.Headers)))
		for _, h := range r.Headers {
			w.str(h.Key)
			w.bytes(h.Value)
		}
	case kindTimer:
		w.str(ev.timer.Name)
		w.i64(ev.timer.Due.UnixMilli())
		w.bytes(ev.timer.Payload)
	case kindInvoke:
		w.str(ev.method)
		w.bytes(ev.body)
	}
	return w.b
}

func sampleEvents() map[string]*event {
	return map[string]*event{
		"http": {kind: kindHTTP, key: "", invocation: "i1", method: "POST", path: "/devices/d1", query: "a=1&b=2",
			headers: []field{{"Accept", "*/*"}, {"X-Multi", "1"}, {"X-Multi", "2"}}, body: []byte("hello")},
		"http-empty": {kind: kindHTTP, invocation: "i2", method: "GET", path: "/", body: []byte{}},
		"record": {kind: kindRecord, key: "d1", invocation: "i3", record: Record{Topic: "telemetry", Partition: 3, Offset: 7,
			Timestamp: time.UnixMilli(1700000000123), Key: []byte("d1"), Value: []byte(`{"temp":85}`),
			Headers: []RecordHeader{{"h", []byte("v")}, {"e", []byte{}}}}},
		"record-null": {kind: kindRecord, key: "", invocation: "i4", record: Record{Topic: "t", Offset: -1,
			Timestamp: time.UnixMilli(0), Key: nil, Value: nil}},
		"record-empty": {kind: kindRecord, key: "", invocation: "i5", record: Record{Topic: "t",
			Timestamp: time.UnixMilli(0), Key: []byte{}, Value: []byte{}}},
		"timer":  {kind: kindTimer, key: "d1", invocation: "i6", timer: Timer{Name: "offline", Due: time.UnixMilli(99), Payload: []byte("p")}},
		"invoke": {kind: kindInvoke, key: "k", invocation: "i7", method: "Ping", body: []byte{0, 1, 2}},
	}
}

func TestDecodeEvent(t *testing.T) {
	for name, want := range sampleEvents() {
		b := encodeEvent(want)
		for _, in := range [][]byte{b, append(append([]byte{}, b...), "later fields"...)} {
			got, err := decodeEvent(in)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
			}
		}
	}
}

func TestDecodeEventTruncated(t *testing.T) {
	withHandlers(t)
	for name, ev := range sampleEvents() {
		b := encodeEvent(ev)
		for n := range len(b) {
			if _, err := decodeEvent(b[:n]); !errors.Is(err, errTruncated) {
				t.Fatalf("%s cut at %d of %d: err %v, want truncated", name, n, len(b), err)
			}
			status, _, body := decodeTestResponse(t, Dispatch(b[:n]))
			if status != 400 || !strings.HasPrefix(string(body), "malformed event") {
				t.Fatalf("%s cut at %d: %d %q", name, n, status, body)
			}
		}
	}
}

func TestDecodeEventHugeCount(t *testing.T) {
	w := &writer{}
	w.u32(1)
	w.u32(kindHTTP)
	w.str("")
	w.str("i")
	w.str("GET")
	w.str("/")
	w.str("")
	w.u32(0xFFFFFFFF) // headers
	w.b = append(w.b, make([]byte, 64)...)
	if _, err := decodeEvent(w.b); !errors.Is(err, errTruncated) {
		t.Fatalf("err %v", err)
	}
}

func TestDecodeEventVersionAndKind(t *testing.T) {
	b := encodeEvent(&event{kind: kindInvoke, method: "m"})
	b[0] = 2
	if _, err := decodeEvent(b); err == nil || !strings.Contains(err.Error(), "ABI version 2") {
		t.Fatalf("abi 2: %v", err)
	}
	ev, err := decodeEvent(encodeEvent(&event{kind: 9, key: "k", invocation: "i"}))
	var unknown errUnknownKind
	if !errors.As(err, &unknown) || ev.key != "k" {
		t.Fatalf("kind 9: %v %+v", err, ev)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	h := http.Header{"B": {"2", "3"}, "A": {"1"}}
	b := encodeResponse(201, h, []byte("body"))
	status, got, body, err := decodeResponse(b)
	if err != nil || status != 201 || !reflect.DeepEqual(got, h) || string(body) != "body" {
		t.Fatalf("%d %v %q %v", status, got, body, err)
	}
	// Names sorted, one field per value.
	want := []byte{201, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 'A', 1, 0, 0, 0, '1', 1, 0, 0, 0, 'B', 1, 0, 0, 0, '2',
		1, 0, 0, 0, 'B', 1, 0, 0, 0, '3', 4, 0, 0, 0, 'b', 'o', 'd', 'y'}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding\n got %v\nwant %v", b, want)
	}
	if status, _, _, err := decodeResponse(make([]byte, 12)); err != nil || status != 200 {
		t.Fatalf("status 0: %d %v", status, err)
	}
	if _, _, _, err := decodeResponse(b[:len(b)-1]); err == nil {
		t.Fatal("truncated response decoded")
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, ev := range sampleEvents() {
		f.Add(encodeEvent(ev))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 't', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, _, _, err := decodeResponse(Dispatch(b)); err != nil { // no handlers: 400 or 501
			t.Fatalf("Dispatch: %v", err)
		}
		ev, err := decodeEvent(b)
		var unknown errUnknownKind
		if err != nil && !errors.As(err, &unknown) {
			return
		}
		// What decodes re-encodes to an equal event.
		again, err2 := decodeEvent(encodeEvent(ev))
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(ev, again) {
			t.Fatalf("round trip:\n%+v %v\n%+v %v", ev, err, again, err2)
		}
	})
}
