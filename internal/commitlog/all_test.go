package commitlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// An all-or-none group applies whole when its guard accepts it and not at
// all when the guard refuses, also when other proposals share its commit;
// every agent (here, a second one reading the log) decides the same.
func TestAllOrNoneGroups(t *testing.T) {
	b := openFile(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, rec := openLog(t, b, testOptions())
	if err := l.WaitEnabled(ctx, AllFeature); err != nil {
		t.Fatal(err)
	}
	rec2 := newRecorder()
	reader, err := Open(ctx, b, []Owner{rec2}, func() Options { o := testOptions(); o.NoJanitor = true; return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	e := func(id string) Entry { return Entry{Type: typeRecord, Data: []byte(id)} }
	_, res, err := l.Propose(ctx, All(e("guard-1"), e("a1"), e("a2"))...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[1:] {
		if err, _ := r.(error); err != nil {
			t.Fatalf("accepted group, entry %d: %v", i, err)
		}
	}
	// The guard id is a duplicate now: the recorder refuses it, so the
	// group's other entries must not apply.
	_, res, err = l.Propose(ctx, All(e("guard-1"), e("b1"), e("b2"))...)
	if err != nil {
		t.Fatal(err)
	}
	if err, _ := res[1].(error); err == nil {
		t.Fatal("guard accepted a duplicate")
	}
	for i, r := range res[2:] {
		err, _ := r.(error)
		var skip *SkippedError
		if !errors.Is(err, ErrSkipped) || !errors.As(err, &skip) {
			t.Fatalf("refused group, entry %d: result %v, want skipped", i+1, r)
		}
	}

	// Many proposals at once share commits: refused groups (odd) and
	// accepted ones (even) interleave with plain entries.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guard := fmt.Sprintf("g%d", i)
			if i%2 == 1 {
				guard = "guard-1"
			}
			if _, _, err := l.Propose(ctx, All(e(guard), e(fmt.Sprintf("x%d", i)), e(fmt.Sprintf("y%d", i)))...); err != nil {
				t.Error(err)
			}
			if _, _, err := l.Propose(ctx, e(fmt.Sprintf("plain%d", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := reader.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{rec, rec2} {
		var ids []string
		logOf := l
		if r == rec2 {
			logOf = reader
		}
		logOf.View(r, func() { ids = slices.Clone(r.IDs) })
		for _, bad := range []string{"b1", "b2"} {
			if slices.Contains(ids, bad) {
				t.Fatalf("entry %s of a refused group applied", bad)
			}
		}
		for i := range 40 {
			x, y := slices.Contains(ids, fmt.Sprintf("x%d", i)), slices.Contains(ids, fmt.Sprintf("y%d", i))
			if x != y || x != (i%2 == 0) {
				t.Fatalf("group %d: x applied %v, y applied %v, want %v", i, x, y, i%2 == 0)
			}
			if !slices.Contains(ids, fmt.Sprintf("plain%d", i)) {
				t.Fatalf("plain%d lost", i)
			}
		}
	}
}
