package module_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
)

// counters is a complete small module, written as a new capability would
// be: named counters that HTTP clients increment, kept in the log. It
// shows every part a module can contribute.
//
//   - an Owner applying two entry types of its own (gated, since an older
//     agent of the fleet would not know them);
//   - HTTP routes: POST /v1/counters/{name} increments, GET reads;
//   - a metric;
//   - a janitor task that writes a summary object into the bucket and
//     commits a reference to it;
//   - a collected prefix, so superseded summaries are deleted by GC.
type counters struct {
	st  *countersState
	log *commitlog.Log
	inc prometheus.Counter
}

const (
	typeIncrement uint16 = 60001 // {"name":"a","by":1}
	typeSummary   uint16 = 60002 // {"key":"counters/summaries/..."}
)

const summaryPrefix = "counters/summaries/"

func newCounters() *counters {
	return &counters{st: &countersState{n: map[string]int64{}}}
}

func (c *counters) Name() string              { return "counters" }
func (c *counters) Owners() []commitlog.Owner { return []commitlog.Owner{c.st} }
func (c *counters) Close() error              { return nil }
func (c *counters) value(name string) (v int64) {
	c.log.View(c.st, func() { v = c.st.n[name] })
	return
}

func (c *counters) Start(_ context.Context, env *module.Env) error {
	c.log = env.Log
	c.inc = prometheus.NewCounter(prometheus.CounterOpts{Name: "counters_increments_total", Help: "Increments committed by this agent."})
	if err := env.Metrics.Register(c.inc); err != nil {
		return err
	}
	env.HTTP.Handle("POST /v1/counters/{name}", http.HandlerFunc(c.increment))
	env.HTTP.Handle("GET /v1/counters/{name}", http.HandlerFunc(c.get))
	env.Log.AddTask(commitlog.Task{Name: "counters-summary", Every: 50 * time.Millisecond, Run: c.summarize})
	env.Log.CollectUnder(summaryPrefix)
	return nil
}

func (c *counters) increment(w http.ResponseWriter, r *http.Request) {
	data, _ := json.Marshal(map[string]any{"name": r.PathValue("name"), "by": 1})
	_, res, err := c.log.Propose(r.Context(), commitlog.Entry{Type: typeIncrement, Data: data})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	c.inc.Inc()
	fmt.Fprint(w, res[0])
}

func (c *counters) get(w http.ResponseWriter, r *http.Request) {
	fmt.Fprint(w, c.value(r.PathValue("name")))
}

// summarize writes the totals to a new object and commits a reference to
// it. The task's context bounds the pass, and with it how late the
// reference can be committed, so GC never deletes an object whose commit
// is still on its way.
func (c *counters) summarize(ctx context.Context, l *commitlog.Log) error {
	var body []byte
	var changed bool
	l.View(c.st, func() {
		body, _ = json.Marshal(c.st.n)
		changed = c.st.summarized != c.st.total
	})
	if !changed {
		return nil
	}
	key := fmt.Sprintf("%s%020d.json", summaryPrefix, time.Now().UnixNano())
	if _, err := l.Bucket().Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		return err
	}
	data, _ := json.Marshal(map[string]string{"key": key})
	_, _, err := l.Propose(ctx, commitlog.Entry{Type: typeSummary, Data: data})
	return err
}

// countersState is the Owner. Apply is deterministic and rejects what it
// cannot read; the log holds the lock that guards it.
type countersState struct {
	n          map[string]int64
	total      int64  // increments applied
	summarized int64  // total when the newest summary was committed
	summary    string // key of the newest summary
}

type countersSnap struct {
	N          map[string]int64 `json:"n"`
	Total      int64            `json:"total"`
	Summarized int64            `json:"summarized"`
	Summary    string           `json:"summary"`
}

func (s *countersState) Name() string         { return "counters" }
func (s *countersState) Types() []uint16      { return []uint16{typeIncrement, typeSummary} }
func (s *countersState) GatedTypes() []uint16 { return []uint16{typeIncrement, typeSummary} }
func (s *countersState) Reset()               { *s = countersState{n: map[string]int64{}} }
func (s *countersState) LiveObjects(f func(string)) {
	if s.summary != "" {
		f(s.summary)
	}
}

func (s *countersState) Apply(_ uint64, e commitlog.Entry) any {
	switch e.Type {
	case typeIncrement:
		var in struct {
			Name string `json:"name"`
			By   int64  `json:"by"`
		}
		if err := json.Unmarshal(e.Data, &in); err != nil || in.Name == "" {
			return fmt.Errorf("malformed increment: %q", e.Data)
		}
		s.n[in.Name] += in.By
		s.total++
		return s.n[in.Name]
	case typeSummary:
		var in struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(e.Data, &in); err != nil || !strings.HasPrefix(in.Key, summaryPrefix) {
			return fmt.Errorf("malformed summary: %q", e.Data)
		}
		s.summary, s.summarized = in.Key, s.total
	}
	return nil
}

// Snapshot copies the map (Apply changes it in place) while applying is
// paused; the encoding runs later.
func (s *countersState) Snapshot() func() ([]byte, error) {
	snap := countersSnap{N: make(map[string]int64, len(s.n)), Total: s.total, Summarized: s.summarized, Summary: s.summary}
	for k, v := range s.n {
		snap.N[k] = v
	}
	return func() ([]byte, error) { return json.Marshal(snap) }
}

