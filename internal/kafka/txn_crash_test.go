package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/stream"
)

// The exactly-once checker: a franz-go GroupTransactSession reads topic
// "in" and writes each record, transformed, to "out" in transactions
// (every fourth one aborted on purpose), read_committed, against three
// agent processes, while the agent coordinating the transactions is
// SIGKILLed and restarted three times. Afterwards a read_committed reader of
// "out" finds every record of "in" exactly once, and a read_uncommitted one
// finds the aborted copies too.

const (
	envTxnChild   = "TWOWAY_TXN_CHILD"
	txnCrashIn    = "in"
	txnCrashOut   = "out"
	txnCrashParts = 3
	txnCrashN     = 4000
)

func TestTxnExactlyOnceKillsFile(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process checker; run without -short")
	}
	runTxnCrash(t, "file://"+t.TempDir())
}

func TestTxnExactlyOnceKillsS3(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process checker; run without -short")
	}
	url := os.Getenv("TWOWAY_TEST_S3_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TWOWAY_TEST_S3_URL is not set under CI: the S3 tests must run (make test starts MinIO)")
		}
		t.Skip("TWOWAY_TEST_S3_URL not set; `make test` runs this against MinIO")
	}
	q := ""
	if i := strings.IndexByte(url, '?'); i >= 0 {
		url, q = url[:i], url[i:]
	}
	runTxnCrash(t, strings.TrimSuffix(url, "/")+fmt.Sprintf("/txn-%d", time.Now().UnixNano())+q)
}

type txnChild struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startTxnChild(t *testing.T, url, dir string, slot, inc int) *txnChild {
	t.Helper()
	addrFile := filepath.Join(dir, fmt.Sprintf("agent%d-%d.addr", slot, inc))
	cmd := exec.Command(os.Args[0], "-test.run=^TestTxnAgentChild$", "-test.v")
	cmd.Env = append(os.Environ(), envTxnChild+"=1", "TXN_URL="+url, "TXN_ADDR_FILE="+addrFile)
	out, err := os.Create(filepath.Join(dir, fmt.Sprintf("agent%d-%d.log", slot, inc)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &txnChild{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); out.Close(); close(c.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			c.addr = string(b)
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("agent %d.%d exited before listening; see %s", slot, inc, out.Name())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d.%d did not start listening", slot, inc)
		}
	}
}

// TestTxnAgentChild is one agent of the checker: streams, groups and Kafka
// on the bucket, until killed (or five minutes pass).
func TestTxnAgentChild(t *testing.T) {
	if os.Getenv(envTxnChild) == "" {
		t.Skip("child process of the exactly-once checker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := bucketurl.Open(ctx, os.Getenv("TXN_URL"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gm, err := groups.NewModule(groups.ModuleConfig{Coordinate: true, Coordinator: groups.Config{LeaseDuration: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := stream.Open(ctx, b, stream.Options{Log: commitlog.Options{
		Linger: 2 * time.Millisecond, PollMin: 2 * time.Millisecond, PollMax: 50 * time.Millisecond,
		LeaseDuration: time.Second, RegisterInterval: 200 * time.Millisecond,
		CheckpointCommits: 200, Logger: logger,
	}}, gm)
	if err != nil {
		t.Fatal(err)
	}
	coord := gm.Coordinator()
	srv := NewServer(Config{Service: svc, Addr: "127.0.0.1:0", Groups: coord, Logger: logger, TxnLeaseDuration: 1500 * time.Millisecond, AgentRefresh: 500 * time.Millisecond})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	host, port := srv.Advertised()
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if err := coord.Start(svc.Log(), addr, svc); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx)
	file := os.Getenv("TXN_ADDR_FILE")
	if err := os.WriteFile(file+".tmp", []byte(addr), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
}

