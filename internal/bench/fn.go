package bench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/instrument"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/functions"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
	"github.com/twoway/twoway/internal/wasm"
)

// The functions benchmark (`twoway bench fn`). Everything runs on
// directory buckets made for the run under FnOptions.Dir and removed at
// the end.

//go:embed testdata/fnguest/main.go
var fnGuestSource []byte

// BuildFnGuest builds the bench guest (testdata/fnguest, embedded in the
// binary) with the Go toolchain goTool ("go" if empty), GOOS=wasip1
// GOARCH=wasm -buildmode=c-shared, in a temporary module of its own: it
// needs a Go toolchain, nothing of the source tree.
func BuildFnGuest(ctx context.Context, goTool string) ([]byte, error) {
	if goTool == "" {
		goTool = "go"
	}
	dir, err := os.MkdirTemp("", "twoway-fnguest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module fnguest\n\ngo 1.24\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), fnGuestSource, 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "fnguest.wasm")
	cmd := exec.CommandContext(ctx, goTool, "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWORK=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the bench guest (GOOS=wasip1 GOARCH=wasm %s build -buildmode=c-shared): %v\n%s", goTool, err, msg)
	}
	return os.ReadFile(out)
}

// Defaults for zero FnOptions fields.
const (
	DefaultFnKeys            = 10000
	DefaultFnStateSize       = 200
	DefaultFnRecords         = 200000
	DefaultFnPartitions      = 4
	DefaultFnProduceDuration = 3 * time.Second
	DefaultFnLatencySamples  = 300
	DefaultFnHTTPConcurrency = 8
	DefaultFnHTTPDuration    = 4 * time.Second
	DefaultFnActors          = 1000000
	DefaultFnActorStateSize  = 1 << 10
	DefaultFnInstantiations  = 50
	// fnSeedPerCommit actors go in one seeding commit: 4 MiB of 1 KiB
	// states.
	fnSeedPerCommit = 4096
)

// FnModule is a module whose load and instantiation the benchmark times.
type FnModule struct {
	Name string
	Wasm []byte
}

// FnOptions configures Fn. Zero fields take the defaults above.
type FnOptions struct {
	// Guest is the bench guest (BuildFnGuest, or testdata/fnguest built
	// by hand).
	Guest []byte
	// Modules are timed in the instantiation phase besides the guest
	// (the device-twin examples).
	Modules []FnModule

	Keys       int // actors of the throughput phase
	StateSize  int // bytes of their state (and of each input record's value)
	Records    int // input records of the throughput phase
	Partitions int // of the input topic
	// ProduceDuration is how long the produce baseline runs.
	ProduceDuration time.Duration
	LatencySamples  int
	// HTTPConcurrency clients, each with one request in flight, for
	// HTTPDuration against the guest and as long against the native
	// handler (in alternating halves).
	HTTPConcurrency int
	HTTPDuration    time.Duration
	Instantiations  int
	// Actors of ActorStateSize bytes for the memory phase; negative skips
	// the phase.
	Actors         int
	ActorStateSize int

	// Dir is where the run's buckets are made ("" the system's temporary
	// directory).
	Dir string
	// Log tunes the agents' commit logs, as twoway serve on a directory.
	Log commitlog.Options
	// Settle is how long the opened agent sits idle before its second
	// RSS reading. Default 3s.
	Settle time.Duration
	// OpenAgent opens an agent on the memory phase's bucket and measures
	// it, best in a process of its own (nil: OpenAndMeasure in this one).
	OpenAgent func(ctx context.Context, dir string, actors int, settle time.Duration) (FnOpenResult, error)
	// ConsumeProfile, if set, receives a CPU profile of the throughput
	// phase's consumption.
	ConsumeProfile io.Writer
	// Progress, if set, gets a line as each phase starts.
	Progress io.Writer
}

