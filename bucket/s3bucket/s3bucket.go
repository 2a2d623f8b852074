// Package s3bucket is the bucket backend for Amazon S3 and S3-compatible
// stores such as MinIO and Cloudflare R2, built on aws-sdk-go-v2.
//
// Conditional writes map onto S3's conditional PUT: PutIfAbsent sends
// If-None-Match: * and PutIfMatch sends If-Match with the version, which is
// the object's ETag. A 412 answer is bucket.ErrPrecondition.
//
// The SDK's own retryer is switched off and this package retries by itself,
// because a retried conditional write needs care the SDK cannot give it: when
// an attempt fails with an unknown outcome (a 5xx, a dropped connection, a
// timeout), the write may have landed, and the 412 that the next attempt gets
// may be the echo of our own success. Every write therefore carries a random
// write ID in its user metadata, and the MD5 of its body as Content-MD5; a 412
// after an unknown outcome is followed by a HEAD that compares the stored
// object's write ID (or, if the store dropped the metadata, its ETag) with
// ours before anything is reported as lost.
//
// Objects are written with a single PUT, so one object is at most 5 GiB.
package s3bucket

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/twoway/twoway/bucket"
)

// MaxObjectSize is the largest object a single S3 PUT accepts.
const MaxObjectSize = 5 << 30

// DefaultMaxAttempts is how many times an operation is tried when
// Config.MaxAttempts is zero.
const DefaultMaxAttempts = 8

// DefaultRegion is used when neither Config.Region nor the AWS configuration
// (AWS_REGION, the shared config file) names one.
const DefaultRegion = "us-east-1"

// writeIDKey is the user-metadata key (x-amz-meta-twoway-write-id) under
// which every write stores its random ID.
const writeIDKey = "twoway-write-id"

// responseHeaderTimeout bounds the wait for a response once a request has
// been sent, so that a hung connection becomes a retryable timeout instead of
// a stall that only the caller's context could end.
const responseHeaderTimeout = time.Minute

// Config says which bucket to open and how to reach it. Credentials are not
// part of it: they come from the standard AWS chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config and credentials
// files, then container and instance roles).
type Config struct {
	// Bucket is the S3 bucket name. Required.
	Bucket string
	// Prefix is prepended to every key, so that several twoway deployments
	// can share one bucket. A '/' is added if it does not end in one.
	Prefix string
	// Endpoint is the base URL of an S3-compatible service, for example
	// "http://127.0.0.1:9000" for MinIO or
	// "https://ACCOUNT.r2.cloudflarestorage.com" for R2. Empty means AWS
	// (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set).
	Endpoint string
	// Region defaults to the AWS configuration's region, else DefaultRegion.
	// R2 wants "auto".
	Region string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY rather than
	// BUCKET.ENDPOINT/KEY; MinIO and most self-hosted stores need it.
	PathStyle bool
	// MaxAttempts bounds the attempts of one operation, retries included.
	// Zero means DefaultMaxAttempts; 1 disables retrying.
	MaxAttempts int
	// TempDir is where Put spools a body that is not an io.ReadSeeker (the
	// request must be replayable for signing and retries). Empty means
	// os.TempDir().
	TempDir string
	// HTTPClient replaces the SDK's default HTTP client, for example to add
	// a proxy or, in tests, to inject faults.
	HTTPClient aws.HTTPClient
}

// Bucket is a bucket.Bucket kept in S3. It is safe for concurrent use.
type Bucket struct {
	client      *s3.Client
	bucket      string
	prefix      string // "" or ends in '/'
	name        string // String()
	maxAttempts int
	tempDir     string
}

var _ bucket.Bucket = (*Bucket)(nil)

