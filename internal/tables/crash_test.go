package tables

import (
	"context"
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

const envChild = "TWOWAY_TABLES_CHILD"

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
	return strings.TrimSuffix(raw, "/") + "/" + fmt.Sprintf("tables-%d", time.Now().UnixNano()) + q
}

// The materializing agent is killed with SIGKILL, or frozen long enough
// to lose its lease and then resumed (a zombie with a commit in flight),
// at least 6 times while records are produced, on a bucket that fails
// some writes (some with an unknown outcome). Afterwards the table and its
// dead-letter table hold every record exactly once: the count, and each
// (_partition, _offset) once, read back by iceberg-go.
func TestMaterializerSurvivesSIGKILL(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			url := "file://" + t.TempDir()
			if backend == "s3" {
				url = s3URL(t)
			}
			runKills(t, url)
		})
	}
}

func runKills(t *testing.T, url string) {
	ctx := context.Background()
	b, err := bucketurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, b, Config{}) // no workers: only the children materialize
	a.createTopic(t, "orders", 3)
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema, CommitInterval: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	const batches = 240
	var mu sync.Mutex
	produced, bad := 0, 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range batches {
			var vals []string
			n := 1 + rng.IntN(8)
			nbad := 0
			for j := range n {
				if rng.IntN(20) == 0 {
					vals = append(vals, `{"id": true}`)
					nbad++
					continue
				}
				vals = append(vals, fmt.Sprintf(`{"id": %d, "amount": 1.5}`, i*10+j))
			}
			a.produce(t, "orders", int32(rng.IntN(3)), vals...)
			mu.Lock()
			produced += n
			bad += nbad
			mu.Unlock()
			time.Sleep(60 * time.Millisecond) // about 15 s in all
		}
	}()
	dir, err := os.MkdirTemp("", "twoway-tables-kill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("TWOWAY_KEEP_LOGS") != "" {
			t.Logf("the agents' logs are in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	rng := rand.New(rand.NewPCG(3, 4))
	kills, inc := 0, 0
	start := func() *child { inc++; return startChild(t, url, dir, inc) }
	cur := start()
	for {
		mu.Lock()
		done := produced > 0 && inc > 0 && kills >= 6
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(time.Duration(700+rng.IntN(1000)) * time.Millisecond)
		if kills%2 == 1 {
			cur.signal(syscall.SIGSTOP)
			next := start()
			time.Sleep(3 * time.Second)
			cur.signal(syscall.SIGCONT)
			time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
			cur.kill()
			cur = next
		} else {
			cur.kill()
			cur = start()
		}
		kills++
	}
	wg.Wait()
	tb := a.waitMaterialized(t, "orders", 90*time.Second)
	cur.kill()

	rows := icebergScan(t, b, tb.Main.Metadata)
	var dl []map[string]any
	if tb.DLQ.Metadata != "" {
		dl = icebergScan(t, b, tb.DLQ.Metadata)
	}
	seen := map[string]bool{}
	for _, r := range append(rows, dl...) {
		k := fmt.Sprint(r["_partition"], "/", r["_offset"])
		if seen[k] {
			t.Fatalf("record %s is in the tables twice (after %d kills)", k, kills)
		}
		seen[k] = true
	}
	if len(rows)+len(dl) != produced || len(dl) != bad {
		t.Fatalf("table %d rows + %d dead letters, want %d records of which %d bad (after %d kills)", len(rows), len(dl), produced, bad, kills)
	}
	if tb.Rows != int64(len(rows)) || tb.DLQRows != int64(len(dl)) {
		t.Fatalf("the pointer counts %d rows and %d dead letters; the files hold %d and %d", tb.Rows, tb.DLQRows, len(rows), len(dl))
	}
	t.Logf("%d records (%d bad), %d kills, %d commits", produced, bad, kills, tb.Commits)
}

type child struct {
	cmd  *exec.Cmd
	done chan error
}

func startChild(t *testing.T, url, dir string, inc int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTablesChild$", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"=1", "TABLES_URL="+url, fmt.Sprintf("TABLES_SEED=%d", inc))
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("child-%d.log", inc)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL) })
	return c
}

func (c *child) signal(sig syscall.Signal) { c.cmd.Process.Signal(sig) }

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.done <- nil // for a second kill
}

// TestTablesChild is the agent process of TestMaterializerSurvivesSIGKILL:
// it materializes until it is killed.
func TestTablesChild(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("child process of the SIGKILL test")
	}
	ctx := context.Background()
	inner, err := bucketurl.Open(ctx, os.Getenv("TABLES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	var seed uint64
	fmt.Sscan(os.Getenv("TABLES_SEED"), &seed)
	fb := faultbucket.Wrap(inner, faultbucket.WithSeed(seed+100))
	if err := fb.SetRules(
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.03},
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.03, UnknownOutcome: true},
		faultbucket.Rule{Op: faultbucket.OpPut, FailRate: 0.03},
		faultbucket.Rule{Op: faultbucket.OpGet, FailRate: 0.01},
	); err != nil {
		t.Fatal(err)
	}
	streams := stream.New(stream.Options{})
	tm := New(Config{Streams: streams, Workers: true, LeaseDuration: time.Second, CacheDir: t.TempDir()})
	var set *module.Set
	for attempt := 0; ; attempt++ {
		set, err = module.Open(ctx, module.Config{Bucket: fb, Log: testLogOptions(), HTTP: http.NewServeMux()}, streams, tm)
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
