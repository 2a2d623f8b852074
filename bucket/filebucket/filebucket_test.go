package filebucket

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/twoway/twoway/bucket"
)

// The backend's behaviour as a bucket is tested by the conformance suite
// (bucket/buckettest, TestConformanceFile). These tests cover what is
// particular to a directory.

func open(t *testing.T) *Bucket {
	t.Helper()
	b, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, b *Bucket, key, content string) bucket.Info {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(content), int64(len(content)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// dirEntries lists a directory's names, failing on errors other than its
// absence.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestOpenCreatesTheDirectory(t *testing.T) {
	root := filepath.Join(t.TempDir(), "new", "bucket")
	b, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != "file://"+root {
		t.Errorf("String() = %q for %s", b.String(), root)
	}
	put(t, b, "k", "v")
	if got, err := os.ReadFile(filepath.Join(root, "k")); err != nil || string(got) != "v" {
		t.Errorf("key k is not the file root/k: %q, %v", got, err)
	}
	if names := dirEntries(t, root); !slices.Equal(names, []string{internalDir, "k"}) {
		t.Errorf("root holds %q, want [.twoway k]", names)
	}
}

func TestOpenRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := Open("data")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if want := "file://" + filepath.Join(wd, "data"); b.String() != want {
		t.Errorf("String() = %q, want %q", b.String(), want)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	internalFile := filepath.Join(dir, "internal-is-a-file")
	if err := os.MkdirAll(internalFile, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(internalFile, internalDir), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ root, want string }{
		{file, "bucket directory " + file + " is not a directory"},
		{filepath.Join(file, "sub"), "bucket directory " + filepath.Join(file, "sub") + " cannot be created: not a directory"},
		{internalFile, "bucket directory " + internalFile + " is not usable: "},
	} {
		_, err := Open(c.root)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(%s): %v, want a one-line error starting %q", c.root, err, c.want)
		}
	}
}

func TestOpenNotWritable(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(root); err != nil { // a bucket that worked before
		t.Fatal(err)
	}
	makeReadOnly(t, root)
	_, err := Open(root)
	want := "bucket directory " + root + " is not writable: "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, os.ErrPermission) {
		t.Errorf("Open of a read-only directory: %v, want an error starting %q", err, want)
	}
}

