package keyed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
)

func ref(i int) commitlog.Ref {
	return commitlog.Ref{Key: fmt.Sprintf("chunks/%020d-a-%d", 1795598348613+i/100, i/100), Off: int64(i%100) * 1024, Len: 1024, CRC: uint32(i)}
}

// A capture does not change when the index does afterwards; encoding is
// deterministic and restores what was captured.
func TestCaptureIsCopyOnWrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := New()
	model := map[string]Value{}
	for round := range 20 {
		for range 500 {
			k := fmt.Sprintf("actor/%d", rng.IntN(2000))
			if rng.IntN(5) == 0 {
				x.Delete(k)
				delete(model, k)
			} else {
				r := Value{Ref: ref(rng.IntN(1 << 20)), Ver: rng.Uint64N(1 << 40)}
				x.Set(k, r.Ref, r.Ver)
				model[k] = r
			}
		}
		f := x.Capture()
		want := fromMap(model).Capture().Encode()
		// Writes after the capture, some to every shard.
		for i := range 3000 {
			x.Set(fmt.Sprintf("later/%d/%d", round, i), ref(i), uint64(i))
			x.Delete(fmt.Sprintf("actor/%d", rng.IntN(2000)))
		}
		got := f.Encode()
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: the capture changed after later writes", round)
		}
		r := New()
		if err := r.Restore(got); err != nil {
			t.Fatal(err)
		}
		if r.Len() != len(model) {
			t.Fatalf("restored %d keys, want %d", r.Len(), len(model))
		}
		for k, v := range model {
			if g, ok := r.Get(k); !ok || g != v {
				t.Fatalf("restored %s = %v, want %v", k, g, v)
			}
		}
		// Put the index back to the model for the next round.
		x = fromMap(model)
	}
}

func fromMap(m map[string]Value) *Index {
	x := New()
	for k, v := range m {
		x.Set(k, v.Ref, v.Ver)
	}
	return x
}

func FuzzRestore(f *testing.F) {
	x := New()
	for i := range 300 {
		x.Set(fmt.Sprintf("k%d", i), ref(i), uint64(i))
	}
	f.Add(x.Capture().Encode())
	f.Add(New().Capture().Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r := New()
		if err := r.Restore(b); err != nil {
			return
		}
		again := r.Capture().Encode()
		if !bytes.Equal(again, b) {
			t.Fatalf("a snapshot that restores does not re-encode to itself")
		}
	})
}

// kv is a minimal Owner keeping values with Index: set (blob = value) and
// delete.
type kv struct{ idx *Index }

const (
	typeSet uint16 = 60010
	typeDel uint16 = 60011
)

func (o *kv) Name() string                { return "kv" }
func (o *kv) Types() []uint16             { return []uint16{typeSet, typeDel} }
func (o *kv) Reset()                      { o.idx = New() }
func (o *kv) LiveObjects(fn func(string)) { o.idx.LiveObjects(fn) }
func (o *kv) Restore(b []byte) error      { return o.idx.Restore(b) }
func (o *kv) Snapshot() func() ([]byte, error) {
	f := o.idx.Capture()
	return func() ([]byte, error) { return f.Encode(), nil }
}
func (o *kv) Apply(seq uint64, e commitlog.Entry) any {
	switch e.Type {
	case typeSet:
		if e.Ref.IsZero() {
			return fmt.Errorf("set %q without a value", e.Data)
		}
		o.idx.Set(string(e.Data), e.Ref, seq)
	case typeDel:
		o.idx.Delete(string(e.Data))
	}
	return nil
}

// Values through a real log: inline and in chunks, overwritten and
// deleted; GC collects the superseded ones and never a live one; a restart
// restores the index from its checkpoint.
func TestValuesThroughTheLog(t *testing.T) {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond,
		InlineMax: 1024, LeaseDuration: 150 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond,
		Grace: 800 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	o := &kv{idx: New()}
	l, err := commitlog.Open(ctx, b, []commitlog.Owner{o}, opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	want := map[string][]byte{}
	for i := range 600 {
		k := fmt.Sprintf("actor/%d", rng.IntN(200))
		if i%10 == 9 {
			if _, _, err := l.Propose(ctx, commitlog.Entry{Type: typeDel, Data: []byte(k)}); err != nil {
				t.Fatal(err)
			}
			delete(want, k)
			continue
		}
		v := make([]byte, 1+rng.IntN(4000))
		for j := range v {
			v[j] = byte(rng.IntN(256))
		}
		if _, _, err := l.Propose(ctx, commitlog.Entry{Type: typeSet, Data: []byte(k), Blob: v}); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	check := func(l *commitlog.Log, o *kv) {
		t.Helper()
		r := NewReader(b, 1<<20)
		var n int
		l.View(o, func() { n = o.idx.Len() })
		if n != len(want) {
			t.Fatalf("%d keys, want %d", n, len(want))
		}
		for k, v := range want {
			var ref Value
			var ok bool
			l.View(o, func() { ref, ok = o.idx.Get(k) })
			if !ok {
				t.Fatalf("%s missing", k)
			}
			got, err := r.Read(ctx, ref.Ref)
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("%s: %d bytes, %v; want %d bytes", k, len(got), err, len(v))
			}
			if again, _ := r.Read(ctx, ref.Ref); !bytes.Equal(again, v) {
				t.Fatalf("%s from the cache differs", k)
			}
		}
		if r.Hits.Load() != int64(len(want)) {
			t.Fatalf("cache hits %d, want %d", r.Hits.Load(), len(want))
		}
	}
	check(l, o)
	// Superseded values (and the commits holding inline ones, once
	// checkpointed) are collected; the live ones stay readable.
	deadline := time.Now().Add(20 * time.Second)
	for l.Stats.Deleted.Load() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("GC deleted %d objects, want at least 50", l.Stats.Deleted.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	check(l, o)
	l.Close()

	o2 := &kv{idx: New()}
	l2, err := commitlog.Open(ctx, b, []commitlog.Owner{o2}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	check(l2, o2)
}

// The cache stays within its bound and evicts the least recently used.
func TestReaderCacheIsBoundedLRU(t *testing.T) {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 100*100)
	if _, err := b.Put(ctx, "v", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	refAt := func(i int) commitlog.Ref {
		return commitlog.Ref{Key: "v", Off: int64(i * 100), Len: 100, CRC: commitlog.CRC(body[i*100 : i*100+100])}
	}
	r := NewReader(b, 1000) // ten values
	for i := range 10 {
		if _, err := r.Read(ctx, refAt(i)); err != nil {
			t.Fatal(err)
		}
	}
	r.Read(ctx, refAt(0)) // 0 is now the most recent
	r.Read(ctx, refAt(10))
	if r.Cached() > 1000 {
		t.Fatalf("cache holds %d bytes, bound 1000", r.Cached())
	}
	hits := r.Hits.Load()
	r.Read(ctx, refAt(0))
	if r.Hits.Load() != hits+1 {
		t.Fatal("the most recently used value was evicted")
	}
	r.Read(ctx, refAt(1))
	if r.Hits.Load() != hits+1 {
		t.Fatal("the least recently used value was not evicted")
	}
	bad := refAt(2)
	bad.CRC++
	if _, err := NewReader(b, 1000).Read(ctx, bad); err == nil {
		t.Fatal("a value with a wrong CRC was returned")
	}
}
