// Package wasm runs functions: WebAssembly modules (core wasm, WASI
// preview1) on wazero, pure Go. It owns compilation (cached on disk, once
// per module version and agent), instance pools (an instance is reused,
// never created per call), limits (memory, time) and the guest ABI's
// calling convention; what a call means (HTTP, records, actor state) is
// the caller's. The ABI is docs/FUNCTIONS.md's, version 1:
//
//   - the guest exports twoway_alloc(size i32) -> ptr i32, which returns
//     size bytes of its memory for the host to write into, and
//     twoway_handle(ptr i32, len i32) -> i64, which handles the input at
//     ptr and returns the output's location, ptr << 32 | len (0 for none);
//   - it may import twoway_v1.log(level i32, ptr i32, len i32).
//
// A module that traps, runs past its time or grows past its memory gets an
// error naming what it did; its instance is discarded and the next call
// gets a fresh one.
package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Config configures a Runtime. Zero values take the defaults noted.
type Config struct {
	// CacheDir keeps compiled modules across restarts; empty compiles in
	// memory only.
	CacheDir string
	// MemoryPages bounds a module's linear memory, in 64 KiB pages.
	// Default 1024 (64 MiB).
	MemoryPages uint32
	// Timeout bounds one call. Default 5s.
	Timeout time.Duration
	// PoolSize is how many idle instances a module keeps. Default 8.
	PoolSize int
	Logger   *slog.Logger
	// Cache, if set, is shared with other runtimes (those of other memory
	// limits): the same bytes compile once. It overrides CacheDir. Without
	// either, compiled modules are cached in memory for this runtime.
	Cache *Cache
}

// Cache is a compilation cache runtimes share: on disk when it has a
// directory, else in memory.
type Cache struct{ c wazero.CompilationCache }

// NewCache makes a cache in dir ("" keeps it in memory).
func NewCache(dir string) (*Cache, error) {
	if dir == "" {
		return &Cache{c: wazero.NewCompilationCache()}, nil
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm compilation cache in %s: %w", dir, err)
	}
	return &Cache{c: c}, nil
}

// Close releases the cache.
func (c *Cache) Close(ctx context.Context) error { return c.c.Close(ctx) }

// Runtime compiles and runs modules. It is safe for concurrent use.
type Runtime struct {
	cfg   Config
	rt    wazero.Runtime
	cache wazero.CompilationCache
}

// ABI names.
const (
	hostModule   = "twoway_v1"
	exportAlloc  = "twoway_alloc"
	exportHandle = "twoway_handle"
)

// Log levels a guest passes to twoway_v1.log.
const (
	LevelDebug = 0
	LevelInfo  = 1
	LevelWarn  = 2
	LevelError = 3
)

// maxLogLine bounds one guest log line.
const maxLogLine = 16 << 10

// New makes a runtime.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.MemoryPages == 0 {
		cfg.MemoryPages = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Runtime{cfg: cfg}
	rc := wazero.NewRuntimeConfig().WithMemoryLimitPages(cfg.MemoryPages).WithCloseOnContextDone(true)
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache.c)
	} else {
		cache, err := NewCache(cfg.CacheDir)
		if err != nil {
			return nil, err
		}
		r.cache = cache.c
		rc = rc.WithCompilationCache(cache.c)
	}
	r.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	if err := r.instantiateHost(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	return r, nil
}

// Close releases the runtime and every module loaded in it.
func (r *Runtime) Close(ctx context.Context) error {
	err := r.rt.Close(ctx)
	if r.cache != nil {
		err = errors.Join(err, r.cache.Close(ctx))
	}
	return err
}

type callKey struct{}

// callInfo travels in the context of a call, for host functions.
type callInfo struct {
	r      *Runtime
	module string
	h      Host
	// result is the pending result of the last import that made one.
	result []byte
	// stderr is the first line the guest wrote to its standard error in
	// this call (cut at maxStderrNote), for the error of a failed call.
	stderr string
}

// maxStderrNote bounds the guest's stderr line quoted in a call's error.
const maxStderrNote = 300

func (c *callInfo) log(level int32, msg string) {
	if c.h != nil {
		c.h.Log(level, msg)
		return
	}
	lv := slog.LevelInfo
	switch level {
	case LevelDebug:
		lv = slog.LevelDebug
	case LevelWarn:
		lv = slog.LevelWarn
	case LevelError:
		lv = slog.LevelError
	}
	c.r.cfg.Logger.Log(context.Background(), lv, msg, "function", c.module)
}

func (c *callInfo) now() int64 { return time.Now().UnixMilli() }