func TestReservedAndLongKeys(t *testing.T) {
	b := open(t)
	ctx := t.Context()
	for _, key := range []string{
		".twoway", ".twoway/tmp/x", ".twoway/locks/x", ".twowayish", ".twoway-probe-x/y",
		"a/" + strings.Repeat("s", 256),
	} {
		_, err := b.Put(ctx, key, strings.NewReader("x"), 1)
		if !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Stat(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Stat(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := b.Delete(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	// Not reserved: only the first segment counts, and only its start.
	for _, key := range []string{"a/.twoway", "x.twoway", "_twoway", "a/" + strings.Repeat("s", 255)} {
		put(t, b, key, "ok")
	}
	// Leave something in the internal directories for List to skip.
	if err := os.WriteFile(filepath.Join(b.tmp, "stray"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", ".t", ".tw", ".twoway", ".twoway/", ".twoway/tmp/", ".twowayish/"} {
		for info, err := range b.List(ctx, prefix, "") {
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			if strings.HasPrefix(info.Key, internalDir) {
				t.Errorf("List(%q) yields the backend's own %q", prefix, info.Key)
			}
		}
	}
}

// TestKeyCollisions: "a" and "a/b" cannot both exist in a directory; the
// second write fails with an error that says why, and changes nothing.
func TestKeyCollisions(t *testing.T) {
	b := open(t)
	ctx := t.Context()
	put(t, b, "file", "f")
	put(t, b, "dir/x", "x")
	for _, c := range []struct{ key, why string }{
		{"file/below", "collides with other keys"},
		{"dir", "collides with other keys"},
	} {
		for _, op := range []string{"Put", "PutIfAbsent"} {
			var err error
			if op == "Put" {
				_, err = b.Put(ctx, c.key, strings.NewReader("new"), 3)
			} else {
				_, err = b.PutIfAbsent(ctx, c.key, strings.NewReader("new"), 3)
			}
			if err == nil || !strings.Contains(err.Error(), c.why) {
				t.Errorf("%s(%q): %v, want an error saying it %s", op, c.key, err, c.why)
			}
			if errors.Is(err, bucket.ErrPrecondition) || errors.Is(err, bucket.ErrNotFound) {
				t.Errorf("%s(%q): %v is a sentinel, but nothing was found or lost", op, c.key, err)
			}
		}
	}
	if keys, err := bucket.Keys(ctx, b, "", ""); err != nil || !slices.Equal(keys, []string{"dir/x", "file"}) {
		t.Errorf("List = %q, %v", keys, err)
	}
	if names := dirEntries(t, b.tmp); len(names) != 0 {
		t.Errorf("failed writes left temp files %q", names)
	}
}

// TestBodyLongerThanSize: size is the exact length; more is an error, and
// nothing is written.
func TestBodyLongerThanSize(t *testing.T) {
	b := open(t)
	_, err := b.Put(t.Context(), "k", strings.NewReader("0123456789"), 5)
	if err == nil {
		t.Fatal("Put of a body longer than size succeeded")
	}
	if _, err := b.Stat(t.Context(), "k"); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("Stat after a failed Put: %v", err)
	}
	if _, err := b.Put(t.Context(), "k", strings.NewReader(""), -1); err == nil {
		t.Error("Put with a negative size succeeded")
	}
	if names := dirEntries(t, b.tmp); len(names) != 0 {
		t.Errorf("failed writes left temp files %q", names)
	}
}

// TestNothingLeftBehind: temp files and lock files exist only during
// operations, and Delete removes the directories it empties, not the root.
func TestNothingLeftBehind(t *testing.T) {
	b := open(t)
	ctx := t.Context()
	info := put(t, b, "a/b/c/k", "1")
	if _, err := b.PutIfMatch(ctx, "a/b/c/k", strings.NewReader("2"), 1, info.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIfAbsent(ctx, "a/b/other", strings.NewReader("3"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIfAbsent(ctx, "a/b/other", strings.NewReader("4"), 1); !errors.Is(err, bucket.ErrPrecondition) {
		t.Fatal(err)
	}
	put(t, b, "top", "t")
	if names := dirEntries(t, b.tmp); len(names) != 0 {
		t.Errorf("temp files left: %q", names)
	}
	if names := dirEntries(t, b.locks); len(names) != 0 {
		t.Errorf("lock files left: %q", names)
	}
	if err := b.Delete(ctx, "a/b/c/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.root, "a/b/c")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the emptied directory a/b/c remains: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.root, "a/b/other")); err != nil {
		t.Errorf("a/b/other: %v", err)
	}
	for _, key := range []string{"a/b/other", "top"} {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if names := dirEntries(t, b.root); !slices.Equal(names, []string{internalDir}) {
		t.Errorf("after deleting everything the root holds %q", names)
	}
	if names := dirEntries(t, b.locks); len(names) != 0 {
		t.Errorf("lock files left: %q", names)
	}
}

// TestOpenRemovesStaleTemps: Open removes temp files nobody holds (a
// crashed writer's) and leaves alone those a live writer holds locked.
func TestOpenRemovesStaleTemps(t *testing.T) {
	b := open(t)
	stale := filepath.Join(b.tmp, "stale")
	if err := os.WriteFile(stale, []byte("partial"), 0o666); err != nil {
		t.Fatal(err)
	}
	live, err := b.createTemp() // held, as by a writer in another process
	if err != nil {
		t.Fatal(err)
	}
	defer live.discard()
	if _, err := Open(b.root); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, b.tmp); !slices.Equal(names, []string{filepath.Base(live.name)}) {
		t.Errorf("after Open the temp directory holds %q, want only the live %q", names, filepath.Base(live.name))
	}
}

// TestStaleLockFile: a lock file left by a writer that died holding the
// lock blocks nobody, and the next operation on the key removes it.
func TestStaleLockFile(t *testing.T) {
	b := open(t)
	unlock, err := b.lockKey("k")
	if err != nil {
		t.Fatal(err)
	}
	names := dirEntries(t, b.locks)
	if len(names) != 1 {
		t.Fatalf("lock files: %q", names)
	}
	// Die holding it: the kernel drops the flock, the file stays.
	name := filepath.Join(b.locks, names[0])
	if err := os.Link(name, name+".keep"); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := os.Rename(name+".keep", name); err != nil {
		t.Fatal(err)
	}
	put(t, b, "k", "v")
	if names := dirEntries(t, b.locks); len(names) != 0 {
		t.Errorf("lock files left: %q", names)
	}
}

// TestVersionsSurviveReopen: versions come from the files, not from the
// process.
func TestVersionsSurviveReopen(t *testing.T) {
	b := open(t)
	info := put(t, b, "k", "content")
	b2, err := Open(b.root)
	if err != nil {
		t.Fatal(err)
	}
	st, err := b2.Stat(t.Context(), "k")
	if err != nil || st.Version != info.Version {
		t.Errorf("after reopening, Stat = %+v, %v; want version %q", st, err, info.Version)
	}
	if _, err := b2.PutIfMatch(t.Context(), "k", strings.NewReader("new"), 3, info.Version); err != nil {
		t.Errorf("PutIfMatch with a version from before reopening: %v", err)
	}
}

// TestPutStreams: a 64 MiB Put goes through a small buffer, not memory.
func TestPutStreams(t *testing.T) {
	b := open(t)
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := b.Put(t.Context(), "big", io.LimitReader(zeros{}, size), size); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Put of %d bytes allocated %d bytes", size, alloc)
	}
	rc, _, err := b.Get(t.Context(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(nonZero{t}, rc)
	if err != nil || n != size {
		t.Errorf("read back %d bytes, %v", n, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type nonZero struct{ t *testing.T }

func (w nonZero) Write(p []byte) (int, error) {
	if !bytes.Equal(p, make([]byte, len(p))) {
		w.t.Error("read back bytes that were not written")
	}
	return len(p), nil
}

// TestGetKeepsItsVersionAfterDelete: the reader is the open file.
func TestGetKeepsItsVersionAfterDelete(t *testing.T) {
	b := open(t)
	put(t, b, "k", "still here")
	rc, _, err := b.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := b.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); err != nil || string(got) != "still here" {
		t.Errorf("reading after Delete: %q, %v", got, err)
	}
}

// TestListSkipsWhatKeysCannotName: files that no valid key names (made by
// hand) are not objects.
func TestListSkipsWhatKeysCannotName(t *testing.T) {
	b := open(t)
	put(t, b, "ok", "ok")
	for _, name := range []string{"back\\slash", "bad-\xff-utf8"} {
		if err := os.WriteFile(filepath.Join(b.root, name), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if keys, err := bucket.Keys(t.Context(), b, "", ""); err != nil || !slices.Equal(keys, []string{"ok"}) {
		t.Errorf("List = %q, %v; want [ok]", keys, err)
	}
}

// TestPrefixThroughAFile: a prefix below an object lists nothing.
func TestPrefixThroughAFile(t *testing.T) {
	b := open(t)
	put(t, b, "a", "a")
	for _, prefix := range []string{"a/", "a/b", "a/b/"} {
		if keys, err := bucket.Keys(t.Context(), b, prefix, ""); err != nil || len(keys) != 0 {
			t.Errorf("List(%q) = %q, %v; want nothing", prefix, keys, err)
		}
	}
}

// TestKeysCannotEscape: keys that climb out of the root are refused before
// anything touches the file system.
func TestKeysCannotEscape(t *testing.T) {
	parent := t.TempDir()
	b, err := Open(filepath.Join(parent, "root"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../escape", "a/../../escape", "/" + filepath.Join(parent, "escape")} {
		if _, err := b.Put(t.Context(), key, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	if names := dirEntries(t, parent); !slices.Equal(names, []string{"root"}) {
		t.Errorf("the root's parent holds %q", names)
	}
}
