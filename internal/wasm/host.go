package wasm

import (
	"context"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Host is what a call's twoway_v1 imports do: the caller (the functions
// module) implements it per invocation. This package decodes the
// arguments from the guest's memory, traps on ranges outside it, and
// keeps the pending result of imports that return variable-length data
// (docs/FUNCTIONS.md, "Imports"). Methods return an ABI code (>= 0 or one
// of the Err* codes).
type Host interface {
	Log(level int32, msg string)
	StateGet(key string, own bool) ([]byte, int32)
	StateSet(value []byte) int32
	StateDelete() int32
	Publish(topic string, key []byte, value []byte) int32
	TimerSet(name string, atMs int64, payload []byte) int32
	TimerCancel(name string) int32
	ConfigGet(name string) ([]byte, int32)
	MetricAdd(name string, delta float64) int32
	MetricSet(name string, value float64) int32
	HTTPFetch(request []byte) ([]byte, int32)
	Read(topic string, partition int32, offset int64, max int32) ([]byte, int32)
}

// ABI error codes, returned by imports (docs/FUNCTIONS.md).
const (
	ErrNotFound = -1
	ErrDenied   = -2
	ErrInvalid  = -3
	ErrTooLarge = -4
	ErrNoActor  = -5
	ErrFailed   = -6
)

// nullLen is the length that stands for a null key.
const nullLen = math.MaxUint32

// maxArg bounds a name or key argument (topic, timer, config, metric
// names, actor keys); values are bounded by the Host's limits.
const maxArg = 4 << 10

// hostFunc is one twoway_v1 import: its name, the capability a deployment
// needs to import it ("" for none), and its signature.
type hostFunc struct {
	name       string
	capability string
	params     []api.ValueType
	results    []api.ValueType
	fn         func(c *callInfo, m api.Module, stack []uint64)
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
	f64 = api.ValueTypeF64
)

// Capabilities names the grant each twoway_v1 import needs; imports
// absent from it need none. A grant "publish:alerts" satisfies
// "publish:", "http:example.com" satisfies "http:".
func Capabilities() map[string]string {
	out := map[string]string{}
	for _, h := range hostFuncs {
		if h.capability != "" {
			out[h.name] = h.capability
		}
	}
	return out
}

var hostFuncs = []hostFunc{
	{"log", "log", []api.ValueType{i32, i32, i32}, nil, func(c *callInfo, m api.Module, s []uint64) {
		// The whole range must be in memory (else a trap), the line is cut.
		b := read(m, "log", uint32(s[1]), uint32(s[2]))
		msg := string(b[:min(len(b), maxLogLine)])
		if !utf8.ValidString(msg) {
			msg = string([]rune(msg)) // replaces invalid bytes
		}
		c.log(int32(s[0]), msg)
	}},
	{"result_read", "", []api.ValueType{i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		ptr, n := uint32(s[0]), uint32(s[1])
		n = min(n, uint32(len(c.result)))
		write(m, "result_read", ptr, c.result[:n])
		c.result = nil
		s[0] = uint64(n)
	}},
	{"now_ms", "", nil, []api.ValueType{i64}, func(c *callInfo, m api.Module, s []uint64) {
		s[0] = uint64(c.now())
	}},
	{"state_get", "state", []api.ValueType{i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		key, ok := argString(m, "state_get", uint32(s[0]), uint32(s[1]))
		if !ok {
			s[0] = code(ErrInvalid)
			return
		}
		v, rc := c.host().StateGet(key, len(key) == 0)
		s[0] = c.setResult(v, rc)
	}},
	{"state_set", "state", []api.ValueType{i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		v := read(m, "state_set", uint32(s[0]), uint32(s[1]))
		s[0] = code(c.host().StateSet(append([]byte(nil), v...)))
	}},
	{"state_delete", "state", nil, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		s[0] = code(c.host().StateDelete())
	}},
	{"publish", "publish:", []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		// Every range is checked (a trap if outside memory) before the
		// arguments are judged.
		topic, ok := argString(m, "publish", uint32(s[0]), uint32(s[1]))
		var key []byte
		if uint32(s[3]) != nullLen {
			key = append([]byte{}, read(m, "publish", uint32(s[2]), uint32(s[3]))...)
		}
		value := append([]byte{}, read(m, "publish", uint32(s[4]), uint32(s[5]))...)
		if !ok || topic == "" {
			s[0] = code(ErrInvalid)
			return
		}
		s[0] = code(c.host().Publish(topic, key, value))
	}},
	{"timer_set", "timers", []api.ValueType{i32, i32, i64, i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		name, ok := argString(m, "timer_set", uint32(s[0]), uint32(s[1]))
		payload := append([]byte(nil), read(m, "timer_set", uint32(s[3]), uint32(s[4]))...)
		if !ok || name == "" {
			s[0] = code(ErrInvalid)
			return
		}
		s[0] = code(c.host().TimerSet(name, int64(s[2]), payload))
	}},
	{"timer_cancel", "timers", []api.ValueType{i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		name, ok := argString(m, "timer_cancel", uint32(s[0]), uint32(s[1]))
		if !ok || name == "" {
			s[0] = code(ErrInvalid)
			return
		}
		s[0] = code(c.host().TimerCancel(name))
	}},
	{"config_get", "config", []api.ValueType{i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		name, ok := argString(m, "config_get", uint32(s[0]), uint32(s[1]))
		if !ok {
			s[0] = code(ErrInvalid)
			return
		}
		v, rc := c.host().ConfigGet(name)
		s[0] = c.setResult(v, rc)
	}},
	{"metric_add", "metrics", []api.ValueType{i32, i32, f64}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		name, ok := argString(m, "metric_add", uint32(s[0]), uint32(s[1]))
		if !ok {
			s[0] = code(ErrInvalid)
			return
		}
		s[0] = code(c.host().MetricAdd(name, api.DecodeF64(s[2])))
	}},
	{"metric_set", "metrics", []api.ValueType{i32, i32, f64}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		name, ok := argString(m, "metric_set", uint32(s[0]), uint32(s[1]))
		if !ok {
			s[0] = code(ErrInvalid)
			return
		}
		s[0] = code(c.host().MetricSet(name, api.DecodeF64(s[2])))
	}},
	{"http_fetch", "http:", []api.ValueType{i32, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		req := append([]byte(nil), read(m, "http_fetch", uint32(s[0]), uint32(s[1]))...)
		v, rc := c.host().HTTPFetch(req)
		s[0] = c.setResult(v, rc)
	}},
	{"read", "read:", []api.ValueType{i32, i32, i32, i64, i32}, []api.ValueType{i32}, func(c *callInfo, m api.Module, s []uint64) {
		topic, ok := argString(m, "read", uint32(s[0]), uint32(s[1]))
		if !ok || topic == "" {
			s[0] = code(ErrInvalid)
			return
		}
		v, rc := c.host().Read(topic, int32(s[2]), int64(s[3]), int32(s[4]))
		s[0] = c.setResult(v, rc)
	}},
}

