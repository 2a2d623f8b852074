package buckettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/twoway/twoway/bucket"
)

// testMissing: reads of a missing key are ErrNotFound, deleting it is not
// an error, and a conditional replace of it fails.
func testMissing(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	for _, key := range []string{"missing", "no/such/key"} {
		rc, _, err := b.Get(ctx, key)
		if rc != nil {
			rc.Close()
			t.Errorf("Get(%q) returned a reader for a missing key", key)
		}
		checkErr(t, "Get", key, err, bucket.ErrNotFound)
		_, err = b.Stat(ctx, key)
		checkErr(t, "Stat", key, err, bucket.ErrNotFound)
		_, err = b.GetRange(ctx, key, 0, 1)
		checkErr(t, "GetRange", key, err, bucket.ErrNotFound)
		_, err = b.GetRange(ctx, key, 0, -1)
		checkErr(t, "GetRange", key, err, bucket.ErrNotFound)
		if err := b.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v, want nil", key, err)
		}
		_, err = b.PutIfMatch(ctx, key, strings.NewReader("x"), 1, "some-version")
		checkErr(t, "PutIfMatch", key, err, bucket.ErrPrecondition)
		checkMissing(t, b, key)
	}
	if keys := listKeys(t, b, "", ""); len(keys) != 0 {
		t.Errorf("List of an empty bucket yielded %q", keys)
	}
	if b.String() == "" {
		t.Errorf("String() is empty")
	}
}

// invalidKeys break bucket.ValidateKey in every way it lists.
var invalidKeys = []string{
	"", "/abs", "../x", "x/..", "a/../b", "a//b", "a/./b", "a/", ".", "..",
	"a\x00b", `a\b`, "bad-utf8-\xff\xfe", strings.Repeat("k", 2000),
}

// testInvalidKeys: every operation refuses an invalid key with
// ErrInvalidKey before reading or writing anything.
func testInvalidKeys(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	for _, key := range invalidKeys {
		rc, _, err := b.Get(ctx, key)
		if rc != nil {
			rc.Close()
		}
		checkErr(t, "Get", key, err, bucket.ErrInvalidKey)
		_, err = b.GetRange(ctx, key, 0, 1)
		checkErr(t, "GetRange", key, err, bucket.ErrInvalidKey)
		_, err = b.Stat(ctx, key)
		checkErr(t, "Stat", key, err, bucket.ErrInvalidKey)
		_, err = b.Put(ctx, key, noRead{t, "Put"}, 1)
		checkErr(t, "Put", key, err, bucket.ErrInvalidKey)
		_, err = b.PutIfAbsent(ctx, key, noRead{t, "PutIfAbsent"}, 1)
		checkErr(t, "PutIfAbsent", key, err, bucket.ErrInvalidKey)
		_, err = b.PutIfMatch(ctx, key, noRead{t, "PutIfMatch"}, 1, "some-version")
		checkErr(t, "PutIfMatch", key, err, bucket.ErrInvalidKey)
		checkErr(t, "Delete", key, b.Delete(ctx, key), bucket.ErrInvalidKey)
	}
	for _, prefix := range []string{"/", "/a", "../", "a//", "a/./", "a/../", "a\x00"} {
		var errs []error
		n := 0
		for _, err := range b.List(ctx, prefix, "") {
			n++
			if err != nil {
				errs = append(errs, err)
			}
		}
		if n != 1 || len(errs) != 1 {
			t.Errorf("List(%q) yielded %d items and errors %v, want exactly one error", prefix, n, errs)
			continue
		}
		checkErr(t, "List", prefix, errs[0], bucket.ErrInvalidKey)
	}
	if keys := listKeys(t, b, "", ""); len(keys) != 0 {
		t.Errorf("after requests with invalid keys the bucket holds %q", keys)
	}
}