// Open checks cfg, loads the AWS configuration and credentials, and returns
// the bucket. It does not contact the bucket itself: a bucket that does not
// exist shows up as an error on the first operation.
func Open(ctx context.Context, cfg Config) (*Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3bucket: %w", err)
	}
	prefix := cfg.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}

	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3bucket: loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	if awsCfg.Credentials == nil {
		return nil, errors.New("s3bucket: no AWS credentials configured")
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("s3bucket: no usable AWS credentials "+
			"(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials): %w", err)
	}

	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = responseHeaderTimeout
		})
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		o.HTTPClient = httpClient
		// Retries are ours (see the package comment).
		o.Retryer = aws.NopRetryer{}
		// Integrity comes from Content-MD5. The SDK's default CRC checksums
		// are not understood by every S3-compatible store, and validating
		// them on ranged reads only logs warnings.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})

	b := &Bucket{
		client:      client,
		bucket:      cfg.Bucket,
		prefix:      prefix,
		name:        "s3://" + strings.TrimSuffix(cfg.Bucket+"/"+prefix, "/"),
		maxAttempts: cfg.MaxAttempts,
		tempDir:     cfg.TempDir,
	}
	if b.maxAttempts == 0 {
		b.maxAttempts = DefaultMaxAttempts
	}
	return b, nil
}

// Validate checks cfg without contacting anything. Open calls it; callers
// that build a Config from user input may call it early for a better error.
func (cfg Config) Validate() error {
	if err := validateBucketName(cfg.Bucket); err != nil {
		return err
	}
	if cfg.Prefix != "" {
		if err := bucket.ValidatePrefix(cfg.Prefix); err != nil {
			return fmt.Errorf("prefix: %w", err)
		}
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("endpoint %q is not an http:// or https:// URL", cfg.Endpoint)
		}
		if u.User != nil {
			return errors.New("the endpoint must not contain credentials; they come from the AWS credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)")
		}
	}
	if cfg.MaxAttempts < 0 {
		return fmt.Errorf("MaxAttempts %d is negative", cfg.MaxAttempts)
	}
	return nil
}

// validateBucketName applies the S3 naming rules loosely: enough to catch a
// path or a URL given where a name belongs, not to second-guess the store.
func validateBucketName(name string) error {
	if name == "" {
		return errors.New("no bucket name")
	}
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", name)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("bucket name %q may contain only lower-case letters, digits, '-', '.' and '_'", name)
		}
	}
	return nil
}

// String returns "s3://bucket/prefix". It never contains credentials.
func (b *Bucket) String() string { return b.name }

func (b *Bucket) opErr(op, key string, err error) error {
	return &bucket.OpError{Bucket: b.name, Op: op, Key: key, Err: err}
}

func (b *Bucket) objectKey(key string) *string { return aws.String(b.prefix + key) }

// Get opens the whole object for reading.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, bucket.Info, error) {
	const op = "get"
	if err := bucket.ValidateKey(key); err != nil {
		return nil, bucket.Info{}, b.opErr(op, key, err)
	}
	var out *s3.GetObjectOutput
	err := b.retry(ctx, func() (err error) {
		out, err = b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: b.objectKey(key)})
		return err
	})
	if err != nil {
		return nil, bucket.Info{}, b.opErr(op, key, classify(err))
	}
	info := bucket.Info{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		Version:  version(out.ETag),
		Modified: aws.ToTime(out.LastModified),
	}
	return out.Body, info, nil
}

