package faultbucket_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/bucket/filebucket"
)

func openBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putString(ctx context.Context, b bucket.Bucket, key, body string) error {
	_, err := b.Put(ctx, key, strings.NewReader(body), int64(len(body)))
	return err
}

// checkInjected fails the test unless err is an injected fault, reported as
// the bucket contract wants and never mistaken for a real outcome.
func checkInjected(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, faultbucket.ErrInjected) {
		t.Fatalf("error %v, want an injected fault", err)
	}
	if bucket.IsNotFound(err) || bucket.IsPrecondition(err) {
		t.Fatalf("injected fault %v passes for a not-found or precondition error", err)
	}
	if _, ok := errors.AsType[*bucket.OpError](err); !ok {
		t.Fatalf("injected fault %v is not a *bucket.OpError", err)
	}
}

func exists(t *testing.T, b bucket.Bucket, key string) bool {
	t.Helper()
	_, err := b.Stat(t.Context(), key)
	if err != nil && !bucket.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestFailNth(t *testing.T) {
	ctx := t.Context()
	inner := openBucket(t)
	fb := faultbucket.Wrap(inner, faultbucket.WithRules(faultbucket.Rule{Op: faultbucket.OpPut, FailNth: 3}))
	for i, key := range []string{"k1", "k2", "k3", "k4", "k5"} {
		err := putString(ctx, fb, key, "v")
		if i == 2 {
			checkInjected(t, err)
			if exists(t, inner, key) {
				t.Errorf("the failed Put of %s reached the bucket", key)
			}
			continue
		}
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	// Other operations are untouched.
	if _, err := fb.Stat(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.Counts(faultbucket.OpPut), (faultbucket.Counts{Calls: 5, Failed: 1}); got != want {
		t.Errorf("put counts %+v, want %+v", got, want)
	}
	if got := fb.Injected(); got != 1 {
		t.Errorf("Injected() = %d, want 1", got)
	}
}

// The unknown outcome the bucket contract warns about: the object is created
// and the caller is told the call failed, so its retry loses to itself.
func TestUnknownOutcome(t *testing.T) {
	ctx := t.Context()
	inner := openBucket(t)
	fb := faultbucket.Wrap(inner, faultbucket.WithRules(
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailNth: 1, UnknownOutcome: true},
		faultbucket.Rule{Op: faultbucket.OpPutIfMatch, FailNth: 1, UnknownOutcome: true},
		faultbucket.Rule{Op: faultbucket.OpPut, FailNth: 2, UnknownOutcome: true},
	))

	_, err := fb.PutIfAbsent(ctx, "log/1", strings.NewReader("commit"), 6)
	checkInjected(t, err)
	data, info, err := bucket.ReadAll(ctx, inner, "log/1")
	if err != nil || string(data) != "commit" {
		t.Fatalf("after an unknown outcome the object is %q, %v; want it written", data, err)
	}
	if _, err := fb.PutIfAbsent(ctx, "log/1", strings.NewReader("commit"), 6); !bucket.IsPrecondition(err) {
		t.Fatalf("retried PutIfAbsent: %v, want a precondition failure", err)
	}

	_, err = fb.PutIfMatch(ctx, "log/1", strings.NewReader("v2"), 2, info.Version)
	checkInjected(t, err)
	if data, _, _ := bucket.ReadAll(ctx, inner, "log/1"); string(data) != "v2" {
		t.Fatalf("PutIfMatch with an unknown outcome left %q, want v2", data)
	}

	if err := putString(ctx, fb, "p", "1"); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, putString(ctx, fb, "p", "2"))
	if data, _, _ := bucket.ReadAll(ctx, inner, "p"); string(data) != "2" {
		t.Fatalf("Put with an unknown outcome left %q, want 2", data)
	}

	// A call that fails for real is reported as it is, and is no injection.
	if _, err := fb.PutIfAbsent(ctx, "log/1", strings.NewReader("x"), 1); !bucket.IsPrecondition(err) {
		t.Fatalf("PutIfAbsent on an existing key: %v", err)
	}
	for op, want := range map[faultbucket.Op]faultbucket.Counts{
		faultbucket.OpPutIfAbsent: {Calls: 3, Unknown: 1},
		faultbucket.OpPutIfMatch:  {Calls: 1, Unknown: 1},
		faultbucket.OpPut:         {Calls: 2, Unknown: 1},
	} {
		if got := fb.Counts(op); got != want {
			t.Errorf("%s counts %+v, want %+v", op, got, want)
		}
	}
	if got := fb.Injected(); got != 3 {
		t.Errorf("Injected() = %d, want 3", got)
	}
}

// failures returns which of n sequential Stat calls failed.
func failures(t *testing.T, fb *faultbucket.Bucket, n int) []bool {
	t.Helper()
	failed := make([]bool, n)
	for i := range failed {
		_, err := fb.Stat(t.Context(), "k")
		if err != nil {
			checkInjected(t, err)
			failed[i] = true
		}
	}
	return failed
}

func TestFailRateIsSeeded(t *testing.T) {
	inner := openBucket(t)
	if err := putString(t.Context(), inner, "k", "v"); err != nil {
		t.Fatal(err)
	}
	rule := faultbucket.Rule{Op: faultbucket.OpStat, FailRate: 0.25}
	const n = 2000
	run := func(seed uint64) []bool {
		fb := faultbucket.Wrap(inner, faultbucket.WithSeed(seed), faultbucket.WithRules(rule))
		failed := failures(t, fb, n)
		count := 0
		for _, f := range failed {
			if f {
				count++
			}
		}
		if c := fb.Counts(faultbucket.OpStat); c.Calls != n || c.Failed != int64(count) {
			t.Errorf("counts %+v, want %d calls and %d failed", c, n, count)
		}
		// 25% of 2000 is 500; the binomial standard deviation is about 19.
		if count < 400 || count > 600 {
			t.Errorf("seed %d: %d of %d calls failed, want about %d", seed, count, n, n/4)
		}
		return failed
	}
	a, b, c := run(1), run(1), run(2)
	if !equal(a, b) {
		t.Error("the same seed failed different calls")
	}
	if equal(a, c) {
		t.Error("different seeds failed the same calls")
	}
}

func equal(a, b []bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestLatency(t *testing.T) {
	inner := openBucket(t)
	if err := putString(t.Context(), inner, "k", "v"); err != nil {
		t.Fatal(err)
	}
	// The fake clock makes the injected delays exact; the file bucket's own
	// I/O takes no fake time.
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fb := faultbucket.Wrap(inner, faultbucket.WithRules(
			faultbucket.Rule{Op: faultbucket.OpAny, Latency: 10 * time.Millisecond},
			faultbucket.Rule{Op: faultbucket.OpGetRange, Latency: 5 * time.Millisecond, Jitter: 20 * time.Millisecond},
		))
		start := time.Now()
		if _, err := fb.Stat(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Errorf("Stat took %v, want 10ms", d)
		}
		varied := false
		var first time.Duration
		for i := range 20 {
			start := time.Now()
			if _, err := fb.GetRange(ctx, "k", 0, 1); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			if d < 15*time.Millisecond || d >= 35*time.Millisecond {
				t.Errorf("GetRange took %v, want 15ms plus jitter below 20ms", d)
			}
			if i == 0 {
				first = d
			} else if d != first {
				varied = true
			}
		}
		if !varied {
			t.Error("jitter never varied the delay")
		}
	})
}

