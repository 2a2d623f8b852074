package commitlog

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/faultbucket"
)

// A write whose outcome is unknown and that did land, followed by read-backs
// that fail and a retry that meets our own commit, must not be reported as
// "not committed" when the log closes: callers retry on that error, and the
// retry would duplicate the records.
func TestUnknownOutcomeStaysUnknownAcrossRetries(t *testing.T) {
	inner := openFile(t)
	fb := faultbucket.Wrap(inner)
	opts := testOptions()
	opts.NoJanitor = true
	l, _ := openLog(t, fb, opts)
	if err := fb.SetRules(
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailNth: 1, UnknownOutcome: true},
		faultbucket.Rule{Op: faultbucket.OpGet, FailRate: 1},
	); err != nil {
		t.Fatal(err)
	}
	seq := l.Applied() + 1
	wait := l.Submit(Entry{Type: typeRecord, Data: []byte("once")})
	deadline := time.Now().Add(10 * time.Second)
	// The first write lands (reported failed); the retry at the same
	// sequence number meets it.
	for l.Stats.Conflicts.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no retry met the landed commit: %+v", fb.Counts(faultbucket.OpPutIfAbsent))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := inner.Stat(context.Background(), LogKey(seq)); err != nil {
		t.Fatalf("the first write did not land: %v", err)
	}
	l.Close()
	_, _, err := wait(context.Background())
	if err == nil || errors.Is(err, ErrNotCommitted) {
		t.Fatalf("a commit that exists was reported as %v", err)
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed (outcome unknown), got %v", err)
	}
}

// A log stopped by a corrupt commit fails the proposals waiting in it at
// once, with the error that stopped it, instead of leaving them until their
// own contexts end.
func TestFatalLogFailsPendingProposals(t *testing.T) {
	b := openFile(t)
	opts := testOptions()
	opts.NoJanitor = true
	opts.Linger = time.Hour // proposals stay pending
	l, _ := openLog(t, b, opts)
	wait := l.Submit(Entry{Type: typeRecord, Data: []byte("pending")})
	corrupt := []byte("TWLC\x00\x01\x00\x00 not a commit")
	if _, err := b.PutIfAbsent(context.Background(), LogKey(l.Applied()+1), bytes.NewReader(corrupt), int64(len(corrupt))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := wait(ctx)
	var stopped *StoppedError
	if !errors.As(err, &stopped) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("pending proposal got %v, want the corrupt-commit error", err)
	}
	if stopped.Seq != 1 {
		t.Fatalf("stopped at commit %d, want 1", stopped.Seq)
	}
	h := l.Health()
	if h.Ready || h.Stopped == nil {
		t.Fatalf("health of a stopped log: %+v", h)
	}
	// New proposals fail at once too.
	if _, _, err := l.Propose(ctx, Entry{Type: typeRecord, Data: []byte("after")}); !errors.As(err, &stopped) {
		t.Fatalf("proposal after the stop got %v", err)
	}
}
