package agent

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// MinMemory is the smallest memory budget an agent accepts (Config.Memory).
const MinMemory = 32 << 20

// MemoryPlan is how an agent's memory budget (serve --memory) is shared out
// among its caches and buffers. Each is a bound the agent enforces: when
// producers send faster than the bucket takes their records, the Kafka
// listener stops reading their requests (TCP backpressure) rather than
// growing past the bound. docs/EDGE.md explains the shares.
type MemoryPlan struct {
	Budget int64
	// GoLimit is the Go runtime's soft memory limit (GOMEMLIMIT): the
	// garbage collector works harder as the heap nears it.
	GoLimit int64
	// BlobCache holds record data read from the bucket (stream.Options).
	BlobCache int64
	// RecentCommits holds the newest commits' inline data, for tailing
	// readers (commitlog.Options.RecentBytes).
	RecentCommits int
	// ChunkMax and ChunkUploads bound the record data being uploaded.
	ChunkMax, ChunkUploads int
	// KafkaRequests bounds the request bytes in flight on all Kafka
	// connections together, mostly produce data waiting for its commit;
	// one request larger than that is still taken when it is alone.
	KafkaRequests int
	// KafkaFetch bounds the fetch response bytes being assembled or sent on
	// all connections together, and KafkaFetchMax one response.
	KafkaFetch, KafkaFetchMax int
	// KafkaDecompressed bounds the bytes compressed produce batches
	// decompress to while they are checked, on all connections together.
	KafkaDecompressed int
	// HTTPBody bounds one HTTP request body.
	HTTPBody int64
	// TableFlush is how much a table materializer buffers before it
	// writes, and SQLMemory is DuckDB's memory_limit for one query.
	TableFlush int64
	SQLMemory  string
}

// PlanMemory shares out a budget of b bytes, of which resident bytes are
// already taken by the binary's own pages (code and data mapped from the
// executable, 50–100 MiB for twoway; ResidentFileBytes reads it). The Go
// heap gets the rest, less 24 MiB for the runtime and the C allocator, but
// at least 7/16 of the budget, and the bounded caches and buffers get about
// half of the heap; the other half is the garbage collector's headroom and
// the modules' own state (indexes, groups, actors).
func PlanMemory(b, resident int64) (MemoryPlan, error) {
	if b < MinMemory {
		return MemoryPlan{}, fmt.Errorf("a memory budget of %d bytes is too small: at least %d MiB", b, MinMemory>>20)
	}
	clamp := func(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }
	heap := max(b*7/16, b-resident-24<<20)
	p := MemoryPlan{
		Budget:            b,
		GoLimit:           heap,
		BlobCache:         heap / 16,
		RecentCommits:     int(clamp(heap/32, 1<<20, 32<<20)),
		ChunkMax:          int(clamp(heap/32, 1<<20, 8<<20)),
		ChunkUploads:      int(clamp(heap/(128<<20)+1, 1, 4)),
		KafkaRequests:     int(heap / 8),
		KafkaFetch:        int(heap / 8),
		KafkaDecompressed: int(heap / 8),
		KafkaFetchMax:     int(clamp(heap/32, 1<<20, 50<<20)),
		HTTPBody:          clamp(heap/8, 1<<20, 16<<20),
		TableFlush:        clamp(heap/8, 4<<20, 64<<20),
		SQLMemory:         fmt.Sprintf("%dMB", clamp(heap/4, 16<<20, 1<<30)>>20),
	}
	return p, nil
}

// ResidentFileBytes is the resident memory of the process mapped from files
// (its executable's pages, mostly): RssFile in /proc/self/status, 0 where
// there is none.
func ResidentFileBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// apply sets the Go runtime's memory limit, unless GOMEMLIMIT chose one.
func (p MemoryPlan) applyRuntime(env func(string) string) {
	if env("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(p.GoLimit)
	}
}
