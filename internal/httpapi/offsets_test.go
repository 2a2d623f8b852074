package httpapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twoway/twoway/internal/httpapi"
)

func TestOffsetForTimestamp(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"o","partitions":1}`)
	var recs []string
	for i := range 5 {
		recs = append(recs, fmt.Sprintf(`{"value":"v%d","timestamp":%d}`, i, 1000+i*10))
	}
	must(t, srv, 200, "POST", "/v1/topics/o/records", "["+strings.Join(recs, ",")+"]")
	for _, c := range []struct {
		ts     int64
		offset float64
		found  bool
	}{{0, 0, true}, {1000, 0, true}, {1015, 2, true}, {1040, 4, true}, {1041, 5, false}} {
		m := must(t, srv, 200, "GET", fmt.Sprintf("/v1/topics/o/partitions/0/offsets?timestamp=%d", c.ts), "").json(t)
		if m["offset"] != c.offset || m["found"] != c.found {
			t.Errorf("timestamp %d: %v, want offset %v found %v", c.ts, m, c.offset, c.found)
		}
	}
	for path, field := range map[string]string{
		"/v1/topics/o/partitions/0/offsets":              "timestamp",
		"/v1/topics/o/partitions/0/offsets?timestamp=x":  "timestamp",
		"/v1/topics/o/partitions/0/offsets?ts=1":         "ts",
		"/v1/topics/o/partitions/-1/offsets?timestamp=1": "partition",
	} {
		if m := must(t, srv, 400, "GET", path, "").json(t); m["field"] != field {
			t.Errorf("%s: %v, want field %s", path, m, field)
		}
	}
	must(t, srv, 404, "GET", "/v1/topics/nope/partitions/0/offsets?timestamp=1", "")
	must(t, srv, 404, "GET", "/v1/topics/o/partitions/3/offsets?timestamp=1", "")
}
