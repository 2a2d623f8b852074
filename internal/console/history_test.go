package console

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func TestHistoryRingKeepsTheNewestAndReusesItsRows(t *testing.T) {
	h := newHistory()
	for i := range HistoryLen + 10 {
		h.add(int64(i+1)*1000, map[string]float64{"a": float64(i), "b": math.NaN()})
	}
	var out struct {
		T      []int64
		Series map[string][]*float64
	}
	if err := json.Unmarshal(h.appendJSON(nil, 0, 0, nil), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.T) != HistoryLen || out.T[0] != 11000 || out.T[len(out.T)-1] != int64(HistoryLen+10)*1000 {
		t.Fatalf("times: %d from %d to %d", len(out.T), out.T[0], out.T[len(out.T)-1])
	}
	if a := out.Series["a"]; len(a) != HistoryLen || *a[0] != 10 || *a[HistoryLen-1] != float64(HistoryLen+9) {
		t.Fatalf("series a: %d values", len(a))
	}
	if b := out.Series["b"]; b[0] != nil {
		t.Fatalf("NaN should read null, got %v", *b[0])
	}
	// since= answers only newer samples, series= only matching names.
	out.T, out.Series = nil, nil
	if err := json.Unmarshal(h.appendJSON(nil, int64(HistoryLen+8)*1000, 0, []string{"a"}), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.T) != 2 || len(out.Series) != 1 {
		t.Fatalf("since/series: %v %v", out.T, out.Series)
	}
	// A full ring allocates no new rows.
	allocs := testing.AllocsPerRun(100, func() { h.add(1, map[string]float64{"a": 1}) })
	if allocs > 1 {
		t.Errorf("add allocates %v times per sample on a full ring", allocs)
	}
}

func TestHistorySeriesAreBounded(t *testing.T) {
	h := newHistory()
	vals := map[string]float64{}
	for i := range maxSeries + 5 {
		vals[strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune(i))] = 1
	}
	h.add(1, vals)
	if len(h.names) != maxSeries || h.dropped != 5 {
		t.Fatalf("%d series, %d dropped", len(h.names), h.dropped)
	}
}

func TestQuantilesOfTheLastInterval(t *testing.T) {
	c := newCounters()
	seen := map[string]bool{}
	hist := func(counts ...uint64) *dto.Histogram {
		var bs []*dto.Bucket
		var cum uint64
		for i, n := range counts {
			cum += n
			bs = append(bs, &dto.Bucket{UpperBound: proto.Float64(float64(i + 1)), CumulativeCount: proto.Uint64(cum)})
		}
		return &dto.Histogram{SampleCount: proto.Uint64(cum), Bucket: bs}
	}
	if _, _, ok := c.quantiles("h", hist(0, 0, 0, 0), []float64{0.5}, seen); ok {
		t.Fatal("the first sight has no interval")
	}
	// 100 observations in (1,2], then 100 more in (3,4].
	c.quantiles("h", hist(0, 100, 0, 0), []float64{0.5}, seen)
	qs, n, ok := c.quantiles("h", hist(0, 100, 0, 100), []float64{0.5, 0.99}, seen)
	if !ok || n != 100 || qs[0] != 3.5 || math.Abs(qs[1]-3.99) > 1e-9 {
		t.Fatalf("quantiles %v of %d (ok %v), want 3.5 and 3.99 of 100", qs, n, ok)
	}
	if _, _, ok := c.quantiles("h", hist(0, 100, 0, 100), []float64{0.5}, seen); ok {
		t.Fatal("no observations in the interval should give no quantiles")
	}
	if r, ok := c.rate("c", 10, 2, seen); ok {
		t.Fatalf("first sight of a counter gave a rate %v", r)
	}
	if r, _ := c.rate("c", 30, 2, seen); r != 10 {
		t.Fatalf("rate %v, want 10/s", r)
	}
	if r, _ := c.rate("c", 4, 2, seen); r != 2 {
		t.Fatalf("a reset counter counts from zero: rate %v, want 2/s", r)
	}
	c.forget(map[string]bool{})
	if len(c.prev)+len(c.hists) != 0 {
		t.Fatal("forget kept names no longer seen")
	}
}

func TestLogTailKeepsFunctionsLines(t *testing.T) {
	tail := NewLogTail()
	var passed int
	next := slog.NewTextHandler(countWriter{&passed}, nil)
	log := slog.New(tail.Handler(next)).With("module", "functions")
	log.Info("not a function's line")
	inv := log.With("function", "twin", "version", 1, "invocation", "i1", "key", "d1")
	for i := range LogLen + 3 {
		inv.Warn("config threshold is not a number", "source", "guest", "n", i)
	}
	log.Warn("invocation failed", "function", "other", "err", "trap")
	lines, last := tail.After("twin", 0)
	if len(lines) != LogLen || last != LogLen+4 || passed != LogLen+5 {
		t.Fatalf("%d lines kept, last %d, %d passed on", len(lines), last, passed)
	}
	l := lines[len(lines)-1]
	if l.Source != "guest" || l.Level != "WARN" || l.Attrs["key"] != "d1" || l.Attrs["n"] != "502" {
		t.Fatalf("last line %+v", l)
	}
	if more, _ := tail.After("twin", last); len(more) != 0 {
		t.Fatalf("after the last: %d lines", len(more))
	}
	if other, _ := tail.After("other", 0); len(other) != 1 || other[0].Source != "runtime" {
		t.Fatalf("other: %+v", other)
	}
	// Under a group the attributes are not the function's.
	slog.New(tail.Handler(next)).WithGroup("g").Info("x", "function", "twin")
	if l2, _ := tail.After("twin", last); len(l2) != 0 {
		t.Fatal("a grouped function attribute was taken for the function")
	}
}

type countWriter struct{ n *int }

func (w countWriter) Write(p []byte) (int, error) { *w.n++; return len(p), nil }

func TestAssetsAreGzippedWithETags(t *testing.T) {
	h := assetHandler()
	get := func(path string, hdr map[string]string) *http.Response {
		req := httptest.NewRequest("GET", path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	r := get("/ui/", map[string]string{"Accept-Encoding": "gzip"})
	if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/ui/: %d %v", r.StatusCode, r.Header)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if !strings.Contains(string(body), `<script src="app.js"`) {
		t.Fatalf("index.html: %s", body)
	}
	if r2 := get("/ui/app.js", map[string]string{"If-None-Match": get("/ui/app.js", nil).Header.Get("ETag")}); r2.StatusCode != 304 {
		t.Fatalf("a matching ETag answered %d", r2.StatusCode)
	}
	if r3 := get("/ui/prices.json", nil); r3.StatusCode != 200 || r3.Header.Get("Content-Encoding") != "" {
		t.Fatalf("prices.json without gzip: %d %v", r3.StatusCode, r3.Header)
	} else {
		var p struct {
			Lists []struct {
				ID   string  `json:"id"`
				AsOf string  `json:"as_of"`
				Put  float64 `json:"put_per_1000"`
			}
		}
		if err := json.NewDecoder(r3.Body).Decode(&p); err != nil || len(p.Lists) < 3 {
			t.Fatalf("prices.json: %v %+v", err, p)
		}
	}
	if r4 := get("/ui/nope.js", nil); r4.StatusCode != 404 {
		t.Fatalf("a missing file answered %d", r4.StatusCode)
	}
	var total int
	for _, a := range loadAssets() {
		total += len(a.gz)
	}
	if total > 100<<10 {
		t.Errorf("the console's files are %d bytes gzipped: keep the first load small", total)
	}
}
