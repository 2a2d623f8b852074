package stream

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

func allEnabled(string) bool { return true }

// Both encodings restore the same state, the binary one deterministically,
// and a capture is not changed by the applies after it (the segment slices
// it shares are only ever appended to or replaced).
func TestSnapshotEncodingsAgreeAndCapturesStayPut(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		entries := randomEntries(rng, 300)
		cut := rng.IntN(len(entries))

		live := newState()
		applyAll(live, entries[:cut], 0)
		c := live.capture()
		applyAll(live, entries, cut) // after the capture

		ref := newState()
		applyAll(ref, entries[:cut], 0)
		want, err := ref.capture().encodeJSON()
		if err != nil {
			t.Fatal(err)
		}
		gotJSON, _ := c.encodeJSON()
		if !bytes.Equal(gotJSON, want) {
			t.Fatalf("seed %d: the capture changed after later applies:\n%s\n%s", seed, gotJSON, want)
		}
		bin := c.encodeBinary(3)
		if !bytes.Equal(bin, ref.capture().encodeBinary(3)) {
			t.Fatalf("seed %d: binary encoding not deterministic", seed)
		}
		encs := map[string][]byte{"json": gotJSON, "binary": bin}
		if !c.needs3 {
			encs["binary 2"] = c.encodeBinary(2)
		}
		for name, enc := range encs {
			r := newState()
			if err := r.Restore(enc); err != nil {
				t.Fatalf("seed %d: restore %s: %v", seed, name, err)
			}
			back, _ := r.capture().encodeJSON()
			if !bytes.Equal(back, want) {
				t.Fatalf("seed %d: %s round trip differs:\n%s\n%s", seed, name, back, want)
			}
			// The restored state applies the rest as the original did.
			resR := applyAll(r, entries, cut)
			resL := applyAll(newStateAt(entries, cut), entries, cut)
			if len(resR) != len(resL) {
				t.Fatal("result count")
			}
			for i := range resR {
				if errString(resR[i]) != errString(resL[i]) {
					t.Fatalf("seed %d: %s: result %d after restore: %v, want %v", seed, name, i, resR[i], resL[i])
				}
			}
		}
	}
}

func newStateAt(entries []commitlog.Entry, cut int) *state {
	s := newState()
	applyAll(s, entries[:cut], 0)
	return s
}

func errString(v any) string {
	if err, ok := v.(error); ok {
		return "error: " + err.Error()
	}
	return ""
}

// The binary encoding is written only once the fleet enabled it.
func TestSnapshotEncodingFollowsTheFeature(t *testing.T) {
	s := newState()
	on := false
	s.UseFeatures(func(name string) bool { return on && name == formatSnapshot2 })
	var plain []commitlog.Entry // without configs, so encoding 2 it is
	for _, e := range randomEntries(rand.New(rand.NewPCG(1, 1)), 100) {
		if e.Type != TypeCreateTopicConfigs && e.Type != TypeSetTopicConfigs && e.Type != TypeKeyCompact {
			plain = append(plain, e)
		}
	}
	applyAll(s, plain, 0)
	b, _ := s.Snapshot()()
	if b[0] != '{' {
		t.Fatalf("wrote %q before the format was enabled", b[:5])
	}
	on = true
	b, _ = s.Snapshot()()
	if !strings.HasPrefix(string(b), snapMagic) {
		t.Fatalf("wrote %q after the format was enabled", b[:5])
	}
	s.Reset()
	if s.enabled == nil {
		t.Fatal("Reset forgot the features")
	}
}

// Corrupt snapshots are errors, never panics or huge allocations.
func FuzzRestoreBinary(f *testing.F) {
	for seed := range uint64(8) {
		s := newState()
		applyAll(s, randomEntries(rand.New(rand.NewPCG(seed, 3)), 200), 0)
		f.Add(s.capture().encodeBinary(2))
		f.Add(s.capture().encodeBinary(3))
	}
	f.Add([]byte(snapMagic))
	f.Add([]byte(snapMagic3))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newState()
		if err := s.Restore(b); err != nil {
			return
		}
		again := s.capture().encodeBinary(3)
		r := newState()
		if err := r.Restore(again); err != nil {
			t.Fatalf("re-encoded snapshot does not restore: %v", err)
		}
		if !bytes.Equal(r.capture().encodeBinary(3), again) {
			t.Fatal("re-encoding is not stable")
		}
	})
}

// An agent writes the binary snapshot once its janitor enabled the format
// (at once, alone in the fleet), and a restart restores from it.
func TestBinarySnapshotThroughTheLog(t *testing.T) {
	dir := t.TempDir()
	b, err := filebucket.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond,
		LeaseDuration: 150 * time.Millisecond, RegisterInterval: 50 * time.Millisecond,
		Logger: quietLogger(),
	}}
	svc, err := Open(ctx, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !svc.Log().Enabled(formatSnapshot2) {
		if time.Now().After(deadline) {
			t.Fatal("the binary snapshot format was not enabled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := svc.CreateTopic(ctx, TopicConfig{Name: "t", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	produceN(t, svc, "t", 10)
	if err := svc.Log().Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := bucket.Keys(ctx, b, commitlog.SnapshotPrefix+"streams/", "")
	if err != nil || len(keys) == 0 {
		t.Fatalf("no streams snapshot: %v %v", keys, err)
	}
	raw, _, err := bucket.ReadAll(ctx, b, keys[len(keys)-1])
	if err != nil {
		t.Fatal(err)
	}
	_, _, body, err := commitlog.DecodeSnapshot(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(body), snapMagic3) {
		t.Fatalf("snapshot body starts %q, want the binary encoding", body[:5])
	}
	svc.Close()

	again, err := Open(ctx, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	ti, err := again.Topic("t")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range ti.PartitionsInfo {
		n += p.End - p.Start
	}
	if n != 10 {
		t.Fatalf("after restart %d records, want 10", n)
	}
}

func produceN(t *testing.T, svc *Service, topic string, n int) {
	t.Helper()
	for i := range n {
		_, errs, err := svc.Produce(context.Background(), topic, []Batch{{Partition: int32(i % 2), Records: []records.Record{{Value: []byte("v")}}}})
		if err != nil || errs[0] != nil {
			t.Fatalf("produce: %v %v", err, errs)
		}
	}
}
