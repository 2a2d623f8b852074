package faultbucket_test

import (
	"context"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/buckettest"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/bucket/filebucket"
)

// jitter reorders concurrent calls without failing any.
var jitter = faultbucket.Rule{Op: faultbucket.OpAny, Jitter: time.Millisecond}

// A fault bucket that injects only latency honours the whole contract.
func TestConformanceFaultbucket(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) (bucket.Bucket, string) {
		b, err := filebucket.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return faultbucket.Wrap(b, faultbucket.WithRules(jitter)), b.String()
	})
}

func TestBucketChildProcess(t *testing.T) {
	buckettest.ChildProcess(t, func(ctx context.Context, url string) (bucket.Bucket, error) {
		b, err := bucketurl.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		return faultbucket.Wrap(b, faultbucket.WithRules(jitter)), nil
	})
}
