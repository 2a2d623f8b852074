package wasm

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// loadGuest loads the test guest in a runtime of its own (closed when the
// benchmark ends), with its compilation cache in cacheDir, and returns the
// module and how long Load took.
func loadGuest(b *testing.B, cacheDir string) (*Module, time.Duration) {
	b.Helper()
	wasm := guest(b)
	ctx := context.Background()
	r, err := New(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(ctx) })
	start := time.Now()
	m, err := r.Load(ctx, "upper", wasm)
	if err != nil {
		b.Fatal(err)
	}
	return m, time.Since(start)
}

// BenchmarkInstantiate measures starting an instance of an already
// compiled module, and reports once the cold compile of the test guest
// (compile-ms) and its load from the on-disk cache by a second runtime
// (cached-load-ms).
//
//	go test -run XXX -bench Instantiate ./internal/wasm
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	m, compile := loadGuest(b, dir)
	_, cached := loadGuest(b, dir)
	b.ResetTimer()
	for range b.N {
		inst, err := m.instantiate(ctx, &callInfo{r: m.r, module: m.name})
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
	}
	b.StopTimer()
	b.ReportMetric(float64(compile.Microseconds())/1000, "compile-ms")
	b.ReportMetric(float64(cached.Microseconds())/1000, "cached-load-ms")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "instantiate-ms")
}

// BenchmarkCall measures a pooled call of the guest (upper-casing 64
// bytes) and, as the baseline in the same run, the same work as a native
// Go function: vs-native is the ratio of their times.
//
//	go test -run XXX -bench Call ./internal/wasm
func BenchmarkCall(b *testing.B) {
	ctx := context.Background()
	m, _ := loadGuest(b, "")
	in := bytes.Repeat([]byte("a"), 64)
	if _, err := m.Call(ctx, in); err != nil {
		b.Fatal(err)
	}
	const nativeN = 100000
	start := time.Now()
	for range nativeN {
		_ = append(bytes.ToUpper(in), " #1"...)
	}
	native := time.Since(start) / nativeN
	b.ResetTimer()
	for range b.N {
		if _, err := m.Call(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(native.Nanoseconds()), "native-ns")
	b.ReportMetric(float64(perOp)/float64(native), "vs-native")
}