func code(rc int32) uint64 { return uint64(uint32(rc)) }

// OutOfBoundsError is the trap of an import given a range outside the
// guest's memory.
type OutOfBoundsError struct {
	Import   string
	Ptr, Len uint32
	Memory   uint32
}

func (e *OutOfBoundsError) Error() string {
	return fmt.Sprintf("%s.%s was given bytes %d to %d, outside the guest's memory of %d bytes", hostModule, e.Import, e.Ptr, uint64(e.Ptr)+uint64(e.Len), e.Memory)
}

// read returns the guest's bytes [ptr, ptr+n), or traps the call.
func read(m api.Module, imp string, ptr, n uint32) []byte {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic(&OutOfBoundsError{Import: imp, Ptr: ptr, Len: n, Memory: m.Memory().Size()})
	}
	return b
}

func write(m api.Module, imp string, ptr uint32, b []byte) {
	if !m.Memory().Write(ptr, b) {
		panic(&OutOfBoundsError{Import: imp, Ptr: ptr, Len: uint32(len(b)), Memory: m.Memory().Size()})
	}
}

// argString reads a name or key argument: valid UTF-8, at most maxArg.
func argString(m api.Module, imp string, ptr, n uint32) (string, bool) {
	if n > maxArg {
		// Still trap on a range outside memory, whatever its length.
		read(m, imp, ptr, n)
		return "", false
	}
	s := string(read(m, imp, ptr, n))
	return s, utf8.ValidString(s)
}

// setResult keeps v as the pending result and returns its length, or
// the error code.
func (c *callInfo) setResult(v []byte, rc int32) uint64 {
	c.result = nil
	if rc < 0 {
		return code(rc)
	}
	c.result = v
	return uint64(len(v))
}

func (c *callInfo) host() Host {
	if c.h == nil {
		return noHost{}
	}
	return c.h
}

// noHost serves plain calls (Module.Call): every capability is denied.
type noHost struct{}

func (noHost) Log(int32, string)                                {}
func (noHost) StateGet(string, bool) ([]byte, int32)            { return nil, ErrDenied }
func (noHost) StateSet([]byte) int32                            { return ErrDenied }
func (noHost) StateDelete() int32                               { return ErrDenied }
func (noHost) Publish(string, []byte, []byte) int32             { return ErrDenied }
func (noHost) TimerSet(string, int64, []byte) int32             { return ErrDenied }
func (noHost) TimerCancel(string) int32                         { return ErrDenied }
func (noHost) ConfigGet(string) ([]byte, int32)                 { return nil, ErrNotFound }
func (noHost) MetricAdd(string, float64) int32                  { return ErrDenied }
func (noHost) MetricSet(string, float64) int32                  { return ErrDenied }
func (noHost) HTTPFetch([]byte) ([]byte, int32)                 { return nil, ErrDenied }
func (noHost) Read(string, int32, int64, int32) ([]byte, int32) { return nil, ErrDenied }

// instantiateHost defines the twoway_v1 module in rt.
func (r *Runtime) instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(hostModule)
	for _, h := range hostFuncs {
		h := h
		b = b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			c, _ := ctx.Value(callKey{}).(*callInfo)
			if c == nil {
				c = &callInfo{r: r}
			}
			h.fn(c, m, stack)
		}), h.params, h.results).Export(h.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}
