package fn

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// host is what the SDK's functions call: the twoway_v1 imports inside
// twoway (host_wasip1.go), an in-memory stand-in outside (host_native.go).
// Methods mirror the imports and return their codes (>= 0, or negative
// ABI errors); those with a variable-length result also read it.
//
// Each SDK function calls only the method it needs, so a module that never
// calls, say, Publish links no call to publish and does not import it:
// the host refuses modules importing what their deployment does not grant.
type host interface {
	// begin and end bracket an invocation of actor key; end says whether
	// it succeeded (its effects commit). The twoway host does this itself.
	begin(key string)
	end(ok bool)

	log(level Level, msg string)
	nowMs() int64
	stateGet(key string) ([]byte, int32) // key "": the own actor
	stateSet(value []byte) int32
	stateDelete() int32
	publish(topic string, key, value []byte) int32 // key nil: null
	timerSet(name string, atMs int64, payload []byte) int32
	timerCancel(name string) int32
	configGet(name string) ([]byte, int32)
	metricAdd(name string, delta float64) int32
	metricSet(name string, value float64) int32
	httpFetch(req []byte) ([]byte, int32)
	read(topic string, partition int32, offset int64, max int32) ([]byte, int32)
}

// ABI error codes.
const (
	codeNotFound = -1
	codeDenied   = -2
	codeInvalid  = -3
	codeTooLarge = -4
	codeNoActor  = -5
	codeFailed   = -6
)

// The errors of the host's imports, as returned (wrapped, naming the
// operation) by the SDK's functions; test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrDenied   = errors.New("denied: the deployment does not grant it")
	ErrInvalid  = errors.New("invalid argument")
	ErrTooLarge = errors.New("over a limit of the deployment")
	ErrNoActor  = errors.New("needs an actor: the invocation is unkeyed")
	ErrFailed   = errors.New("failed")
)

var codeErrors = [...]error{
	-codeNotFound: ErrNotFound,
	-codeDenied:   ErrDenied,
	-codeInvalid:  ErrInvalid,
	-codeTooLarge: ErrTooLarge,
	-codeNoActor:  ErrNoActor,
	-codeFailed:   ErrFailed,
}

// hostError is a failed import: the operation, its argument (a topic, a
// name; "" for none) and the code.
type hostError struct {
	op, arg string
	code    int32
}

func (e *hostError) Error() string {
	what := "fn: " + e.op
	if e.arg != "" {
		what += " " + strconv.Quote(e.arg)
	}
	if err := e.Unwrap(); err != nil {
		return what + ": " + err.Error()
	}
	return fmt.Sprintf("%s: host error %d", what, e.code)
}

func (e *hostError) Unwrap() error {
	if i := -int(e.code); i > 0 && i < len(codeErrors) {
		return codeErrors[i]
	}
	return nil
}

// check turns an import's code into an error.
func check(code int32, op, arg string) error {
	if code >= 0 {
		return nil
	}
	return &hostError{op, arg, code}
}

// State returns the current invocation's actor state, including its own
// writes so far; found is false when it has none. An unkeyed invocation
// (an HTTP request) gets ErrNoActor.
func State() (value []byte, found bool, err error) {
	return stateGet("")
}

// StateOf returns the committed state of actor key (not the current
// invocation's uncommitted writes, even for its own key). StateOf("") is
// State().
func StateOf(key string) (value []byte, found bool, err error) {
	return stateGet(key)
}