// A delay ends with the caller's context.
func TestLatencyHonoursContext(t *testing.T) {
	inner := openBucket(t)
	synctest.Test(t, func(t *testing.T) {
		fb := faultbucket.Wrap(inner, faultbucket.WithRules(faultbucket.Rule{Op: faultbucket.OpPut, Latency: time.Hour}))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := putString(ctx, fb, "k", "v")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Put = %v, want the context's deadline", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Put gave up after %v, want 1s", d)
		}
	})
	if exists(t, inner, "k") {
		t.Error("a Put abandoned during its delay reached the bucket")
	}
}

func TestSetRules(t *testing.T) {
	ctx := t.Context()
	fb := faultbucket.Wrap(openBucket(t))
	if err := putString(ctx, fb, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := fb.SetRules(faultbucket.Rule{Op: faultbucket.OpAny, FailRate: 1}); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, fb.Delete(ctx, "k"))
	if _, _, err := fb.Get(ctx, "k"); err == nil {
		t.Fatal("Get succeeded under FailRate 1")
	} else {
		checkInjected(t, err)
	}
	var listErr error
	n := 0
	for _, err := range fb.List(ctx, "", "") {
		n++
		listErr = err
	}
	if n != 1 {
		t.Errorf("a failed List yielded %d times, want once", n)
	}
	checkInjected(t, listErr)

	if err := fb.SetRules(); err != nil {
		t.Fatal(err)
	}
	if _, err := fb.Stat(ctx, "k"); err != nil {
		t.Fatalf("Stat after clearing the rules: %v", err)
	}

	for _, bad := range []faultbucket.Rule{
		{Op: "copy"},
		{Op: ""},
		{Op: faultbucket.OpGet, FailRate: 1.5},
		{Op: faultbucket.OpGet, FailRate: -0.1},
		{Op: faultbucket.OpGet, Latency: -time.Second},
		{Op: faultbucket.OpGet, FailNth: -1},
	} {
		if err := fb.SetRules(faultbucket.Rule{Op: faultbucket.OpStat, FailNth: 1}, bad); err == nil {
			t.Errorf("SetRules accepted %+v", bad)
		}
	}
	// A refused SetRules changed nothing.
	if _, err := fb.Stat(ctx, "k"); err != nil {
		t.Fatalf("Stat after refused rules: %v", err)
	}
}

// Rules can change while calls are in flight, and every injected fault is
// counted once (run with -race).
func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	fb := faultbucket.Wrap(openBucket(t), faultbucket.WithSeed(3),
		faultbucket.WithRules(faultbucket.Rule{Op: faultbucket.OpPut, FailRate: 0.5}))
	const workers, calls = 8, 50
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int64
	)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				err := putString(ctx, fb, "w/"+string(rune('a'+w)), "v")
				if err != nil {
					checkInjected(t, err)
					mu.Lock()
					failed++
					mu.Unlock()
				}
				if w == 0 && i == calls/2 {
					if err := fb.SetRules(faultbucket.Rule{Op: faultbucket.OpPut, FailRate: 0.1}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	c := fb.Counts(faultbucket.OpPut)
	if c.Calls != workers*calls || c.Failed != failed || c.Unknown != 0 {
		t.Errorf("counts %+v, want %d calls and %d failed", c, workers*calls, failed)
	}
	if failed == 0 {
		t.Error("no call failed")
	}
}
