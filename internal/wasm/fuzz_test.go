package wasm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"
)

// A hand-assembled module for exercising the host imports: it imports
// every twoway_v1 function, exports call_{name} forwarding its arguments
// to the import unchanged, a memory of exactly one page, and trivial
// twoway_alloc and twoway_handle (so Load accepts it).

func uleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func wasmName(b []byte, s string) []byte { return append(uleb(b, uint64(len(s))), s...) }

func wasmSection(b []byte, id byte, content []byte) []byte {
	return append(uleb(append(b, id), uint64(len(content))), content...)
}

func wasmVec(items [][]byte) []byte {
	b := uleb(nil, uint64(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func wasmFuncType(params, results []api.ValueType) []byte {
	b := uleb([]byte{0x60}, uint64(len(params)))
	b = append(b, params...)
	b = uleb(b, uint64(len(results)))
	return append(b, results...)
}

// hostCallerPages is the memory of hostCallerModule, min = max.
const hostCallerPages = 1

func hostCallerModule() []byte {
	n := len(hostFuncs)
	var types, imports, funcs, exports, code [][]byte
	for i, h := range hostFuncs {
		types = append(types, wasmFuncType(h.params, h.results))
		imports = append(imports, append(wasmName(wasmName(nil, hostModule), h.name), 0x00, byte(i)))
		funcs = append(funcs, uleb(nil, uint64(i)))
		exports = append(exports, append(uleb(wasmName(nil, "call_"+h.name), 0x00), uleb(nil, uint64(n+i))...))
		body := []byte{0x00} // no locals
		for p := range h.params {
			body = uleb(append(body, 0x20), uint64(p)) // local.get p
		}
		body = uleb(append(body, 0x10), uint64(i)) // call import i
		body = append(body, 0x0b)
		code = append(code, append(uleb(nil, uint64(len(body))), body...))
	}
	i32t, i64t := api.ValueTypeI32, api.ValueTypeI64
	types = append(types, wasmFuncType([]api.ValueType{i32t}, []api.ValueType{i32t}), wasmFuncType([]api.ValueType{i32t, i32t}, []api.ValueType{i64t}))
	funcs = append(funcs, uleb(nil, uint64(n)), uleb(nil, uint64(n+1)))
	exports = append(exports,
		append(wasmName(nil, exportAlloc), 0x00, byte(2*n)),
		append(wasmName(nil, exportHandle), 0x00, byte(2*n+1)),
		append(wasmName(nil, "memory"), 0x02, 0x00))
	code = append(code,
		[]byte{0x04, 0x00, 0x41, 0x00, 0x0b}, // i32.const 0
		[]byte{0x04, 0x00, 0x42, 0x00, 0x0b}, // i64.const 0
	)
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	b = wasmSection(b, 1, wasmVec(types))
	b = wasmSection(b, 2, wasmVec(imports))
	b = wasmSection(b, 3, wasmVec(funcs))
	b = wasmSection(b, 5, []byte{0x01, 0x01, hostCallerPages, hostCallerPages}) // one memory, min = max
	b = wasmSection(b, 7, wasmVec(exports))
	b = wasmSection(b, 10, wasmVec(code))
	return b
}

// recHost records what the imports passed it; every call succeeds.
type recHost struct {
	calls  int
	last   string
	args   [][]byte
	result []byte
}

func (h *recHost) rec(name string, args ...[]byte) { h.calls++; h.last, h.args = name, args }

func (h *recHost) Log(level int32, msg string) { h.rec("log", []byte(msg)) }
func (h *recHost) StateGet(key string, own bool) ([]byte, int32) {
	h.rec("state_get", []byte(key))
	return h.result, 0
}
func (h *recHost) StateSet(v []byte) int32 { h.rec("state_set", v); return 0 }
func (h *recHost) StateDelete() int32      { h.rec("state_delete"); return 0 }
func (h *recHost) Publish(topic string, key, value []byte) int32 {
	h.rec("publish", []byte(topic), key, value)
	return 0
}
func (h *recHost) TimerSet(name string, at int64, payload []byte) int32 {
	h.rec("timer_set", []byte(name), payload)
	return 0
}
func (h *recHost) TimerCancel(name string) int32 { h.rec("timer_cancel", []byte(name)); return 0 }
func (h *recHost) ConfigGet(name string) ([]byte, int32) {
	h.rec("config_get", []byte(name))
	return h.result, 0
}
func (h *recHost) MetricAdd(name string, d float64) int32 {
	h.rec("metric_add", []byte(name))
	return 0
}
func (h *recHost) MetricSet(name string, v float64) int32 {
	h.rec("metric_set", []byte(name))
	return 0
}
func (h *recHost) HTTPFetch(req []byte) ([]byte, int32) {
	h.rec("http_fetch", req)
	return h.result, 0
}
func (h *recHost) Read(topic string, p int32, off int64, max int32) ([]byte, int32) {
	h.rec("read", []byte(topic))
	return h.result, 0
}

// hostCallerMemory is what the test writes into the module's memory:
// letters, with invalid UTF-8 from invalidAt on.
const invalidAt = 60000

func hostCallerMemory() []byte {
	mem := make([]byte, hostCallerPages*65536)
	for i := range mem {
		mem[i] = 'a' + byte(i%26)
		if i >= invalidAt {
			mem[i] = 0xff
		}
	}
	return mem
}

var hostCaller struct {
	once sync.Once
	r    *Runtime
	m    *Module
	err  error
}

// FuzzHostImports calls every twoway_v1 import with arbitrary (ptr, len)
// pairs: a range outside the guest's memory traps with an
// *OutOfBoundsError naming the import and the range; a range inside it
// does not trap and hands the host exactly those bytes; and the module
// keeps serving calls after any of it.
func FuzzHostImports(f *testing.F) {
	const size = hostCallerPages * 65536
	for i := range hostFuncs {
		for _, r := range [][6]uint32{
			{0, 0, 0, 0, 0, 0},
			{0, 5, 10, 3, 20, 7},
			{size - 1, 1, size, 0, size - 10, 10},
			{size, 1, 0, math.MaxUint32, 0, 1},
			{math.MaxUint32, 2, 5, 5, 5, math.MaxUint32},
			{100, maxArg + 1, 0, 0, 0, 0},
			{invalidAt - 2, 4, 0, 0, invalidAt, 10},
			{0, maxLogLine + 100, size + 1, 0, 0, 0},
			{1, 0, 0, size + 1, 7, 0},
			{0, size + 1, 0, 0, 0, 0},
		} {
			f.Add(uint8(i), r[0], r[1], r[2], r[3], r[4], r[5])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, p1, n1, p2, n2, p3, n3 uint32) {
		hostCaller.once.Do(func() {
			hostCaller.r, hostCaller.err = New(context.Background(), Config{Logger: quietLogger()})
			if hostCaller.err == nil {
				hostCaller.m, hostCaller.err = hostCaller.r.Load(context.Background(), "hostcaller", hostCallerModule())
			}
		})
		if hostCaller.err != nil {
			t.Fatal(hostCaller.err)
		}
		m := hostCaller.m
		h := hostFuncs[int(which)%len(hostFuncs)]
		host := &recHost{result: []byte("pending result")}
		c := &callInfo{r: m.r, module: m.name, h: host}
		ctx := context.WithValue(context.Background(), callKey{}, c)
		inst, err := m.instantiate(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close(context.Background())
		mem := hostCallerMemory()
		if !inst.Memory().Write(0, mem) || inst.Memory().Size() != size {
			t.Fatalf("memory of %d bytes", inst.Memory().Size())
		}
		in := func(p, n uint32) bool { return uint64(p)+uint64(n) <= size }
		str := func(p, n uint32) ([]byte, bool) { // an argString argument
			if n > maxArg || !utf8.Valid(mem[p:p+n]) {
				return nil, false
			}
			return mem[p : p+n], true
		}
		// The arguments: the i32 parameters take p1, n1, p2, ... in turn.
		pairs := []uint32{p1, n1, p2, n2, p3, n3}
		if h.name == "log" { // (level, ptr, len)
			pairs = []uint32{p3, p1, n1}
		}
		args := make([]uint64, len(h.params))
		next := 0
		for i, vt := range h.params {
			switch vt {
			case api.ValueTypeI32:
				args[i] = uint64(pairs[next%len(pairs)])
				next++
			case api.ValueTypeI64:
				args[i] = 12345
			case api.ValueTypeF64:
				args[i] = api.EncodeF64(1.5)
			}
		}
		// What should happen: the ranges the import reads, and what the
		// host should be given when none is outside memory.
		var ranges [][2]uint32
		var want [][]byte
		wantCall := true
		switch h.name {
		case "log":
			ranges = [][2]uint32{{p1, n1}}
			if in(p1, n1) {
				msg := mem[p1 : p1+min(n1, maxLogLine)]
				if !utf8.Valid(msg) {
					msg = []byte(string([]rune(string(msg))))
				}
				want = [][]byte{msg}
			}
		case "result_read":
			ranges = [][2]uint32{{p1, 0}} // nothing pending: writes 0 bytes
			wantCall = false
		case "now_ms", "state_delete":
		case "state_get", "timer_cancel", "config_get", "metric_add", "metric_set":
			ranges = [][2]uint32{{p1, n1}}
			if in(p1, n1) {
				s, ok := str(p1, n1)
				// An empty timer name is invalid; an empty key is the
				// actor's own; metric names are the host's to judge.
				wantCall, want = ok && (len(s) > 0 || h.name != "timer_cancel"), [][]byte{s}
			}
		case "state_set", "http_fetch":
			ranges = [][2]uint32{{p1, n1}}
			if in(p1, n1) {
				want = [][]byte{mem[p1 : p1+n1]}
			}
		case "publish":
			ranges = [][2]uint32{{p1, n1}, {p3, n3}}
			if n2 != math.MaxUint32 {
				ranges = append(ranges, [2]uint32{p2, n2})
			}
			if in(p1, n1) && in(p2, n2) && in(p3, n3) || in(p1, n1) && n2 == math.MaxUint32 && in(p3, n3) {
				topic, ok := str(p1, n1)
				var key []byte
				if n2 != math.MaxUint32 {
					key = mem[p2 : p2+n2]
				}
				wantCall, want = ok && len(topic) > 0, [][]byte{topic, key, mem[p3 : p3+n3]}
			}
		case "read": // (topic ptr, topic len, partition, offset, max)
			ranges = [][2]uint32{{p1, n1}}
			if in(p1, n1) {
				topic, ok := str(p1, n1)
				wantCall, want = ok && len(topic) > 0, [][]byte{topic}
			}
		case "timer_set": // (name ptr, name len, at, payload ptr, payload len)
			ranges = [][2]uint32{{p1, n1}, {p2, n2}}
			if in(p1, n1) && in(p2, n2) {
				name, ok := str(p1, n1)
				wantCall, want = ok && len(name) > 0, [][]byte{name, mem[p2 : p2+n2]}
			}
		default:
			t.Fatalf("the test does not know import %s", h.name)
		}
		outside := false
		for _, r := range ranges {
			outside = outside || !in(r[0], r[1])
		}
		res, err := inst.ExportedFunction("call_"+h.name).Call(ctx, args...)
		var oob *OutOfBoundsError
		switch {
		case outside && !errors.As(err, &oob):
			t.Fatalf("%s%v: ranges %v outside memory: %v, want an *OutOfBoundsError", h.name, args, ranges, err)
		case outside:
			if oob.Import != h.name || oob.Memory != size || in(oob.Ptr, oob.Len) {
				t.Fatalf("%s%v: %+v does not name the import and a range outside memory", h.name, args, oob)
			}
			if host.calls != 0 {
				t.Fatalf("%s%v trapped but the host was called (%s)", h.name, args, host.last)
			}
		case err != nil:
			t.Fatalf("%s%v: ranges %v inside memory: %v", h.name, args, ranges, err)
		case len(h.results) == 1 && int32(res[0]) < 0 && wantCall:
			t.Fatalf("%s%v: returned %d", h.name, args, int32(res[0]))
		case !wantCall && len(h.results) == 1 && h.name != "result_read" && int32(res[0]) != ErrInvalid:
			t.Fatalf("%s%v: returned %d for an invalid argument, want INVALID", h.name, args, int32(res[0]))
		case wantCall && h.name != "now_ms" && (host.calls != 1 || host.last != h.name):
			t.Fatalf("%s%v: the host got %d calls (last %q)", h.name, args, host.calls, host.last)
		case !wantCall && host.calls != 0:
			t.Fatalf("%s%v: an invalid argument reached the host (%s)", h.name, args, host.last)
		}
		if err == nil && wantCall && want != nil {
			for i := range want {
				if !bytes.Equal(host.args[i], want[i]) {
					t.Fatalf("%s%v: argument %d is %.40q, want %.40q", h.name, args, i, host.args[i], want[i])
				}
				if h.name == "publish" && i == 1 && (want[i] == nil) != (host.args[i] == nil) {
					t.Fatalf("%s%v: key %q, want %q (null is nil)", h.name, args, host.args[i], want[i])
				}
			}
		}
		// A pending result is copied by result_read within its range.
		if err == nil && (h.name == "state_get" || h.name == "config_get" || h.name == "http_fetch") && int32(res[0]) > 0 {
			n := min(n3, uint32(res[0]))
			_, err := inst.ExportedFunction("call_result_read").Call(ctx, uint64(p3), uint64(n3))
			if in(p3, n) != (err == nil) {
				t.Fatalf("result_read(%d, %d) of %d pending bytes: %v", p3, n3, res[0], err)
			}
			if got, _ := inst.Memory().Read(p3, n); err == nil && !bytes.Equal(got, host.result[:n]) {
				t.Fatalf("result_read(%d, %d) copied the wrong bytes", p3, n3)
			}
		}
		// The module serves calls after whatever happened.
		if out, err := m.Invoke(context.Background(), &recHost{}, []byte("after")); err != nil || out != nil {
			t.Fatalf("a call after %s%v: %q, %v", h.name, args, out, err)
		}
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
