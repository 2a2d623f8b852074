package commitlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/faultbucket"
)

// Without a linger, a proposal made while nothing is in flight is
// committed alone, at once; proposals made while a commit is in flight
// gather into the next one. Counted in commits, not timed: each of 50
// concurrent proposals against a bucket whose conditional writes take
// 30ms would otherwise take a commit of its own.
func TestGroupCommitGathersOnlyWhileACommitIsInFlight(t *testing.T) {
	fb := faultbucket.Wrap(openFile(t))
	opts := testOptions()
	opts.Linger = 0
	opts.NoJanitor = true
	l, rec := openLog(t, fb, opts)
	ctx := context.Background()

	// Sequential proposals: one commit each (nothing to gather with).
	before := l.Stats.Commits.Load()
	for i := range 5 {
		if _, _, err := l.Propose(ctx, Entry{Type: typeRecord, Data: []byte(fmt.Sprint("s", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Stats.Commits.Load() - before; n != 5 {
		t.Fatalf("5 sequential proposals took %d commits, want 5", n)
	}

	if err := fb.SetRules(faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, Latency: 30 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before = l.Stats.Commits.Load()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := l.Propose(ctx, Entry{Type: typeRecord, Data: []byte(fmt.Sprint("c", i))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := l.Stats.Commits.Load() - before
	if n > 10 {
		t.Fatalf("50 concurrent proposals took %d commits: they did not gather while a commit was in flight", n)
	}
	var got int
	l.View(rec, func() { got = len(rec.IDs) })
	if got != 55 {
		t.Fatalf("applied %d records, want 55", got)
	}
	t.Logf("50 concurrent proposals in %d commits", n)
}
