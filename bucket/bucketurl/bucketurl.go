// Package bucketurl turns the bucket URLs that users write into buckets. It
// is the one place that knows their syntax:
//
//	/var/lib/twoway, ./data           a directory (the file backend)
//	file:///var/lib/twoway            the same, as a URL
//	s3://BUCKET/PREFIX?endpoint=URL&region=R&path_style=true
//
// The S3 parameters are all optional: endpoint defaults to AWS, region to
// the AWS configuration's or us-east-1, path_style to false. Credentials
// never appear in a bucket URL; they come from the standard AWS chain.
package bucketurl

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/s3bucket"
)

// Example is a well-formed S3 bucket URL, shown in errors about bad ones.
const Example = "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1"

// Kind says which backend a Location names.
type Kind int

const (
	File Kind = iota + 1 // a directory
	S3                   // an S3 or S3-compatible bucket
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case S3:
		return "s3"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Location is a parsed bucket URL.
type Location struct {
	Kind Kind
	// Dir is the directory when Kind is File, cleaned but relative if it was
	// written relative.
	Dir string
	// S3 is the configuration when Kind is S3.
	S3 s3bucket.Config
}

// Parse reads a bucket URL: a directory path (relative or absolute),
// file:///abs/path, or s3://bucket/prefix with the optional query
// parameters endpoint, region and path_style.
func Parse(raw string) (Location, error) {
	bad := func(format string, args ...any) (Location, error) {
		why := fmt.Sprintf(format, args...)
		return Location{}, fmt.Errorf("bad bucket URL %q: %s; want a directory path, file:///path, or %s", redact(raw), why, Example)
	}
	if raw == "" {
		return bad("empty")
	}
	scheme, rest, hasScheme := strings.Cut(raw, ":")
	hasScheme = hasScheme && isScheme(scheme)
	if !hasScheme {
		return Location{Kind: File, Dir: filepath.Clean(raw)}, nil
	}
	scheme = strings.ToLower(scheme)
	if scheme != "file" && scheme != "s3" {
		if !strings.HasPrefix(rest, "//") {
			// "c:/data" or "name:with-colon" are directories, not URLs.
			return Location{Kind: File, Dir: filepath.Clean(raw)}, nil
		}
		return bad("unsupported scheme %q", scheme)
	}
	if !strings.HasPrefix(rest, "//") {
		return bad(`%q must be followed by "//"`, scheme+":")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("%v", unwrapURLError(err))
	}
	if u.User != nil {
		return bad("credentials do not belong in a bucket URL; they come from the AWS credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)")
	}
	if u.Fragment != "" {
		return bad("unexpected fragment %q", u.Fragment)
	}
	if scheme == "file" {
		return parseFile(u, bad)
	}
	return parseS3(u, bad)
}

func parseFile(u *url.URL, bad func(string, ...any) (Location, error)) (Location, error) {
	if u.Host != "" && u.Host != "localhost" {
		return bad("file URLs name a local directory; host %q is not allowed (write file:///path)", u.Host)
	}
	if u.RawQuery != "" {
		return bad("file URLs take no parameters")
	}
	if u.Path == "" {
		return bad("no directory")
	}
	return Location{Kind: File, Dir: filepath.Clean(filepath.FromSlash(u.Path))}, nil
}

func parseS3(u *url.URL, bad func(string, ...any) (Location, error)) (Location, error) {
	cfg := s3bucket.Config{
		Bucket: u.Host,
		Prefix: strings.TrimPrefix(u.Path, "/"),
	}
	if u.Port() != "" {
		return bad("the endpoint goes in ?endpoint=, not in the bucket name %q", u.Host)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for name, values := range q {
		if len(values) != 1 {
			return bad("parameter %q given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			if v == "" {
				return bad("empty region")
			}
			cfg.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("path_style %q is not true or false", v)
			}
			cfg.PathStyle = b
		default:
			return bad("unknown parameter %q (known: endpoint, region, path_style)", name)
		}
	}
	if err := cfg.Validate(); err != nil {
		return bad("%v", err)
	}
	return Location{Kind: S3, S3: cfg}, nil
}

// isScheme reports whether s has the syntax of a URL scheme (RFC 3986) and is
// longer than one letter, so that a Windows drive such as "C:" is a path.
func isScheme(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// userinfo matches the credentials part of a URL, in the bucket URL or in its
// endpoint parameter.
var userinfo = regexp.MustCompile(`//[^/?#@]*@`)

// redact hides credentials a user may have put in a URL, so that an error
// about it can quote the rest.
func redact(raw string) string {
	return userinfo.ReplaceAllString(raw, "//REDACTED@")
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Open parses raw and opens the bucket it names.
func Open(ctx context.Context, raw string) (bucket.Bucket, error) {
	loc, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	return loc.Open(ctx)
}

// Open opens the bucket l names.
func (l Location) Open(ctx context.Context) (bucket.Bucket, error) {
	switch l.Kind {
	case File:
		b, err := filebucket.Open(l.Dir)
		if err != nil {
			return nil, err
		}
		return b, nil
	case S3:
		b, err := s3bucket.Open(ctx, l.S3)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("bucketurl: cannot open a location of kind %v", l.Kind)
}
