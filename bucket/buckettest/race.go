package buckettest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twoway/twoway/bucket"
)

// raceContent is a writer's distinct content in a race.
func raceContent(round, writer int) string {
	line := fmt.Sprintf("round %d, writer %d\n", round, writer)
	return strings.Repeat(line, 1024/len(line))
}

// race runs write for each of n writers at once (released together by a
// barrier) and returns their results.
func race(n int, write func(i int) (bucket.Info, error)) ([]bucket.Info, []error) {
	infos := make([]bucket.Info, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			infos[i], errs[i] = write(i)
		})
	}
	close(start)
	wg.Wait()
	return infos, errs
}

// oneWinner checks that exactly one writer succeeded and every other got
// ErrPrecondition, and that the key holds the winner's content and version.
func oneWinner(t *testing.T, b bucket.Bucket, what, key string, round int, infos []bucket.Info, errs []error) {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s round %d: writers %d and %d both won", what, round, winner, i)
		case err == nil:
			winner = i
		case !bucket.IsPrecondition(err):
			t.Fatalf("%s round %d: writer %d failed: %v", what, round, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s round %d: nobody won", what, round)
	}
	st := checkContent(t, b, key, raceContent(round, winner))
	if st.Version != infos[winner].Version {
		t.Fatalf("%s round %d: the key has version %q, the winner was told %q", what, round, st.Version, infos[winner].Version)
	}
}

// testRacePutIfAbsent: of 16 goroutines creating one key at once, exactly
// one wins and its content is what is stored, round after round.
func testRacePutIfAbsent(t *testing.T, b bucket.Bucket, _ string) {
	const rounds, writers = 50, 16
	for round := range rounds {
		key := fmt.Sprintf("race/%02d", round)
		infos, errs := race(writers, func(i int) (bucket.Info, error) {
			c := raceContent(round, i)
			return b.PutIfAbsent(t.Context(), key, strings.NewReader(c), int64(len(c)))
		})
		oneWinner(t, b, "PutIfAbsent", key, round, infos, errs)
	}
}

// testRacePutIfMatch: of 16 goroutines replacing the same version at once,
// exactly one wins, round after round.
func testRacePutIfMatch(t *testing.T, b bucket.Bucket, _ string) {
	const rounds, writers = 20, 16
	for round := range rounds {
		key := fmt.Sprintf("race/%02d", round%3) // reuse keys: versions chain
		base := put(t, b, key, fmt.Sprintf("base of round %d", round))
		infos, errs := race(writers, func(i int) (bucket.Info, error) {
			c := raceContent(round, i)
			return b.PutIfMatch(t.Context(), key, strings.NewReader(c), int64(len(c)), base.Version)
		})
		oneWinner(t, b, "PutIfMatch", key, round, infos, errs)
	}
}

// testRaceCounter: goroutines increment a counter with read, PutIfMatch,
// retry on ErrPrecondition. A lost update shows as a short count.
func testRaceCounter(t *testing.T, b bucket.Bucket, _ string) {
	const workers, increments = 4, 8
	put(t, b, "counter", "0")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for done, attempts := 0, 0; done < increments; attempts++ {
				if attempts > 1000 {
					t.Errorf("worker %d: %d attempts for %d increments", w, attempts, done)
					return
				}
				data, info, err := bucket.ReadAll(t.Context(), b, "counter")
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				n, err := strconv.Atoi(string(data))
				if err != nil {
					t.Errorf("worker %d: counter holds %q", w, data)
					return
				}
				next := strconv.Itoa(n + 1)
				_, err = b.PutIfMatch(t.Context(), "counter", strings.NewReader(next), int64(len(next)), info.Version)
				switch {
				case err == nil:
					done++
				case !bucket.IsPrecondition(err):
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkContent(t, b, "counter", strconv.Itoa(workers*increments))
}

// testRaceSiblings: goroutines create and delete keys side by side in one
// deep directory, so that (in a file bucket) the directories are removed
// when empty and re-created while others write into them. Every write must
// succeed.
func testRaceSiblings(t *testing.T, b bucket.Bucket, _ string) {
	const workers, rounds = 8, 10
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				key := fmt.Sprintf("churn/x/y/k%d", w)
				c := raceContent(r, w)
				var err error
				if r%2 == 0 {
					_, err = b.Put(ctx, key, strings.NewReader(c), int64(len(c)))
				} else {
					_, err = b.PutIfAbsent(ctx, key, strings.NewReader(c), int64(len(c)))
				}
				if err != nil {
					t.Errorf("round %d: writing %q among churning siblings: %v", r, key, err)
					return
				}
				got, _, err := bucket.ReadAll(ctx, b, key)
				if err != nil || string(got) != c {
					t.Errorf("round %d: reading %q back: %q, %v", r, key, clip(string(got)), err)
					return
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Errorf("round %d: Delete(%q): %v", r, key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if keys := listKeys(t, b, "", ""); len(keys) != 0 {
		t.Errorf("List = %q after every key was deleted", keys)
	}
}
