package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// repoRoot is the module's root directory.
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildMu sync.Mutex
	built   = map[string][]byte{}
)

// buildGo builds a Go guest package (relative to the repo root) with the
// real toolchain, GOOS=wasip1; ldflags are passed to the linker.
func buildGo(t testing.TB, pkg string, ldflags ...string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	id := pkg + fmt.Sprint(ldflags)
	if b := built[id]; b != nil {
		return b
	}
	out := filepath.Join(t.TempDir(), "guest.wasm")
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags="+strings.Join(ldflags, " "))
	}
	cmd := exec.Command("go", append(args, "./"+pkg)...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	built[id] = b
	return b
}

// buildAS builds the AssemblyScript device-twin with the npm toolchain
// that `make examples` installs. Without it the test skips, except in CI.
func buildAS(t testing.TB) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	const key = "assemblyscript"
	if b := built[key]; b != nil {
		return b
	}
	dir := filepath.Join(repoRoot(t), "examples", "device-twin", "assemblyscript")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", "asc")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the AssemblyScript toolchain is not installed (make examples installs it): %v", err)
		}
		t.Skip("the AssemblyScript toolchain is not installed: run make examples")
	}
	cmd := exec.Command("npm", "run", "--silent", "build")
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the AssemblyScript device-twin: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(filepath.Join(dir, "device-twin.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	built[key] = b
	return b
}

// guests are the device-twin builds every behaviour test runs on.
func guests(t *testing.T) map[string]func(testing.TB) []byte {
	return map[string]func(testing.TB) []byte{
		"go":             func(t testing.TB) []byte { return buildGo(t, "examples/device-twin/go") },
		"assemblyscript": buildAS,
	}
}

// agent is one in-process agent: streams and functions on a bucket.
type agent struct {
	reg     *prometheus.Registry
	set     *module.Set
	streams *stream.Service
	fns     *Module
	http    *httptest.Server
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testLogOptions() commitlog.Options {
	return commitlog.Options{
		PollMin:          time.Millisecond,
		PollMax:          20 * time.Millisecond,
		LeaseDuration:    time.Second,
		RegisterInterval: 200 * time.Millisecond,
		InlineMax:        1 << 20,
	}
}

func startAgent(t testing.TB, b bucket.Bucket, cfg Config) *agent {
	t.Helper()
	a := &agent{streams: stream.New(stream.Options{}), reg: prometheus.NewRegistry()}
	cfg.Streams = a.streams
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = time.Second
	}
	if cfg.TimerTick == 0 {
		cfg.TimerTick = 50 * time.Millisecond
	}
	a.fns = New(cfg)
	mux := http.NewServeMux()
	set, err := module.Open(context.Background(), module.Config{Bucket: b, Log: testLogOptions(), HTTP: mux, Logger: quiet(), Metrics: a.reg}, a.streams, a.fns)
	if err != nil {
		t.Fatal(err)
	}
	a.set = set
	a.http = httptest.NewServer(mux)
	t.Cleanup(a.close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := set.Log().WaitEnabled(ctx, "type:302"); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *agent) close() {
	a.http.Close()
	a.set.Close()
}

func fileBucket(t testing.TB) bucket.Bucket {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *agent) createTopic(t testing.TB, name string, parts int32) {
	t.Helper()
	if err := a.streams.CreateTopic(context.Background(), stream.TopicConfig{Name: name, Partitions: parts}); err != nil {
		t.Fatal(err)
	}
}

func (a *agent) produce(t testing.TB, topic, key, value string) {
	t.Helper()
	n, err := a.streams.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	p := a.streams.PickPartition([]byte(key), n)
	if _, errs, err := a.streams.Produce(context.Background(), topic, []stream.Batch{{Partition: p, Records: []records.Record{{Key: []byte(key), Value: []byte(value)}}}}); err != nil || errs[0] != nil {
		t.Fatalf("produce: %v %v", err, errs)
	}
}

// readAll reads every record of a topic.
func (a *agent) readAll(t testing.TB, topic string) []records.Record {
	t.Helper()
	ctx := context.Background()
	if err := a.set.Log().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ti, err := a.streams.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []records.Record
	for _, p := range ti.PartitionsInfo {
		for off := p.Start; off < p.End; {
			recs, _, err := a.streams.Read(ctx, topic, p.Partition, off, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				break
			}
			out = append(out, recs...)
			off = recs[len(recs)-1].Offset + 1
		}
	}
	return out
}

// waitCaughtUp waits until function fn has consumed every record of topic.
func (a *agent) waitCaughtUp(t testing.TB, fn, topic string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a.set.Log().Sync(context.Background())
		ti, err := a.streams.Topic(topic)
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for _, p := range ti.PartitionsInfo {
			pos, ok := a.fns.position(partKey{fn, topic, p.Partition})
			if p.End > p.Start && (!ok || pos < p.End) {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has not consumed %s after %v", fn, topic, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *agent) state(t testing.TB, fn, key string) map[string]any {
	t.Helper()
	v, ok, _, err := a.fns.ActorState(context.Background(), fn, key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		t.Fatalf("state of %s: %q: %v", key, v, err)
	}
	return m
}

func deployTwin(t testing.TB, a *agent, wasm []byte, config map[string]string) Deployment {
	t.Helper()
	d, err := a.fns.Deploy(context.Background(), DeployRequest{Name: "device-twin", Module: wasm,
		Grants:    []string{"state", "publish:alerts", "timers", "config", "log"},
		Subscribe: []string{"telemetry"}, HTTP: true, Config: config})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var _ = fmt.Sprint

// metric returns the value of the sample of name whose labels include
// want, and whether there is one.
func (a *agent) metric(t testing.TB, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}
