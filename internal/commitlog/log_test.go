package commitlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/bucket/filebucket"
)

const (
	typeRecord uint16 = 90 // test-only entry types
	typeForget uint16 = 91
)

// recorder is a test Owner: it records the order in which entries were
// applied and the blobs they reference.
type recorder struct {
	IDs  []string       `json:"ids"`
	Refs map[string]Ref `json:"refs"`
}

func newRecorder() *recorder { return &recorder{Refs: map[string]Ref{}} }

func (r *recorder) Name() string    { return "recorder" }
func (r *recorder) Types() []uint16 { return []uint16{typeRecord, typeForget} }
func (r *recorder) Reset()          { r.IDs, r.Refs = nil, map[string]Ref{} }

func (r *recorder) Apply(seq uint64, e Entry) any {
	id := string(e.Data)
	if e.Type == typeForget {
		delete(r.Refs, id)
		return nil
	}
	if slices.Contains(r.IDs, id) {
		return fmt.Errorf("duplicate %s", id) // reported; tests fail on it
	}
	r.IDs = append(r.IDs, id)
	if !e.Ref.IsZero() {
		r.Refs[id] = e.Ref
	}
	return len(r.IDs) - 1
}

func (r *recorder) Snapshot() func() ([]byte, error) {
	b, err := json.Marshal(r)
	return func() ([]byte, error) { return b, err }
}
func (r *recorder) Restore(b []byte) error {
	r.Reset()
	return json.Unmarshal(b, r)
}
func (r *recorder) LiveObjects(fn func(string)) {
	for _, ref := range r.Refs {
		fn(ref.Key)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions() Options {
	return Options{
		Linger:        time.Millisecond,
		InlineMax:     1 << 10,
		PollMin:       time.Millisecond,
		PollMax:       20 * time.Millisecond,
		LeaseDuration: 300 * time.Millisecond,
		Logger:        quiet(),
	}
}

func openFile(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openLog(t *testing.T, b bucket.Bucket, opts Options) (*Log, *recorder) {
	t.Helper()
	rec := newRecorder()
	l, err := Open(context.Background(), b, []Owner{rec}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, rec
}

func blobFor(id string, big bool) []byte {
	n := 100
	if big {
		n = 3000
	}
	return bytes.Repeat([]byte(id+";"), n/len(id)+1)[:n]
}

// produce proposes ids from several goroutines and returns those acknowledged.
func produce(t *testing.T, l *Log, prefix string, workers, each int) []string {
	t.Helper()
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				_, res, err := l.Propose(context.Background(), Entry{Type: typeRecord, Data: []byte(id), Blob: blobFor(id, i%3 == 0)})
				if err != nil {
					continue // not acknowledged; the checker only holds acked ids to account
				}
				if e, ok := res[0].(error); ok {
					t.Errorf("apply of %s: %v", id, e)
					continue
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked
}

// check verifies every agent holds the same order, every acked id exactly
// once, and every blob reads back intact.
func check(t *testing.T, b bucket.Bucket, acked []string, logs []*Log, recs []*recorder) {
	t.Helper()
	for _, l := range logs {
		if err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var first []string
	for i, l := range logs {
		var ids []string
		var refs map[string]Ref
		l.View(recs[i], func() { ids, refs = slices.Clone(recs[i].IDs), maps.Clone(recs[i].Refs) })
		if i == 0 {
			first = ids
		} else if !slices.Equal(ids, first) {
			t.Fatalf("agent %d applied a different order than agent 0 (%d vs %d entries)", i, len(ids), len(first))
		}
		seen := map[string]int{}
		for _, id := range ids {
			seen[id]++
		}
		for _, id := range acked {
			if seen[id] != 1 {
				t.Fatalf("agent %d: acknowledged %s applied %d times", i, id, seen[id])
			}
		}
		if i == 0 {
			for id, ref := range refs {
				got, err := b.GetRange(context.Background(), ref.Key, ref.Off, ref.Len)
				if err != nil {
					t.Fatalf("blob of %s: %v", id, err)
				}
				if err := VerifyBlob(ref, got); err != nil || !bytes.Equal(got, blobFor(id, len(got) > 100)) {
					t.Fatalf("blob of %s: %v", id, err)
				}
			}
		}
	}
}

func TestSingleAgentInlineAndChunks(t *testing.T) {
	b := openFile(t)
	l, rec := openLog(t, b, testOptions())
	acked := produce(t, l, "a", 8, 30)
	if len(acked) != 240 {
		t.Fatalf("acked %d of 240", len(acked))
	}
	check(t, b, acked, []*Log{l}, []*recorder{rec})
	if l.Stats.ChunksWritten.Load() == 0 {
		t.Fatal("no chunk written although blobs exceeded InlineMax")
	}
	if c := l.Stats.Commits.Load(); c >= 240 {
		t.Fatalf("%d commits for 240 proposals: group commit did not group", c)
	}
}

// produceAcross opens agents on b and has each produce from several
// goroutines at once; it returns the agents and every acknowledged id.
func produceAcross(t *testing.T, b bucket.Bucket, agents, workers, each int) ([]*Log, []*recorder, []string) {
	t.Helper()
	var logs []*Log
	var recs []*recorder
	for range agents {
		l, r := openLog(t, b, testOptions())
		logs, recs = append(logs, l), append(recs, r)
	}
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := produce(t, l, fmt.Sprintf("agent%d", i), workers, each)
			mu.Lock()
			acked = append(acked, a...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return logs, recs, acked
}

func TestConcurrentAgentsOneOrder(t *testing.T) {
	b := openFile(t)
	logs, recs, acked := produceAcross(t, b, 4, 4, 25)
	if len(acked) != 400 {
		t.Fatalf("acked %d of 400 with a healthy bucket", len(acked))
	}
	check(t, b, acked, logs, recs)
	var conflicts int64
	for _, l := range logs {
		conflicts += l.Stats.Conflicts.Load()
	}
	t.Logf("conflicts: %d", conflicts)
}

func TestUnknownOutcomesAndFaults(t *testing.T) {
	inner := openFile(t)
	fb := faultbucket.Wrap(inner, faultbucket.WithSeed(7))
	if err := fb.SetRules(
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.2, UnknownOutcome: true},
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailRate: 0.1},
		faultbucket.Rule{Op: faultbucket.OpGet, FailRate: 0.05},
		faultbucket.Rule{Op: faultbucket.OpAny, Jitter: 2 * time.Millisecond},
	); err != nil {
		t.Fatal(err)
	}
	logs, recs, acked := produceAcross(t, fb, 3, 3, 20)
	if fb.Counts(faultbucket.OpPutIfAbsent).Unknown == 0 {
		t.Fatal("no unknown outcome was injected; the test proves nothing")
	}
	if err := fb.SetRules(); err != nil {
		t.Fatal(err)
	}
	// Checked through a clean agent that reads straight from the bucket.
	clean, cleanRec := openLog(t, inner, testOptions())
	check(t, inner, acked, append(logs, clean), append(recs, cleanRec))
	var unknown int64
	for _, l := range logs {
		unknown += l.Stats.UnknownOutcome.Load()
	}
	t.Logf("acked %d, unknown outcomes handled %d, injected %d", len(acked), unknown, fb.Injected())
}

func TestCheckpointGCAndRestart(t *testing.T) {
	b := openFile(t)
	opts := testOptions()
	opts.Grace = 400 * time.Millisecond
	opts.CheckpointCommits = 5
	opts.CheckpointInterval = 50 * time.Millisecond
	opts.LeaseDuration = 150 * time.Millisecond
	l, rec := openLog(t, b, opts)
	acked := produce(t, l, "gc", 4, 40)
	// Forget half the blobs so their objects become garbage.
	forgotten := map[string]bool{}
	for _, id := range acked[:len(acked)/2] {
		if _, _, err := l.Propose(context.Background(), Entry{Type: typeForget, Data: []byte(id)}); err != nil {
			t.Fatal(err)
		}
		forgotten[id] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats.Deleted.Load() == 0 || l.Stats.Checkpoints.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no GC after 10s: checkpoints %d, deleted %d", l.Stats.Checkpoints.Load(), l.Stats.Deleted.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let a second collection pass run past the grace period for chunks.
	time.Sleep(3 * opts.Grace)
	keys, err := bucket.Keys(context.Background(), b, LogPrefix, "")
	if err != nil {
		t.Fatal(err)
	}
	applied := l.Applied()
	if uint64(len(keys)) >= applied {
		t.Fatalf("%d commit objects remain for %d commits: none collected", len(keys), applied)
	}
	// A new agent starts from a checkpoint and agrees with the old one.
	l2, rec2 := openLog(t, b, opts)
	var live []string
	for _, id := range acked {
		if !forgotten[id] {
			live = append(live, id)
		}
	}
	check(t, b, live, []*Log{l, l2}, []*recorder{rec, rec2})
	if l2.Stats.Applied.Load() >= int64(applied) {
		t.Fatalf("new agent replayed %d commits of %d: it did not start from a checkpoint", l2.Stats.Applied.Load(), applied)
	}
	t.Logf("commits %d, objects left in log/ %d, deleted %d, new agent replayed %d", applied, len(keys), l.Stats.Deleted.Load(), l2.Stats.Applied.Load())
}

func TestStalledAgentReloadsAfterGap(t *testing.T) {
	b := openFile(t)
	opts := testOptions()
	opts.Grace = 200 * time.Millisecond
	opts.CheckpointCommits = 3
	opts.CheckpointInterval = 20 * time.Millisecond
	opts.LeaseDuration = 100 * time.Millisecond
	active, rec := openLog(t, b, opts)
	stalled := opts
	stalled.NoJanitor = true
	stalled.PollMin, stalled.PollMax = time.Hour, time.Hour // never tails on its own
	stalled.HintAddr = "off"                                // nor wakes on hints
	slow, slowRec := openLog(t, b, stalled)
	acked := produce(t, active, "x", 2, 30)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Stat(context.Background(), LogKey(1)); bucket.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("commit 1 never collected")
		}
		time.Sleep(20 * time.Millisecond)
		produce(t, active, fmt.Sprintf("tick%d", time.Now().UnixNano()), 1, 1)
	}
	// The stalled agent's freshness has lapsed: its next commit must land
	// at the true tail, not at a collected sequence number.
	id := "after-stall"
	seq, _, err := slow.Propose(context.Background(), Entry{Type: typeRecord, Data: []byte(id)})
	if err != nil {
		t.Fatal(err)
	}
	if seq <= 3 {
		t.Fatalf("stalled agent committed at %d, a collected sequence number", seq)
	}
	if slow.Stats.Reloads.Load() == 0 {
		t.Fatal("stalled agent did not reload from a checkpoint")
	}
	check(t, b, append(acked, id), []*Log{active, slow}, []*recorder{rec, slowRec})
}

// A takeover applies only if the lease is exactly as the proposer saw it: an
// agent that lags behind the log and missed renewals cannot depose a live
// holder, and apply reaches the same verdict on every agent.
func TestLeaseAcquireIsConditional(t *testing.T) {
	b := openFile(t)
	opts := testOptions()
	opts.NoJanitor = true
	l, _ := openLog(t, b, opts)
	ctx := context.Background()
	ok, err := l.ProposeLease(ctx, LeaseAcquire("x", "a", "", Lease{}))
	if err != nil || !ok {
		t.Fatalf("first acquire: %v %v", ok, err)
	}
	stale := l.Lease("x") // what a lagging agent saw
	if ok, _ := l.ProposeLease(ctx, LeaseRenew("x", "a", 1)); !ok {
		t.Fatal("renew by the holder failed")
	}
	if ok, _ := l.ProposeLease(ctx, LeaseAcquire("x", "b", "", stale)); ok {
		t.Fatal("takeover based on a view that missed a renewal took effect")
	}
	if got := l.Lease("x"); got.Holder != "a" || got.Epoch != 1 || got.Renewals != 1 {
		t.Fatalf("lease after rejected takeover: %+v", got)
	}
	if ok, _ := l.ProposeLease(ctx, LeaseRenew("x", "b", 1)); ok {
		t.Fatal("renew by a non-holder took effect")
	}
	if ok, _ := l.ProposeLease(ctx, LeaseAcquire("x", "b", "addr", l.Lease("x"))); !ok {
		t.Fatal("takeover based on the current view failed")
	}
	if ok, _ := l.ProposeLease(ctx, LeaseRenew("x", "a", 1)); ok {
		t.Fatal("the deposed holder renewed at its stale epoch")
	}
	if got := l.Lease("x"); got.Holder != "b" || got.Epoch != 2 || got.Addr != "addr" {
		t.Fatalf("lease after takeover: %+v", got)
	}
}