// GetRange reads length bytes at offset; length < 0 reads to the end.
func (b *Bucket) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	const op = "get-range"
	if err := bucket.ValidateKey(key); err != nil {
		return nil, b.opErr(op, key, err)
	}
	if offset < 0 {
		return nil, b.opErr(op, key, fmt.Errorf("%w: negative offset %d", bucket.ErrInvalidRange, offset))
	}
	if length == 0 {
		// No byte range can ask for nothing; the offset must still be
		// checked against the object's size.
		return b.emptyRange(ctx, op, key, offset)
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 && length <= (1<<63-1)-offset {
		rng += strconv.FormatInt(offset+length-1, 10)
	}
	var data []byte
	err := b.retry(ctx, func() error {
		out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: b.objectKey(key), Range: &rng})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		r := io.Reader(out.Body)
		if out.ContentRange == nil {
			// The store ignored the Range header and sent the whole object.
			if n, err := io.CopyN(io.Discard, r, offset); err == io.EOF && n < offset {
				return fmt.Errorf("%w: offset %d is past the end of the %d-byte object", bucket.ErrInvalidRange, offset, n)
			} else if err != nil && err != io.EOF {
				return err
			}
		}
		if length > 0 {
			r = io.LimitReader(r, length)
		}
		data, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
			// S3 answers 416 both for an offset past the end and for one
			// exactly at the end (which the contract says reads nothing).
			return b.emptyRange(ctx, op, key, offset)
		}
		return nil, b.opErr(op, key, classify(err))
	}
	return data, nil
}

// emptyRange answers a GetRange that reads no bytes: empty if offset is
// within the object or at its end, ErrInvalidRange past it.
func (b *Bucket) emptyRange(ctx context.Context, op, key string, offset int64) ([]byte, error) {
	info, err := b.head(ctx, key)
	if err != nil {
		return nil, b.opErr(op, key, classify(err))
	}
	if offset > info.Size {
		return nil, b.opErr(op, key, fmt.Errorf("%w: offset %d is past the end of the %d-byte object",
			bucket.ErrInvalidRange, offset, info.Size))
	}
	return []byte{}, nil
}

// Stat returns the object's Info.
func (b *Bucket) Stat(ctx context.Context, key string) (bucket.Info, error) {
	const op = "stat"
	if err := bucket.ValidateKey(key); err != nil {
		return bucket.Info{}, b.opErr(op, key, err)
	}
	info, err := b.head(ctx, key)
	if err != nil {
		return bucket.Info{}, b.opErr(op, key, classify(err))
	}
	return info, nil
}

// head is HeadObject with retries; errors are left for the caller to
// classify.
func (b *Bucket) head(ctx context.Context, key string) (bucket.Info, error) {
	info, _, err := b.headWithMetadata(ctx, key)
	return info, err
}

func (b *Bucket) headWithMetadata(ctx context.Context, key string) (bucket.Info, map[string]string, error) {
	var out *s3.HeadObjectOutput
	err := b.retry(ctx, func() (err error) {
		out, err = b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: b.objectKey(key)})
		return err
	})
	if err != nil {
		return bucket.Info{}, nil, err
	}
	return bucket.Info{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		Version:  version(out.ETag),
		Modified: aws.ToTime(out.LastModified),
	}, out.Metadata, nil
}

// Put creates or replaces key.
func (b *Bucket) Put(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	return b.put(ctx, "put", key, body, size, nil, nil)
}

// PutIfAbsent creates key only if it does not exist.
func (b *Bucket) PutIfAbsent(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	return b.put(ctx, "put-if-absent", key, body, size, aws.String("*"), nil)
}

// PutIfMatch replaces key only if its current version is version.
func (b *Bucket) PutIfMatch(ctx context.Context, key string, body io.Reader, size int64, version string) (bucket.Info, error) {
	const op = "put-if-match"
	if version == "" {
		// No object has an empty version; S3 would reject the empty header.
		if err := bucket.ValidateKey(key); err != nil {
			return bucket.Info{}, b.opErr(op, key, err)
		}
		return bucket.Info{}, b.opErr(op, key, bucket.ErrPrecondition)
	}
	return b.put(ctx, op, key, body, size, nil, aws.String(`"`+version+`"`))
}