func (o FnOptions) withDefaults() (FnOptions, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Keys, DefaultFnKeys)
	def(&o.StateSize, DefaultFnStateSize)
	def(&o.Records, DefaultFnRecords)
	def(&o.Partitions, DefaultFnPartitions)
	def(&o.LatencySamples, DefaultFnLatencySamples)
	def(&o.HTTPConcurrency, DefaultFnHTTPConcurrency)
	def(&o.Instantiations, DefaultFnInstantiations)
	def(&o.Actors, DefaultFnActors)
	def(&o.ActorStateSize, DefaultFnActorStateSize)
	defD(&o.ProduceDuration, DefaultFnProduceDuration)
	defD(&o.HTTPDuration, DefaultFnHTTPDuration)
	defD(&o.Settle, 3*time.Second)
	switch {
	case len(o.Guest) == 0:
		return o, errors.New("no bench guest")
	case o.Keys < 1, o.Records < 1, o.LatencySamples < 1, o.HTTPConcurrency < 1, o.Instantiations < 1:
		return o, errors.New("keys, records, latency samples, HTTP concurrency and instantiations must be positive")
	case o.StateSize < 8 || o.StateSize > 1<<20:
		return o, fmt.Errorf("state size %d out of range: use 8 to %d bytes", o.StateSize, 1<<20)
	case o.ActorStateSize < 8 || o.ActorStateSize > 1<<20:
		return o, fmt.Errorf("actor state size %d out of range: use 8 to %d bytes", o.ActorStateSize, 1<<20)
	case o.Partitions < 1 || o.Partitions > stream.MaxPartitions:
		return o, fmt.Errorf("partitions %d out of range: use 1 to %d", o.Partitions, stream.MaxPartitions)
	case o.ProduceDuration < 0 || o.HTTPDuration < 0:
		return o, errors.New("durations must not be negative")
	}
	return o, nil
}

// FnResult is what Fn measured. Latencies are in milliseconds.
type FnResult struct {
	// Throughput: durable actor updates through a subscription.
	Keys           int     `json:"keys"`
	StateSize      int     `json:"state_size"`
	Records        int     `json:"records"`
	Partitions     int     `json:"partitions"`
	UpdatesS       float64 `json:"updates_s"`
	UpdatesTimed   int64   `json:"updates_timed"`
	ConsumeS       float64 `json:"consume_s"`
	ConsumeCommits int64   `json:"consume_commits"`
	// ProduceRecordsS is the produce baseline: the same records (keys,
	// values, 64 KiB batches per partition) produced by
	// DefaultProducers producers with one call each in flight, as
	// `bench produce` loads the log.
	ProduceRecordsS  float64 `json:"produce_records_s"`
	ProduceMBs       float64 `json:"produce_mb_s"`
	UpdatesVsProduce float64 `json:"updates_vs_produce"`

	// Latency: from a record's produce acknowledgement to the function's
	// position passing it (its effects committed and applied here).
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	AckP50Ms         float64 `json:"ack_p50_ms"`
	LatencySamples   int     `json:"latency_samples"`
	LingerMs         float64 `json:"linger_ms"`
	PutIfAbsentP50Ms float64 `json:"put_if_absent_p50_ms"`
	PutIfAbsentSize  int     `json:"put_if_absent_object_size"`
	// LatencyTargetMs is linger + 2 × PutIfAbsentP50Ms.
	LatencyTargetMs float64 `json:"latency_target_ms"`

	// Stateless HTTP: /fn/{name}/... against a native handler on the
	// same mux and server.
	HTTPConcurrency int     `json:"http_concurrency"`
	GuestReqS       float64 `json:"guest_req_s"`
	NativeReqS      float64 `json:"native_req_s"`
	HTTPRatio       float64 `json:"http_ratio"`
	GuestP50Ms      float64 `json:"guest_p50_ms"`
	NativeP50Ms     float64 `json:"native_p50_ms"`
	// GuestInstantiated counts the instances the HTTP phase started
	// (0 when the pool kept up).
	GuestInstantiated int64 `json:"guest_instantiated"`

	Modules []FnModuleTimes `json:"modules"`

	Memory *FnMemory `json:"memory,omitempty"`

	Machine Machine `json:"machine"`
}

