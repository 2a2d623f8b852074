package prefixed_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/prefixed"
)

func openBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wrap(t *testing.T, b bucket.Bucket, prefix string) *prefixed.Bucket {
	t.Helper()
	p, err := prefixed.Wrap(b, prefix)
	if err != nil {
		t.Fatalf("Wrap(%q): %v", prefix, err)
	}
	return p
}

func put(t *testing.T, b bucket.Bucket, key, body string) bucket.Info {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func keys(t *testing.T, b bucket.Bucket, prefix, startAfter string) []string {
	t.Helper()
	ks, err := bucket.Keys(t.Context(), b, prefix, startAfter)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestIsolation(t *testing.T) {
	ctx := t.Context()
	inner := openBucket(t)
	a := wrap(t, inner, "tenants/a")
	ab := wrap(t, inner, "tenants/ab/") // shares a string prefix with a
	put(t, inner, "tenants/a-sibling", "outside")

	for _, k := range []string{"log/1", "log/2", "chunks/x"} {
		if info := put(t, a, k, "a:"+k); info.Key != k {
			t.Errorf("Put returned key %q, want %q", info.Key, k)
		}
		put(t, ab, k, "ab:"+k)
	}

	if got, want := keys(t, a, "", ""), []string{"chunks/x", "log/1", "log/2"}; !slices.Equal(got, want) {
		t.Errorf("a lists %v, want %v", got, want)
	}
	if got, want := keys(t, a, "log/", "log/1"), []string{"log/2"}; !slices.Equal(got, want) {
		t.Errorf("a lists log/ after log/1 as %v, want %v", got, want)
	}
	if got, want := keys(t, inner, "tenants/", ""), []string{
		"tenants/a-sibling",
		"tenants/a/chunks/x", "tenants/a/log/1", "tenants/a/log/2",
		"tenants/ab/chunks/x", "tenants/ab/log/1", "tenants/ab/log/2",
	}; !slices.Equal(got, want) {
		t.Errorf("the wrapped bucket holds %v, want %v", got, want)
	}

	data, info, err := bucket.ReadAll(ctx, a, "log/1")
	if err != nil || string(data) != "a:log/1" || info.Key != "log/1" {
		t.Fatalf("Get through a = %q, %+v, %v", data, info, err)
	}
	if got, err := a.GetRange(ctx, "log/2", 2, -1); err != nil || string(got) != "log/2" {
		t.Fatalf("GetRange = %q, %v", got, err)
	}
	info, err = a.Stat(ctx, "chunks/x")
	if err != nil || info.Key != "chunks/x" {
		t.Fatalf("Stat = %+v, %v", info, err)
	}

	if _, err := a.PutIfAbsent(ctx, "log/1", strings.NewReader("x"), 1); !bucket.IsPrecondition(err) {
		t.Fatalf("PutIfAbsent of an existing key: %v", err)
	}
	if info, err := a.PutIfAbsent(ctx, "log/3", strings.NewReader("x"), 1); err != nil || info.Key != "log/3" {
		t.Fatalf("PutIfAbsent = %+v, %v", info, err)
	}
	old, _ := a.Stat(ctx, "log/3")
	if info, err := a.PutIfMatch(ctx, "log/3", strings.NewReader("yy"), 2, old.Version); err != nil || info.Key != "log/3" {
		t.Fatalf("PutIfMatch = %+v, %v", info, err)
	}
	if _, err := ab.Stat(ctx, "log/3"); !bucket.IsNotFound(err) {
		t.Fatalf("ab sees a's log/3: %v", err)
	}

	if err := a.Delete(ctx, "log/1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Get(ctx, "log/1"); !bucket.IsNotFound(err) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := ab.Stat(ctx, "log/1"); err != nil {
		t.Fatalf("deleting a's log/1 touched ab's: %v", err)
	}
}

func TestInvalidPrefix(t *testing.T) {
	inner := openBucket(t)
	for _, p := range []string{"/a", "a//b", "..", "a/../b", "a/./b", "a\\b", "//"} {
		if _, err := prefixed.Wrap(inner, p); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Wrap(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
	for p, want := range map[string]string{"a": "a/", "a/": "a/", "a/b": "a/b/", "": ""} {
		if got := wrap(t, inner, p).Prefix(); got != want {
			t.Errorf("Wrap(%q).Prefix() = %q, want %q", p, got, want)
		}
	}
}

// A key that is invalid on its own is refused even when the prefixed key
// would pass, so that nothing climbs out of the prefix.
func TestKeysCannotEscape(t *testing.T) {
	ctx := t.Context()
	inner := openBucket(t)
	a := wrap(t, inner, "tenants/a")
	put(t, inner, "tenants/b/secret", "b's")
	for _, k := range []string{"../b/secret", "..", "", "/x", "x/"} {
		if _, err := a.Put(ctx, k, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, _, err := a.Get(ctx, k); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", k, err)
		}
		if err := a.Delete(ctx, k); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	if got, want := keys(t, inner, "", ""), []string{"tenants/b/secret"}; !slices.Equal(got, want) {
		t.Errorf("bucket holds %v, want %v", got, want)
	}
	var listErr error
	for _, err := range a.List(ctx, "../", "") {
		listErr = err
	}
	if !errors.Is(listErr, bucket.ErrInvalidKey) {
		t.Errorf("List(\"../\") = %v, want ErrInvalidKey", listErr)
	}
}

func TestEmptyPrefix(t *testing.T) {
	inner := openBucket(t)
	p := wrap(t, inner, "")
	put(t, p, "k", "v")
	if got := keys(t, inner, "", ""); !slices.Equal(got, []string{"k"}) {
		t.Errorf("bucket holds %v, want [k]", got)
	}
	if p.String() != inner.String() {
		t.Errorf("String() = %q, want %q", p.String(), inner.String())
	}
}

func TestString(t *testing.T) {
	inner := openBucket(t)
	p := wrap(t, inner, "tenants/a")
	if got, want := p.String(), strings.TrimSuffix(inner.String(), "/")+"/tenants/a/"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
