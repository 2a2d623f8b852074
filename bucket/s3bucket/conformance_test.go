package s3bucket_test

import (
	"net/url"
	"os"
	"testing"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/buckettest"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/s3bucket"
)

// TestConformanceS3 runs the conformance suite against the S3 store named by
// TWOWAY_TEST_S3_URL (a MinIO under `make test`), each test in a prefix of
// its own.
func TestConformanceS3(t *testing.T) {
	base := testConfig(t)
	raw, err := url.Parse(os.Getenv("TWOWAY_TEST_S3_URL"))
	if err != nil {
		t.Fatal(err)
	}
	buckettest.Run(t, func(t *testing.T) (bucket.Bucket, string) {
		cfg := base
		cfg.Prefix += t.Name() + "/"
		b, err := s3bucket.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeAll(t, b) })
		// The same store and prefix, for the suite's child processes.
		u := *raw
		u.Path = "/" + cfg.Prefix
		return b, u.String()
	})
}

// TestBucketChildProcess is where the suite's multi-process tests run their
// children; run any other way, it skips.
func TestBucketChildProcess(t *testing.T) {
	buckettest.ChildProcess(t, bucketurl.Open)
}
