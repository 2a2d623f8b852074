package stream

// "Many writers, one truth": several agents in separate OS processes produce
// to the same bucket while faults are injected into their bucket calls and
// one of them is killed with SIGKILL and restarted. A checker then verifies
// that every acknowledged record is readable exactly once at the offset it
// was acknowledged with, that offsets are dense, that every agent reads the
// same records in the same order, and that nothing appears that was never
// produced.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

const (
	truthTopic      = "truth"
	truthPartitions = 4
	envTruthChild   = "TWOWAY_TRUTH_CHILD"
)

// truthLogOptions make checkpoints, GC and lease changes happen during the
// run, so that they too are exercised under kills and faults.
func truthLogOptions() commitlog.Options {
	return commitlog.Options{
		Linger:             2 * time.Millisecond,
		InlineMax:          2 << 10, // some commits inline, some with chunks
		PollMin:            2 * time.Millisecond,
		PollMax:            50 * time.Millisecond,
		Grace:              2 * time.Second,
		CheckpointCommits:  50,
		CheckpointInterval: 200 * time.Millisecond,
		LeaseDuration:      600 * time.Millisecond,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// truthOptions also compact the index during the run.
func truthOptions() Options {
	return Options{
		Log:     truthLogOptions(),
		Compact: CompactOptions{Interval: 100 * time.Millisecond, Age: 200 * time.Millisecond, MinSegments: 8, Target: 64 << 10},
	}
}

func TestManyWritersOneTruthFile(t *testing.T) {
	runTruth(t, "file://"+t.TempDir(), 0)
}

func TestManyWritersOneTruthS3(t *testing.T) {
	url := os.Getenv("TWOWAY_TEST_S3_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TWOWAY_TEST_S3_URL is not set under CI: the S3 tests must run (make test starts MinIO)")
		}
		t.Skip("TWOWAY_TEST_S3_URL not set; `make test` runs this against MinIO")
	}
	runTruth(t, withPrefix(t, url, fmt.Sprintf("truth-%d", time.Now().UnixNano())), 0)
}

// withPrefix adds a path segment to an s3:// URL's prefix.
func withPrefix(t *testing.T, raw, seg string) string {
	t.Helper()
	q := ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw, q = raw[:i], raw[i:]
	}
	return strings.TrimSuffix(raw, "/") + "/" + seg + q
}

type child struct {
	cmd  *exec.Cmd
	done chan error
}

func startChild(t *testing.T, url, dir string, seed uint64, agent, incarnation int, dur time.Duration) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTruthChild$", "-test.v")
	cmd.Env = append(os.Environ(),
		envTruthChild+"=1",
		"TRUTH_URL="+url,
		"TRUTH_DIR="+dir,
		fmt.Sprintf("TRUTH_AGENT=%d", agent),
		fmt.Sprintf("TRUTH_INCARNATION=%d", incarnation),
		"TRUTH_DURATION="+dur.String(),
		fmt.Sprintf("TRUTH_SEED=%d", seed),
	)
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("agent%d-%d.log", agent, incarnation)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait(); out.Close() }()
	return c
}