// FnModuleTimes are a module's compile, cached load and instantiation.
type FnModuleTimes struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	// CompileMs is the first compile (an empty compilation cache),
	// writing the cache included.
	CompileMs float64 `json:"compile_ms"`
	// CachedLoadP50Ms is the load by a new runtime from the warm cache.
	CachedLoadP50Ms float64 `json:"cached_load_p50_ms"`
	// Instantiate is starting an instance of the module loaded from the
	// cache (its _initialize included).
	InstantiateP50Ms float64 `json:"instantiate_p50_ms"`
	InstantiateP99Ms float64 `json:"instantiate_p99_ms"`
}

// FnMemory is the memory phase: an agent opening a bucket with Actors
// actors.
type FnMemory struct {
	Actors         int     `json:"actors"`
	ActorStateSize int     `json:"actor_state_size"`
	SeedS          float64 `json:"seed_s"`
	CheckpointMB   float64 `json:"checkpoint_mb"`
	FnOpenResult
}

// FnOpenResult is a measured agent open.
type FnOpenResult struct {
	OpenMs float64 `json:"open_ms"`
	// RSS right after the open, and after SettleS more seconds idle; HWM
	// is the peak (VmHWM). In MB (10^6 bytes).
	RSSOpenMB    float64 `json:"rss_open_mb"`
	RSSSettledMB float64 `json:"rss_settled_mb"`
	HWMMB        float64 `json:"hwm_mb"`
	SettleS      float64 `json:"settle_s"`
	ActorsSeen   int64   `json:"actors_seen"`
	Child        bool    `json:"child_process"`
}

const (
	fnName     = "fnbench"
	fnInput    = "in"
	fnBaseline = "produce"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fnAgent is one in-process agent: streams and functions on a bucket.
type fnAgent struct {
	b   *instrument.Bucket
	set *module.Set
	st  *stream.Service
	fns *functions.Module
	mux *http.ServeMux
}

func openFnAgent(ctx context.Context, b bucket.Bucket, cacheDir string, workers bool, logOpts commitlog.Options) (*fnAgent, error) {
	a := &fnAgent{b: instrument.Wrap(b, nil), st: stream.New(stream.Options{}), mux: http.NewServeMux()}
	a.fns = functions.New(functions.Config{Streams: a.st, Workers: workers, CacheDir: cacheDir})
	logOpts.Logger = quietLogger()
	set, err := module.Open(ctx, module.Config{Bucket: a.b, Log: logOpts, HTTP: a.mux, Logger: logOpts.Logger}, a.st, a.fns)
	if err != nil {
		return nil, err
	}
	a.set = set
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := set.Log().WaitEnabled(wctx, "type:302"); err != nil {
		set.Close()
		return nil, fmt.Errorf("functions not enabled: %w", err)
	}
	return a, nil
}

// Fn runs the functions benchmark: throughput of durable actor updates
// through a subscription (against producing the same records), latency
// from a record's acknowledgement to its effects (against the bucket's
// PutIfAbsent), stateless HTTP invocations (against a native handler),
// module compile, cached load and instantiation, and an agent's memory
// and start-up with opts.Actors actors.
func Fn(ctx context.Context, opts FnOptions) (res FnResult, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return FnResult{}, fmt.Errorf("bench: %w", err)
	}
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, format+"\n", args...)
		}
	}
	root, err := os.MkdirTemp(opts.Dir, "twoway-bench-fn-")
	if err != nil {
		return FnResult{}, err
	}
	defer os.RemoveAll(root)
	res = FnResult{Keys: opts.Keys, StateSize: opts.StateSize, Records: opts.Records, Partitions: opts.Partitions,
		HTTPConcurrency: opts.HTTPConcurrency, LingerMs: Millis(opts.Log.Linger), Machine: CurrentMachine()}

	b, err := filebucket.Open(filepath.Join(root, "bucket"))
	if err != nil {
		return FnResult{}, err
	}
	a, err := openFnAgent(ctx, b, filepath.Join(root, "cache"), true, opts.Log)
	if err != nil {
		return FnResult{}, fmt.Errorf("bench: opening the agent: %w", err)
	}
	defer func() {
		if a != nil {
			a.set.Close()
		}
	}()
	progress("throughput: producing %d records for %d actors, and the produce baseline for %v", opts.Records, opts.Keys, opts.ProduceDuration)
	if err := fnThroughput(ctx, a, opts, &res); err != nil {
		return FnResult{}, fmt.Errorf("bench: throughput phase: %w", err)
	}
	progress("latency: %d records one at a time", opts.LatencySamples)
	if err := fnLatency(ctx, a, b, opts, &res); err != nil {
		return FnResult{}, fmt.Errorf("bench: latency phase: %w", err)
	}
	progress("http: %d clients, %v against the guest and as long against a native handler", opts.HTTPConcurrency, opts.HTTPDuration)
	if err := fnHTTP(ctx, a, opts, &res); err != nil {
		return FnResult{}, fmt.Errorf("bench: HTTP phase: %w", err)
	}
	a.set.Close()
	a = nil

	progress("modules: compile, cached load and instantiation")
	mods := append([]FnModule{{Name: "bench guest (Go, raw ABI)", Wasm: opts.Guest}}, opts.Modules...)
	for _, m := range mods {
		t, err := fnModuleTimes(ctx, filepath.Join(root, "wasm-"+randomHex(4)), m, opts.Instantiations)
		if err != nil {
			return FnResult{}, fmt.Errorf("bench: module %s: %w", m.Name, err)
		}
		res.Modules = append(res.Modules, t)
	}

	if opts.Actors > 0 {
		progress("memory: seeding %d actors of %d bytes, then opening an agent on them", opts.Actors, opts.ActorStateSize)
		mem, err := fnMemory(ctx, filepath.Join(root, "actors"), filepath.Join(root, "cache"), opts)
		if err != nil {
			return FnResult{}, fmt.Errorf("bench: memory phase: %w", err)
		}
		res.Memory = mem
	}
	return res, nil
}

