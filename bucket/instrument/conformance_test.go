package instrument_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/buckettest"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/instrument"
)

// An instrumented bucket honours the whole contract. All the parallel tests
// share one registry, as the buckets of one process do.
func TestConformanceInstrument(t *testing.T) {
	reg := prometheus.NewRegistry()
	buckettest.Run(t, func(t *testing.T) (bucket.Bucket, string) {
		b, err := filebucket.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return instrument.Wrap(b, reg), b.String()
	})
}

func TestBucketChildProcess(t *testing.T) {
	buckettest.ChildProcess(t, func(ctx context.Context, url string) (bucket.Bucket, error) {
		b, err := bucketurl.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		return instrument.Wrap(b, prometheus.NewRegistry()), nil
	})
}