// longKey is a valid key of n bytes in segments of at most 100 bytes (file
// systems limit a path segment to 255).
func longKey(n int) string {
	var segs []string
	for i, left := 0, n; left > 0; i++ {
		seg := fmt.Sprintf("%03d", i) + strings.Repeat("x", 96)
		if left <= len(seg) {
			seg = seg[:left]
		} else if left <= len(seg)+1 {
			seg = seg[:left-2] // leave room for '/' and a last byte
		}
		segs = append(segs, seg)
		left -= len(seg) + 1
	}
	return strings.Join(segs, "/")
}

// testRoundTrip: what Put stores, Get, GetRange, Stat and List give back,
// for keys of every shape and for bodies that are not plain byte slices.
func testRoundTrip(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	objects := []struct{ key, content string }{
		{"greeting", "hello, world\n"},
		{"a/b/c/deep.txt", "deep"},
		{"unicode/naïve ☃ 日本", "snow"},
		{"punctuation/!$&'()*+,;=:@~-_.?#%[]{}^`|\"<>", "punctuation"},
		{"space/with space", "spaced"},
		{"empty", ""},
		// 1024 bytes is bucket.MaxKeyLen; this leaves a backend that adds
		// a prefix of its own some room (S3 counts the whole key).
		{longKey(900), "long key"},
		{"binary", "\x00\x01\xfe\xff\r\n\x00"},
	}
	var keys []string
	for _, o := range objects {
		info := put(t, b, o.key, o.content)
		st := checkContent(t, b, o.key, o.content)
		if st.Version != info.Version {
			t.Errorf("Stat(%q).Version = %q, but Put returned %q", clip(o.key), st.Version, info.Version)
		}
		got, err := b.GetRange(ctx, o.key, 0, -1)
		if err != nil || string(got) != o.content {
			t.Errorf("GetRange(%q, 0, -1) = %q, %v; want %q", clip(o.key), got, err, o.content)
		}
		keys = append(keys, o.key)
	}

	// A body that comes in small pieces and cannot seek, as from a pipe.
	p := pattern{seed: 7}
	const size = 100_000
	want := make([]byte, size)
	p.fill(want, 0)
	info, err := b.Put(ctx, "chunked", iotest.HalfReader(p.reader(size)), size)
	if err != nil {
		t.Fatalf("Put(chunked) from a pipe-like reader: %v", err)
	}
	checkInfo(t, "Put", info, "chunked", size)
	checkContent(t, b, "chunked", string(want))
	keys = append(keys, "chunked")

	slices.Sort(keys)
	var listed []string
	for info, err := range b.List(ctx, "", "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		listed = append(listed, info.Key)
		st := stat(t, b, info.Key)
		if info.Size != st.Size || info.Version != st.Version {
			t.Errorf("List yields %q with size %d, version %q; Stat says %d, %q",
				clip(info.Key), info.Size, info.Version, st.Size, st.Version)
		}
		checkModified(t, "List", info)
	}
	if !slices.Equal(listed, keys) {
		t.Errorf("List = %q, want %q", listed, keys)
	}
}

// testReplace: Put replaces, and every replacement has a new version.
func testReplace(t *testing.T, b bucket.Bucket, _ string) {
	contents := []string{
		"first version",
		"second, longer version",
		"third, same-size versn", // as long as the second
		"",
		"back from empty",
	}
	versions := map[string]int{}
	for i, c := range contents {
		info := put(t, b, "k", c)
		st := checkContent(t, b, "k", c)
		if st.Version != info.Version {
			t.Errorf("after Put %d, Stat.Version = %q but Put returned %q", i, st.Version, info.Version)
		}
		if j, dup := versions[info.Version]; dup {
			t.Errorf("Put %d (%q) yields version %q, the same as Put %d (%q)", i, c, info.Version, j, contents[j])
		}
		versions[info.Version] = i
	}
	if keys := listKeys(t, b, "", ""); !slices.Equal(keys, []string{"k"}) {
		t.Errorf("List = %q after replacing one key", keys)
	}
}

