package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

// Error codes: the "code" of an error body. docs/HTTP.md says what a client
// should do about each.
const (
	CodeBadRequest       = "bad_request"         // 400: malformed JSON or parameter; "field" names it
	CodeInvalidTopic     = "invalid_topic"       // 400: the topic name breaks the naming rules
	CodeInvalidConfig    = "invalid_config"      // 400: partitions or retention out of range
	CodeInvalidRecords   = "invalid_records"     // 400: records the log refuses
	CodeUnknownTopic     = "unknown_topic"       // 404
	CodeUnknownPartition = "unknown_partition"   // 404
	CodeTopicExists      = "topic_exists"        // 409
	CodeTooLarge         = "too_large"           // 413: body or records over the limit
	CodeOffsetOutOfRange = "offset_out_of_range" // 416: the body gives the valid range
	CodeNotCommitted     = "not_committed"       // 503: nothing was written; retrying is safe
	CodeOutcomeUnknown   = "outcome_unknown"     // 503: the write may or may not have been committed
	CodeUnavailable      = "unavailable"         // 503: the agent cannot serve now (stopping, bucket unreachable)
	CodeInternal         = "internal"            // 500
	CodeUnauthorized     = "unauthorized"        // 401: no or bad credentials
	CodeForbidden        = "forbidden"           // 403: the principal's ACLs do not allow it
)

// retryAfter is what 503 answers ask clients to wait.
const retryAfter = time.Second

// Error is an API error: the JSON body of every non-2xx answer, and what
// Client methods return for one. Unwrap gives the stream package's
// sentinel for the code (stream.ErrUnknownTopic...), so callers test errors
// the same way in process and over HTTP.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Code    string `json:"code"`
	// Field names the bad field or query parameter of a bad_request.
	Field string `json:"field,omitempty"`
	// The valid range, with offset_out_of_range.
	Offset         *int64 `json:"offset,omitempty"`
	LogStartOffset *int64 `json:"log_start_offset,omitempty"`
	HighWatermark  *int64 `json:"high_watermark,omitempty"`
	// Offsets: when some records of a produce failed, the outcome of every
	// record, in request order.
	Offsets []ProduceOffset `json:"offsets,omitempty"`
	// RetryAfter is the server's Retry-After, with 503.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// Unwrap maps the code back to the error it stands for.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeInvalidTopic:
		return stream.ErrInvalidTopic
	case CodeInvalidConfig:
		return stream.ErrInvalidConfig
	case CodeInvalidRecords:
		return stream.ErrInvalidRecords
	case CodeUnknownTopic:
		return stream.ErrUnknownTopic
	case CodeUnknownPartition:
		return stream.ErrUnknownPartition
	case CodeTopicExists:
		return stream.ErrTopicExists
	case CodeTooLarge:
		return stream.ErrTooLarge
	case CodeNotCommitted:
		return commitlog.ErrNotCommitted
	case CodeForbidden:
		return authz.ErrDenied
	}
	return nil
}

// unavailableError is a failure of the agent's own reads (catching up with
// the log in the bucket), which a retry may not meet.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string {
	return "cannot catch up with the log in the bucket: " + e.err.Error()
}
func (e *unavailableError) Unwrap() error { return e.err }

// errorFor maps err to its answer. write says whether the request asked to
// change something, which decides whether a cut-off request may have
// committed.
func errorFor(err error, write bool) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	e := &Error{Message: err.Error()}
	set := func(status int, code string) { e.Status, e.Code = status, code }
	unknownOrUnavailable := func() {
		set(http.StatusServiceUnavailable, CodeUnavailable)
		if write {
			e.Code = CodeOutcomeUnknown
			e.Message += "; the change may or may not have been made"
		}
		e.RetryAfter = retryAfter
	}
	var (
		mbe *http.MaxBytesError
		be  *bodyError
		fe  *fieldError
		oor *stream.OffsetOutOfRangeError
		ue  *unavailableError
	)
	switch {
	case errors.As(err, &mbe):
		set(http.StatusRequestEntityTooLarge, CodeTooLarge)
		e.Message = fmt.Sprintf("the request body is larger than %d bytes; send fewer records per request", mbe.Limit)
	case errors.As(err, &be):
		set(http.StatusBadRequest, CodeBadRequest)
		e.Field = be.field
	case errors.As(err, &fe):
		set(http.StatusBadRequest, CodeBadRequest)
		e.Field = fe.field
	case errors.As(err, &oor):
		set(http.StatusRequestedRangeNotSatisfiable, CodeOffsetOutOfRange)
		e.Offset, e.LogStartOffset, e.HighWatermark = &oor.Offset, &oor.Start, &oor.End
	case errors.Is(err, authz.ErrDenied):
		set(http.StatusForbidden, CodeForbidden)
	case errors.Is(err, stream.ErrInvalidTopic):
		set(http.StatusBadRequest, CodeInvalidTopic)
	case errors.Is(err, stream.ErrInvalidConfig):
		set(http.StatusBadRequest, CodeInvalidConfig)
	case errors.Is(err, stream.ErrInvalidRecords):
		set(http.StatusBadRequest, CodeInvalidRecords)
	case errors.Is(err, stream.ErrUnknownTopic):
		set(http.StatusNotFound, CodeUnknownTopic)
	case errors.Is(err, stream.ErrUnknownPartition):
		set(http.StatusNotFound, CodeUnknownPartition)
	case errors.Is(err, stream.ErrTopicExists):
		set(http.StatusConflict, CodeTopicExists)
	case errors.Is(err, stream.ErrTooLarge):
		set(http.StatusRequestEntityTooLarge, CodeTooLarge)
	case errors.Is(err, commitlog.ErrNotCommitted):
		set(http.StatusServiceUnavailable, CodeNotCommitted)
		e.RetryAfter = retryAfter
	case errors.As(err, &ue):
		set(http.StatusServiceUnavailable, CodeUnavailable)
		e.RetryAfter = retryAfter
	case errors.Is(err, commitlog.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		unknownOrUnavailable()
	default:
		set(http.StatusInternalServerError, CodeInternal)
	}
	return e
}

// writeError answers with e.
func writeError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, e.Status, e)
}