// fnInputBatches encodes the input records: record i is for key
// i % keys, its value stateSize random bytes; per partition (by the
// key, as producers pick them), batches of up to DefaultBatchSize bytes.
func fnInputBatches(st *stream.Service, opts FnOptions) ([]stream.Batch, []int64, error) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	rng := mrand.NewChaCha8(seed)
	perPart := make([][]records.Record, opts.Partitions)
	counts := make([]int64, opts.Partitions)
	value := make([]byte, opts.StateSize*64)
	rng.Read(value)
	var out []stream.Batch
	flush := func(p int) {
		if len(perPart[p]) > 0 {
			out = append(out, stream.Batch{Partition: int32(p), Raw: records.Encode(perPart[p])})
			perPart[p] = nil
		}
	}
	size := make([]int, opts.Partitions)
	for i := range opts.Records {
		key := []byte(fnKey(i % opts.Keys))
		p := int(st.PickPartition(key, int32(opts.Partitions)))
		off := (i % 64) * opts.StateSize
		perPart[p] = append(perPart[p], records.Record{Key: key, Value: value[off : off+opts.StateSize]})
		counts[p]++
		size[p] += len(key) + opts.StateSize
		if size[p] >= DefaultBatchSize {
			flush(p)
			size[p] = 0
		}
	}
	for p := range perPart {
		flush(p)
	}
	return out, counts, nil
}

func fnKey(i int) string { return fmt.Sprintf("key-%06d", i) }

// batchRecords is the record count of a raw batch.
func batchRecords(raw []byte) int64 {
	return int64(int32(binary.BigEndian.Uint32(raw[57:]))) // records count field
}

func produceRaw(ctx context.Context, st *stream.Service, topic string, b stream.Batch) error {
	_, errs, err := st.Produce(ctx, topic, []stream.Batch{b})
	if err == nil {
		err = errs[0]
	}
	return err
}