func (b *Bucket) put(ctx context.Context, op, key string, body io.Reader, size int64, ifNoneMatch, ifMatch *string) (bucket.Info, error) {
	if err := bucket.ValidateKey(key); err != nil {
		return bucket.Info{}, b.opErr(op, key, err)
	}
	if size > MaxObjectSize {
		return bucket.Info{}, b.opErr(op, key, fmt.Errorf("object of %d bytes is larger than the %d a single S3 PUT accepts", size, int64(MaxObjectSize)))
	}
	p, err := newPayload(body, size, b.tempDir)
	if err != nil {
		return bucket.Info{}, b.opErr(op, key, err)
	}
	defer p.close()

	writeID := newWriteID()
	in := &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           b.objectKey(key),
		Body:          p.body,
		ContentLength: aws.Int64(size),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(p.md5)),
		Metadata:      map[string]string{writeIDKey: writeID},
		IfNoneMatch:   ifNoneMatch,
		IfMatch:       ifMatch,
	}
	var info bucket.Info
	attempts := 0
	err = b.retry(ctx, func() error {
		attempts++
		if _, err := p.body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		out, err := b.client.PutObject(ctx, in)
		if err != nil {
			return err
		}
		info = bucket.Info{Key: key, Size: size, Version: version(out.ETag), Modified: responseDate(out.ResultMetadata)}
		return nil
	})
	if err == nil {
		return info, nil
	}
	err = classify(err)
	conditional := ifNoneMatch != nil || ifMatch != nil
	if conditional && errors.Is(err, bucket.ErrNotFound) {
		// S3 answers If-Match on a missing key with 404.
		err = bucket.ErrPrecondition
	}
	if errors.Is(err, bucket.ErrPrecondition) && attempts > 1 {
		// An earlier attempt failed with an unknown outcome: the object that
		// defeated this one may be that attempt's.
		stored, meta, herr := b.headWithMetadata(ctx, key)
		switch {
		case herr == nil && isOurWrite(stored, meta, writeID, p.md5):
			return stored, nil
		case herr != nil && !bucket.IsNotFound(classify(herr)):
			return bucket.Info{}, b.opErr(op, key, fmt.Errorf(
				"outcome unknown: an attempt failed, a retry found the precondition false, and checking whose write is stored failed: %w", herr))
		}
	}
	return bucket.Info{}, b.opErr(op, key, err)
}

// isOurWrite reports whether the stored object is the one written with this
// write ID and body MD5.
func isOurWrite(stored bucket.Info, meta map[string]string, writeID string, sum []byte) bool {
	for k, v := range meta {
		if strings.EqualFold(k, writeIDKey) {
			return v == writeID
		}
	}
	// The store dropped user metadata: fall back to the ETag, which for a
	// single-part PUT without SSE-KMS is the hex MD5 of the body.
	return strings.EqualFold(stored.Version, hex.EncodeToString(sum))
}

func newWriteID() string {
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(id[:])
}

// Delete removes key; a missing key is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	const op = "delete"
	if err := bucket.ValidateKey(key); err != nil {
		return b.opErr(op, key, err)
	}
	err := b.retry(ctx, func() error {
		_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: b.objectKey(key)})
		return err
	})
	if err != nil {
		if err = classify(err); bucket.IsNotFound(err) {
			return nil
		}
		return b.opErr(op, key, err)
	}
	return nil
}

// List yields the objects under prefix after startAfter, in key order.
func (b *Bucket) List(ctx context.Context, prefix, startAfter string) iter.Seq2[bucket.Info, error] {
	const op = "list"
	return func(yield func(bucket.Info, error) bool) {
		if err := bucket.ValidatePrefix(prefix); err != nil {
			yield(bucket.Info{}, b.opErr(op, prefix, err))
			return
		}
		in := &s3.ListObjectsV2Input{
			Bucket: &b.bucket,
			Prefix: aws.String(b.prefix + prefix),
			// Keys may hold characters XML cannot carry; have them
			// URL-encoded.
			EncodingType: types.EncodingTypeUrl,
		}
		if startAfter != "" {
			in.StartAfter = aws.String(b.prefix + startAfter)
		}
		for {
			var out *s3.ListObjectsV2Output
			err := b.retry(ctx, func() (err error) {
				out, err = b.client.ListObjectsV2(ctx, in)
				return err
			})
			if err != nil {
				yield(bucket.Info{}, b.opErr(op, prefix, classify(err)))
				return
			}
			for _, obj := range out.Contents {
				name, err := url.QueryUnescape(aws.ToString(obj.Key))
				if err != nil {
					yield(bucket.Info{}, b.opErr(op, prefix, fmt.Errorf("store returned a badly encoded key %q: %w", aws.ToString(obj.Key), err)))
					return
				}
				key, ok := strings.CutPrefix(name, b.prefix)
				if !ok {
					continue
				}
				info := bucket.Info{
					Key:      key,
					Size:     aws.ToInt64(obj.Size),
					Version:  version(obj.ETag),
					Modified: aws.ToTime(obj.LastModified),
				}
				if !yield(info, nil) {
					return
				}
			}
			if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
				return
			}
			in.ContinuationToken = out.NextContinuationToken
		}
	}
}

