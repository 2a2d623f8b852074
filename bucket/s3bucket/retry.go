package s3bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/twoway/twoway/bucket"
)

// Backoff between attempts grows exponentially from retryBaseDelay up to
// retryMaxDelay; each wait is drawn from the upper half of that, so that
// clients that failed together do not retry together.
const (
	retryBaseDelay = 100 * time.Millisecond
	retryMaxDelay  = 5 * time.Second
)

// sdkRetryables recognises connection errors, timeouts, throttling codes
// (SlowDown among them) and 500/502/503/504, as the SDK's standard retryer
// would.
var sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// retry runs attempt until it succeeds, fails with an error that retrying
// cannot mend, runs out of attempts, or ctx ends.
func (b *Bucket) retry(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil || !retryable(ctx, err) {
			return err
		}
		if n >= b.maxAttempts {
			if n > 1 {
				err = fmt.Errorf("gave up after %d attempts: %w", n, err)
			}
			return err
		}
		t := time.NewTimer(backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w while waiting to retry after: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// backoff is the wait after the n-th failed attempt.
func backoff(n int) time.Duration {
	d := retryMaxDelay
	if n < 16 {
		d = min(retryBaseDelay<<(n-1), retryMaxDelay)
	}
	return d/2 + rand.N(d/2+1)
}

// retryable reports whether err is worth another attempt: the store was
// busy, conflicted, failed internally, or the connection failed or timed
// out. A conditional write can land and still fail this way; put deals with
// that.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch apiCode(err) {
	case "ConditionalRequestConflict", // 409: a conflicting conditional write is in flight
		"OperationAborted",
		"InternalError",
		"ServiceUnavailable",
		"SlowDown",
		"XMinioServerNotInitialized":
		return true
	}
	switch s := httpStatus(err); {
	case s == http.StatusTooManyRequests:
		return true
	case s >= 500 && s != http.StatusNotImplemented && s != http.StatusHTTPVersionNotSupported:
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	return sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary
}

// classify maps the store's answers onto the bucket sentinels; other errors
// are returned as they are.
func classify(err error) error {
	code := apiCode(err)
	switch status := httpStatus(err); {
	case status == http.StatusNotFound && code != "NoSuchBucket":
		return bucket.ErrNotFound
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
		return bucket.ErrPrecondition
	}
	return err
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus is the status of the store's response, or 0 if there was none.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
