package s3bucket

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/twoway/twoway/bucket"
)

// storeError is an error as the SDK reports an S3 error response.
func storeError(status int, code string) error {
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "PutObject",
		Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "test"},
		},
	}
}

func TestRetryable(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{nil, storeError(503, "SlowDown"), true},
		{nil, storeError(503, "ServiceUnavailable"), true},
		{nil, storeError(500, "InternalError"), true},
		{nil, storeError(502, ""), true},
		{nil, storeError(504, ""), true},
		{nil, storeError(409, "ConditionalRequestConflict"), true},
		{nil, storeError(429, "TooManyRequests"), true},
		{nil, storeError(400, "RequestTimeout"), true},
		{nil, storeError(501, "NotImplemented"), false},
		{nil, storeError(412, "PreconditionFailed"), false},
		{nil, storeError(404, "NoSuchKey"), false},
		{nil, storeError(403, "AccessDenied"), false},
		{nil, storeError(409, "BucketAlreadyExists"), false},
		{nil, &smithyhttp.RequestSendError{Err: errors.New("dial tcp: connection refused")}, true},
		{nil, fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), true},
		{nil, errors.New("seeking body: bad whence"), false},
		{canceled, storeError(503, "SlowDown"), false},
	} {
		ctx := tc.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		if got := retryable(ctx, tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{storeError(404, "NoSuchKey"), bucket.ErrNotFound},
		{storeError(404, "NotFound"), bucket.ErrNotFound}, // HEAD has no body to name the error
		{storeError(412, "PreconditionFailed"), bucket.ErrPrecondition},
		{fmt.Errorf("gave up after 3 attempts: %w", storeError(412, "")), bucket.ErrPrecondition},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	for _, err := range []error{storeError(404, "NoSuchBucket"), storeError(500, "InternalError"), errors.New("other")} {
		if got := classify(err); got != err {
			t.Errorf("classify(%v) = %v, want it unchanged", err, got)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 100; n++ {
		full := min(retryBaseDelay<<min(n-1, 20), retryMaxDelay)
		for range 20 {
			if d := backoff(n); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
	if backoff(1) > 100*time.Millisecond || backoff(40) < retryMaxDelay/2 {
		t.Fatal("backoff does not grow from the base delay to the cap")
	}
}

func TestIsOurWrite(t *testing.T) {
	sum := md5.Sum([]byte("body"))
	etag := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		version string
		meta    map[string]string
		want    bool
	}{
		{etag, map[string]string{writeIDKey: "mine"}, true},
		{"other", map[string]string{"Twoway-Write-Id": "mine"}, true},
		// Same bytes, someone else's write.
		{etag, map[string]string{writeIDKey: "theirs"}, false},
		// A store that drops user metadata: only the ETag can tell.
		{etag, nil, true},
		{strings.ToUpper(etag), map[string]string{"other": "x"}, true},
		{"0123", nil, false},
	} {
		info := bucket.Info{Version: tc.version}
		if got := isOurWrite(info, tc.meta, "mine", sum[:]); got != tc.want {
			t.Errorf("isOurWrite(%q, %v) = %v, want %v", tc.version, tc.meta, got, tc.want)
		}
	}
}

type readOnly struct{ io.Reader }

func TestPayload(t *testing.T) {
	want := md5.Sum([]byte("payload"))
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		pipeW.WriteString("payload")
		pipeW.Close()
	}()
	defer pipeR.Close()
	seeker := strings.NewReader("xxpayload")
	seeker.Seek(2, io.SeekStart)
	for _, body := range []io.Reader{seeker, readOnly{strings.NewReader("payload")}, pipeR} {
		tmp := t.TempDir()
		p, err := newPayload(body, 7, tmp)
		if err != nil {
			t.Fatalf("%T: %v", body, err)
		}
		if string(p.md5) != string(want[:]) {
			t.Errorf("%T: wrong MD5", body)
		}
		for range 2 { // every attempt rereads it
			if _, err := p.body.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(p.body); err != nil || string(got) != "payload" {
				t.Fatalf("%T: read %q, %v", body, got, err)
			}
		}
		p.close()
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("%T: %d files left in the temporary directory", body, len(left))
		}
	}
}