func (s *countersState) Restore(b []byte) error {
	var snap countersSnap
	if err := json.Unmarshal(b, &snap); err != nil {
		return err
	}
	if snap.N == nil {
		snap.N = map[string]int64{}
	}
	*s = countersState{n: snap.N, total: snap.Total, summarized: snap.Summarized, summary: snap.Summary}
	return nil
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func exampleOptions() commitlog.Options {
	return commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond,
		LeaseDuration: 150 * time.Millisecond, RegisterInterval: 50 * time.Millisecond,
		CheckpointInterval: 100 * time.Millisecond, Grace: 2 * time.Second,
		Logger: discardLogger,
	}
}

// The example module end to end: its routes serve, its entries are
// enabled and applied, its task writes summaries and the core's GC
// collects the superseded ones under its prefix, and its state survives a
// restart (checkpoint and replay).
func TestExampleModule(t *testing.T) {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mux := http.NewServeMux()
	reg := prometheus.NewRegistry()
	c := newCounters()
	set, err := module.Open(ctx, module.Config{Bucket: b, Log: exampleOptions(), HTTP: mux, Metrics: reg, Logger: discardLogger}, c)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The types are gated: usable once the janitor has enabled them, which
	// it does at once since this agent is the only one.
	waitFor(t, "the counters' types enabled", func() bool { return set.Log().Enabled("type:60001") && set.Log().Enabled("type:60002") })

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"a", "b"}[i%2]
			resp, err := http.Post(srv.URL+"/v1/counters/"+name, "", nil)
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("increment: %d %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if got := httpGet(t, srv.URL+"/v1/counters/a"); got != "10" {
		t.Fatalf("counter a = %s, want 10", got)
	}
	if got := testutilCounter(t, reg, "counters_increments_total"); got != 20 {
		t.Fatalf("metric = %v, want 20", got)
	}

	// The task summarized the totals; a later increment makes another
	// summary, and GC deletes the first after Grace.
	var first string
	waitFor(t, "a summary", func() bool {
		set.Log().View(c.st, func() { first = c.st.summary })
		return first != ""
	})
	if _, err := http.Post(srv.URL+"/v1/counters/a", "", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second summary", func() bool {
		var cur string
		set.Log().View(c.st, func() { cur = c.st.summary })
		return cur != first
	})
	waitFor(t, "the superseded summary collected", func() bool {
		_, _, err := bucket.ReadAll(ctx, b, first)
		return bucket.IsNotFound(err)
	})
	body, _, err := bucket.ReadAll(ctx, b, func() (k string) { set.Log().View(c.st, func() { k = c.st.summary }); return }())
	if err != nil {
		t.Fatalf("the live summary: %v", err)
	}
	if !strings.Contains(string(body), `"a":11`) {
		t.Fatalf("summary %s", body)
	}
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart restores the module's state from its snapshot and the
	// commits after it.
	c2 := newCounters()
	set2, err := module.Open(ctx, module.Config{Bucket: b, Log: exampleOptions(), Logger: discardLogger}, c2)
	if err != nil {
		t.Fatal(err)
	}
	defer set2.Close()
	if a, bb := c2.value("a"), c2.value("b"); a != 11 || bb != 10 {
		t.Fatalf("after restart a=%d b=%d, want 11 and 10", a, bb)
	}
}

// An agent that lacks the module does not stop while the module's agent
// runs beside it: the types stay disabled until it leaves.
func TestModuleTypesWaitForTheFleet(t *testing.T) {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	oldOpts := exampleOptions()
	oldOpts.NoJanitor = true
	old, err := module.Open(ctx, module.Config{Bucket: b, Log: oldOpts, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	c := newCounters()
	set, err := module.Open(ctx, module.Config{Bucket: b, Log: exampleOptions(), Logger: discardLogger}, c)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	time.Sleep(500 * time.Millisecond)
	if set.Log().Enabled("type:60001") {
		t.Fatal("enabled while an agent without the module is live")
	}
	if _, _, err := set.Log().Propose(ctx, commitlog.Entry{Type: typeIncrement, Data: []byte(`{"name":"a","by":1}`)}); err == nil {
		t.Fatal("a gated entry was committed while an older agent runs")
	}
	if err := old.Log().Err(); err != nil {
		t.Fatalf("the older agent stopped: %v", err)
	}
	old.Close()
	waitFor(t, "the counters' types enabled", func() bool { return set.Log().Enabled("type:60001") })
	if _, res, err := set.Log().Propose(ctx, commitlog.Entry{Type: typeIncrement, Data: []byte(`{"name":"a","by":1}`)}); err != nil || res[0] != int64(1) {
		t.Fatalf("increment after enabling: %v %v", res, err)
	}
}

// Two modules with one owner name are refused before the log opens.
func TestModulesMustNotCollide(t *testing.T) {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = module.Open(context.Background(), module.Config{Bucket: b, Log: exampleOptions(), Logger: discardLogger}, newCounters(), &renamed{newCounters()})
	if err == nil || !strings.Contains(err.Error(), "counters") {
		t.Fatalf("colliding owners: %v", err)
	}
}

type renamed struct{ *counters }

func (r *renamed) Name() string { return "counters-2" }

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func testutilCounter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
