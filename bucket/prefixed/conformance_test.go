package prefixed_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/buckettest"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/prefixed"
)

const prefix = "tenants/a"

// A prefixed bucket honours the whole contract, next to objects outside its
// prefix (which the suite, expecting an empty bucket, must not see).
func TestConformancePrefixed(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) (bucket.Bucket, string) {
		b, err := filebucket.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"tenants/a-sibling", "tenants/ab/x", "tenants/0", "z"} {
			if _, err := b.Put(t.Context(), k, strings.NewReader("outside"), 7); err != nil {
				t.Fatal(err)
			}
		}
		return wrap(t, b, prefix), b.String()
	})
}

func TestBucketChildProcess(t *testing.T) {
	buckettest.ChildProcess(t, func(ctx context.Context, url string) (bucket.Bucket, error) {
		b, err := bucketurl.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		return prefixed.Wrap(b, prefix)
	})
}
