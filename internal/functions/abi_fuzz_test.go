package functions

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"unicode/utf8"
)

// encodeFetchRequest is DecodeFetchRequest's inverse (docs/FUNCTIONS.md:
// str method, str url, u32 n, n x (str name, str value), bytes body).
func encodeFetchRequest(r *FetchRequest) []byte {
	e := &enc{}
	e.str(r.Method)
	e.str(r.URL)
	e.u32(uint32(len(r.Headers)))
	for _, h := range r.Headers {
		e.str(h[0])
		e.str(h[1])
	}
	e.bytes(r.Body)
	return e.b
}

func sameHeaders(a, b [][2]string) bool { return slices.Equal(a, b) }

// FuzzDecodeResponse: DecodeResponse never panics; what it accepts is
// exactly a prefix of its input as encodeResponse writes it (status 0
// read as 200), and every response encodeResponse writes decodes back to
// itself when its strings are UTF-8 (and is refused otherwise).
func FuzzDecodeResponse(f *testing.F) {
	le := binary.LittleEndian
	for _, r := range []Response{
		{Status: 200},
		{Status: 404, Headers: [][2]string{{"Content-Type", "application/json"}}, Body: []byte(`{"error":"no device d1"}`)},
		{Status: 500, Headers: [][2]string{{"A", ""}, {"", "b"}, {"X-Ünïcode", "välue"}}, Body: bytes.Repeat([]byte{0}, 100)},
	} {
		f.Add(encodeResponse(&r), uint16(r.Status), "Name", "value", r.Body)
	}
	f.Add([]byte{}, uint16(0), "", "", []byte(nil))
	f.Add([]byte{0, 0, 0, 0}, uint16(99), "\xff", "", []byte("x"))                                              // no header count
	f.Add(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0), 0), 5), uint16(1000), "a", "\xc3", []byte{}) // body cut short
	f.Add(le.AppendUint32(le.AppendUint32(nil, 200), 0xFFFFFFFF), uint16(200), "", "", []byte{})                // a huge header count
	f.Add(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 200), 1), 0xFFFFFFF0), uint16(200), "", "", []byte{})
	f.Add(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 7), 0), 0), uint16(7), "", "", []byte{}) // status 7
	f.Fuzz(func(t *testing.T, data []byte, status uint16, name, value string, body []byte) {
		r, err := DecodeResponse(data)
		if err == nil {
			if r.Status < 100 || r.Status > 999 {
				t.Fatalf("accepted status %d", r.Status)
			}
			for _, h := range r.Headers {
				if !utf8.ValidString(h[0]) || !utf8.ValidString(h[1]) {
					t.Fatalf("accepted a header that is not UTF-8: %q", h)
				}
			}
			enc := encodeResponse(&r)
			if len(data) > 0 && le.Uint32(data) != 0 && !bytes.HasPrefix(data, enc) {
				t.Fatalf("decoded %+v from %x, which encodes as %x", r, data, enc)
			}
			r2, err := DecodeResponse(enc)
			if err != nil || r2.Status != r.Status || !sameHeaders(r2.Headers, r.Headers) || !bytes.Equal(r2.Body, r.Body) {
				t.Fatalf("%+v does not round-trip: %+v, %v", r, r2, err)
			}
		}
		// A response built from the arguments round-trips.
		in := Response{Status: 100 + int(status)%900, Headers: [][2]string{{name, value}, {value, name}}, Body: body}
		out, err := DecodeResponse(encodeResponse(&in))
		valid := utf8.ValidString(name) && utf8.ValidString(value)
		switch {
		case !valid && err == nil:
			t.Fatalf("accepted a header that is not UTF-8: %q %q", name, value)
		case valid && err != nil:
			t.Fatalf("%+v: %v", in, err)
		case valid && (out.Status != in.Status || !sameHeaders(out.Headers, in.Headers) || !bytes.Equal(out.Body, in.Body)):
			t.Fatalf("%+v came back as %+v", in, out)
		}
	})
}

// FuzzDecodeFetchRequest: DecodeFetchRequest never panics; what it
// accepts is exactly a prefix of its input as encoded, and an encoded
// request with UTF-8 strings decodes back to itself.
func FuzzDecodeFetchRequest(f *testing.F) {
	le := binary.LittleEndian
	for _, r := range []FetchRequest{
		{Method: "GET", URL: "http://example.com/"},
		{Method: "POST", URL: "https://example.com/x?y=1", Headers: [][2]string{{"Content-Type", "application/json"}, {"Idempotency-Key", "k"}}, Body: []byte(`{}`)},
		{},
	} {
		f.Add(encodeFetchRequest(&r), r.Method, r.URL, "Name", []byte("body"))
	}
	f.Add([]byte{}, "", "", "", []byte(nil))
	f.Add([]byte{3, 0, 0, 0, 'G', 'E'}, "\xff", "u", "\xc3\x28", []byte{})                                            // method cut short
	f.Add(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0), 0), 0x7FFFFFFF), "GET", "", "h", []byte{})         // a huge header count
	f.Add(le.AppendUint32(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0), 0), 0), 10), "", "", "", []byte{}) // body cut short
	f.Add(append(le.AppendUint32(nil, 2), 0xff, 0xfe), "", "", "", []byte{})                                          // method not UTF-8
	f.Fuzz(func(t *testing.T, data []byte, method, url, name string, body []byte) {
		r, err := DecodeFetchRequest(data)
		if err == nil {
			enc := encodeFetchRequest(&r)
			if !bytes.HasPrefix(data, enc) {
				t.Fatalf("decoded %+v from %x, which encodes as %x", r, data, enc)
			}
			for _, s := range append([]string{r.Method, r.URL}, headerStrings(r.Headers)...) {
				if !utf8.ValidString(s) {
					t.Fatalf("accepted a string that is not UTF-8: %q", s)
				}
			}
		}
		in := FetchRequest{Method: method, URL: url, Headers: [][2]string{{name, url}}, Body: body}
		out, err := DecodeFetchRequest(encodeFetchRequest(&in))
		valid := utf8.ValidString(method) && utf8.ValidString(url) && utf8.ValidString(name)
		switch {
		case !valid && err == nil:
			t.Fatalf("accepted a string that is not UTF-8: %+v", in)
		case valid && err != nil:
			t.Fatalf("%+v: %v", in, err)
		case valid && (out.Method != in.Method || out.URL != in.URL || !sameHeaders(out.Headers, in.Headers) || !bytes.Equal(out.Body, in.Body)):
			t.Fatalf("%+v came back as %+v", in, out)
		}
	})
}

func headerStrings(hs [][2]string) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h[0], h[1])
	}
	return out
}
