package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/commitlog"
)

// testS3URL is the MinIO of `make test` (scripts/with-minio.sh), with a
// prefix of the test's own. Under CI=true a missing one fails the test.
func testS3URL(t *testing.T, name string) string {
	t.Helper()
	raw := os.Getenv("TWOWAY_TEST_S3_URL")
	if raw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TWOWAY_TEST_S3_URL is not set under CI: the S3 tests must run (make test starts MinIO)")
		}
		t.Skip("TWOWAY_TEST_S3_URL not set; `make test` (scripts/with-minio.sh) runs this against MinIO")
	}
	q := ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw, q = raw[:i], raw[i:]
	}
	return strings.TrimSuffix(raw, "/") + "/" + fmt.Sprintf("%s-%d", name, time.Now().UnixNano()) + q
}

// bucketCopy runs "twoway bucket copy" to completion.
func bucketCopy(t *testing.T, args ...string) result {
	t.Helper()
	return twoway(t, append([]string{"bucket", "copy"}, args...)...)
}

var copiedLine = regexp.MustCompile(`copied as of commit (\d+): (\d+) objects, (\d+) bytes, (\d+) skipped`)

// A live deployment on a directory (topics under produce load, a consumer
// group with committed offsets, a checkpoint) is copied to MinIO: a first
// copy is killed with SIGKILL half-way, a second completes and skips what
// the first wrote. An agent on the copy serves every record of the
// source's up to the copy's commit (a prefix of the source's, holding all
// acknowledged before the copy started, none produced after) and the
// group's offsets. The copy copied back to a directory verifies; tampered
// objects fail the verification, named; another deployment's destination
// and a copy that an agent served (so diverged) are refused.
func TestBucketCopy(t *testing.T) {
	s3 := testS3URL(t, "copy")
	ctx := t.Context()
	srcDir := filepath.Join(t.TempDir(), "src")
	src := startKafkaAgent(t, srcDir)
	httpPost(t, src.http+"/v1/topics", `{"name":"orders","partitions":3}`, http.StatusCreated)
	cl, err := kgo.NewClient(kgo.SeedBrokers(src.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var acked [3]atomic.Int64 // the highest acknowledged offset + 1, per partition
	produce := func(i int) {
		r := &kgo.Record{Topic: "orders", Key: []byte(strconv.Itoa(i)), Value: fmt.Appendf(nil, "order %d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Error(err)
			return
		}
		a := &acked[r.Partition]
		for old := a.Load(); r.Offset+1 > old && !a.CompareAndSwap(old, r.Offset+1); old = a.Load() {
		}
	}
	for i := range 400 { // one commit each: many objects to copy
		produce(i)
	}

	// A consumer group commits offsets.
	group, err := kgo.NewClient(kgo.SeedBrokers(src.kafka), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("orders"), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 150; {
		fetches := group.PollRecords(ctx, 150-n)
		if err := fetches.Err(); err != nil {
			t.Fatal(err)
		}
		n += fetches.NumRecords()
	}
	if err := group.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	group.Close()
	wantOffsets := committedOffsets(t, src.kafka, "g", "orders", 3)

	// A checkpoint, as the janitor writes them (any agent may).
	a, err := agent.Open(ctx, agent.Config{Bucket: srcDir, NoJanitor: true, HintAddr: "off", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Log().Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	a.Close()

	// Produce load from now on.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			produce(i)
		}
	})
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	// A slow copy (one object at a time), killed once it has written 40.
	dst, err := bucketurl.Open(ctx, s3)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	killed := exec.Command(twowayBin, "bucket", "copy", "--from", srcDir, "--to", s3, "--concurrency", "1")
	var killedErr bytes.Buffer
	killed.Stderr = &killedErr
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string { return "the copy wrote no 40 objects: " + killedErr.String() }, func() bool {
		ks, err := bucket.Keys(ctx, dst, "", "")
		return err == nil && len(ks) >= 40
	})
	killed.Process.Signal(syscall.SIGKILL)
	if err := killed.Wait(); err == nil || killed.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the copy ended before it was killed (%v): %s", err, killedErr.String())
	}
	partial, _ := bucket.Keys(ctx, dst, "", "")
	t.Logf("killed after %v with %d objects written", time.Since(start).Round(time.Millisecond), len(partial))

	var before [3]int64
	for p := range before {
		before[p] = acked[p].Load()
	}
	start = time.Now()
	r := bucketCopy(t, "--from", srcDir, "--to", s3)
	if r.code != 0 {
		t.Fatalf("copy: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	m := copiedLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("copy printed %q", r.stdout)
	}
	objects, _ := strconv.Atoi(m[2])
	size, _ := strconv.ParseInt(m[3], 10, 64)
	skipped, _ := strconv.Atoi(m[4])
	elapsed := time.Since(start)
	t.Logf("second copy: %s in %v (%.1f MB/s including the agent's start); stderr: %s", m[0], elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds(), r.stderr)
	if skipped < len(partial)-5 || skipped >= objects {
		t.Fatalf("the second copy skipped %d of %d objects; the killed one had written %d", skipped, objects, len(partial))
	}
	stopLoad()

	// The copy serves the source's records up to its commit, and the
	// group's offsets.
	cp := startKafkaAgent(t, s3)
	more := false
	for p := range int32(3) {
		got, all := httpRecords(t, cp.http, "orders", p), httpRecords(t, src.http, "orders", p)
		if int64(len(got)) < before[p] || len(got) > len(all) {
			t.Fatalf("partition %d: the copy has %d records; %d were acknowledged before it started, the source has %d", p, len(got), before[p], len(all))
		}
		for i := range got {
			if *got[i].Value != *all[i].Value || got[i].Offset != all[i].Offset || got[i].Timestamp != all[i].Timestamp {
				t.Fatalf("partition %d offset %d: copy %+v, source %+v", p, i, got[i], all[i])
			}
		}
		more = more || len(all) > len(got)
	}
	if !more {
		t.Error("the source has no record the copy lacks, although produced to while copying")
	}
	// The group's coordinator lease is copied as the source's agent held
	// it: the copy's agent takes the group over once it lapses.
	var got []int64
	var fetchErr error
	eventually(t, 30*time.Second, func() string { return fmt.Sprint("OffsetFetch on the copy: ", fetchErr) }, func() bool {
		got, fetchErr = fetchOffsets(ctx, cp.kafka, "g", "orders", 3)
		return fetchErr == nil
	})
	if fmt.Sprint(got) != fmt.Sprint(wantOffsets) {
		t.Errorf("the copy's committed offsets %v, the source's %v", got, wantOffsets)
	}
	cp.cmd.Process.Kill()
	<-cp.exited

	// MinIO back to a directory, verified.
	back := filepath.Join(t.TempDir(), "back")
	if r := bucketCopy(t, "--from", s3, "--to", back); r.code != 0 {
		t.Fatalf("copy back: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := bucketCopy(t, "--from", s3, "--to", back, "--verify"); r.code != 0 || !strings.Contains(r.stdout, "verified: ") {
		t.Fatalf("verify: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Tamper with the oldest commit (below the checkpoint, kept for its
	// records), then with a snapshot object (the copy no longer opens).
	tamper := func(prefix string) string {
		t.Helper()
		var key string
		filepath.WalkDir(filepath.Join(back, prefix), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && key == "" {
				rel, _ := filepath.Rel(back, path)
				key = filepath.ToSlash(rel)
			}
			return nil
		})
		if key == "" {
			t.Fatalf("nothing under %s", prefix)
		}
		path := filepath.Join(back, filepath.FromSlash(key))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x10
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return key
	}
	for _, prefix := range []string{commitlog.LogPrefix, commitlog.SnapshotPrefix} {
		key := tamper(prefix)
		r := bucketCopy(t, "--from", s3, "--to", back, "--verify")
		if r.code != 1 || !strings.Contains(r.stdout, key+": differs from the source") {
			t.Fatalf("verify after tampering with %s: %d\n%s%s", key, r.code, r.stdout, r.stderr)
		}
	}

	// Another deployment into a non-empty destination; the source again
	// into the copy an agent has served (and so changed).
	other := filepath.Join(t.TempDir(), "other")
	ok(t, t.TempDir(), "", "topic", "create", "--bucket", other, "x")
	for _, c := range [][2]string{{other, back}, {srcDir, s3}} {
		r := bucketCopy(t, "--from", c[0], "--to", c[1])
		if r.code != 1 || !strings.Contains(r.stderr, "holds a different deployment") || !strings.Contains(r.stderr, "nothing was written") {
			t.Fatalf("copy %s into %s: %d\n%s%s", c[0], c[1], r.code, r.stdout, r.stderr)
		}
	}
}

// fetchOffsets is committedOffsets returning its error, for polling.
func fetchOffsets(ctx context.Context, broker, group, topic string, n int32) ([]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range n {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = -2
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, err
			}
			if rt.Topic == topic && rp.Partition >= 0 && rp.Partition < n {
				out[rp.Partition] = rp.Offset
			}
		}
	}
	return out, nil
}

func TestBucketCopyUsage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bucket"}, "bucket: no command given"},
		{[]string{"bucket", "copy", "--to", dir}, "no --from given"},
		{[]string{"bucket", "copy", "--from", dir}, "no --to given"},
		{[]string{"bucket", "copy", "--from", dir, "--to", "file://" + dir}, "--from and --to are the same bucket"},
		{[]string{"bucket", "copy", "--from", dir, "--to", dir + "/x", "--concurrency", "0"}, "--concurrency must be at least 1"},
	} {
		r := twoway(t, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("twoway %v: exit %d\n%s", c.args, r.code, r.stderr)
		}
	}
	if r := twoway(t, "bucket", "copy", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--verify") {
		t.Errorf("bucket copy --help: %d\n%s", r.code, r.stdout)
	}
}
