package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/memory"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// lightSeed: topics with records and traffic that goes on, so that every
// refresh has something new to show.
func lightSeed(t testing.TB, ta *testAgent) (stop func()) {
	t.Helper()
	ta.must(t, "POST", "/v1/topics", map[string]any{"name": "orders", "partitions": 3}, nil)
	ta.must(t, "POST", "/v1/topics", map[string]any{"name": "payments", "partitions": 2}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			body := fmt.Sprintf(`[{"key":"k%d","value":"{\"n\":%d}"}]`, i%50, i)
			if resp, err := http.Post(ta.base+"/v1/topics/orders/records", "application/json", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
		}
	}()
	return func() { cancel(); <-done }
}

type heapSample struct {
	used  float64
	nodes int64
}

func (b *browser) heap(t testing.TB) heapSample {
	t.Helper()
	var s heapSample
	b.do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
			return err
		}
		u, err := cdp.Call(ctx, tg, cdpruntime.GetHeapUsage, cdp.Empty{})
		if err != nil {
			return err
		}
		c, err := cdp.Call(ctx, tg, memory.GetDOMCounters, cdp.Empty{})
		if err != nil {
			return err
		}
		s.used, s.nodes = u.UsedSize, c.Nodes
		return nil
	}))
	return s
}

// TestConsoleHeapFlat keeps the console open, going from page to page
// while records arrive, and checks that the page's JavaScript heap and
// DOM stay flat. A few minutes by default (the client's history ring
// shortened so it fills during the warm-up); TWOWAY_CONSOLE_SOAK=1h runs
// an hour with the real 15-minute ring (warm-up 16 minutes; runs under
// 30 minutes keep the short ring).
func TestConsoleHeapFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("a soak of minutes: not with -short")
	}
	warm, run, ring := 30*time.Second, 100*time.Second, "&history=20"
	if s := os.Getenv("TWOWAY_CONSOLE_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TWOWAY_CONSOLE_SOAK=%q: %v", s, err)
		}
		run = d
		if d >= 30*time.Minute {
			warm, ring = 16*time.Minute, ""
		}
	}
	b := newBrowser(t)
	ta := startAgent(t)
	defer lightSeed(t, ta)()
	views := []string{"#/overview", "#/topics", "#/topics/orders", "#/groups", "#/bucket", "#/sql"}
	// TWOWAY_CONSOLE_SOAK_VIEWS=#/overview,#/bucket keeps to those views.
	if v := os.Getenv("TWOWAY_CONSOLE_SOAK_VIEWS"); v != "" {
		views = strings.Split(v, ",")
	}
	b.do(t, chromedp.Navigate(ta.base+"/ui/?soak"+ring+"#/overview"))
	b.wait(t, "the overview", pages[0].ready)
	cycle := func(d time.Duration) {
		end := time.Now().Add(d)
		for i := 0; time.Now().Before(end); i++ {
			if len(views) > 1 || i == 0 {
				eval[bool](t, b, fmt.Sprintf("location.hash = %q, true", views[i%len(views)]))
			}
			time.Sleep(3 * time.Second)
		}
		eval[bool](t, b, `location.hash = '#/overview', true`)
		time.Sleep(3 * time.Second)
	}
	cycle(warm)
	base := b.heap(t)
	t.Logf("after the warm-up of %v: JS heap %.0f KiB, %d DOM nodes", warm, base.used/1024, base.nodes)
	var samples []heapSample
	step := min(run/8, 5*time.Minute)
	for left := run; left > 0; left -= step {
		cycle(min(step, left))
		s := b.heap(t)
		samples = append(samples, s)
		t.Logf("JS heap %.0f KiB (%+.0f KiB), %d DOM nodes", s.used/1024, (s.used-base.used)/1024, s.nodes)
	}
	last := samples[len(samples)-1]
	// Flat: V8's own warm-up (compiled code, type feedback) adds about
	// 100 KiB over the first minutes, slowing down (a 6-minute run, every
	// 45 s: +32, +41, +76, +73, +79, +79, +82, +100 KiB); a leak of a chart, a table or the
	// history per second would be hundreds of KiB over the run.
	if last.used > base.used+384<<10 {
		t.Errorf("the JS heap grew from %.0f KiB to %.0f KiB over %v", base.used/1024, last.used/1024, run)
	}
	if last.nodes > base.nodes+300 {
		t.Errorf("the DOM grew from %d to %d nodes over %v", base.nodes, last.nodes, run)
	}
	if errs := b.takeErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestConsoleCost measures the console's own cost, with
// TWOWAY_CONSOLE_MEASURE=1 (it takes about two minutes and is a
// measurement, not a check): the CPU an idle agent uses with and without
// a console open on the overview (this process is the agent; Chromium is
// another), and the first load of /ui/ against a load of /healthz in the
// same browser. docs/BENCHMARKS.md has the figures.
func TestConsoleCost(t *testing.T) {
	if os.Getenv("TWOWAY_CONSOLE_MEASURE") == "" {
		t.Skip("a measurement: set TWOWAY_CONSOLE_MEASURE=1")
	}
	ta := startAgent(t)
	ta.must(t, "POST", "/v1/topics", map[string]any{"name": "orders", "partitions": 3}, nil)
	ta.must(t, "POST", "/v1/topics/orders/records", []map[string]any{{"value": "x"}}, nil)
	window := 30 * time.Second
	measure := func() float64 {
		c0, w0 := cpuTime(), time.Now()
		time.Sleep(window)
		return float64(cpuTime()-c0) / float64(time.Since(w0)) * 100
	}
	time.Sleep(5 * time.Second)
	idle := measure()
	b := newBrowser(t)
	b.do(t, chromedp.Navigate(ta.base+"/ui/#/overview"))
	b.wait(t, "the overview", pages[0].ready)
	time.Sleep(5 * time.Second)
	open := measure()
	t.Logf("agent CPU over %v: idle %.2f%%, with a console open on the overview %.2f%%: the console adds %.2f%% of one CPU (target ≤ 1%%)", window, idle, open, open-idle)

	b.do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
		return err
	}))
	load := func(url, ready string) (float64, float64) {
		b.do(t, chromedp.Navigate(url))
		if ready != "" {
			b.wait(t, "the page", ready)
		}
		ms := eval[float64](t, b, `(() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime; })()`)
		bytes := eval[float64](t, b, `performance.getEntriesByType('navigation')[0].transferSize + performance.getEntriesByType('resource').filter((e) => e.name.includes('/ui/')).reduce((a, e) => a + e.transferSize, 0)`)
		return ms, bytes
	}
	median := func(xs []float64) float64 { sort.Float64s(xs); return xs[len(xs)/2] }
	var base, ui []float64
	var size float64
	for i := range 11 {
		ms, _ := load(fmt.Sprintf("%s/healthz?n=%d", ta.base, i), "")
		base = append(base, ms)
		ms, size = load(fmt.Sprintf("%s/ui/?n=%d#/overview", ta.base, i), pages[0].ready)
		ui = append(ui, ms)
	}
	bm, um := median(base), median(ui)
	t.Logf("first load over loopback, cache off, median of 11: /healthz %.1f ms, /ui/ %.1f ms (%.1f× the baseline; target ≤ 200 ms), %.0f bytes transferred (target ≤ 300 KB)", bm, um, um/bm, size)
}
