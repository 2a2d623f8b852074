package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// rssBytes reads a process's resident set from /proc: all of it, and the
// anonymous part (heap, stacks; the rest is the binary's own pages).
func rssBytes(pid int) (total, anon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	field := func(name string) int64 {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+) kB`).FindSubmatch(b)
		if m == nil {
			return -1
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n << 10
	}
	return field("VmRSS"), field("RssAnon"), nil
}

// TestMemoryBudget floods an agent started with --memory 128MiB with
// producers and consumers on many connections and checks that its resident
// memory stays under 1.5 times the budget, sampled all along, and that
// every acknowledged record is read back once. Without the budget the same
// flood holds several hundred MiB (TWOWAY_MEMORY_BASELINE=1 runs it so, and
// only reports).
func TestMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20-second flood")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read resident memory")
	}
	const budget = 128 << 20
	args := []string{"--bucket", t.TempDir() + "/data", "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0"}
	baseline := os.Getenv("TWOWAY_MEMORY_BASELINE") != ""
	if !baseline {
		args = append(args, "--memory", "128MiB")
	}
	if os.Getenv("TWOWAY_MEMORY_GCTRACE") != "" {
		t.Setenv("GODEBUG", "gctrace=1")
	}
	a := startServe(t, args...)
	broker := regexp.MustCompile(` kafka=(\S+)`).FindStringSubmatch(a.Logs())[1]
	pid := a.cmd.Process.Pid

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const topic = "flood"
	if r := twoway(t, "topic", "create", topic, "--partitions", "8", "--server", a.base); r.code != 0 {
		t.Fatalf("topic create: %+v", r)
	}

	// Sample the agent's memory every 50 ms while the flood runs.
	var peak, peakAnon atomic.Int64
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if total, anon, err := rssBytes(pid); err == nil {
				if total > peak.Load() {
					peak.Store(total)
				}
				if anon > peakAnon.Load() {
					peakAnon.Store(anon)
				}
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	// Producers: each its own client (connections), large batches, as fast
	// as the agent takes them. Acknowledged records are remembered.
	type rec struct {
		p   int32
		off int64
	}
	var (
		ackMu  sync.Mutex
		acked  = map[rec][32]byte{}
		failed atomic.Int64
		bytesN atomic.Int64
	)
	flood := 20 * time.Second
	if baseline {
		flood = 30 * time.Second
	}
	floodCtx, stopFlood := context.WithTimeout(ctx, flood)
	defer stopFlood()
	noise := make([]byte, 4<<20)
	rand.Read(noise)
	var producers sync.WaitGroup
	for i := range 8 {
		producers.Add(1)
		go func() {
			defer producers.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic),
				kgo.MaxBufferedBytes(16<<20), kgo.ProducerLinger(5*time.Millisecond))
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			for n := 0; floodCtx.Err() == nil; n++ {
				// Incompressible values, as sensor data mostly is.
				at := (n * 4099) % (len(noise) - 16<<10)
				v := append([]byte(fmt.Sprintf("%d-%d-", i, n)), noise[at:at+16<<10]...)
				sum := sha256.Sum256(v)
				cl.Produce(floodCtx, &kgo.Record{Value: v}, func(r *kgo.Record, err error) {
					if err != nil {
						if failed.Add(1) == 1 {
							t.Logf("first produce error: %v", err)
						}
						return
					}
					bytesN.Add(int64(len(r.Value)))
					ackMu.Lock()
					acked[rec{r.Partition, r.Offset}] = sum
					ackMu.Unlock()
				})
			}
			cl.Flush(context.Background())
		}()
	}
	// Consumers reading the whole topic from the start all along, each on
	// its own connections.
	var consumers sync.WaitGroup
	for range 4 {
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(50<<20))
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			for floodCtx.Err() == nil {
				cl.PollFetches(floodCtx)
			}
		}()
	}
	producers.Wait()
	consumers.Wait()

	// Every acknowledged record reads back once, with its value.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ackMu.Lock()
	want := len(acked)
	ackMu.Unlock()
	seen := map[rec]bool{}
	readCtx, stopRead := context.WithTimeout(ctx, 90*time.Second)
	defer stopRead()
	for len(seen) < want && readCtx.Err() == nil {
		fs := cl.PollFetches(readCtx)
		fs.EachRecord(func(r *kgo.Record) {
			k := rec{r.Partition, r.Offset}
			sum, ok := acked[k]
			if !ok {
				// Produced but its acknowledgement was lost at the
				// deadline: fine, but it must be a record we sent.
				if !strings.Contains(string(r.Value[:min(len(r.Value), 24)]), "-") {
					t.Errorf("partition %d offset %d: a record nobody produced", r.Partition, r.Offset)
				}
				return
			}
			if seen[k] {
				t.Errorf("partition %d offset %d read twice", r.Partition, r.Offset)
			}
			if sha256.Sum256(r.Value) != sum {
				t.Errorf("partition %d offset %d: value differs", r.Partition, r.Offset)
			}
			seen[k] = true
		})
	}
	close(stopSampling)
	sampling.Wait()
	if len(seen) != want {
		t.Errorf("read back %d of %d acknowledged records", len(seen), want)
	}
	mb := func(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
	t.Logf("%d records (%s) acknowledged in %v (%.0f MB/s), %d failed; resident memory peak %s (anonymous %s), budget %s",
		want, mb(bytesN.Load()), flood, float64(bytesN.Load())/flood.Seconds()/1e6, failed.Load(), mb(peak.Load()), mb(peakAnon.Load()), mb(budget))
	if os.Getenv("TWOWAY_MEMORY_GCTRACE") != "" {
		lines := strings.Split(a.Logs(), "\n")
		t.Logf("agent log tail:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	if want == 0 {
		t.Fatal("nothing was acknowledged")
	}
	if !baseline && peak.Load() > budget*3/2 {
		t.Errorf("resident memory peaked at %s, above 1.5 × the %s budget", mb(peak.Load()), mb(budget))
	}
}
