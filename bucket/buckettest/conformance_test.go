package buckettest_test

import (
	"testing"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/buckettest"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/filebucket"
)

// TestConformanceFile runs the conformance suite against the file backend,
// each test in a directory of its own.
func TestConformanceFile(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) (bucket.Bucket, string) {
		b, err := filebucket.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b, b.String()
	})
}

// TestBucketChildProcess is the child side of the multi-process tests.
func TestBucketChildProcess(t *testing.T) {
	buckettest.ChildProcess(t, bucketurl.Open)
}
