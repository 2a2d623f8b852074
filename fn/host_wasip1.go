//go:build wasip1

package fn

import (
	"errors"
	"log/slog"
	"unsafe"
)

// Inside twoway: the exports the host calls and the twoway_v1 imports.
// Each import is called from one wasmHost method only, and each method
// from the one SDK function that needs it, so the linker keeps exactly the
// imports a module uses (the host refuses imports not granted).

var current host = wasmHost{}

// lent keeps the buffers handed out by twoway_alloc reachable until
// twoway_handle takes them back; out keeps the last response until the
// next call.
var (
	lent = map[uint32][]byte{}
	out  []byte
)

func addr(p unsafe.Pointer) uint32 { return uint32(uintptr(p)) }

//go:wasmexport twoway_alloc
func twowayAlloc(size uint32) uint32 {
	b := make([]byte, max(size, 1))
	p := addr(unsafe.Pointer(unsafe.SliceData(b)))
	lent[p] = b[:size]
	return p
}

//go:wasmexport twoway_handle
func twowayHandle(ptr, n uint32) uint64 {
	b, ok := lent[ptr]
	delete(lent, ptr)
	out = nil
	if !ok || uint64(n) > uint64(len(b)) {
		out = encodeResponse(400, nil, []byte("malformed event: not a buffer from twoway_alloc"))
	} else {
		out = Dispatch(b[:n])
	}
	return uint64(addr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}

//go:wasmimport twoway_v1 log
func importLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport twoway_v1 result_read
func importResultRead(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport twoway_v1 now_ms
func importNowMs() int64

//go:wasmimport twoway_v1 state_get
func importStateGet(keyPtr unsafe.Pointer, keyLen uint32) int32

//go:wasmimport twoway_v1 state_set
func importStateSet(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport twoway_v1 state_delete
func importStateDelete() int32

//go:wasmimport twoway_v1 publish
func importPublish(topicPtr unsafe.Pointer, topicLen uint32, keyPtr unsafe.Pointer, keyLen uint32, valuePtr unsafe.Pointer, valueLen uint32) int32

//go:wasmimport twoway_v1 timer_set
func importTimerSet(namePtr unsafe.Pointer, nameLen uint32, atMs int64, payloadPtr unsafe.Pointer, payloadLen uint32) int32

//go:wasmimport twoway_v1 timer_cancel
func importTimerCancel(namePtr unsafe.Pointer, nameLen uint32) int32

//go:wasmimport twoway_v1 config_get
func importConfigGet(namePtr unsafe.Pointer, nameLen uint32) int32

//go:wasmimport twoway_v1 metric_add
func importMetricAdd(namePtr unsafe.Pointer, nameLen uint32, delta float64) int32

//go:wasmimport twoway_v1 metric_set
func importMetricSet(namePtr unsafe.Pointer, nameLen uint32, value float64) int32

//go:wasmimport twoway_v1 http_fetch
func importHTTPFetch(reqPtr unsafe.Pointer, reqLen uint32) int32

//go:wasmimport twoway_v1 read
func importRead(topicPtr unsafe.Pointer, topicLen uint32, partition int32, offset int64, max int32) int32

func strPtr(s string) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

func bytesPtr(b []byte) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b))
}

// result reads the pending result of an import that returned n.
func result(n int32) ([]byte, int32) {
	if n < 0 {
		return nil, n
	}
	b := make([]byte, n)
	if n > 0 {
		p, l := bytesPtr(b)
		b = b[:importResultRead(p, l)]
	}
	return b, n
}

type wasmHost struct{}

func (wasmHost) begin(string) {}
func (wasmHost) end(bool)     {}

func (wasmHost) log(level Level, msg string) {
	p, n := strPtr(msg)
	importLog(int32(level), p, n)
}

func (wasmHost) nowMs() int64 { return importNowMs() }

func (wasmHost) stateGet(key string) ([]byte, int32) {
	p, n := strPtr(key)
	return result(importStateGet(p, n))
}

func (wasmHost) stateSet(value []byte) int32 {
	p, n := bytesPtr(value)
	return importStateSet(p, n)
}

func (wasmHost) stateDelete() int32 { return importStateDelete() }

func (wasmHost) publish(topic string, key, value []byte) int32 {
	tp, tn := strPtr(topic)
	kp, kn := bytesPtr(key)
	if key == nil {
		kp, kn = nil, nullLen
	}
	vp, vn := bytesPtr(value)
	return importPublish(tp, tn, kp, kn, vp, vn)
}

func (wasmHost) timerSet(name string, atMs int64, payload []byte) int32 {
	np, nn := strPtr(name)
	pp, pn := bytesPtr(payload)
	return importTimerSet(np, nn, atMs, pp, pn)
}

func (wasmHost) timerCancel(name string) int32 {
	p, n := strPtr(name)
	return importTimerCancel(p, n)
}

func (wasmHost) configGet(name string) ([]byte, int32) {
	p, n := strPtr(name)
	return result(importConfigGet(p, n))
}

func (wasmHost) metricAdd(name string, delta float64) int32 {
	p, n := strPtr(name)
	return importMetricAdd(p, n, delta)
}

func (wasmHost) metricSet(name string, value float64) int32 {
	p, n := strPtr(name)
	return importMetricSet(p, n, value)
}

func (wasmHost) httpFetch(req []byte) ([]byte, int32) {
	p, n := bytesPtr(req)
	return result(importHTTPFetch(p, n))
}

func (wasmHost) read(topic string, partition int32, offset int64, max int32) ([]byte, int32) {
	p, n := strPtr(topic)
	return result(importRead(p, n, partition, offset, max))
}

// Logger is a structured logger writing through the host's log (the
// deployment must grant log).
func Logger() *slog.Logger { return slog.New(newHostHandler()) }

// ListenAndServe serves the HTTP handler as a plain Go server outside
// twoway; inside it (where main is not called anyway) it only returns an
// error.
func ListenAndServe(addr string) error {
	return errors.New("fn: ListenAndServe runs outside twoway only")
}
