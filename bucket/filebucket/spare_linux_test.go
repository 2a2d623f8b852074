//go:build linux

package filebucket

import (
	"strings"

	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
)

// After a write the bucket keeps an unnamed spare temp file ready (nothing
// in the temp directory shows it), and the next write uses it.
func TestSpareTempFileIsUnnamedAndUsed(t *testing.T) {
	b := open(t)
	ctx := t.Context()
	put(t, b, "a", "1")
	deadline := time.Now().Add(5 * time.Second)
	for (b.refilling.Load() || len(b.spare) == 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(b.spare) != 1 {
		t.Fatal("no spare temp file after a write")
	}
	if names := dirEntries(t, b.tmp); len(names) != 0 {
		t.Fatalf("the spare is visible in the temp directory: %q", names)
	}
	if _, err := b.PutIfAbsent(ctx, "b", strings.NewReader("2"), 1); err != nil {
		t.Fatal(err)
	}
	if got, _, err := bucket.ReadAll(ctx, b, "b"); err != nil || string(got) != "2" {
		t.Fatalf("b = %q, %v", got, err)
	}
}