// instance is a running module; cur is the call it runs, for its
// standard output and error, which become log lines of that call.
type instance struct {
	api.Module
	cur atomic.Pointer[callInfo]
	// alloc and handle are the ABI's exports, looked up once: each
	// ExportedFunction makes a new function with its own stack.
	alloc, handle api.Function
}

// lineWriter turns an instance's stdout or stderr into log lines.
type lineWriter struct {
	in    *instance
	level int32
	buf   []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLogLine {
				i = maxLogLine
			} else {
				return len(p), nil
			}
		}
		line := string(w.buf[:i])
		w.buf = w.buf[min(i+1, len(w.buf)):]
		if c := w.in.cur.Load(); c != nil {
			if w.level == LevelWarn && c.stderr == "" && line != "" {
				c.stderr = line[:min(len(line), maxStderrNote)]
			}
			c.log(w.level, line)
		}
	}
}

// Module is a compiled module and its pool of instances.
type Module struct {
	r        *Runtime
	name     string
	version  string
	compiled wazero.CompiledModule
	timeout  time.Duration
	pool     chan *instance
	imports  []string
	Stats    Stats
}

// LoadOptions are per-module settings.
type LoadOptions struct {
	// Timeout bounds one call; 0 takes the runtime's.
	Timeout time.Duration
}

// Load compiles wasm (or takes it from the cache) as module name. The
// version is the SHA-256 of the bytes.
func (r *Runtime) Load(ctx context.Context, name string, wasm []byte) (*Module, error) {
	return r.LoadWith(ctx, name, wasm, LoadOptions{})
}

// LoadWith is Load with per-module options.
func (r *Runtime) LoadWith(ctx context.Context, name string, wasm []byte, opts LoadOptions) (*Module, error) {
	sum := sha256.Sum256(wasm)
	compiled, err := r.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("function %s: not a valid WebAssembly module: %w", name, err)
	}
	provided := map[string]bool{}
	for _, h := range hostFuncs {
		provided[h.name] = true
	}
	var imports []string
	for _, imp := range compiled.ImportedFunctions() {
		mod, fn, _ := imp.Import()
		switch {
		case mod == hostModule && provided[fn]:
		case mod == wasi_snapshot_preview1.ModuleName:
		case mod == hostModule:
			compiled.Close(ctx)
			return nil, fmt.Errorf("function %s: imports %s.%s, which %s does not have (see docs/FUNCTIONS.md)", name, mod, fn, hostModule)
		default:
			compiled.Close(ctx)
			return nil, fmt.Errorf("function %s: imports %s.%s, which twoway does not provide (imports are %s.* and %s.*)", name, mod, fn, hostModule, wasi_snapshot_preview1.ModuleName)
		}
		imports = append(imports, mod+"."+fn)
	}
	if len(compiled.ImportedMemories()) > 0 {
		compiled.Close(ctx)
		return nil, fmt.Errorf("function %s: imports a memory; a module must define its own", name)
	}
	exports := compiled.ExportedFunctions()
	for _, want := range []string{exportAlloc, exportHandle} {
		if _, ok := exports[want]; !ok {
			compiled.Close(ctx)
			return nil, fmt.Errorf("function %s: the module does not export %s (see docs/FUNCTIONS.md)", name, want)
		}
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		compiled.Close(ctx)
		return nil, fmt.Errorf("function %s: the module does not export its memory as \"memory\"", name)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = r.cfg.Timeout
	}
	return &Module{r: r, name: name, version: hex.EncodeToString(sum[:]), compiled: compiled, timeout: timeout,
		imports: imports, pool: make(chan *instance, r.cfg.PoolSize)}, nil
}

// Imports lists the functions the module imports, as "module.name".
func (m *Module) Imports() []string { return m.imports }

// Timeout is the module's time limit per call.
func (m *Module) Timeout() time.Duration { return m.timeout }

// Version is the SHA-256 of the module's bytes, in hex.
func (m *Module) Version() string { return m.version }

// Close closes the pooled instances and the compiled module.
func (m *Module) Close(ctx context.Context) error {
	for {
		select {
		case inst := <-m.pool:
			inst.Close(ctx)
		default:
			return m.compiled.Close(ctx)
		}
	}
}

func (m *Module) instantiate(ctx context.Context, c *callInfo) (*instance, error) {
	in := &instance{}
	in.cur.Store(c)
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader).
		WithStdout(&lineWriter{in: in, level: LevelInfo}).WithStderr(&lineWriter{in: in, level: LevelWarn})
	mod, err := m.r.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, m.callError(ctx, c, nil, "_initialize", err)
	}
	in.Module = mod
	in.alloc, in.handle = mod.ExportedFunction(exportAlloc), mod.ExportedFunction(exportHandle)
	m.Stats.Instantiated.Add(1)
	return in, nil
}

