package groups

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
)

// Offsets of a group nobody coordinates expire after the retention, and the
// released leases of groups without offsets are removed, so state made by
// unauthenticated clients (FindCoordinator for ever-new names) stays
// bounded. A lease acquired again after its removal starts at a new epoch.
func TestExpiryOfIdleGroupsAndLeases(t *testing.T) {
	ctx := context.Background()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := NewOffsets()
	l, err := commitlog.Open(ctx, b, []commitlog.Owner{o}, commitlog.Options{NoJanitor: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Now()
	propose := func(es ...commitlog.Entry) []any {
		t.Helper()
		_, res, err := l.Propose(ctx, es...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	commit := func(group string, epoch uint64, at time.Time) commitlog.Entry {
		data, _ := json.Marshal(commitEntry{Group: group, Epoch: epoch, CommitMs: at.UnixMilli(),
			Topics: []TopicOffsets{{Topic: "t", Partitions: []PartitionOffset{{Partition: 0, Offset: 5}}}}})
		return commitlog.Entry{Type: TypeOffsetCommit, Data: data}
	}
	// "old": committed 8 days ago, then released. "fresh": committed now,
	// released. "held": committed 8 days ago, still coordinated. "empty":
	// a lease and nothing else.
	for _, g := range []string{"old", "fresh", "held", "empty"} {
		if ok, err := l.ProposeLease(ctx, commitlog.LeaseAcquire(LeaseName(g), "a", "", l.Lease(LeaseName(g)))); err != nil || !ok {
			t.Fatalf("acquire %s: %v %v", g, ok, err)
		}
	}
	at := map[string]time.Time{"old": now.Add(-8 * 24 * time.Hour), "fresh": now, "held": now.Add(-8 * 24 * time.Hour)}
	for g, ts := range at {
		if res := propose(commit(g, 1, ts)); res[0] != nil {
			t.Fatalf("commit %s: %v", g, res[0])
		}
	}
	for _, g := range []string{"old", "fresh", "empty"} {
		if ok, _ := l.ProposeLease(ctx, commitlog.LeaseRelease(LeaseName(g), "a", 1)); !ok {
			t.Fatalf("release %s", g)
		}
	}

	if err := expire(ctx, l, o, DefaultOffsetsRetention, now); err != nil {
		t.Fatal(err)
	}
	has := func(g string) (v bool) {
		l.View(o, func() { v = o.HasOffsets(g) })
		return v
	}
	if has("old") || !has("fresh") || !has("held") {
		t.Fatalf("after expiry: old %v fresh %v held %v; want only old gone", has("old"), has("fresh"), has("held"))
	}
	leases := func() map[string]commitlog.Lease {
		m := map[string]commitlog.Lease{}
		l.Leases(func(n string, c commitlog.Lease) { m[n] = c })
		return m
	}
	if _, ok := leases()[LeaseName("empty")]; !ok {
		t.Fatal("lease removed before the fleet enabled lease removal")
	}

	// Once removal is enabled, released leases of groups without offsets go.
	data, _ := json.Marshal(map[string][]string{"enable": {"type:3"}})
	propose(commitlog.Entry{Type: commitlog.TypeFeatures, Data: data})
	if err := expire(ctx, l, o, DefaultOffsetsRetention, now); err != nil {
		t.Fatal(err)
	}
	got := leases()
	for _, g := range []string{"old", "empty"} {
		if _, ok := got[LeaseName(g)]; ok {
			t.Errorf("released lease of %s without offsets was not removed", g)
		}
	}
	for _, g := range []string{"fresh", "held"} {
		if _, ok := got[LeaseName(g)]; !ok {
			t.Errorf("lease of %s removed while its group has offsets", g)
		}
	}
	// Once the fleet knows TypeForgetGroup, the records of groups without
	// offsets that nobody coordinates go too.
	records := func() map[string]bool {
		m := map[string]bool{}
		l.View(o, func() {
			for g := range o.groups {
				m[g] = true
			}
		})
		return m
	}
	if r := records(); !r["old"] {
		t.Fatalf("records forgotten before the fleet enabled it: %v", r)
	}
	data, _ = json.Marshal(map[string][]string{"enable": {"type:204"}})
	propose(commitlog.Entry{Type: commitlog.TypeFeatures, Data: data})
	if err := expire(ctx, l, o, DefaultOffsetsRetention, now); err != nil {
		t.Fatal(err)
	}
	if r := records(); r["old"] || r["empty"] || !r["fresh"] || !r["held"] {
		t.Fatalf("records after forgetting: %v; want fresh and held only", r)
	}
	// Epochs are never reused: a deposed coordinator's epoch stays stale.
	if ok, _ := l.ProposeLease(ctx, commitlog.LeaseAcquire(LeaseName("empty"), "b", "", l.Lease(LeaseName("empty")))); !ok {
		t.Fatal("acquire after removal failed")
	}
	if e := l.Lease(LeaseName("empty")).Epoch; e <= 1 {
		t.Fatalf("lease acquired after removal has epoch %d, reusing a removed one", e)
	}
	if res := propose(commit("empty", 1, now)); res[0] == nil {
		t.Fatal("a commit at the removed lease's epoch was accepted after the group was forgotten")
	}
}
