package httpapi

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/twoway/twoway/internal/records"
)

func TestParseProduceBodyForms(t *testing.T) {
	p := func(v int32) *int32 { return &v }
	want := []ProduceRecord{
		{Key: []byte("k"), Value: []byte("v"), Headers: []records.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: nil}}},
		{Partition: p(3), Value: []byte{0xff}, Timestamp: 42},
		{Key: []byte{}, Value: nil},
	}
	for _, body := range []string{
		// Array, headers as an object.
		`[{"key":"k","value":"v","headers":{"a":"1","a":null}},{"partition":3,"value_b64":"/w==","timestamp":42},{"key":""}]`,
		// NDJSON with CRLF, blank lines and headers as an array.
		"\r\n{\"key\":\"k\",\"value\":\"v\",\"headers\":[{\"key\":\"a\",\"value\":\"1\"},{\"key_b64\":\"YQ==\"}]}\r\n\n" +
			"{\"partition\":3,\"value_b64\":\"/w==\",\"timestamp\":42}\n{\"key\":\"\",\"value\":null}\n",
		// Pretty-printed array.
		"[\n  {\n    \"key\": \"k\", \"value\": \"v\",\n    \"headers\": {\"a\": \"1\", \"a\": null}\n  },\n  {\"partition\": 3, \"value_b64\": \"/w==\", \"timestamp\": 42},\n  {\"key\": \"\", \"headers\": null}\n]\n",
	} {
		got, err := parseProduceBody([]byte(body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if !sameRecords(got, want) {
			t.Errorf("%q:\n got %+v\nwant %+v", body, got, want)
		}
	}
}

// Errors say where: the record's index and line.
func TestParseProduceBodyErrorPosition(t *testing.T) {
	_, err := parseProduceBody([]byte("[\n{\"value\":\"a\"},\n\n  {\"value\":\"b\",\n \"partition\":\"x\"}]"))
	be, ok := errors.AsType[*bodyError](err)
	if !ok || be.record != 1 || be.line != 4 || be.field != "partition" {
		t.Fatalf("error %v (%+v)", err, be)
	}
	_, err = parseProduceBody([]byte("{\"value\":\"a\"}\n{\"value\":\"b\"}\n{\"value\":\"c\" oops}"))
	if be, ok := errors.AsType[*bodyError](err); !ok || be.record != -1 || be.line != 3 || !strings.Contains(err.Error(), "invalid JSON") {
		t.Fatalf("error %v", err)
	}
}

func sameRecords(a, b []ProduceRecord) bool {
	if len(a) != len(b) {
		return false
	}
	same := func(x, y []byte) bool { return (x == nil) == (y == nil) && bytes.Equal(x, y) }
	for i := range a {
		x, y := a[i], b[i]
		if (x.Partition == nil) != (y.Partition == nil) || (x.Partition != nil && *x.Partition != *y.Partition) ||
			!same(x.Key, y.Key) || !same(x.Value, y.Value) || x.Timestamp != y.Timestamp || len(x.Headers) != len(y.Headers) {
			return false
		}
		for j := range x.Headers {
			if x.Headers[j].Key != y.Headers[j].Key || !same(x.Headers[j].Value, y.Headers[j].Value) {
				return false
			}
		}
	}
	return true
}

// FuzzParseProduceBody: any body is parsed or refused without panicking,
// and what is accepted survives the client's encoding unchanged.
func FuzzParseProduceBody(f *testing.F) {
	for _, seed := range []string{
		`[{"key":"k","value":"v","headers":{"a":"1","a":null},"partition":2,"timestamp":5}]`,
		"{\"value\":\"a\"}\n{\"key_b64\":\"/w==\",\"headers\":[{\"key_b64\":\"/w==\",\"value_b64\":\"AA==\"}]}\n",
		`[{"key":"","value":null}, {"value":"\u00ff\ud800"}]`,
		`[]`, ``, `[{"value":"a"}] x`, `{"partition":-1}`, `{"headers":[5]}`, `[{"partition":1e99}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := parseProduceBody(body)
		if err != nil {
			if len(recs) != 0 {
				t.Fatal("records with an error")
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("no records and no error")
		}
		for _, r := range recs {
			if r.Partition != nil && *r.Partition < 0 || r.Timestamp < 0 {
				t.Fatalf("accepted %+v", r)
			}
		}
		enc, err := encodeProduceRecords(recs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseProduceBody(enc)
		if err != nil {
			t.Fatalf("re-encoded body refused: %v\n%s", err, enc)
		}
		if !sameRecords(recs, again) {
			t.Fatalf("round trip changed the records:\n%+v\n%+v", recs, again)
		}
	})
}
