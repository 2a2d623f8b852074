package bucketurl_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/s3bucket"
)

func TestParse(t *testing.T) {
	tests := []struct {
		raw  string
		want bucketurl.Location
	}{
		{"/var/lib/twoway", bucketurl.Location{Kind: bucketurl.File, Dir: "/var/lib/twoway"}},
		{"/var/lib/twoway/", bucketurl.Location{Kind: bucketurl.File, Dir: "/var/lib/twoway"}},
		{"data", bucketurl.Location{Kind: bucketurl.File, Dir: "data"}},
		{"./data/../other", bucketurl.Location{Kind: bucketurl.File, Dir: "other"}},
		{"dir:with-colon", bucketurl.Location{Kind: bucketurl.File, Dir: "dir:with-colon"}},
		{"./s3://x", bucketurl.Location{Kind: bucketurl.File, Dir: "s3:/x"}},
		{"file:///var/lib/twoway", bucketurl.Location{Kind: bucketurl.File, Dir: "/var/lib/twoway"}},
		{"file://localhost/srv/data/", bucketurl.Location{Kind: bucketurl.File, Dir: "/srv/data"}},
		{"file:///with%20space", bucketurl.Location{Kind: bucketurl.File, Dir: "/with space"}},
		{"FILE:///x", bucketurl.Location{Kind: bucketurl.File, Dir: "/x"}},
		{"s3://my-bucket", bucketurl.Location{Kind: bucketurl.S3, S3: s3bucket.Config{Bucket: "my-bucket"}}},
		{"s3://my-bucket/", bucketurl.Location{Kind: bucketurl.S3, S3: s3bucket.Config{Bucket: "my-bucket"}}},
		{"s3://my-bucket/a/b", bucketurl.Location{Kind: bucketurl.S3, S3: s3bucket.Config{Bucket: "my-bucket", Prefix: "a/b"}}},
		{"s3://my-bucket/a/b/", bucketurl.Location{Kind: bucketurl.S3, S3: s3bucket.Config{Bucket: "my-bucket", Prefix: "a/b/"}}},
		{"s3://my-bucket/p?region=eu-west-1", bucketurl.Location{Kind: bucketurl.S3, S3: s3bucket.Config{
			Bucket: "my-bucket", Prefix: "p", Region: "eu-west-1"}}},
		{"s3://twoway-test/?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true", bucketurl.Location{Kind: bucketurl.S3, S3: s3bucket.Config{
			Bucket: "twoway-test", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", PathStyle: true}}},
		{"s3://b12/x?endpoint=https%3A%2F%2Facct.r2.cloudflarestorage.com&region=auto&path_style=0", bucketurl.Location{Kind: bucketurl.S3, S3: s3bucket.Config{
			Bucket: "b12", Prefix: "x", Endpoint: "https://acct.r2.cloudflarestorage.com", Region: "auto"}}},
	}
	for _, tt := range tests {
		got, err := bucketurl.Parse(tt.raw)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.raw, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		raw string
		why string // part of the error message
	}{
		{"", "empty"},
		{"s3:/x", `"s3:" must be followed by "//"`},
		{"s3:x", `"s3:" must be followed by "//"`},
		{"file:relative", `"file:" must be followed by "//"`},
		{"gs://bucket/p", `unsupported scheme "gs"`},
		{"http://127.0.0.1:9000/bucket", `unsupported scheme "http"`},
		{"file://host/path", `host "host" is not allowed`},
		{"file://", "no directory"},
		{"file:///x?mode=1", "take no parameters"},
		{"file:///x#frag", "fragment"},
		{"s3://", "no bucket name"},
		{"s3:///prefix", "no bucket name"},
		{"s3://ab", "3 to 63 characters"},
		{"s3://My_Bucket", "lower-case"},
		{"s3://127.0.0.1:9000/bucket", "?endpoint="},
		{"s3://key:secret@bucket/p", "credentials do not belong"},
		{"s3://bucket/a//b", "prefix"},
		{"s3://bucket/../b", "prefix"},
		{"s3://bucket/p?regoin=us-east-1", `unknown parameter "regoin"`},
		{"s3://bucket/p?region=a&region=b", `"region" given 2 times`},
		{"s3://bucket/p?region=", "empty region"},
		{"s3://bucket/p?path_style=maybe", `path_style "maybe"`},
		{"s3://bucket/p?endpoint=127.0.0.1:9000", "not an http:// or https:// URL"},
		{"s3://bucket/p?endpoint=ftp://host", "not an http:// or https:// URL"},
		{"s3://bucket/p?endpoint=http://u:pw@host:9000", "must not contain credentials"},
		{"s3://bucket/p?endpoint=%zz", "query"},
	}
	for _, tt := range tests {
		_, err := bucketurl.Parse(tt.raw)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error mentioning %q", tt.raw, tt.why)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.why) {
			t.Errorf("Parse(%q) error %q does not mention %q", tt.raw, msg, tt.why)
		}
		// Every error shows what a good URL looks like.
		if !strings.Contains(msg, bucketurl.Example) {
			t.Errorf("Parse(%q) error %q does not show the example %q", tt.raw, msg, bucketurl.Example)
		}
		if strings.Contains(msg, "secret") || strings.Contains(msg, ":pw@") {
			// The raw URL is quoted in the message; a URL that carries
			// credentials is rejected, and its error must not repeat them.
			t.Errorf("Parse(%q) error %q repeats credentials", tt.raw, msg)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, raw := range []string{dir, "file://" + filepath.ToSlash(dir)} {
		b, err := bucketurl.Open(ctx, raw)
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		if !strings.HasPrefix(b.String(), "file://") {
			t.Errorf("Open(%q) = %s, want a file bucket", raw, b)
		}
		if _, err := b.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
	}
	b, err := bucketurl.Open(ctx, "s3:/x")
	if err == nil || b != nil {
		t.Fatalf("Open of a bad URL = %v, %v; want a nil bucket and an error", b, err)
	}
}
