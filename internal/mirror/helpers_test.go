package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// side is one deployment opened the way a mirror opens it: streams and the
// mirror module on the bucket (the tests' buckets hold nothing else).
type side struct {
	streams *stream.Service
	mirror  *Module
	set     *module.Set
}

func testLogOptions() commitlog.Options {
	return commitlog.Options{
		PollMin:          time.Millisecond,
		PollMax:          20 * time.Millisecond,
		LeaseDuration:    time.Second,
		RegisterInterval: 200 * time.Millisecond,
	}
}

func openSide(ctx context.Context, b bucket.Bucket, noJanitor bool) (*side, error) {
	s := &side{streams: stream.New(stream.Options{}), mirror: NewModule()}
	opts := testLogOptions()
	opts.NoJanitor = noJanitor
	set, err := module.Open(ctx, module.Config{Bucket: b, Log: opts, HTTP: http.NewServeMux(), Logger: slog.New(slog.DiscardHandler)}, s.streams, s.mirror)
	if err != nil {
		return nil, err
	}
	s.set = set
	return s, nil
}

func mustOpenSide(t testing.TB, b bucket.Bucket) *side {
	t.Helper()
	s, err := openSide(context.Background(), b, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.set.Close() })
	return s
}

func openURL(t testing.TB, url string) bucket.Bucket {
	t.Helper()
	b, err := bucketurl.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// s3URL is the MinIO of `make test`, with a prefix of the test's own.
func s3URL(t *testing.T) string {
	raw := os.Getenv("TWOWAY_TEST_S3_URL")
	if raw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TWOWAY_TEST_S3_URL is not set under CI: the S3 tests must run (make test starts MinIO)")
		}
		t.Skip("TWOWAY_TEST_S3_URL not set; `make test` runs this against MinIO")
	}
	q := ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw, q = raw[:i], raw[i:]
	}
	return strings.TrimSuffix(raw, "/") + "/" + fmt.Sprintf("mirror-%d", time.Now().UnixNano()) + q
}

// readAll reads every record of topic/p.
func readAll(t testing.TB, s *stream.Service, topic string, p int32) []records.Record {
	t.Helper()
	ctx := context.Background()
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ti, err := s.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []records.Record
	off := ti.PartitionsInfo[p].Start
	for off < ti.PartitionsInfo[p].End {
		recs, _, err := s.Read(ctx, topic, p, off, 10000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatalf("%s/%d: nothing at %d below the end %d", topic, p, off, ti.PartitionsInfo[p].End)
		}
		out = append(out, recs...)
		off = recs[len(recs)-1].Offset + 1
	}
	return out
}

// checkMirrored checks that the destination holds every source record of
// the topic's partitions exactly once, in source order, with its source
// offset and its key, value, headers and timestamp, from origin; from, per
// partition, is the first source offset expected (retention removed those
// before). It returns the number of records checked.
func checkMirrored(t testing.TB, src, dst *stream.Service, origin, topic string, from map[int32]int64) int {
	t.Helper()
	ti, err := src.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for p := range ti.Partitions {
		want := readAll(t, src, topic, p)
		got := readAll(t, dst, topic, p)
		var mine []records.Record
		for _, r := range got {
			if header(r, HeaderOrigin) != origin {
				continue
			}
			var off int64
			fmt.Sscanf(header(r, HeaderSource)[len(topic)+1:], fmt.Sprintf("%d/%%d", p), &off)
			if off >= from[p] {
				mine = append(mine, r)
			}
		}
		i := 0
		for i < len(want) && want[i].Offset < from[p] {
			i++
		}
		want = want[i:]
		if len(mine) != len(want) {
			t.Fatalf("%s/%d: the destination holds %d records from %s, the source %d", topic, p, len(mine), origin, len(want))
		}
		for j, w := range want {
			g := mine[j]
			if s := header(g, HeaderSource); s != fmt.Sprintf("%s/%d/%d", topic, p, w.Offset) {
				t.Fatalf("%s/%d: destination record %d has source %q, want offset %d (duplicated or out of order)", topic, p, g.Offset, s, w.Offset)
			}
			if string(g.Key) != string(w.Key) || string(g.Value) != string(w.Value) || g.Timestamp != w.Timestamp || (g.Key == nil) != (w.Key == nil) {
				t.Fatalf("%s/%d offset %d: got key %q value %q ts %d, want %q %q %d", topic, p, w.Offset, g.Key, g.Value, g.Timestamp, w.Key, w.Value, w.Timestamp)
			}
			if len(g.Headers) != len(w.Headers)+2 {
				t.Fatalf("%s/%d offset %d: %d headers, want %d and the mirror's two", topic, p, w.Offset, len(g.Headers), len(w.Headers))
			}
			for k, h := range w.Headers {
				if g.Headers[k].Key != h.Key || string(g.Headers[k].Value) != string(h.Value) {
					t.Fatalf("%s/%d offset %d: header %d is %s=%q, want %s=%q", topic, p, w.Offset, k, g.Headers[k].Key, g.Headers[k].Value, h.Key, h.Value)
				}
			}
		}
		total += len(want)
	}
	return total
}

func header(r records.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// produce writes n records to topic/p: key k{i}, value, a header and a
// timestamp of their own.
func produce(t testing.TB, s *stream.Service, topic string, p int32, first, n int) {
	t.Helper()
	var recs []records.Record
	for i := first; i < first+n; i++ {
		var key []byte
		if i%7 != 0 { // some without a key
			key = []byte("k" + strconv.Itoa(i))
		}
		recs = append(recs, records.Record{
			Timestamp: 1_700_000_000_000 + int64(i),
			Key:       key,
			Value:     []byte(fmt.Sprintf("value %d of %s/%d", i, topic, p)),
			Headers:   []records.Header{{Key: "h", Value: []byte(strconv.Itoa(i))}},
		})
	}
	_, errs, err := s.Produce(context.Background(), topic, []stream.Batch{{Partition: p, Records: recs}})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
}

// waitCaughtUp waits until the destination's positions of origin reach the
// source's end on every partition of topic.
func waitCaughtUp(t testing.TB, src *stream.Service, dst *side, origin, topic string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if err := dst.streams.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := src.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		ti, err := src.Topic(topic)
		if err != nil {
			t.Fatal(err)
		}
		pos := dst.mirror.positionsOf(origin)
		done := true
		for _, p := range ti.PartitionsInfo {
			if p.End > p.Start && pos[tp{topic, p.Partition}].Next < p.End {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up within %v: source %+v, positions %+v", within, ti.PartitionsInfo, pos)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runMirror runs a mirror until the test ends.
func runMirror(t testing.TB, cfg Config) *Mirror {
	t.Helper()
	m, stop := startMirror(t, cfg)
	t.Cleanup(stop)
	return m
}

// startMirror runs a mirror until stop is called.
func startMirror(t testing.TB, cfg Config) (*Mirror, func()) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	return m, func() { cancel(); <-done }
}

func mustPattern(t testing.TB, s string) Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