// Stats counts what a module did, for tests and metrics.
type Stats struct {
	Instantiated, Calls, Discarded atomic.Int64
}

// Call runs twoway_handle with input and returns its output, with no
// Host: log lines go to the runtime's logger, every other capability is
// denied. Instances come from the pool; one that failed is discarded.
func (m *Module) Call(ctx context.Context, input []byte) ([]byte, error) {
	return m.Invoke(ctx, nil, input)
}

// Invoke is Call with h serving the call's imports.
func (m *Module) Invoke(ctx context.Context, h Host, input []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	c := &callInfo{r: m.r, module: m.name, h: h}
	ctx = context.WithValue(ctx, callKey{}, c)
	var inst *instance
	select {
	case inst = <-m.pool:
		inst.cur.Store(c)
	default:
		var err error
		if inst, err = m.instantiate(ctx, c); err != nil {
			return nil, err
		}
	}
	m.Stats.Calls.Add(1)
	out, err := m.call(ctx, inst, input)
	inst.cur.Store(nil)
	if err != nil {
		// A failed instance may be in any state: never reuse it.
		m.Stats.Discarded.Add(1)
		inst.Close(context.Background())
		return nil, err
	}
	select {
	case m.pool <- inst:
	default:
		inst.Close(ctx)
	}
	return out, nil
}

func (m *Module) call(ctx context.Context, inst *instance, input []byte) ([]byte, error) {
	res, err := inst.alloc.Call(ctx, uint64(len(input)))
	if err != nil {
		return nil, m.callError(ctx, inst.cur.Load(), inst.Memory(), exportAlloc, err)
	}
	ptr := uint32(res[0])
	if !inst.Memory().Write(ptr, input) {
		return nil, fmt.Errorf("function %s: %s(%d) returned %d, outside its memory", m.name, exportAlloc, len(input), ptr)
	}
	res, err = inst.handle.Call(ctx, uint64(ptr), uint64(len(input)))
	if err != nil {
		return nil, m.callError(ctx, inst.cur.Load(), inst.Memory(), exportHandle, err)
	}
	if res[0] == 0 {
		return nil, nil
	}
	optr, olen := uint32(res[0]>>32), uint32(res[0])
	out, ok := inst.Memory().Read(optr, olen)
	if !ok {
		return nil, fmt.Errorf("function %s: %s returned %d bytes at %d, outside its memory", m.name, exportHandle, olen, optr)
	}
	return append([]byte(nil), out...), nil
}

// callError says what a failed call did: for a trap or an exit, also
// whether its memory was at the limit (a memory.grow past it fails, and
// languages then trap: Go's "out of memory") and the first line it wrote
// to stderr in the call (Go's panic message), when there is one.
func (m *Module) callError(ctx context.Context, c *callInfo, mem api.Memory, fn string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("function %s: %s ran past its time limit of %v", m.name, fn, m.timeout)
	}
	var notes []string
	if mem != nil {
		limit := uint64(m.r.cfg.MemoryPages)
		if mx, ok := mem.Definition().Max(); ok {
			limit = min(limit, uint64(mx))
		}
		limit *= 65536
		if used := uint64(mem.Size()); used+max(limit/8, 1<<20) >= limit {
			notes = append(notes, fmt.Sprintf("at its memory limit of %d pages, %s: %s in use", limit/65536, mib(limit), mib(used)))
		}
	}
	if c != nil && c.stderr != "" {
		notes = append(notes, fmt.Sprintf("stderr: %q", c.stderr))
	}
	note := ""
	if len(notes) > 0 {
		note = " (" + strings.Join(notes, "; ") + ")"
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("function %s: %s exited with code %d%s", m.name, fn, exit.ExitCode(), note)
	}
	return fmt.Errorf("function %s: %s failed%s: %w", m.name, fn, note, &trapError{err})
}

// trapError is a trap without wazero's wasm stack trace in its message
// (it is many lines; errors travel in HTTP answers and record headers).
type trapError struct{ err error }

func (e *trapError) Error() string {
	s := e.err.Error()
	if i := strings.Index(s, "\nwasm stack trace"); i >= 0 {
		s = s[:i]
	}
	return s
}
func (e *trapError) Unwrap() error { return e.err }

// mib formats bytes in MiB.
func mib(n uint64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB"
}