// testVersions: a version is stable while the object is, differs for
// different content even when writes come fast and the same size, and does
// not come back after delete and re-create.
func testVersions(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	seen := map[string]string{}
	var last bucket.Info
	for i := range 20 {
		content := fmt.Sprintf("content %02d", i) // all the same size
		info := put(t, b, "v", content)
		if prev, dup := seen[info.Version]; dup {
			t.Errorf("Put %q yields version %q, as %q did before", content, info.Version, prev)
		}
		seen[info.Version] = content
		last = info
	}
	for range 3 {
		if st := stat(t, b, "v"); st.Version != last.Version {
			t.Errorf("Stat.Version = %q, want the unchanged %q", st.Version, last.Version)
		}
	}
	rc, info, err := b.Get(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if info.Version != last.Version {
		t.Errorf("Get's Info.Version = %q, want %q", info.Version, last.Version)
	}
	for info, err := range b.List(ctx, "v", "") {
		if err != nil || info.Version != last.Version {
			t.Errorf("List yields version %q (%v), want %q", info.Version, err, last.Version)
		}
	}
	if err := b.Delete(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	info, err = b.PutIfAbsent(ctx, "v", strings.NewReader("content 99"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if prev, dup := seen[info.Version]; dup {
		t.Errorf("re-created object has version %q, as %q did before the delete", info.Version, prev)
	}
}

// testGetRange: every kind of range, inside, across and past the end.
func testGetRange(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	content := strings.Repeat("0123456789", 10) // 100 bytes
	put(t, b, "r", content)
	put(t, b, "empty", "")
	ok := []struct {
		key         string
		off, length int64
		want        string
	}{
		{"r", 0, 10, content[:10]},
		{"r", 0, 100, content},
		{"r", 0, 1000, content},
		{"r", 0, -1, content},
		{"r", 0, 0, ""},
		{"r", 37, 21, content[37:58]},
		{"r", 50, -1, content[50:]},
		{"r", 90, 20, content[90:]},
		{"r", 99, 1, content[99:]},
		{"r", 99, math.MaxInt64, content[99:]},
		{"r", 100, 10, ""},
		{"r", 100, -1, ""},
		{"r", 100, 0, ""},
		{"empty", 0, -1, ""},
		{"empty", 0, 10, ""},
	}
	for _, c := range ok {
		got, err := b.GetRange(ctx, c.key, c.off, c.length)
		if err != nil || string(got) != c.want {
			t.Errorf("GetRange(%q, %d, %d) = %q, %v; want %q", c.key, c.off, c.length, got, err, c.want)
		}
	}
	bad := []struct {
		key         string
		off, length int64
	}{
		{"r", 101, 1},
		{"r", 101, -1},
		{"r", 1000, 0},
		{"r", math.MaxInt64, 1},
		{"r", -1, 5},
		{"r", -5, -1},
		{"empty", 1, 0},
	}
	for _, c := range bad {
		got, err := b.GetRange(ctx, c.key, c.off, c.length)
		if got != nil {
			t.Errorf("GetRange(%q, %d, %d) returned %q with error %v", c.key, c.off, c.length, got, err)
		}
		checkErr(t, fmt.Sprintf("GetRange(_, %d, %d)", c.off, c.length), c.key, err, bucket.ErrInvalidRange)
	}
}

// testGetSeesOneVersion: a reader opened by Get keeps reading the version
// it opened while the key is replaced.
func testGetSeesOneVersion(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	const size = 4 << 20
	v1, v2 := pattern{seed: 1}, pattern{seed: 2}
	if _, err := b.Put(ctx, "k", v1.reader(size), size); err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	check := newChecker(v1)
	if _, err := io.CopyN(check, rc, 64<<10); err != nil {
		t.Fatalf("reading the first 64 KiB: %v", err)
	}
	if _, err := b.Put(ctx, "k", v2.reader(size), size); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(check, rc); err != nil {
		t.Fatalf("reading on after the replace: %v", err)
	}
	if err := check.result(size); err != nil {
		t.Errorf("the reader opened before a replace: %v", err)
	}
	rc.Close()
	rc, _, err = b.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	check = newChecker(v2)
	if _, err := io.Copy(check, rc); err != nil {
		t.Fatal(err)
	}
	if err := check.result(size); err != nil {
		t.Errorf("a reader opened after the replace: %v", err)
	}
}

// testIncompleteBody: a write whose body ends early or fails creates
// nothing, replaces nothing, and does not take a key from PutIfAbsent.
func testIncompleteBody(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	errBody := errors.New("the body broke")
	bodies := []struct {
		name string
		body func() io.Reader
	}{
		{"short", func() io.Reader { return strings.NewReader("only ten b") }},
		{"failing", func() io.Reader { return failAfter("only ten b", errBody) }},
	}
	old := put(t, b, "old", "the old content")
	for _, bd := range bodies {
		if _, err := b.Put(ctx, "new", bd.body(), 20); err == nil {
			t.Errorf("Put of a %s body succeeded", bd.name)
		}
		checkMissing(t, b, "new")
		if _, err := b.PutIfAbsent(ctx, "new", bd.body(), 20); err == nil {
			t.Errorf("PutIfAbsent of a %s body succeeded", bd.name)
		}
		checkMissing(t, b, "new")
		if _, err := b.Put(ctx, "old", bd.body(), 20); err == nil {
			t.Errorf("Put of a %s body over an object succeeded", bd.name)
		}
		if _, err := b.PutIfMatch(ctx, "old", bd.body(), 20, old.Version); err == nil {
			t.Errorf("PutIfMatch of a %s body succeeded", bd.name)
		}
		if st := checkContent(t, b, "old", "the old content"); st.Version != old.Version {
			t.Errorf("failed writes changed the version of %q from %q to %q", "old", old.Version, st.Version)
		}
	}
	// The failed PutIfAbsent attempts must not have taken the key.
	if _, err := b.PutIfAbsent(ctx, "new", strings.NewReader("complete"), 8); err != nil {
		t.Fatalf("PutIfAbsent after failed attempts: %v", err)
	}
	checkContent(t, b, "new", "complete")
	if keys := listKeys(t, b, "", ""); !slices.Equal(keys, []string{"new", "old"}) {
		t.Errorf("List = %q, want [new old]", keys)
	}
}

// testPutIfAbsent: it creates once, then refuses and leaves the object
// alone; after a delete it creates again.
func testPutIfAbsent(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	for _, key := range []string{"once", "new/dirs/once"} {
		info, err := b.PutIfAbsent(ctx, key, strings.NewReader("first"), 5)
		if err != nil {
			t.Fatalf("PutIfAbsent(%q) of a new key: %v", key, err)
		}
		checkInfo(t, "PutIfAbsent", info, key, 5)
		if st := checkContent(t, b, key, "first"); st.Version != info.Version {
			t.Errorf("Stat(%q).Version = %q, but PutIfAbsent returned %q", key, st.Version, info.Version)
		}
		got, err := b.PutIfAbsent(ctx, key, strings.NewReader("second!"), 7)
		checkErr(t, "PutIfAbsent", key, err, bucket.ErrPrecondition)
		if got != (bucket.Info{}) {
			t.Errorf("a losing PutIfAbsent returned %+v", got)
		}
		if st := checkContent(t, b, key, "first"); st.Version != info.Version {
			t.Errorf("a losing PutIfAbsent changed the version from %q to %q", info.Version, st.Version)
		}
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := b.PutIfAbsent(ctx, key, strings.NewReader("third"), 5); err != nil {
			t.Fatalf("PutIfAbsent(%q) after Delete: %v", key, err)
		}
		checkContent(t, b, key, "third")
	}
	if _, err := b.PutIfAbsent(ctx, "empty", strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	checkContent(t, b, "empty", "")
	_, err := b.PutIfAbsent(ctx, "empty", strings.NewReader(""), 0)
	checkErr(t, "PutIfAbsent", "empty", err, bucket.ErrPrecondition)
}

// testPutIfMatch: it replaces only the version it names.
func testPutIfMatch(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	putIfMatch := func(key, content, version string) (bucket.Info, error) {
		return b.PutIfMatch(ctx, key, strings.NewReader(content), int64(len(content)), version)
	}
	v1 := put(t, b, "cas", "v1")
	v2, err := putIfMatch("cas", "v2", v1.Version)
	if err != nil {
		t.Fatalf("PutIfMatch with the current version: %v", err)
	}
	checkInfo(t, "PutIfMatch", v2, "cas", 2)
	if v2.Version == v1.Version {
		t.Errorf("PutIfMatch kept the version %q", v1.Version)
	}
	if st := checkContent(t, b, "cas", "v2"); st.Version != v2.Version {
		t.Errorf("Stat.Version = %q, but PutIfMatch returned %q", st.Version, v2.Version)
	}
	for _, stale := range []string{v1.Version, "", "not-a-version", v2.Version + "x"} {
		got, err := putIfMatch("cas", "lost", stale)
		checkErr(t, fmt.Sprintf("PutIfMatch(version %q)", stale), "cas", err, bucket.ErrPrecondition)
		if got != (bucket.Info{}) {
			t.Errorf("a losing PutIfMatch returned %+v", got)
		}
	}
	if st := checkContent(t, b, "cas", "v2"); st.Version != v2.Version {
		t.Errorf("losing PutIfMatch calls changed the version to %q", st.Version)
	}
	v3, err := putIfMatch("cas", "v3", v2.Version)
	if err != nil {
		t.Fatal(err)
	}
	_, err = putIfMatch("cas", "lost", v2.Version)
	checkErr(t, "PutIfMatch", "cas", err, bucket.ErrPrecondition)
	checkContent(t, b, "cas", "v3")

	// The same bytes again: allowed, whatever the version becomes.
	if _, err := putIfMatch("cas", "v3", v3.Version); err != nil {
		t.Errorf("PutIfMatch of identical content: %v", err)
	}
	cur := checkContent(t, b, "cas", "v3")

	// Delete and re-create: the old version no longer matches.
	if err := b.Delete(ctx, "cas"); err != nil {
		t.Fatal(err)
	}
	_, err = putIfMatch("cas", "zombie", cur.Version)
	checkErr(t, "PutIfMatch after Delete", "cas", err, bucket.ErrPrecondition)
	checkMissing(t, b, "cas")
	put(t, b, "cas", "reborn")
	_, err = putIfMatch("cas", "zombie", cur.Version)
	checkErr(t, "PutIfMatch after re-create", "cas", err, bucket.ErrPrecondition)
	checkContent(t, b, "cas", "reborn")
}

// testDelete: it removes one object, is idempotent, and a key that is only
// a prefix of others is no object.
func testDelete(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	putAll(t, b, map[string]string{"d/a": "a", "d/b": "b", "d/sub/c": "c"})
	for range 2 {
		if err := b.Delete(ctx, "d/a"); err != nil {
			t.Fatalf("Delete(d/a): %v", err)
		}
	}
	checkMissing(t, b, "d/a")
	rc, _, err := b.Get(ctx, "d/a")
	if rc != nil {
		rc.Close()
	}
	checkErr(t, "Get", "d/a", err, bucket.ErrNotFound)
	checkContent(t, b, "d/b", "b")

	// "d" and "d/sub" are only prefixes.
	for _, key := range []string{"d", "d/sub"} {
		if err := b.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a prefix: %v", key, err)
		}
		checkMissing(t, b, key)
		rc, _, err := b.Get(ctx, key)
		if rc != nil {
			rc.Close()
		}
		checkErr(t, "Get", key, err, bucket.ErrNotFound)
		_, err = b.GetRange(ctx, key, 0, -1)
		checkErr(t, "GetRange", key, err, bucket.ErrNotFound)
		_, err = b.PutIfMatch(ctx, key, strings.NewReader("x"), 1, "some-version")
		checkErr(t, "PutIfMatch", key, err, bucket.ErrPrecondition)
	}
	if keys := listKeys(t, b, "", ""); !slices.Equal(keys, []string{"d/b", "d/sub/c"}) {
		t.Errorf("List = %q, want [d/b d/sub/c]", keys)
	}
	for _, key := range []string{"d/sub/c", "d/b"} {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if keys := listKeys(t, b, "", ""); len(keys) != 0 {
		t.Errorf("List = %q after deleting everything", keys)
	}
	// Writing where everything was deleted works.
	put(t, b, "d/sub/c", "again")
	checkContent(t, b, "d/sub/c", "again")
}

// testCancelled: with a cancelled context nothing happens, and a write
// cancelled while its body streams creates nothing.
func testCancelled(t *testing.T, b bucket.Bucket, _ string) {
	put(t, b, "exists", "content")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what, key string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s(%q) with a cancelled context: error %v, want context.Canceled", what, key, err)
		}
	}
	rc, _, err := b.Get(ctx, "exists")
	if rc != nil {
		rc.Close()
	}
	check("Get", "exists", err)
	_, err = b.GetRange(ctx, "exists", 0, -1)
	check("GetRange", "exists", err)
	_, err = b.Stat(ctx, "exists")
	check("Stat", "exists", err)
	_, err = b.Put(ctx, "new", strings.NewReader("x"), 1)
	check("Put", "new", err)
	_, err = b.PutIfAbsent(ctx, "new", strings.NewReader("x"), 1)
	check("PutIfAbsent", "new", err)
	_, err = b.Put(ctx, "exists", strings.NewReader("x"), 1)
	check("Put", "exists", err)
	_, err = b.PutIfMatch(ctx, "exists", strings.NewReader("x"), 1, stat(t, b, "exists").Version)
	check("PutIfMatch", "exists", err)
	check("Delete", "exists", b.Delete(ctx, "exists"))
	n := 0
	for _, err := range b.List(ctx, "", "") {
		n++
		check("List", "", err)
	}
	if n != 1 {
		t.Errorf("List with a cancelled context yielded %d items, want one error", n)
	}
	checkMissing(t, b, "new")
	checkContent(t, b, "exists", "content")

	const size = 8 << 20
	for _, key := range []string{"exists", "mid"} {
		for _, op := range []string{"Put", "PutIfAbsent"} {
			if op == "PutIfAbsent" && key == "exists" {
				continue
			}
			ctx, cancel := context.WithCancel(t.Context())
			body := &cancelAfter{ctx: ctx, cancel: cancel, p: pattern{seed: 3}, n: 1 << 20}
			var err error
			if op == "Put" {
				_, err = b.Put(ctx, key, body, size)
			} else {
				_, err = b.PutIfAbsent(ctx, key, body, size)
			}
			cancel()
			if err == nil {
				t.Errorf("%s(%q) cancelled while reading the body succeeded", op, key)
			}
		}
	}
	checkMissing(t, b, "mid")
	checkContent(t, b, "exists", "content")
}

// checker compares a stream with a pattern as it goes by, remembering the
// first difference.
type checker struct {
	p        pattern
	off      int64
	mismatch int64 // -1 while none
	want     []byte
}

func newChecker(p pattern) *checker { return &checker{p: p, mismatch: -1} }

func (c *checker) Write(got []byte) (int, error) {
	if len(c.want) < len(got) {
		c.want = make([]byte, len(got))
	}
	want := c.want[:len(got)]
	c.p.fill(want, c.off)
	if c.mismatch < 0 && !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				c.mismatch = c.off + int64(i)
				break
			}
		}
	}
	c.off += int64(len(got))
	return len(got), nil
}

// result says whether the stream was the pattern's first size bytes.
func (c *checker) result(size int64) error {
	switch {
	case c.mismatch >= 0:
		return fmt.Errorf("content differs from what was written at byte %d", c.mismatch)
	case c.off != size:
		return fmt.Errorf("read %d bytes, want %d", c.off, size)
	}
	return nil
}
