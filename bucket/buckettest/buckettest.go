// Package buckettest is the conformance suite for bucket.Bucket: one set of
// tests of the contract written in package bucket, which every backend and
// every decorator over one must pass.
//
// A backend's tests call Run with a function that makes a new, empty bucket
// for each test, and wire the child mode that the multi-process tests
// re-execute the test binary in:
//
//	func TestConformanceFile(t *testing.T) {
//		buckettest.Run(t, func(t *testing.T) (bucket.Bucket, string) {
//			b, err := filebucket.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b, b.String()
//		})
//	}
//
//	func TestBucketChildProcess(t *testing.T) {
//		buckettest.ChildProcess(t, bucketurl.Open)
//	}
//
// Name the suite's test TestConformanceXxx, so that
// `go test ./... -run Conformance` runs every backend's suite. The child test
// must be called TestBucketChildProcess (ChildTestName); it skips unless it
// was started by the suite. bucketurl imports the backends, so a backend's
// test that uses bucketurl.Open belongs in an external test package
// (package s3bucket_test).
//
// Nothing is skipped: the large-object, race and multi-process tests are
// part of the contract, and run in -short mode too.
package buckettest

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
)

// NewBucket makes a new, empty bucket for one test, and returns it with the
// URL by which another process opens that same bucket (through the function
// given to ChildProcess). It registers any cleanup with t and calls t.Fatal
// if it cannot make the bucket. Run calls it from parallel subtests.
type NewBucket func(t *testing.T) (b bucket.Bucket, url string)

// test is one conformance test: it gets a new, empty bucket.
type test struct {
	name string
	run  func(t *testing.T, b bucket.Bucket, url string)
}

var tests = []test{
	{"Missing", testMissing},
	{"InvalidKeys", testInvalidKeys},
	{"RoundTrip", testRoundTrip},
	{"Replace", testReplace},
	{"Versions", testVersions},
	{"GetRange", testGetRange},
	{"GetSeesOneVersion", testGetSeesOneVersion},
	{"IncompleteBody", testIncompleteBody},
	{"PutIfAbsent", testPutIfAbsent},
	{"PutIfMatch", testPutIfMatch},
	{"Delete", testDelete},
	{"Cancelled", testCancelled},
	{"ListOrder", testListOrder},
	{"ListPrefixStartAfter", testListPrefixStartAfter},
	{"ListMany", testListMany},
	{"LargeObject", testLargeObject},
	{"RacePutIfAbsent", testRacePutIfAbsent},
	{"RacePutIfMatch", testRacePutIfMatch},
	{"RaceCounter", testRaceCounter},
	{"RaceSiblings", testRaceSiblings},
	{"MultiProcessPutIfAbsent", testMultiProcessPutIfAbsent},
}

// Run runs the conformance suite against the buckets newBucket makes, each
// test as a parallel subtest of t with a bucket of its own.
func Run(t *testing.T, newBucket NewBucket) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, url := newBucket(t)
			if keys := listKeys(t, b, "", ""); len(keys) != 0 {
				t.Fatalf("NewBucket returned a bucket that is not empty: %q", keys)
			}
			tc.run(t, b, url)
		})
	}
}

// put stores content at key and checks the Info that Put returns.
func put(t *testing.T, b bucket.Bucket, key, content string) bucket.Info {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(content), int64(len(content)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	checkInfo(t, "Put", info, key, int64(len(content)))
	return info
}

// putAll stores many objects concurrently, as a bucket is meant to be used
// (and because a file bucket's fsyncs are slow one at a time).
func putAll(t *testing.T, b bucket.Bucket, objects map[string]string) {
	t.Helper()
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for key := range keys {
				content := objects[key]
				if _, err := b.Put(t.Context(), key, strings.NewReader(content), int64(len(content))); err != nil {
					t.Errorf("Put(%q): %v", key, err)
				}
			}
		})
	}
	for key := range objects {
		keys <- key
	}
	close(keys)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// checkInfo checks what any operation's Info must say about an object.
func checkInfo(t *testing.T, what string, info bucket.Info, key string, size int64) {
	t.Helper()
	if info.Key != key || info.Size != size || info.Version == "" {
		t.Errorf("%s(%q) returned Info{Key: %q, Size: %d, Version: %q}, want key %q, size %d and a version",
			what, key, info.Key, info.Size, info.Version, key, size)
	}
}

