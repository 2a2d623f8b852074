package prefixed_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/prefixed"
)

func Example() {
	dir, _ := os.MkdirTemp("", "prefixed-example-")
	defer os.RemoveAll(dir)
	shared, _ := filebucket.Open(dir)
	ctx := context.Background()

	a, _ := prefixed.Wrap(shared, "tenants/a")
	b, _ := prefixed.Wrap(shared, "tenants/b")
	a.Put(ctx, "log/1", strings.NewReader("a's"), 3)
	b.Put(ctx, "log/1", strings.NewReader("b's"), 3)

	aKeys, _ := bucket.Keys(ctx, a, "", "")
	allKeys, _ := bucket.Keys(ctx, shared, "", "")
	fmt.Println("a sees:     ", aKeys)
	fmt.Println("bucket has: ", allKeys)
	// Output:
	// a sees:      [log/1]
	// bucket has:  [tenants/a/log/1 tenants/b/log/1]
}
