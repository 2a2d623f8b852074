package buckettest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/twoway/twoway/bucket"
)

// orderedKeys are keys in the byte order List must yield them in. They are
// chosen to trip a backend that walks directories in name order: "a.b" and
// "a-b" sort before "a/b", and "a0" after it, though the directory "a"
// holds "a/b". No key is also a prefix directory of another ("a" and "a/x"),
// which a file system cannot hold.
var orderedKeys = []string{
	"0",
	"Z",
	"a-b",
	"a.b",
	"a/b",
	"a/b-",
	"a/b.x",
	"a/c-",
	"a/c.d",
	"a/c/d",
	"a/c/e/f",
	"a/é",
	"a0",
	"ab",
	"a~",
	"b",
}

func putOrderedKeys(t *testing.T, b bucket.Bucket) {
	t.Helper()
	if !slices.IsSorted(orderedKeys) {
		t.Fatal("the test's own orderedKeys are not sorted")
	}
	objects := map[string]string{}
	for _, k := range orderedKeys {
		objects[k] = "content of " + k
	}
	putAll(t, b, objects)
}

// testListOrder: List yields every key in byte order, with each object's
// size and version.
func testListOrder(t *testing.T, b bucket.Bucket, _ string) {
	putOrderedKeys(t, b)
	var got []string
	for info, err := range b.List(t.Context(), "", "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		got = append(got, info.Key)
		st := stat(t, b, info.Key)
		if info.Size != int64(len("content of "+info.Key)) || info.Version != st.Version {
			t.Errorf("List yields %q with size %d, version %q; Stat says %d, %q",
				info.Key, info.Size, info.Version, st.Size, st.Version)
		}
	}
	if !slices.Equal(got, orderedKeys) {
		t.Errorf("List yields\n\t%q\nwant\n\t%q", got, orderedKeys)
	}
}

// testListPrefixStartAfter compares List with an oracle for many prefixes
// (ending on '/' or in mid-segment) and start points (keys, prefixes of
// keys, and strings between keys).
func testListPrefixStartAfter(t *testing.T, b bucket.Bucket, _ string) {
	putOrderedKeys(t, b)
	prefixes := []string{
		"", "0", "a", "a-", "a.", "a/", "a/b", "a/b.", "a/c", "a/c/", "a/c/d", "a/c/e/",
		"a/c/e/f", "a/é", "a~", "b", "c", "zzz", "a/c/e/f/",
	}
	starts := slices.Concat(orderedKeys, []string{
		"", "A", "a", "a/", "a/b/", "a/bz", "a/c", "a/c/", "a/c/d/", "a/c/dz", "a/c/e",
		"a/c/e/", "a/c/e/g", "a/d", "a0/", "~", "é",
	})
	for _, prefix := range prefixes {
		for _, start := range starts {
			got := listKeys(t, b, prefix, start)
			if want := wantKeys(orderedKeys, prefix, start); !slices.Equal(got, want) {
				t.Errorf("List(%q, %q) = %q, want %q", prefix, start, got, want)
			}
		}
	}
}

// testListMany: a listing longer than one page of an S3 listing (1,000),
// with start points and early stops on either side of the page boundary.
func testListMany(t *testing.T, b bucket.Bucket, _ string) {
	ctx := t.Context()
	const n = 1100
	all := make([]string, 0, n+3)
	objects := map[string]string{}
	for i := range n {
		k := fmt.Sprintf("many/%04d", i)
		all = append(all, k)
		objects[k] = k
	}
	for _, k := range []string{"man", "many.", "manz/0"} {
		all = append(all, k)
		objects[k] = k
	}
	slices.Sort(all)
	putAll(t, b, objects)

	for _, c := range []struct{ prefix, start string }{
		{"many/", ""},
		{"", ""},
		{"many/", "many/0999"},
		{"many/", "many/1000"},
		{"many/", "many/1099"},
		{"many/", "many/0000"},
		{"many/10", ""},
		{"many/0", "many/05"},
		{"man", "many/0500"},
		{"many", ""},
	} {
		got := listKeys(t, b, c.prefix, c.start)
		if want := wantKeys(all, c.prefix, c.start); !slices.Equal(got, want) {
			t.Errorf("List(%q, %q) yields %d keys, want %d (first difference at %d)",
				c.prefix, c.start, len(got), len(want), firstDifference(got, want))
		}
	}

	// Stop early: the iterator must stop when told (range-over-func
	// panics if it does not), having yielded the right keys.
	for _, stop := range []int{1, 999, 1000, 1001, 1050} {
		var got []string
		for info, err := range b.List(ctx, "many/", "") {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, info.Key)
			if len(got) == stop {
				break
			}
		}
		if want := wantKeys(all, "many/", "")[:stop]; !slices.Equal(got, want) {
			t.Errorf("List stopped after %d keys yields %d keys, first difference at %d", stop, len(got), firstDifference(got, want))
		}
	}
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