// checkModified checks that a stored object's time is plausible. It comes
// from the store's clock, so only its order of magnitude is checked.
func checkModified(t *testing.T, what string, info bucket.Info) {
	t.Helper()
	if d := time.Since(info.Modified).Abs(); d > 24*time.Hour {
		t.Errorf("%s(%q): Modified is %v, %v away from now", what, info.Key, info.Modified, d)
	}
}

// stat returns the Info of an object that must exist.
func stat(t *testing.T, b bucket.Bucket, key string) bucket.Info {
	t.Helper()
	info, err := b.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

// checkContent checks that key holds want, through Get and Stat, and
// returns its Info.
func checkContent(t *testing.T, b bucket.Bucket, key, want string) bucket.Info {
	t.Helper()
	got, info, err := bucket.ReadAll(t.Context(), b, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, clip(string(got)), clip(want))
	}
	checkInfo(t, "Get", info, key, int64(len(want)))
	checkModified(t, "Get", info)
	st := stat(t, b, key)
	checkInfo(t, "Stat", st, key, int64(len(want)))
	checkModified(t, "Stat", st)
	if st.Version != info.Version {
		t.Errorf("Stat(%q).Version = %q, but Get said %q", key, st.Version, info.Version)
	}
	return st
}

// checkMissing checks that key holds no object.
func checkMissing(t *testing.T, b bucket.Bucket, key string) {
	t.Helper()
	_, err := b.Stat(t.Context(), key)
	checkErr(t, "Stat", key, err, bucket.ErrNotFound)
}

// checkErr checks that err is the sentinel want, wrapped in an *OpError
// naming the operation and the key.
func checkErr(t *testing.T, what, key string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s(%q): error %v, want %v", what, clip(key), err, want)
		return
	}
	checkOpError(t, what, key, err)
}

// checkOpError checks that err is an *OpError naming an operation and key.
// A decorator that adds a key prefix may report the key it passed on, so
// the key need only end with the caller's.
func checkOpError(t *testing.T, what, key string, err error) {
	t.Helper()
	oe, ok := errors.AsType[*bucket.OpError](err)
	if !ok {
		t.Errorf("%s(%q): error %v (%T) is not a *bucket.OpError", what, clip(key), err, err)
		return
	}
	if oe.Bucket == "" || oe.Op == "" || !strings.HasSuffix(oe.Key, key) || oe.Err == nil {
		t.Errorf("%s(%q): OpError{Bucket: %q, Op: %q, Key: %q, Err: %v} does not name the bucket, the operation and the key",
			what, clip(key), oe.Bucket, oe.Op, clip(oe.Key), oe.Err)
	}
}

// listKeys collects what List yields, failing the test on an error.
func listKeys(t *testing.T, b bucket.Bucket, prefix, startAfter string) []string {
	t.Helper()
	keys := []string{}
	for info, err := range b.List(t.Context(), prefix, startAfter) {
		if err != nil {
			t.Fatalf("List(%q, %q): %v", prefix, startAfter, err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

// wantKeys is the oracle for List: the keys of all that start with prefix
// and sort after startAfter, in order.
func wantKeys(all []string, prefix, startAfter string) []string {
	want := []string{}
	for _, k := range all {
		if strings.HasPrefix(k, prefix) && k > startAfter {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	return want
}

// clip shortens long strings (keys, contents) in failure messages.
func clip(s string) string {
	if len(s) > 80 {
		return s[:60] + "..." + s[len(s)-10:]
	}
	return s
}

// noRead is a body that must not be read: the request is invalid.
type noRead struct {
	t    *testing.T
	what string
}

func (r noRead) Read([]byte) (int, error) {
	r.t.Errorf("%s read the body of a request it should have refused", r.what)
	return 0, io.EOF
}

// failAfter is a body that delivers n bytes of content and then fails
// with err, so the object can never be complete.
func failAfter(content string, err error) io.Reader {
	return io.MultiReader(strings.NewReader(content), errReader{err})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// cancelAfter is a body that cancels its request's context after n bytes
// and then reports the cancellation, so the object can never be complete.
type cancelAfter struct {
	ctx    context.Context
	cancel context.CancelFunc
	p      pattern
	n, off int64
}

func (r *cancelAfter) Read(buf []byte) (int, error) {
	if r.off >= r.n {
		r.cancel()
		return 0, r.ctx.Err()
	}
	m := min(int64(len(buf)), r.n-r.off)
	r.p.fill(buf[:m], r.off)
	r.off += m
	return int(m), nil
}