func fnThroughput(ctx context.Context, a *fnAgent, opts FnOptions, res *FnResult) error {
	for _, t := range []string{fnInput, fnBaseline} {
		if err := a.st.CreateTopic(ctx, stream.TopicConfig{Name: t, Partitions: int32(opts.Partitions)}); err != nil {
			return err
		}
	}
	batches, counts, err := fnInputBatches(a.st, opts)
	if err != nil {
		return err
	}
	var batchBytes int64
	for _, b := range batches {
		batchBytes += int64(len(b.Raw))
	}
	// The produce baseline: the same batches, again and again, with the
	// load of `bench produce`.
	var acked atomic.Int64
	producers := min(DefaultProducers, max(len(batches), 1)*8)
	_, elapsed, err := run(ctx, producers, opts.ProduceDuration, func(ctx context.Context, w, seq int) error {
		b := batches[(w+seq*producers)%len(batches)]
		if err := produceRaw(ctx, a.st, fnBaseline, b); err != nil {
			return err
		}
		acked.Add(batchRecords(b.Raw))
		return nil
	})
	if err != nil {
		return fmt.Errorf("produce baseline: %w", err)
	}
	res.ProduceRecordsS = float64(acked.Load()) / elapsed.Seconds()
	res.ProduceMBs = float64(acked.Load()) / float64(opts.Records) * float64(batchBytes) / 1e6 / elapsed.Seconds()

	// The input, once.
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range min(64, len(batches)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(batches) {
					return
				}
				if err := produceRaw(ctx, a.st, fnInput, batches[i]); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("producing the input: %w", firstErr)
	}
	if n := int64(opts.Records); sum(counts) != n {
		return fmt.Errorf("input: %d records, want %d", sum(counts), n)
	}
	ti, err := a.st.Topic(fnInput)
	if err != nil {
		return err
	}
	ends := make([]int64, len(ti.PartitionsInfo))
	for i, p := range ti.PartitionsInfo {
		ends[i] = p.End
	}

	// Consume: deploy, then time from the first committed batch to the
	// last (the subscription starts at the next lease round, up to a
	// quarter of the lease duration after the deploy).
	if opts.ConsumeProfile != nil {
		if err := pprof.StartCPUProfile(opts.ConsumeProfile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	deployed := time.Now()
	if _, err := a.fns.Deploy(ctx, functions.DeployRequest{Name: fnName, Module: opts.Guest, Grants: []string{"state"},
		Subscribe: []string{fnInput}, HTTP: true}); err != nil {
		return err
	}
	commits0 := a.set.Log().Stats.Commits.Load()
	var t0 time.Time
	var done0 int64
	deadline := time.Now().Add(max(2*time.Minute, time.Duration(opts.Records)*time.Millisecond))
	for {
		changed := a.set.Log().Changed()
		var done int64
		caught := true
		for p := range ends {
			pos, _ := a.fns.Position(fnName, fnInput, int32(p))
			done += pos
			caught = caught && pos >= ends[p]
		}
		now := time.Now()
		if done > 0 && t0.IsZero() {
			t0, done0 = now, done
		}
		if caught {
			if done0 == done { // all in the first commits: time from the deploy
				t0, done0 = deployed, 0
			}
			res.UpdatesTimed = done - done0
			res.ConsumeS = now.Sub(t0).Seconds()
			res.UpdatesS = float64(done-done0) / now.Sub(t0).Seconds()
			break
		}
		if now.After(deadline) {
			return fmt.Errorf("the function consumed %d of %d records in %v", done, opts.Records, now.Sub(deployed).Round(time.Second))
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if opts.ConsumeProfile != nil {
		pprof.StopCPUProfile()
	}
	res.ConsumeCommits = a.set.Log().Stats.Commits.Load() - commits0
	if res.ProduceRecordsS > 0 {
		res.UpdatesVsProduce = res.UpdatesS / res.ProduceRecordsS
	}
	// Every update happened once: key 0's counter is its record count.
	want := uint64((opts.Records + opts.Keys - 1) / opts.Keys)
	v, ok, _, err := a.fns.ActorState(ctx, fnName, fnKey(0))
	if err != nil {
		return err
	}
	if !ok || len(v) != opts.StateSize || binary.LittleEndian.Uint64(v) != want {
		var got uint64
		if len(v) >= 8 {
			got = binary.LittleEndian.Uint64(v)
		}
		return fmt.Errorf("actor %s: %d updates counted in %d bytes of state, want %d in %d", fnKey(0), got, len(v), want, opts.StateSize)
	}
	return nil
}

func sum(v []int64) int64 {
	var n int64
	for _, x := range v {
		n += x
	}
	return n
}

func fnLatency(ctx context.Context, a *fnAgent, b bucket.Bucket, opts FnOptions, res *FnResult) error {
	n, err := a.st.Partitions(fnInput)
	if err != nil {
		return err
	}
	value := make([]byte, opts.StateSize)
	var lat, ack Latencies
	writes0 := a.b.Writes()
	_, bytes0 := a.b.Bytes()
	for i := range opts.LatencySamples {
		key := []byte(fnKey(i % opts.Keys))
		p := a.st.PickPartition(key, n)
		sent := time.Now()
		bases, errs, err := a.st.Produce(ctx, fnInput, []stream.Batch{{Partition: p, Records: []records.Record{{Key: key, Value: value}}}})
		if err == nil {
			err = errs[0]
		}
		if err != nil {
			return err
		}
		acked := time.Now()
		ack.Add(acked.Sub(sent))
		off := bases[0]
		timeout := time.After(30 * time.Second)
		for {
			changed := a.set.Log().Changed()
			if pos, _ := a.fns.Position(fnName, fnInput, p); pos > off {
				break
			}
			select {
			case <-changed:
			case <-timeout:
				return fmt.Errorf("record %d of partition %d not consumed after 30s", off, p)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		lat.Add(time.Since(acked))
	}
	res.LatencySamples = lat.Len()
	res.LatencyP50Ms, res.LatencyP99Ms = Millis(lat.Percentile(50)), Millis(lat.Percentile(99))
	res.AckP50Ms = Millis(ack.Percentile(50))
	// The yardstick: PutIfAbsent of objects the size the agent wrote in
	// this phase, one at a time (one record in flight), on the same
	// bucket.
	size := 512
	if w := a.b.Writes() - writes0; w > 0 {
		_, bytes1 := a.b.Bytes()
		size = max(1, int((bytes1-bytes0)/w))
	}
	base, err := Bucket(ctx, b, BucketOptions{ObjectSize: size, Concurrency: 1, Duration: max(100*time.Millisecond, opts.ProduceDuration/3)})
	if err != nil {
		return fmt.Errorf("put-if-absent baseline: %w", err)
	}
	res.PutIfAbsentP50Ms, res.PutIfAbsentSize = base.PutIfAbsentP50Ms, size
	res.LatencyTargetMs = res.LingerMs + 2*base.PutIfAbsentP50Ms
	return nil
}

// fnWork is the native handler's work, the guest's (testdata/fnguest).
func fnWork(path string, body []byte) []byte {
	out := make([]byte, 0, len(path)+1+len(body))
	out = append(out, path...)
	out = append(out, ' ')
	return append(out, bytes.ToUpper(body)...)
}

func fnHTTP(ctx context.Context, a *fnAgent, opts FnOptions, res *FnResult) error {
	a.mux.HandleFunc("/native/{path...}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, functions.MaxRequestBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		w.Write(fnWork("/"+r.PathValue("path"), body))
	})
	srv := httptest.NewServer(a.mux)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: opts.HTTPConcurrency, MaxIdleConns: opts.HTTPConcurrency}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := []byte("the quick brown fox jumps over the lazy dog, sixty-four bytes.!")
	want := fnWork("/devices/42", body)
	call := func(ctx context.Context, base string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+base+"/devices/42?q=1", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "text/plain")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
			return fmt.Errorf("POST %s: %s %q, want 200 %q", base, resp.Status, got, want)
		}
		return nil
	}
	paths := map[string]string{"guest": "/fn/" + fnName, "native": "/native"}
	for _, p := range paths { // warm up: connections, instances
		for range opts.HTTPConcurrency {
			if err := call(ctx, p); err != nil {
				return err
			}
		}
	}
	inst0 := a.fns.InstancesStarted()
	lat := map[string]*Latencies{"guest": {}, "native": {}}
	n := map[string]int{}
	el := map[string]time.Duration{}
	half := opts.HTTPDuration / 2
	for _, which := range []string{"native", "guest", "native", "guest"} {
		l, elapsed, err := run(ctx, opts.HTTPConcurrency, half, func(ctx context.Context, _, _ int) error { return call(ctx, paths[which]) })
		if err != nil {
			return err
		}
		n[which] += l.Len()
		el[which] += elapsed
		lat[which].Merge(l)
	}
	res.GuestInstantiated = a.fns.InstancesStarted() - inst0
	res.GuestReqS = float64(n["guest"]) / el["guest"].Seconds()
	res.NativeReqS = float64(n["native"]) / el["native"].Seconds()
	res.HTTPRatio = res.GuestReqS / res.NativeReqS
	res.GuestP50Ms, res.NativeP50Ms = Millis(lat["guest"].Percentile(50)), Millis(lat["native"].Percentile(50))
	return nil
}

func fnModuleTimes(ctx context.Context, cacheDir string, m FnModule, instantiations int) (FnModuleTimes, error) {
	t := FnModuleTimes{Name: m.Name, Bytes: len(m.Wasm)}
	newRT := func() (*wasm.Runtime, error) {
		return wasm.New(ctx, wasm.Config{CacheDir: cacheDir, Logger: quietLogger()})
	}
	r, err := newRT()
	if err != nil {
		return t, err
	}
	start := time.Now()
	mod, err := r.Load(ctx, "bench", m.Wasm)
	t.CompileMs = Millis(time.Since(start))
	r.Close(ctx)
	if err != nil {
		return t, err
	}
	_ = mod
	var loads, insts Latencies
	for i := range 5 {
		r, err := newRT()
		if err != nil {
			return t, err
		}
		start := time.Now()
		mod, err := r.Load(ctx, "bench", m.Wasm)
		loads.Add(time.Since(start))
		if err != nil {
			r.Close(ctx)
			return t, err
		}
		if i == 4 {
			for range instantiations {
				start := time.Now()
				if err := mod.Instantiate(ctx); err != nil {
					r.Close(ctx)
					return t, err
				}
				insts.Add(time.Since(start))
			}
		}
		r.Close(ctx)
	}
	t.CachedLoadP50Ms = Millis(loads.Percentile(50))
	t.InstantiateP50Ms, t.InstantiateP99Ms = Millis(insts.Percentile(50)), Millis(insts.Percentile(99))
	return t, nil
}

// fnActorKey and fnActorState are the memory phase's actors.
func fnActorKey(i int) string { return fmt.Sprintf("actor-%08d", i) }

func fnMemory(ctx context.Context, dir, cacheDir string, opts FnOptions) (*FnMemory, error) {
	mem := &FnMemory{Actors: opts.Actors, ActorStateSize: opts.ActorStateSize}
	b, err := filebucket.Open(dir)
	if err != nil {
		return nil, err
	}
	a, err := openFnAgent(ctx, b, cacheDir, false, opts.Log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if a != nil {
			a.set.Close()
		}
	}()
	if _, err := a.fns.Deploy(ctx, functions.DeployRequest{Name: fnName, Module: opts.Guest, Grants: []string{"state"}}); err != nil {
		return nil, err
	}
	base := make([]byte, opts.ActorStateSize)
	mrand.NewChaCha8([32]byte{1}).Read(base)
	start := time.Now()
	const seeders = 4
	per := (opts.Actors + seeders - 1) / seeders
	var wg sync.WaitGroup
	errs := make([]error, seeders)
	for s := range seeders {
		wg.Go(func() {
			lo, hi := s*per, min((s+1)*per, opts.Actors)
			errs[s] = a.fns.BenchSeedActors(ctx, fnName, lo, hi, fnSeedPerCommit, fnActorKey, func(i int) []byte {
				v := append([]byte(nil), base...)
				binary.LittleEndian.PutUint64(v, uint64(i))
				return v
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := a.set.Log().Checkpoint(ctx); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	mem.SeedS = time.Since(start).Seconds()
	var cpBytes int64
	for _, prefix := range []string{commitlog.CheckpointPrefix, commitlog.SnapshotPrefix} {
		for info, err := range b.List(ctx, prefix, "") {
			if err != nil {
				return nil, err
			}
			cpBytes += info.Size
		}
	}
	mem.CheckpointMB = float64(cpBytes) / 1e6
	a.set.Close()
	a = nil

	open := opts.OpenAgent
	if open == nil {
		open = OpenAndMeasure
	}
	r, err := open(ctx, dir, opts.Actors, opts.Settle)
	if err != nil {
		return nil, err
	}
	mem.FnOpenResult = r
	return mem, nil
}
