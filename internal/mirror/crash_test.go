package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/internal/stream"
)

const envChild = "TWOWAY_MIRROR_CHILD"

// envLong makes TestMirrorSurvivesKillsAndLinkCuts run for minutes with
// link cuts of tens of seconds instead of about half a minute in all.
const envLong = "TWOWAY_MIRROR_LONG"

// While producers write to the source, the mirror process is killed with
// SIGKILL over and over (sometimes frozen while another one starts, then
// resumed: two mirrors at once), and its link to the destination is cut
// (every bucket call fails, after a delay) for a while at a time, on top
// of injected errors and unknown outcomes. Afterwards the destination holds
// every source record exactly once, in source order per partition, with
// its source offset, key, value, headers and timestamp.
func TestMirrorSurvivesKillsAndLinkCuts(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for half a minute; not with -short")
	}
	for _, backend := range []string{"file", "s3"} {
		t.Run("dir-to-"+backend, func(t *testing.T) {
			dst := "file://" + t.TempDir()
			if backend == "s3" {
				dst = s3URL(t)
			}
			runKills(t, "file://"+t.TempDir(), dst)
		})
	}
}

func runKills(t *testing.T, srcURL, dstURL string) {
	long := os.Getenv(envLong) != ""
	src := mustOpenSide(t, openURL(t, srcURL))
	ctx := context.Background()
	if err := src.streams.CreateTopic(ctx, stream.TopicConfig{Name: "telemetry", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	duration := 12 * time.Second
	cut := func(rng *rand.Rand) time.Duration { return time.Duration(1500+rng.IntN(1500)) * time.Millisecond }
	if long {
		duration = 4 * time.Minute
		cut = func(rng *rand.Rand) time.Duration { return time.Duration(20+rng.IntN(20)) * time.Second }
	}
	// The producers: batches of 1 to 20 records, paced over the run.
	var produced sync.WaitGroup
	stopProducing := make(chan struct{})
	batches := 0
	produced.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		next := [3]int{}
		for {
			select {
			case <-stopProducing:
				return
			case <-time.After(time.Duration(5+rng.IntN(20)) * time.Millisecond):
			}
			p := rng.IntN(3)
			n := 1 + rng.IntN(20)
			produce(t, src.streams, "telemetry", int32(p), next[p], n)
			next[p] += n
			batches++
		}
	})

	dir, err := os.MkdirTemp("", "twoway-mirror-kill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the mirrors' logs are in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	linkDown := filepath.Join(dir, "link-down")
	rng := rand.New(rand.NewPCG(3, 4))
	kills, cuts, zombies, inc := 0, 0, 0, 0
	start := func() *child { inc++; return startChild(t, srcURL, dstURL, dir, inc) }
	cur := start()
	began := time.Now()
	for time.Since(began) < duration || kills < 5 || cuts < 2 {
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		switch rng.IntN(4) {
		case 0:
			// The link goes down for a while: every call the mirror makes
			// to the destination fails after a delay.
			if err := os.WriteFile(linkDown, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			time.Sleep(cut(rng))
			os.Remove(linkDown)
			cuts++
		case 1:
			// A zombie: frozen while a new mirror starts, then resumed
			// with its commit in flight before it dies.
			cur.signal(syscall.SIGSTOP)
			next := start()
			time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
			cur.signal(syscall.SIGCONT)
			time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
			cur.kill()
			cur = next
			zombies++
			kills++
		default:
			cur.kill()
			cur = start()
			kills++
		}
	}
	close(stopProducing)
	produced.Wait()
	// The last mirror runs until everything is across.
	dst := mustOpenSide(t, openURL(t, dstURL))
	waitCaughtUp(t, src.streams, dst, "edge", "telemetry", 2*time.Minute)
	cur.kill()
	n := checkMirrored(t, src.streams, dst.streams, "edge", "telemetry", nil)
	if n == 0 {
		t.Fatal("nothing mirrored")
	}
	t.Logf("%d records in %d batches mirrored exactly once through %d kills (%d with a zombie) and %d link cuts", n, batches, kills, zombies, cuts)
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(t *testing.T, srcURL, dstURL, dir string, inc int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMirrorChild$", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"=1", "MIRROR_FROM="+srcURL, "MIRROR_TO="+dstURL, "MIRROR_CTL="+dir, "MIRROR_SEED="+strconv.Itoa(inc))
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("mirror-%d.log", inc)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); out.Close(); close(c.done) }()
	t.Cleanup(c.kill)
	return c
}

func (c *child) signal(sig syscall.Signal) { c.cmd.Process.Signal(sig) }

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// TestMirrorChild is the mirror process of TestMirrorSurvivesKillsAndLinkCuts:
// it mirrors until it is killed, through a destination bucket with faults.
func TestMirrorChild(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("child process of the SIGKILL test")
	}
	ctx := context.Background()
	seed, _ := strconv.Atoi(os.Getenv("MIRROR_SEED"))
	inner, err := bucketurl.Open(ctx, os.Getenv("MIRROR_TO"))
	if err != nil {
		t.Fatal(err)
	}
	fb := faultbucket.Wrap(inner, faultbucket.WithSeed(uint64(seed)+100))
	normal := []faultbucket.Rule{
		{Op: faultbucket.OpPutIfAbsent, FailRate: 0.03},
		{Op: faultbucket.OpPutIfAbsent, FailRate: 0.03, UnknownOutcome: true},
		{Op: faultbucket.OpGet, FailRate: 0.01},
		{Op: faultbucket.OpAny, Latency: time.Millisecond, Jitter: 3 * time.Millisecond},
	}
	down := []faultbucket.Rule{{Op: faultbucket.OpAny, FailRate: 1, Latency: 50 * time.Millisecond, Jitter: 100 * time.Millisecond}}
	linkDown := filepath.Join(os.Getenv("MIRROR_CTL"), "link-down")
	isDown, set := false, false
	setLink := func() {
		_, err := os.Stat(linkDown)
		now := err == nil
		if set && now == isDown {
			return
		}
		set = true
		isDown = now
		rules := normal
		if now {
			rules = down
		}
		if err := fb.SetRules(rules...); err != nil {
			panic(err)
		}
	}
	setLink()
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			setLink()
		}
	}()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	src, err := openSide(ctx, openURL(t, os.Getenv("MIRROR_FROM")), true)
	if err != nil {
		t.Fatal(err)
	}
	var dst *side
	for attempt := 0; ; attempt++ {
		if dst, err = openSide(ctx, fb, true); err == nil {
			break
		}
		logger.Info("destination not open yet", "err", err)
		time.Sleep(100 * time.Millisecond)
	}
	m, err := New(Config{Source: "edge", Topics: mustPattern(t, "telemetry"), From: src.streams, To: dst.streams, ToMirror: dst.mirror,
		MaxBytes: 8 << 10, Poll: 10 * time.Millisecond, Logger: logger, Label: "faulty"})
	if err != nil {
		t.Fatal(err)
	}
	m.Run(ctx)
}