func runTxnCrash(t *testing.T, url string) {
	dir := t.TempDir()
	children := make([]*txnChild, 3)
	incs := make([]int, 3)
	for i := range children {
		children[i] = startTxnChild(t, url, dir, i, 0)
	}
	var mu sync.Mutex
	seeds := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, c := range children {
			out = append(out, c.addr)
		}
		return out
	}
	admin := testClient(t, children[0].addr, kgo.SeedBrokers(seeds()...))
	createTopic(t, admin, txnCrashIn, txnCrashParts)
	createTopic(t, admin, txnCrashOut, txnCrashParts)
	var in []*kgo.Record
	for i := range txnCrashN {
		in = append(in, &kgo.Record{Topic: txnCrashIn, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "r-%05d", i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := admin.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The consume-transform-produce loop.
	var committedRecs, aborts, txns atomic.Int64
	stop := make(chan struct{})
	sessDone := make(chan error, 1)
	var restarts atomic.Int64
	go func() {
		// A session that gives up (End's errors are final) is replaced by
		// a new one, as a service would restart: its InitProducerId
		// fences the old producer and aborts what it left open.
		for n := 0; ; {
			sess, err := kgo.NewGroupTransactSession(
				kgo.SeedBrokers(seeds()...),
				kgo.TransactionalID("crash-tx"),
				kgo.TransactionTimeout(20*time.Second),
				kgo.ConsumerGroup("crash-g"),
				kgo.ConsumeTopics(txnCrashIn),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()),
				kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.FetchMaxWait(200*time.Millisecond),
				kgo.MetadataMinAge(100*time.Millisecond),
				kgo.RequestRetries(100),
				kgo.RetryTimeout(2*time.Minute),
			)
			if err != nil {
				sessDone <- err
				return
			}
			for ; ; n++ {
				select {
				case <-stop:
					sess.Close()
					sessDone <- nil
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				fs := sess.PollRecords(pctx, 40)
				pcancel()
				recs := fs.Records()
				if len(recs) == 0 {
					continue
				}
				if err := sess.Begin(); err != nil {
					sessDone <- fmt.Errorf("begin: %w", err)
					return
				}
				for _, r := range recs {
					out := &kgo.Record{Topic: txnCrashOut, Partition: r.Partition, Key: r.Key, Value: append([]byte("out-"), r.Value...)}
					sess.Produce(ctx, out, nil) // a failure aborts the transaction at End
				}
				abort := n%4 == 3
				if abort {
					// Send the records before aborting, so aborted data is
					// in the partitions for read_uncommitted to see.
					sess.Client().Flush(ctx)
				}
				committed, err := sess.End(ctx, kgo.TransactionEndTry(!abort))
				txns.Add(1)
				if err != nil {
					t.Logf("transaction %d: %v; starting a new session", n, err)
					restarts.Add(1)
					n++
					break
				}
				if committed {
					committedRecs.Add(int64(len(recs)))
				} else {
					aborts.Add(1)
				}
			}
			sess.Close()
			if restarts.Load() > 10 {
				sessDone <- errors.New("more than 10 session restarts")
				return
			}
		}
	}()

	// The killer: at a quarter, half and three quarters of the way, the
	// agent coordinating the transactions is SIGKILLed and restarted.
	kills := 0
	for _, at := range []int64{txnCrashN / 4, txnCrashN / 2, 3 * txnCrashN / 4} {
		for committedRecs.Load() < at {
			select {
			case err := <-sessDone:
				t.Fatalf("the transact session stopped after %d transactions: %v", txns.Load(), err)
			case <-ctx.Done():
				t.Fatalf("only %d records committed before the deadline", committedRecs.Load())
			case <-time.After(20 * time.Millisecond):
			}
		}
		addr := txnCoordinatorAddr(t, ctx, seeds())
		mu.Lock()
		slot := slices.IndexFunc(children, func(c *txnChild) bool { return c.addr == addr })
		mu.Unlock()
		if slot < 0 {
			t.Fatalf("the transaction coordinator %s is none of the agents %v", addr, seeds())
		}
		children[slot].cmd.Process.Signal(syscall.SIGKILL)
		<-children[slot].done
		kills++
		incs[slot]++
		c := startTxnChild(t, url, dir, slot, incs[slot])
		mu.Lock()
		children[slot] = c
		mu.Unlock()
		t.Logf("killed the transaction coordinator (agent %d) with %d records committed; restarted it at %s", slot, committedRecs.Load(), c.addr)
	}

	// Wait for everything to be committed, as a read_committed reader of
	// "out" sees it, then stop the loop.
	reader := testClient(t, seeds()[0], kgo.SeedBrokers(seeds()...), kgo.ConsumeTopics(txnCrashOut),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[string]int{}
	total := 0
	for len(seen) < txnCrashN {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed sees %d of %d records of %s before the deadline (%d transactions, %d aborted)", len(seen), txnCrashN, txnCrashOut, txns.Load(), aborts.Load())
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	}
	close(stop)
	select {
	case err := <-sessDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the transact session did not stop")
	}

	committed := readAllValues(t, seeds(), txnCrashOut, true)
	uncommitted := readAllValues(t, seeds(), txnCrashOut, false)
	counts := map[string]int{}
	for _, v := range committed {
		counts[v]++
	}
	for i := range txnCrashN {
		v := fmt.Sprintf("out-r-%05d", i)
		if counts[v] != 1 {
			t.Errorf("%s is in %s %d times (read_committed), want once", v, txnCrashOut, counts[v])
		}
		delete(counts, v)
	}
	if len(counts) != 0 || len(committed) != txnCrashN {
		t.Errorf("read_committed finds %d records, %d of them not from %s", len(committed), len(counts), txnCrashIn)
	}
	if aborts.Load() == 0 || len(uncommitted) < len(committed)+int(aborts.Load()) {
		t.Errorf("%d transactions aborted; read_uncommitted finds %d records, read_committed %d: the aborted ones must be visible uncommitted only", aborts.Load(), len(uncommitted), len(committed))
	}
	// The group's offsets, committed only inside the transactions, are the
	// end of the input: each copied batch's offsets landed with it.
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = "crash-g"
	ofc := testClient(t, seeds()[0], kgo.SeedBrokers(seeds()...))
	ofr, err := of.RequestWith(ctx, ofc)
	for err != nil || ofr.ErrorCode != 0 {
		// The group's coordinator may be an agent killed above, until
		// its lease is taken over.
		if ctx.Err() != nil {
			t.Fatalf("fetching the group's offsets: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
		ofr, err = of.RequestWith(ctx, ofc)
	}
	var sum int64
	for _, tp := range ofr.Topics {
		for _, p := range tp.Partitions {
			sum += p.Offset
		}
	}
	if sum != txnCrashN {
		t.Errorf("group crash-g committed offsets adding up to %d, want %d (%+v)", sum, txnCrashN, ofr.Topics)
	}
	if kills != 3 {
		t.Errorf("%d kills, want 3", kills)
	}
	t.Logf("%d transactions (%d aborted), %d kills, %d session restarts; read_committed %d records, read_uncommitted %d", txns.Load(), aborts.Load(), kills, restarts.Load(), len(committed), len(uncommitted))
}

// txnCoordinatorAddr asks an agent where the transaction coordinator is.
func txnCoordinatorAddr(t *testing.T, ctx context.Context, seeds []string) string {
	t.Helper()
	cl := testClient(t, seeds[0], kgo.SeedBrokers(seeds...))
	for {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = 1, "crash-tx", []string{"crash-tx"}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			var host string
			var port int32
			var code int16
			if len(resp.Coordinators) > 0 {
				c := resp.Coordinators[0]
				host, port, code = c.Host, c.Port, c.ErrorCode
			} else {
				host, port, code = resp.Host, resp.Port, resp.ErrorCode
			}
			if code == 0 {
				return net.JoinHostPort(host, strconv.Itoa(int(port)))
			}
			err = kerr.ErrorForCode(code)
		}
		if ctx.Err() != nil {
			t.Fatalf("finding the transaction coordinator: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readAllValues reads topic from the start to its end (its last stable
// offsets, read_committed) and returns the values.
func readAllValues(t *testing.T, seeds []string, topic string, committed bool) []string {
	t.Helper()
	admin := testClient(t, seeds[0], kgo.SeedBrokers(seeds...))
	ends := endOffsets(t, admin, topic, txnCrashParts, committed)
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	var out []string
	for p, end := range ends {
		if end == 0 {
			continue
		}
		cl := testClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(200*time.Millisecond),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		pos := int64(0)
		for {
			// Markers are skipped by the client: stop at the first poll
			// that brings nothing.
			pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
			fs := cl.PollFetches(pctx)
			pcancel()
			if ctx.Err() != nil {
				t.Fatalf("reading %s/%d: at %d of %d", topic, p, pos, end)
			}
			if len(fs.Records()) == 0 {
				break
			}
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset < end {
					out = append(out, string(r.Value))
				}
				pos = r.Offset
			})
		}
		cancel()
		cl.Close()
	}
	return out
}