// runTruth runs the checker on url with the options, faults and kill that
// seed draws (drawTruth; 0 is the fixed run).
func runTruth(t *testing.T, url string, seed uint64) {
	ctx := context.Background()
	dir := t.TempDir()
	draw := drawTruth(seed)
	b, err := bucketurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := Open(ctx, b, draw.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(ctx, TopicConfig{Name: truthTopic, Partitions: truthPartitions}); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	const agents = 3
	dur := 6 * time.Second
	children := map[int]*child{}
	for a := range agents {
		children[a] = startChild(t, url, dir, seed, a, 0, dur)
	}
	// Kill agent 1 mid-run, without warning, and start it again.
	time.Sleep(dur * time.Duration(draw.killAt) / 1000)
	victim := children[1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	children[3] = startChild(t, url, dir, seed, 1, 1, dur/2)
	live := []string{"0-0", "2-0", "1-1"}
	deadline := time.Now().Add(2 * time.Minute)
	for _, id := range live {
		for {
			if _, err := os.Stat(filepath.Join(dir, "done-"+id)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
				for _, l := range logs {
					out, _ := os.ReadFile(l)
					t.Logf("%s:\n%s", l, out)
				}
				t.Fatalf("agent %s did not finish producing", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Everyone has stopped producing: now every agent must read the same.
	if err := os.WriteFile(filepath.Join(dir, "verify"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for a, c := range children {
		if a == 1 {
			continue
		}
		select {
		case err := <-c.done:
			if err != nil {
				out, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("agent%d-%d.log", a%agents, a/agents)))
				t.Fatalf("agent %d failed: %v\n%s", a, err, out)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("agent %d did not finish", a)
		}
	}

	for _, id := range live {
		out, _ := os.ReadFile(filepath.Join(dir, "agent"+id+".log"))
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "injected") {
				t.Log(strings.TrimSpace(l))
			}
		}
	}
	acked, attempted := readTruthFiles(t, dir)
	if len(acked) < 100 {
		t.Fatalf("only %d records acknowledged: the run did too little to prove anything", len(acked))
	}
	// Check through a fresh agent on the bare bucket, without faults.
	checker, err := Open(ctx, b, draw.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Close()
	checkTruth(t, checker, acked, attempted)
	want := digestOf(checker, t)
	for _, id := range live {
		got, err := os.ReadFile(filepath.Join(dir, "digest-"+id))
		if err != nil {
			t.Fatalf("agent %s wrote no digest: %v", id, err)
		}
		if string(got) != want {
			t.Fatalf("agent %s read a different history (digest %s, checker %s)", id, got, want)
		}
	}
	t.Logf("acknowledged %d records (of %d attempted) across %d agent processes; %d partitions dense and agreed", len(acked), len(attempted), agents+1, truthPartitions)
}

type ack struct {
	partition int32
	offset    int64
}

// readTruthFiles reads what every child acknowledged and attempted. A line
// cut short by SIGKILL is ignored (its record was not acknowledged to us).
func readTruthFiles(t *testing.T, dir string) (map[string]ack, map[string]bool) {
	acked := map[string]ack{}
	attempted := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.acks"))
	for _, f := range files {
		forEachLine(t, f, func(line string) {
			var v string
			var p int32
			var o int64
			if _, err := fmt.Sscanf(line, "%s %d %d", &v, &p, &o); err != nil {
				t.Fatalf("%s: bad ack line %q", f, line)
			}
			if prev, ok := acked[v]; ok {
				t.Fatalf("%s acknowledged twice (%v and %d/%d)", v, prev, p, o)
			}
			acked[v] = ack{p, o}
		})
	}
	files, _ = filepath.Glob(filepath.Join(dir, "*.attempts"))
	for _, f := range files {
		forEachLine(t, f, func(line string) { attempted[line] = true })
	}
	return acked, attempted
}

func forEachLine(t *testing.T, path string, fn func(string)) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	// The last element is "" after a complete final line, or a torn line.
	for _, l := range lines[:len(lines)-1] {
		fn(l)
	}
}

// checkTruth reads every partition from the start and verifies the
// invariants.
func checkTruth(t *testing.T, s *Service, acked map[string]ack, attempted map[string]bool) {
	t.Helper()
	seen := map[string]ack{}
	for p := int32(0); p < truthPartitions; p++ {
		recs := readAll(t, s, p)
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d: offsets are not dense", p, i, r.Offset)
			}
			v := string(r.Value)
			if !attempted[v] {
				t.Fatalf("partition %d offset %d holds %q, which no producer attempted", p, r.Offset, v)
			}
			if prev, dup := seen[v]; dup {
				t.Fatalf("%q appears twice: %v and %d/%d", v, prev, p, r.Offset)
			}
			seen[v] = ack{p, r.Offset}
		}
	}
	for v, a := range acked {
		got, ok := seen[v]
		if !ok {
			t.Fatalf("acknowledged record %q (%d/%d) is lost", v, a.partition, a.offset)
		}
		if got != a {
			t.Fatalf("acknowledged record %q was acknowledged at %d/%d but is at %d/%d", v, a.partition, a.offset, got.partition, got.offset)
		}
	}
}

func readAll(t *testing.T, s *Service, p int32) []records.Record {
	t.Helper()
	var out []records.Record
	end := int64(-1)
	if ti, err := s.Topic(truthTopic); err == nil {
		end = ti.PartitionsInfo[p].End
	}
	for off := int64(0); off < end; {
		recs, _, err := s.Read(context.Background(), truthTopic, p, off, 1000, 0)
		if err != nil {
			t.Fatalf("read %d/%d: %v", p, off, err)
		}
		if len(recs) == 0 {
			t.Fatalf("read %d/%d: nothing, end is %d", p, off, end)
		}
		out = append(out, recs...)
		off = recs[len(recs)-1].Offset + 1
	}
	return out
}

// digestOf hashes every partition's records in order: two agents with equal
// digests read the same records in the same order.
func digestOf(s *Service, t *testing.T) string {
	h := sha256.New()
	for p := int32(0); p < truthPartitions; p++ {
		for _, r := range readAll(t, s, p) {
			fmt.Fprintf(h, "%d %d %s\n", p, r.Offset, r.Value)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestTruthChild is the body of one agent process; it does nothing unless
// started by runTruth.
func TestTruthChild(t *testing.T) {
	if os.Getenv(envTruthChild) == "" {
		t.Skip("child process of the many-writers test")
	}
	ctx := context.Background()
	agent, _ := strconv.Atoi(os.Getenv("TRUTH_AGENT"))
	inc, _ := strconv.Atoi(os.Getenv("TRUTH_INCARNATION"))
	dur, _ := time.ParseDuration(os.Getenv("TRUTH_DURATION"))
	dir := os.Getenv("TRUTH_DIR")
	seed, _ := strconv.ParseUint(os.Getenv("TRUTH_SEED"), 10, 64)
	draw := drawTruth(seed)
	inner, err := bucketurl.Open(ctx, os.Getenv("TRUTH_URL"))
	if err != nil {
		t.Fatal(err)
	}
	fb := faultbucket.Wrap(inner, faultbucket.WithSeed(draw.faultSeed+uint64(agent*100+inc)))
	if err := fb.SetRules(
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.05},
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.05, UnknownOutcome: true},
		faultbucket.Rule{Op: faultbucket.OpGet, FailRate: 0.02},
		faultbucket.Rule{Op: faultbucket.OpGetRange, FailRate: 0.02},
		faultbucket.Rule{Op: faultbucket.OpAny, Jitter: time.Millisecond},
	); err != nil {
		t.Fatal(err)
	}
	var s *Service
	opening := time.Now()
	attempts := 1
	for ; ; attempts++ { // opening reads through faults too
		if s, err = Open(ctx, fb, draw.opts); err == nil {
			break
		}
		if attempts > 20 {
			t.Fatal(err)
		}
	}
	opened := time.Since(opening)
	name := fmt.Sprintf("%s/agent%d-%d", dir, agent, inc)
	acks, _ := os.OpenFile(name+".acks", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	tried, _ := os.OpenFile(name+".attempts", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := time.Now().Add(dur)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				var recs []records.Record
				var vals []string
				size := 1 + n%5
				for k := range size {
					v := fmt.Sprintf("a%d.%d-g%d-%d.%d", agent, inc, g, n, k)
					if n%7 == 0 {
						v += "-" + strings.Repeat("x", 900) // some batches go to chunks
					}
					vals = append(vals, v)
					recs = append(recs, records.Record{Key: []byte(v), Value: []byte(v)})
				}
				p := int32((g + n) % truthPartitions)
				// Attempts are recorded before producing, so the checker can
				// tell a retried record from an invented one.
				mu.Lock()
				for _, v := range vals {
					fmt.Fprintln(tried, v)
				}
				tried.Sync()
				mu.Unlock()
				bases, errs, err := s.Produce(ctx, truthTopic, []Batch{{Partition: p, Records: recs}})
				if err != nil || errs[0] != nil {
					continue // not acknowledged
				}
				mu.Lock()
				for k, v := range vals {
					fmt.Fprintf(acks, "%s %d %d\n", v, p, bases[0]+int64(k))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	acks.Sync()
	id := fmt.Sprintf("%d-%d", agent, inc)
	os.WriteFile(filepath.Join(dir, "done-"+id), nil, 0o644)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "verify")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no verify signal from the parent")
		}
	}
	// Report what this agent reads once every producer has stopped.
	if err := fb.SetRules(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "digest-"+id), []byte(digestOf(s, t)), 0o644)
	s.Close()
	st := &s.Log().Stats
	t.Logf("agent %d.%d: opened in %v (%d attempts); injected %d faults; commits %d, conflicts %d, unknown outcomes %d, checkpoints %d, objects collected %d, bytes compacted %d, reloads %d",
		agent, inc, opened.Round(time.Millisecond), attempts, fb.Injected(), st.Commits.Load(), st.Conflicts.Load(), st.UnknownOutcome.Load(), st.Checkpoints.Load(), st.Deleted.Load(), st.RewrittenBytes.Load(), st.Reloads.Load())
}
