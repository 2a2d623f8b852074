package fn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Record is a stream record delivered to the record handler.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte // nil for a null key
	Value     []byte // nil for a null value
	Headers   []RecordHeader
}

// RecordHeader is one header of a Record.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Timer is a timer of the actor that fired.
type Timer struct {
	Name    string
	Due     time.Time // when it was set to fire
	Payload []byte
}

var (
	httpHandler   http.Handler
	recordHandler func(context.Context, Record) error
	timerHandler  func(context.Context, Timer) error
	invokeHandler func(context.Context, string, []byte) ([]byte, error)
)

// HandleHTTP serves HTTP events with h. The request's URL.Path is the path
// after /fn/{name}. Call it (and the other Handle functions) from init:
// inside twoway main is not called.
func HandleHTTP(h http.Handler) { httpHandler = h }

// HandleRecord handles the records of the topics the function subscribes
// to. The invocation's actor (Key) is the record's key. An error is a
// transient failure (status 500: retried, then dead-lettered), unless
// marked Permanent (status 400: dead-lettered at once).
func HandleRecord(h func(ctx context.Context, r Record) error) { recordHandler = h }

// HandleTimer handles the actor's timers (SetTimer) when they fire.
// Errors are as for HandleRecord.
func HandleTimer(h func(ctx context.Context, t Timer) error) { timerHandler = h }

// HandleInvoke handles direct invocations: the returned bytes are the
// response body (status 200); an error answers 500, or 400 if Permanent.
func HandleInvoke(h func(ctx context.Context, method string, body []byte) ([]byte, error)) {
	invokeHandler = h
}

// Permanent marks err as a permanent failure: a handler returning it (or an
// error wrapping it) answers status 400, and a record or timer event is
// dead-lettered at once instead of retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// errorStatus is the status answering a handler's error.
func errorStatus(err error) int {
	var p *permanentError
	if errors.As(err, &p) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// invocation is the call being handled; an instance runs one at a time.
type invocation struct {
	active bool
	key    string
	id     string
}

var (
	// mu serializes invocations: the SDK's functions act on the current
	// one. Inside twoway there is one goroutine calling in; outside, the
	// native server and timers take turns.
	mu  sync.Mutex
	cur invocation
)

// Key is the actor key of the current invocation: the record's key for a
// record, the timer's actor for a timer, "" for an unkeyed HTTP request.
func Key() string { return cur.key }

// InvocationID is the unique id of the current invocation (for logs and
// idempotency), "" outside one.
func InvocationID() string { return cur.id }

// Dispatch handles one ABI v1 event (docs/FUNCTIONS.md) with the
// registered handlers and returns the encoded response. twoway_handle calls
// it; outside twoway it runs the event against the in-memory host, which
// makes it usable from tests.
func Dispatch(event []byte) []byte {
	ev, err := decodeEvent(event)
	var unknown errUnknownKind
	switch {
	case errors.As(err, &unknown):
		return encodeResponse(http.StatusNotImplemented, nil, []byte(err.Error()))
	case err != nil:
		return encodeResponse(http.StatusBadRequest, nil, []byte("malformed event: "+err.Error()))
	}
	status, h, body := invoke(ev.key, ev.invocation, func() (int, http.Header, []byte) { return ev.run() })
	return encodeResponse(status, h, body)
}

// invoke runs f as the current invocation of actor key: the host is told
// where it begins and whether it succeeded (status below 400), and a panic
// in f answers 500 with its message.
func invoke(key, id string, f func() (int, http.Header, []byte)) (status int, h http.Header, body []byte) {
	mu.Lock()
	defer mu.Unlock()
	hst := current
	cur = invocation{active: true, key: key, id: id}
	hst.begin(key)
	defer func() {
		if p := recover(); p != nil {
			status, h, body = http.StatusInternalServerError, nil, []byte(fmt.Sprint("panic: ", p))
		}
		if status == 0 {
			status = http.StatusOK
		}
		hst.end(status < 400)
		cur = invocation{}
	}()
	return f()
}

// run calls the handler for ev.
func (ev *event) run() (int, http.Header, []byte) {
	ctx := context.Background()
	switch ev.kind {
	case kindHTTP:
		if httpHandler == nil {
			return notImplemented("HTTP")
		}
		w := newResponseWriter(ev.method)
		httpHandler.ServeHTTP(w, ev.request())
		return w.result()
	case kindRecord:
		if recordHandler == nil {
			return notImplemented("record")
		}
		return errorResult(recordHandler(ctx, ev.record))
	case kindTimer:
		if timerHandler == nil {
			return notImplemented("timer")
		}
		return errorResult(timerHandler(ctx, ev.timer))
	case kindInvoke:
		if invokeHandler == nil {
			return notImplemented("invoke")
		}
		out, err := invokeHandler(ctx, ev.method, ev.body)
		if err != nil {
			return errorResult(err)
		}
		return http.StatusOK, nil, out
	}
	return http.StatusNotImplemented, nil, []byte(errUnknownKind(ev.kind).Error())
}

func notImplemented(what string) (int, http.Header, []byte) {
	return http.StatusNotImplemented, nil, []byte("fn: no " + what + " handler")
}

func errorResult(err error) (int, http.Header, []byte) {
	if err == nil {
		return http.StatusOK, nil, nil
	}
	return errorStatus(err), nil, []byte(err.Error())
}
