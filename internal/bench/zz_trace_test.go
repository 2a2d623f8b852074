package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
)

type ev struct {
	start, end time.Time
	key        string
	size       int64
}

type tracer struct {
	bucket.Bucket
	mu  sync.Mutex
	evs []ev
	on  bool
}

func (t *tracer) PutIfAbsent(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	s := time.Now()
	i, err := t.Bucket.PutIfAbsent(ctx, key, body, size)
	if strings.Contains(key, "produce-") {
		t.mu.Lock()
		t.evs = append(t.evs, ev{s, time.Now(), key, size})
		t.mu.Unlock()
	}
	return i, err
}

func TestTraceProduce(t *testing.T) {
	u := os.Getenv("TRY_BUCKET")
	if u == "" {
		t.Skip()
	}
	b, _ := bucketurl.Open(t.Context(), u)
	tr := &tracer{Bucket: b}
	d, _ := time.ParseDuration(os.Getenv("TRY_DURATION"))
	l, _ := time.ParseDuration(os.Getenv("TRY_LINGER"))
	opts := ProduceOptions{Partitions: envInt("TRY_PARTS"), RecordSize: envInt("TRY_RS"), BatchSize: envInt("TRY_BS"), Producers: envInt("TRY_PROD"), Duration: d}
	opts.Log.Linger = l
	res, err := Produce(t.Context(), tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("produce %.0f MB/s ratio %.2f p50 %.1f commits %d chunks %d avg %.0f\n", res.ProduceMBs, res.ThroughputRatio, res.ProduceP50Ms, res.Commits, res.Chunks, res.AvgChunkBytes)
	evs := tr.evs
	sort.Slice(evs, func(i, j int) bool { return evs[i].start.Before(evs[j].start) })
	t0 := evs[0].start
	// union busy time and mean concurrency of chunk uploads, commit time
	type pt struct {
		t time.Time
		d int
	}
	var pts []pt
	var commitT, chunkT time.Duration
	var ncommit int
	for _, e := range evs {
		if strings.Contains(e.key, "/log/") {
			commitT += e.end.Sub(e.start)
			ncommit++
			continue
		}
		chunkT += e.end.Sub(e.start)
		pts = append(pts, pt{e.start, 1}, pt{e.end, -1})
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].t.Before(pts[j].t) })
	var busy time.Duration
	cur := 0
	for i, p := range pts {
		if cur > 0 {
			busy += p.t.Sub(pts[i-1].t)
		}
		cur += p.d
	}
	span := evs[len(evs)-1].end.Sub(t0)
	fmt.Printf("span %v: chunk uploads busy %.0f%% of the time, mean in flight when busy %.2f; commits %d, mean %.1fms, total %.0f%% of span\n",
		span, 100*busy.Seconds()/span.Seconds(), chunkT.Seconds()/busy.Seconds(), ncommit, commitT.Seconds()*1000/float64(ncommit), 100*commitT.Seconds()/span.Seconds())
	n := 0
	if os.Getenv("TRY_SHOW") == "" {
		n = 1 << 30
	}
	for _, e := range evs {
		ms := func(x time.Time) float64 { return float64(x.Sub(t0).Microseconds()) / 1000 }
		if ms(e.start) > 2000 && n < 80 {
			kind := "CHUNK"
			if strings.Contains(e.key, "/log/") {
				kind = "commit"
			}
			fmt.Printf("%8.1f %8.1f %6.1f %-6s %d\n", ms(e.start), ms(e.end), ms(e.end)-ms(e.start), kind, e.size)
			n++
		}
	}
}