func stateGet(key string) ([]byte, bool, error) {
	v, code := current.stateGet(key)
	if code == codeNotFound {
		return nil, false, nil
	}
	if err := check(code, "get state", key); err != nil {
		return nil, false, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// SetState replaces the actor's state when the invocation commits.
func SetState(value []byte) error {
	return check(current.stateSet(value), "set state", "")
}

// DeleteState deletes the actor's state when the invocation commits.
func DeleteState() error {
	return check(current.stateDelete(), "delete state", "")
}

// Publish appends a record to topic when the invocation commits; a nil key
// is a null key. The deployment must grant publish:TOPIC.
func Publish(topic string, key, value []byte) error {
	return check(current.publish(topic, key, value), "publish to", topic)
}

// SetTimer sets (or replaces) the actor's timer name to fire at at, with
// payload, when the invocation commits.
func SetTimer(name string, at time.Time, payload []byte) error {
	return check(current.timerSet(name, at.UnixMilli(), payload), "set timer", name)
}

// CancelTimer cancels the actor's timer name; ErrNotFound if it has none.
func CancelTimer(name string) error {
	return check(current.timerCancel(name), "cancel timer", name)
}

// Config returns the deployment's config value name; ok is false when it
// is unset (or config is not granted).
func Config(name string) (value string, ok bool) {
	v, code := current.configGet(name)
	if code < 0 {
		return "", false
	}
	return string(v), true
}

// Now is the host's wall-clock time (millisecond precision).
func Now() time.Time { return time.UnixMilli(current.nowMs()) }

// Level is a log level of Log.
type Level int32

// Log levels, as the ABI numbers them.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// Log writes a line to the function's log (inside twoway: the agent's log,
// tagged with the function; needs the log grant).
func Log(level Level, msg string) { current.log(level, msg) }

// CounterMetric is a counter; see Counter.
type CounterMetric struct{ name string }

// Counter is the function's counter name (the deployment must grant
// metrics). Errors (a bad name, no grant) are dropped.
func Counter(name string) CounterMetric { return CounterMetric{name} }

// Add adds v to the counter.
func (c CounterMetric) Add(v float64) { current.metricAdd(c.name, v) }

// GaugeMetric is a gauge; see Gauge.
type GaugeMetric struct{ name string }

// Gauge is the function's gauge name (the deployment must grant metrics).
// Errors are dropped.
func Gauge(name string) GaugeMetric { return GaugeMetric{name} }

// Set sets the gauge to v.
func (g GaugeMetric) Set(v float64) { current.metricSet(g.name, v) }

// ReadResult is what Read returns: the records and the partition's range.
type ReadResult struct {
	// LogStart is the partition's first offset, HighWatermark the offset
	// its next record will get.
	LogStart, HighWatermark int64
	Records                 []Record
}

// Read reads up to max committed records of a topic's partition from
// offset (the deployment must grant read:TOPIC). It is not part of the
// invocation's commit: it sees what is committed when it runs. An offset
// outside [LogStart, HighWatermark] is ErrInvalid; at HighWatermark there
// are no records yet.
func Read(topic string, partition int32, offset int64, max int) (ReadResult, error) {
	b, code := current.read(topic, partition, offset, int32(min(max, 1<<20)))
	if err := check(code, "read", topic); err != nil {
		return ReadResult{}, err
	}
	return decodeReadResult(topic, partition, b)
}

func decodeReadResult(topic string, partition int32, b []byte) (ReadResult, error) {
	r := &reader{b: b}
	res := ReadResult{LogStart: r.i64("log start"), HighWatermark: r.i64("high watermark")}
	n := r.count(28, "records")
	for range n {
		rec := Record{Topic: topic, Partition: partition, Offset: r.i64("offset")}
		rec.Timestamp = time.UnixMilli(r.i64("timestamp"))
		rec.Key, rec.Value = r.nullable("key"), r.nullable("value")
		nh := r.count(8, "headers")
		for range nh {
			rec.Headers = append(rec.Headers, RecordHeader{Key: r.str("header key"), Value: r.bytes("header value")})
		}
		if r.err != nil {
			break
		}
		res.Records = append(res.Records, rec)
	}
	if r.err != nil {
		return ReadResult{}, fmt.Errorf("fn: read %q: malformed result: %w", topic, r.err)
	}
	return res, nil
}
