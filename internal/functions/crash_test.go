package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/stream"
)

const envChild = "TWOWAY_FN_CHILD"

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
	return strings.TrimSuffix(raw, "/") + "/" + fmt.Sprintf("fn-%d", time.Now().UnixNano()) + q
}

// device-twin consumes telemetry in an agent process that is killed with
// SIGKILL and started again, over and over, while telemetry is produced,
// on a bucket with injected faults. Afterwards every device's count is the
// number of its readings and alerts holds exactly one record per reading
// above the threshold: every input record's effects happened once.
func TestDeviceTwinSurvivesSIGKILL(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		for lang, build := range guests(t) {
			t.Run(backend+"/"+lang, func(t *testing.T) {
				url := "file://" + t.TempDir()
				if backend == "s3" {
					url = s3URL(t)
				}
				runKills(t, url, build(t))
			})
		}
	}
}

func runKills(t *testing.T, url string, wasm []byte) {
	ctx := context.Background()
	b, err := bucketurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, b, Config{}) // no workers: only the children consume
	a.createTopic(t, "telemetry", 3)
	a.createTopic(t, "alerts", 2)
	deployTwin(t, a, wasm, map[string]string{"offline_after": "1h"})

	const devices, readings = 12, 900
	type reading struct {
		dev  string
		temp int
	}
	var produced []reading
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range readings {
			r := reading{fmt.Sprintf("dev-%d", rng.IntN(devices)), 40 + rng.IntN(80)}
			a.produce(t, "telemetry", r.dev, fmt.Sprintf(`{"temp": %d}`, r.temp))
			mu.Lock()
			produced = append(produced, r)
			mu.Unlock()
			// Paced over about 15 s, so that records arrive through
			// every kill and pause.
			if i%4 == 0 {
				select {
				case <-stop:
					return
				case <-time.After(60 * time.Millisecond):
				}
			}
		}
	}()

	// The children's logs stay when the test fails.
	dir, err := os.MkdirTemp("", "twoway-fn-kill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the agents' logs are in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	rng := rand.New(rand.NewPCG(3, 4))
	kills, inc := 0, 0
	start := func() *fnChild { inc++; return startFnChild(t, url, dir, inc) }
	cur := start()
	for {
		mu.Lock()
		done := len(produced) == readings
		mu.Unlock()
		if done && kills >= 6 {
			break
		}
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		if kills%2 == 1 {
			// A zombie: the agent stops (a long GC pause, a frozen VM)
			// long enough to lose its leases to a new agent, then
			// resumes with its batches in flight. Its commits must be
			// refused, whoever holds the lease.
			cur.signal(syscall.SIGSTOP)
			next := start()
			time.Sleep(3 * time.Second)
			cur.signal(syscall.SIGCONT)
			time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
			cur.kill(t)
			cur = next
		} else {
			cur.kill(t)
			cur = start()
		}
		kills++
	}
	// The last one runs until everything is consumed.
	a.waitCaughtUp(t, "device-twin", "telemetry", 60*time.Second)
	cur.kill(t)
	close(stop)
	wg.Wait()

	want := map[string]int{}
	hot := map[string]int{} // "dev" -> readings above 80
	for _, r := range produced {
		want[r.dev]++
		if r.temp > 80 {
			hot[r.dev]++
		}
	}
	for dev, n := range want {
		st := a.state(t, "device-twin", dev)
		if st["count"] != float64(n) {
			t.Fatalf("%s: count %v after %d kills, want %d (state %v)", dev, st["count"], kills, n, st)
		}
	}
	// Each alert names its input offset; the partition is its device's.
	seen := map[string]bool{}
	got := map[string]int{}
	for _, r := range a.readAll(t, "alerts") {
		var v struct {
			Device string  `json:"device"`
			Temp   float64 `json:"temp"`
			Offset int64   `json:"offset"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("alert %q: %v", r.Value, err)
		}
		id := fmt.Sprintf("%s@%d", v.Device, v.Offset)
		if seen[id] {
			t.Fatalf("alert for %s published twice (after %d kills)", id, kills)
		}
		seen[id] = true
		got[v.Device]++
	}
	for dev, n := range hot {
		if got[dev] != n {
			t.Fatalf("%s: %d alerts, want %d (after %d kills)", dev, got[dev], n, kills)
		}
	}
	if len(a.readAll(t, "device-twin.dlq")) != 0 {
		t.Fatal("records were dead-lettered")
	}
	t.Logf("%d readings, %d kills, %d alerts", len(produced), kills, len(seen))
}

type fnChild struct {
	cmd  *exec.Cmd
	done chan error
}

func startFnChild(t *testing.T, url, dir string, inc int) *fnChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFnChild$", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"=1", "FN_URL="+url, fmt.Sprintf("FN_SEED=%d", inc), "FN_CACHE="+filepath.Join(dir, "cache"))
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("child-%d.log", inc)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &fnChild{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL) })
	return c
}

func (c *fnChild) signal(sig syscall.Signal) { c.cmd.Process.Signal(sig) }

func (c *fnChild) kill(t *testing.T) {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.done <- nil // for a second kill
}

// TestFnChild is the agent process of TestDeviceTwinSurvivesSIGKILL: it
// consumes until it is killed.
func TestFnChild(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("child process of the SIGKILL test")
	}
	ctx := context.Background()
	inner, err := bucketurl.Open(ctx, os.Getenv("FN_URL"))
	if err != nil {
		t.Fatal(err)
	}
	var seed uint64
	fmt.Sscan(os.Getenv("FN_SEED"), &seed)
	fb := faultbucket.Wrap(inner, faultbucket.WithSeed(seed+100))
	if err := fb.SetRules(
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.03},
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.03, UnknownOutcome: true},
		faultbucket.Rule{Op: faultbucket.OpGet, FailRate: 0.01},
	); err != nil {
		t.Fatal(err)
	}
	streams := stream.New(stream.Options{})
	fns := New(Config{Streams: streams, Workers: true, LeaseDuration: time.Second, TimerTick: 50 * time.Millisecond, CacheDir: os.Getenv("FN_CACHE")})
	var set *module.Set
	for attempt := 0; ; attempt++ {
		set, err = module.Open(ctx, module.Config{Bucket: fb, Log: testLogOptions(), HTTP: http.NewServeMux()}, streams, fns)
		if err == nil {
			break
		}
		if attempt > 20 {
			t.Fatal(err)
		}
	}
	defer set.Close()
	time.Sleep(time.Hour)
}
