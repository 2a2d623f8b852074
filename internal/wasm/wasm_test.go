package wasm

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	guestOnce sync.Once
	guestWasm []byte
	guestErr  error
)

// guest builds testdata/guest with the real Go toolchain (GOOS=wasip1).
func guest(t testing.TB) []byte {
	t.Helper()
	guestOnce.Do(func() {
		out := filepath.Join(os.TempDir(), "twoway-wasm-test-guest.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			guestErr = err
			t.Logf("%s", msg)
			return
		}
		guestWasm, guestErr = os.ReadFile(out)
	})
	if guestErr != nil {
		t.Fatalf("building the test guest: %v", guestErr)
	}
	return guestWasm
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// Calls reach the guest's handler through the ABI, instances are reused
// (the guest's call counter keeps counting), and its log lines reach the
// host's logger with the function's name.
func TestCallsReuseInstances(t *testing.T) {
	logs := &logBuf{}
	r := newRuntime(t, Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := context.Background()
	m, err := r.Load(ctx, "upper", guest(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"HELLO #1", "WORLD #2", " #3"} {
		in := []string{"hello", "world", ""}[i]
		out, err := m.Call(ctx, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Fatalf("call %d: %q, want %q", i, out, want)
		}
	}
	if n := m.Stats.Instantiated.Load(); n != 1 {
		t.Fatalf("%d instances for 3 sequential calls, want 1", n)
	}
	if l := logs.String(); !strings.Contains(l, "handling 5 bytes") || !strings.Contains(l, "function=upper") {
		t.Fatalf("guest log not forwarded: %s", l)
	}
	if len(m.Version()) != 64 {
		t.Fatalf("version %q", m.Version())
	}
}

// Hostile guests get an error that says what they did; the runtime goes on
// serving the next call with a fresh instance.
func TestHostileGuests(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir() // compiled once for the three runtimes
	for _, tc := range []struct {
		in, want string
		cfg      Config
	}{
		{"loop", "ran past its time limit", Config{Timeout: 300 * time.Millisecond}},
		// Time enough to reach the memory limit even under -race.
		{"grow", "failed", Config{Timeout: time.Minute, MemoryPages: 256}},
		{"trap", "failed", Config{}},
	} {
		tc.cfg.CacheDir = cache
		r := newRuntime(t, tc.cfg)
		m, err := r.Load(ctx, "upper", guest(t))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = m.Call(ctx, []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "function upper") {
			t.Fatalf("%s: %v, want an error saying %q", tc.in, err, tc.want)
		}
		if tc.in == "loop" && time.Since(start) > 10*time.Second {
			t.Fatalf("a spinning guest was stopped only after %v", time.Since(start))
		}
		out, err := m.Call(ctx, []byte("ok"))
		if err != nil || string(out) != "OK #1" {
			t.Fatalf("after %s: %q, %v (want a fresh instance's first answer)", tc.in, out, err)
		}
		if d := m.Stats.Discarded.Load(); d != 1 {
			t.Fatalf("%s: %d instances discarded, want 1", tc.in, d)
		}
	}
}

// Modules that are not valid, lack the ABI's exports or import what twoway
// does not provide are refused at load, with the reason.
func TestLoadRefusesBadModules(t *testing.T) {
	r := newRuntime(t, Config{})
	ctx := context.Background()
	if _, err := r.Load(ctx, "junk", []byte("not wasm")); err == nil || !strings.Contains(err.Error(), "not a valid WebAssembly module") {
		t.Fatalf("junk: %v", err)
	}
	// (module) with nothing in it: valid, but no exports.
	empty := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	if _, err := r.Load(ctx, "empty", empty); err == nil || !strings.Contains(err.Error(), "does not export twoway_alloc") {
		t.Fatalf("empty: %v", err)
	}
	// (module (import "env" "f" (func))): an import from elsewhere.
	foreign := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
		0x02, 0x09, 0x01, 0x03, 'e', 'n', 'v', 0x01, 'f', 0x00, 0x00, // import env.f
	}
	if _, err := r.Load(ctx, "foreign", foreign); err == nil || !strings.Contains(err.Error(), "imports env.f") {
		t.Fatalf("foreign: %v", err)
	}
}

// A second runtime on the same cache directory does not compile again:
// it reads the compiled code the first one wrote, and writes nothing.
func TestCompilationCacheSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	wasm := guest(t)
	r1 := newRuntime(t, Config{CacheDir: dir})
	if _, err := r1.Load(ctx, "upper", wasm); err != nil {
		t.Fatal(err)
	}
	r1.Close(ctx)
	before := cacheFiles(t, dir)
	if len(before) == 0 {
		t.Fatal("nothing in the compilation cache")
	}
	r2 := newRuntime(t, Config{CacheDir: dir})
	m, err := r2.Load(ctx, "upper", wasm)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.Call(ctx, []byte("x")); err != nil || string(out) != "X #1" {
		t.Fatalf("call from cache: %q, %v", out, err)
	}
	after := cacheFiles(t, dir)
	if len(after) != len(before) {
		t.Fatalf("cache files %d, then %d: the second runtime compiled again", len(before), len(after))
	}
	for name, mt := range before {
		if !after[name].Equal(mt) {
			t.Fatalf("cache file %s rewritten: the second runtime compiled again", name)
		}
	}
}

func cacheFiles(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[path] = fi.ModTime()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Concurrent calls each get an instance of their own; the pool bounds how
// many stay idle, not how many run.
func TestConcurrentCalls(t *testing.T) {
	r := newRuntime(t, Config{PoolSize: 4})
	ctx := context.Background()
	m, err := r.Load(ctx, "upper", guest(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				in := []byte{'a' + byte(g), 'a' + byte(i)}
				out, err := m.Call(ctx, in)
				if err != nil || !strings.HasPrefix(string(out), strings.ToUpper(string(in))+" #") {
					t.Errorf("%s: %q, %v", in, out, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := m.Stats.Instantiated.Load(); n > 8 || n < 1 {
		t.Fatalf("%d instances for 8 concurrent callers", n)
	}
	if n := len(m.pool); n > 4 {
		t.Fatalf("%d idle instances, pool size 4", n)
	}
}