// version turns an ETag into a bucket version: the ETag without its quotes,
// which some stores leave off in listings.
func version(etag *string) string {
	return strings.Trim(aws.ToString(etag), `"`)
}

// responseDate is the Date of the store's response, the nearest thing to a
// modification time that a PUT returns. Our own clock stands in if the store
// sent none.
func responseDate(md smithymiddleware.Metadata) time.Time {
	if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
		if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			return t
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}

// payload is a Put body made replayable: the SDK must read it once to sign
// it over plain HTTP, and every retry reads it again.
type payload struct {
	body  io.ReadSeeker // exactly size bytes; Seek(0, io.SeekStart) rewinds
	md5   []byte
	close func()
}

// newPayload uses an io.ReadSeeker body in place and spools any other body to
// a temporary file, never to memory, so large objects are not held twice.
func newPayload(body io.Reader, size int64, tempDir string) (*payload, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	if body == nil {
		body = strings.NewReader("")
	}
	h := md5.New()
	rs, seekable := body.(io.ReadSeeker)
	var start int64
	if seekable {
		// An *os.File on a pipe is an io.ReadSeeker that cannot seek.
		var err error
		start, err = rs.Seek(0, io.SeekCurrent)
		seekable = err == nil
	}
	if seekable {
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("seeking body: %w", err)
		}
		if end-start != size {
			return nil, fmt.Errorf("body holds %d bytes but size is %d", end-start, size)
		}
		sec := &section{rs: rs, start: start, size: size}
		if _, err := sec.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("seeking body: %w", err)
		}
		if _, err := io.Copy(h, sec); err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
		return &payload{body: sec, md5: h.Sum(nil), close: func() {}}, nil
	}

	f, err := os.CreateTemp(tempDir, "twoway-put-*")
	if err != nil {
		return nil, fmt.Errorf("spooling body: %w", err)
	}
	cleanup := func() {
		f.Close()
		os.Remove(f.Name())
	}
	n, err := io.CopyN(io.MultiWriter(f, h), body, size)
	if err != nil {
		cleanup()
		if err == io.EOF {
			return nil, fmt.Errorf("body ended after %d bytes but size is %d", n, size)
		}
		return nil, fmt.Errorf("spooling body: %w", err)
	}
	var extra [1]byte
	if k, _ := io.ReadFull(body, extra[:]); k > 0 {
		cleanup()
		return nil, fmt.Errorf("body is longer than size %d", size)
	}
	return &payload{body: f, md5: h.Sum(nil), close: cleanup}, nil
}

// section is the size bytes of rs from start on, seekable within them.
type section struct {
	rs          io.ReadSeeker
	start, size int64
	off         int64 // relative to start
}

func (s *section) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if rest := s.size - s.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.rs.Read(p)
	s.off += int64(n)
	if err == io.EOF && s.off < s.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (s *section) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.off
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	if _, err := s.rs.Seek(s.start+offset, io.SeekStart); err != nil {
		return 0, err
	}
	s.off = offset
	return offset, nil
}
