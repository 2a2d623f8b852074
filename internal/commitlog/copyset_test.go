package commitlog

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
)

// CopySet names the newest checkpoint at or below the applied commit, its
// snapshot objects, the commits after it and the owners' live objects, and
// a log opened on a bucket holding just those objects has the same state.
func TestCopySet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := openFile(t)
	opts := testOptions()
	opts.NoJanitor = true
	l, _ := openLog(t, b, opts)
	defer l.Close()
	big := make([]byte, 4<<10) // above InlineMax: a chunk
	prop := func(id string, blob []byte) {
		t.Helper()
		if _, _, err := l.Propose(ctx, Entry{Type: typeRecord, Data: []byte(id), Blob: blob}); err != nil {
			t.Fatal(err)
		}
	}
	prop("a", big)
	prop("b", []byte("inline"))
	if err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	cp := l.Applied()
	prop("c", nil)
	prop("d", big)
	cs, err := l.CopySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Seq != l.Applied() || cs.Checkpoint != cp {
		t.Fatalf("copy set as of %d from %d; applied %d, checkpoint %d", cs.Seq, cs.Checkpoint, l.Applied(), cp)
	}
	if !slices.Contains(cs.Keys, CheckpointKey(cp)) || !slices.Contains(cs.Keys, LogKey(cp)) || !slices.Contains(cs.Keys, LogKey(cs.Seq)) {
		t.Fatalf("keys %v", cs.Keys)
	}
	chunks, snaps := 0, 0
	for _, k := range cs.Keys {
		switch {
		case len(k) > len(ChunkPrefix) && k[:len(ChunkPrefix)] == ChunkPrefix:
			chunks++
		case len(k) > len(SnapshotPrefix) && k[:len(SnapshotPrefix)] == SnapshotPrefix:
			snaps++
			if _, ok := cs.Snapshots[k]; !ok {
				t.Errorf("no sum for %s", k)
			}
		}
	}
	if chunks != 2 || snaps == 0 || len(cs.Snapshots) != snaps {
		t.Fatalf("%d chunks, %d snapshots in %v", chunks, snaps, cs.Keys)
	}

	// Copy exactly those objects; the copy opens at cs.Seq with the same
	// state, and every object passes CheckObject.
	dst := openFile(t)
	for _, k := range cs.Keys {
		data, _, err := bucket.ReadAll(ctx, b, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckObject(k, data); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.PutIfAbsent(ctx, k, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	prop("e", nil) // after the copy: not in it
	c, rec := openLog(t, dst, opts)
	defer c.Close()
	if c.Applied() != cs.Seq {
		t.Fatalf("copy at %d, want %d", c.Applied(), cs.Seq)
	}
	if !slices.Equal(rec.IDs, []string{"a", "b", "c", "d"}) {
		t.Fatalf("copy's state %v", rec.IDs)
	}

	// A corrupt object fails CheckObject.
	data, _, _ := bucket.ReadAll(ctx, b, LogKey(cs.Seq))
	data[len(data)/2] ^= 1
	if err := CheckObject(LogKey(cs.Seq), data); err == nil {
		t.Fatal("corrupt commit passed")
	}
	if err := CheckObject(LogKey(cs.Seq+1), nil); err == nil {
		t.Fatal("empty commit passed")
	}
}
