package bucketcopy_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/bucketcopy"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// open opens an agent on dir without janitor, hints or listeners; a small
// inline limit makes produces write chunks.
func open(t *testing.T, dir string) (*agent.Agent, *httpapi.Client) {
	t.Helper()
	a, err := agent.Open(t.Context(), agent.Config{
		Bucket: dir, NoJanitor: true, HintAddr: "off", Logger: slog.New(slog.DiscardHandler),
		Log: commitlog.Options{InlineMax: 256},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, httpapi.NewInProcessClient(a.HTTP)
}

func produce(t *testing.T, c *httpapi.Client, topic string, from, n int, size int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		v := fmt.Sprintf("%s-%d-%s", topic, i, strings.Repeat("x", size))
		if _, err := c.Produce(t.Context(), topic, []httpapi.ProduceRecord{{Key: []byte(fmt.Sprint(i)), Value: []byte(v)}}); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, c *httpapi.Client, topic string, partitions int32) [][]records.Record {
	t.Helper()
	out := make([][]records.Record, partitions)
	for p := range partitions {
		for off := int64(0); ; {
			res, err := c.Read(t.Context(), topic, p, off, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = append(out[p], res.Records...)
			if len(res.Records) == 0 || res.NextOffset >= res.HighWatermark {
				break
			}
			off = res.NextOffset
		}
	}
	return out
}

func fileBucket(t *testing.T, dir string) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(t *testing.T, b bucket.Bucket) []string {
	t.Helper()
	ks, err := bucket.Keys(t.Context(), b, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range ks {
		if !strings.HasPrefix(k, "agents/") {
			out = append(out, k)
		}
	}
	return out
}

// A copy made from a checkpoint and the commits after it holds what the
// source held at the copy's commit and nothing after; a second copy is
// brought up to date and skips what is there; a tampered object fails the
// verification, named; another deployment's destination is refused with
// nothing written.
func TestCopyVerifyResume(t *testing.T) {
	ctx := t.Context()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, c := open(t, srcDir)
	if _, err := c.CreateTopic(ctx, stream.TopicConfig{Name: "orders", Partitions: 2, RetentionMs: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	produce(t, c, "orders", 0, 30, 400) // chunks
	if err := src.Log().Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	produce(t, c, "orders", 30, 30, 10) // inline, after the checkpoint
	cs, err := src.Log().CopySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Checkpoint == 0 || cs.Checkpoint >= cs.Seq {
		t.Fatalf("copy set as of %d from checkpoint %d", cs.Seq, cs.Checkpoint)
	}
	var chunk string
	for _, k := range cs.Keys {
		if strings.HasPrefix(k, commitlog.ChunkPrefix) {
			chunk = k
		}
		if s := strings.TrimPrefix(k, commitlog.LogPrefix); s != k && s <= fmt.Sprintf("%020d", cs.Checkpoint) {
			t.Errorf("copy set has %s, below checkpoint %d (no inline blob of it is live: its records are in chunks)", k, cs.Checkpoint)
		}
	}
	if chunk == "" {
		t.Fatalf("no chunk in the copy set %v", cs.Keys)
	}
	want := readAll(t, c, "orders", 2)
	produce(t, c, "orders", 60, 10, 10) // after the copy's commit

	dst := fileBucket(t, dstDir)
	calls := 0
	p, err := bucketcopy.Copy(ctx, src.Log().Bucket(), dst, cs, bucketcopy.Options{Concurrency: 3, Progress: func(bucketcopy.Progress) { calls++ }, ProgressEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if p.Objects != len(cs.Keys) || p.Skipped != 0 || p.Bytes == 0 || p.Bytes != p.TotalBytes {
		t.Fatalf("progress %+v for %d keys", p, len(cs.Keys))
	}
	if got := keys(t, dst); strings.Join(got, ",") != strings.Join(cs.Keys, ",") {
		t.Fatalf("destination holds %v, want %v", got, cs.Keys)
	}

	// The copy serves the state at cs.Seq.
	cp, cc := open(t, dstDir)
	if cp.Log().Applied() != cs.Seq {
		t.Fatalf("copy opens at %d, want %d", cp.Log().Applied(), cs.Seq)
	}
	got := readAll(t, cc, "orders", 2)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("copy holds\n%v\nwant\n%v", got, want)
	}
	dcs, err := cp.Log().CopySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := bucketcopy.Verify(ctx, src.Log().Bucket(), dst, dcs, bucketcopy.Options{})
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", diffs, err)
	}
	cp.Close()

	// Copy again: up to the source's newest commit, the rest skipped.
	cs2, err := src.Log().CopySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err = bucketcopy.Copy(ctx, src.Log().Bucket(), dst, cs2, bucketcopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Skipped == 0 || p.Skipped == p.Objects {
		t.Fatalf("second copy %+v: want some skipped, some copied", p)
	}

	// Tamper with a chunk of the copy.
	path := filepath.Join(dstDir, filepath.FromSlash(chunk))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	diffs, err = bucketcopy.Verify(ctx, src.Log().Bucket(), dst, cs2, bucketcopy.Options{})
	if err != nil || len(diffs) != 1 || diffs[0].Key != chunk || !strings.Contains(diffs[0].Why, "differs") {
		t.Fatalf("verify after tampering with %s: %v %v", chunk, diffs, err)
	}
	// And a copy over it does not paper over the difference.
	if _, err := bucketcopy.Copy(ctx, src.Log().Bucket(), dst, cs2, bucketcopy.Options{}); !errors.Is(err, bucketcopy.ErrDifferentDeployment) || !strings.Contains(err.Error(), chunk) {
		t.Fatalf("copy over a tampered object: %v", err)
	}

	// Another deployment is refused, nothing written.
	otherDir := t.TempDir()
	other, oc := open(t, otherDir)
	if _, err := oc.CreateTopic(ctx, stream.TopicConfig{Name: "other", Partitions: 1, RetentionMs: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	produce(t, oc, "other", 0, 5, 400)
	ocs, err := other.Log().CopySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := keys(t, dst)
	_, err = bucketcopy.Copy(ctx, other.Log().Bucket(), dst, ocs, bucketcopy.Options{})
	if !errors.Is(err, bucketcopy.ErrDifferentDeployment) || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("copy of another deployment: %v", err)
	}
	if after := keys(t, dst); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("the refused copy wrote: %d objects before, %d after", len(before), len(after))
	}
}

// A copy of a copy that diverged (an agent served it and committed) is
// refused rather than merged, and a tampered commit of the copy is named by
// VerifyObjects (an agent cannot open such a copy).
func TestDivergedAndCorrupt(t *testing.T) {
	ctx := t.Context()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src, c := open(t, srcDir)
	if _, err := c.CreateTopic(ctx, stream.TopicConfig{Name: "t", Partitions: 1, RetentionMs: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	produce(t, c, "t", 0, 5, 10)
	cs, err := src.Log().CopySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst := fileBucket(t, dstDir)
	if _, err := bucketcopy.Copy(ctx, src.Log().Bucket(), dst, cs, bucketcopy.Options{}); err != nil {
		t.Fatal(err)
	}
	// The copy serves and commits on its own.
	_, cc := open(t, dstDir)
	produce(t, cc, "t", 100, 1, 10)
	produce(t, c, "t", 5, 3, 10)
	cs2, err := src.Log().CopySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bucketcopy.Copy(ctx, src.Log().Bucket(), dst, cs2, bucketcopy.Options{}); !errors.Is(err, bucketcopy.ErrDifferentDeployment) {
		t.Fatalf("copy into a diverged copy: %v", err)
	}

	// Corrupt commit 2 of the copy.
	key := commitlog.LogKey(2)
	path := filepath.Join(dstDir, filepath.FromSlash(key))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	diffs, err := bucketcopy.VerifyObjects(ctx, src.Log().Bucket(), dst, bucketcopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The diverged commit differs too; the source's commit after cs.Seq
	// is another one.
	if len(diffs) == 0 || diffs[0].Key != key {
		t.Fatalf("diffs %v, want %s first", diffs, key)
	}
}
