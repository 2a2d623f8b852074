package faultbucket_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/bucket/filebucket"
)

// A commit whose PutIfAbsent reports a failure may nevertheless exist: a
// writer that retries must recognise its own commit.
func Example_unknownOutcome() {
	dir, _ := os.MkdirTemp("", "faultbucket-example-")
	defer os.RemoveAll(dir)
	inner, _ := filebucket.Open(dir)
	ctx := context.Background()

	b := faultbucket.Wrap(inner, faultbucket.WithRules(
		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailNth: 1, UnknownOutcome: true},
	))
	_, err := b.PutIfAbsent(ctx, "log/1", strings.NewReader("commit"), 6)
	fmt.Println("first attempt injected:", errors.Is(err, faultbucket.ErrInjected))

	_, err = b.PutIfAbsent(ctx, "log/1", strings.NewReader("commit"), 6)
	fmt.Println("retry lost to itself:", bucket.IsPrecondition(err))

	data, _, _ := bucket.ReadAll(ctx, b, "log/1")
	fmt.Printf("stored: %s\n", data)
	fmt.Printf("counts: %+v\n", b.Counts(faultbucket.OpPutIfAbsent))
	// Output:
	// first attempt injected: true
	// retry lost to itself: true
	// stored: commit
	// counts: {Calls:2 Failed:0 Unknown:1}
}
