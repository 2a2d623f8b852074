package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/bench"
	"github.com/twoway/twoway/internal/commitlog"
)

const benchFnHelp = `
Measure the functions module on directory buckets made for the run (under
--dir, deleted at the end), in one run:

  throughput   durable actor updates per second through a stream
               subscription: --records records for --keys actors with
               --state-size bytes of state, produced before the function is
               deployed, consumed over --partitions partitions. Baseline: the
               same records produced for --produce-duration with the load of
               "twoway bench produce" (512 producers, 64 KiB calls);
               ratio = updates/s / produced records/s.
  latency      from a record's produce acknowledgement to the function's
               position passing it (its effects committed), one record at a
               time; target p50 <= linger + 2 x the bucket's PutIfAbsent p50,
               measured on the same bucket right after.
  http         stateless requests to /fn/{name}/... served by the guest
               against a native Go handler doing the same work on the same
               mux and server, --http-concurrency clients; ratio =
               guest req/s / native req/s.
  modules      first compile (empty cache), load from the compilation cache
               by a new runtime, and instantiation (p50) of the bench guest
               and of the device-twin examples (make examples builds them).
  memory       --actors actors of --actor-state-size bytes, committed in
               large batches through the functions module's own entries,
               then a normal agent opens the bucket in a child process:
               start-up time and its resident memory (VmRSS).

The bench guest is a raw-ABI Go guest built into this binary as source and
compiled at run time with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared:
this benchmark is a developer tool and needs a Go toolchain (--go), unless
--guest names a prebuilt module. Latencies are in milliseconds.
`

func runBenchFn(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("bench fn", "twoway bench fn [flags]", benchFnHelp)
	dir := fs.String("dir", "", "`directory` under which the run's buckets are made (default the system's temporary directory)")
	keys := fs.Int("keys", bench.DefaultFnKeys, "`number` of actors in the throughput phase")
	stateSize := byteSize(bench.DefaultFnStateSize)
	fs.Var(&stateSize, "state-size", "`size` of each actor's state (and each input record's value)")
	records := fs.Int("records", bench.DefaultFnRecords, "`number` of input records in the throughput phase")
	partitions := fs.Int("partitions", bench.DefaultFnPartitions, "`number` of partitions of the input topic")
	produceDuration := fs.Duration("produce-duration", bench.DefaultFnProduceDuration, "length of the produce baseline")
	samples := fs.Int("latency-samples", bench.DefaultFnLatencySamples, "`number` of records timed one at a time")
	httpConc := fs.Int("http-concurrency", bench.DefaultFnHTTPConcurrency, "`number` of HTTP clients, each with one request in flight")
	httpDuration := fs.Duration("http-duration", bench.DefaultFnHTTPDuration, "length of each HTTP measurement (guest, native)")
	insts := fs.Int("instantiations", bench.DefaultFnInstantiations, "`number` of instantiations timed per module")
	actors := fs.Int("actors", bench.DefaultFnActors, "`number` of actors in the memory phase (0 skips it)")
	actorSize := byteSize(bench.DefaultFnActorStateSize)
	fs.Var(&actorSize, "actor-state-size", "`size` of each actor's state in the memory phase")
	settle := fs.Duration("settle", 3*time.Second, "how long the agent of the memory phase sits idle before the second RSS reading")
	guest := fs.String("guest", "", "prebuilt bench guest `file` (default: build it with --go)")
	goTool := fs.String("go", "go", "the Go `toolchain` that builds the bench guest")
	modGo := fs.String("module-go", "examples/device-twin/go/device-twin.wasm", "the Go device-twin `module` to time (\"\" or absent at the default path: skipped)")
	modAS := fs.String("module-as", "examples/device-twin/assemblyscript/device-twin.wasm", "the AssemblyScript device-twin `module` to time (\"\" or absent at the default path: skipped)")
	lingerOf := fs.lingerFlag("extra group-commit `wait` (default 0 on a directory, as twoway serve)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the throughput phase's consumption to `file`")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	badFlag := func(err error) error {
		return &usageError{err: fmt.Errorf("bench fn: %w", err), usage: func() { fs.usage(e.stderr) }}
	}
	linger := lingerOf()
	switch {
	case *keys < 1 || *records < 1 || *samples < 1 || *httpConc < 1 || *insts < 1:
		return badFlag(errors.New("--keys, --records, --latency-samples, --http-concurrency and --instantiations must be positive"))
	case *actors < 0:
		return badFlag(fmt.Errorf("--actors %d must not be negative", *actors))
	case *partitions < 1 || *partitions > 1000:
		return badFlag(fmt.Errorf("--partitions %d out of range: use 1 to 1000", *partitions))
	case stateSize < 8 || stateSize > 1<<20 || actorSize < 8 || actorSize > 1<<20:
		return badFlag(errors.New("--state-size and --actor-state-size must be 8B to 1MiB"))
	case *produceDuration <= 0 || *httpDuration <= 0 || *settle <= 0:
		return badFlag(errors.New("--produce-duration, --http-duration and --settle must be positive"))
	case linger < 0 && linger != agent.NoLinger:
		return badFlag(fmt.Errorf("--linger %v must not be negative", linger))
	}

	progress := e.stderr
	var wasm []byte
	var err error
	if *guest != "" {
		if wasm, err = os.ReadFile(*guest); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(progress, "building the bench guest with %s (GOOS=wasip1 GOARCH=wasm)\n", *goTool)
		if wasm, err = bench.BuildFnGuest(ctx, *goTool); err != nil {
			return err
		}
	}
	var mods []bench.FnModule
	for _, m := range []struct {
		name, path, def string
	}{
		{"device-twin (Go, fn SDK)", *modGo, "examples/device-twin/go/device-twin.wasm"},
		{"device-twin (AssemblyScript)", *modAS, "examples/device-twin/assemblyscript/device-twin.wasm"},
	} {
		if m.path == "" {
			continue
		}
		b, err := os.ReadFile(m.path)
		if errors.Is(err, os.ErrNotExist) && m.path == m.def {
			fmt.Fprintf(progress, "skipping %s: no %s (make examples builds it)\n", m.name, m.path)
			continue
		}
		if err != nil {
			return err
		}
		mods = append(mods, bench.FnModule{Name: m.name, Wasm: b})
	}
	opts := bench.FnOptions{
		Guest: wasm, Modules: mods,
		Keys: *keys, StateSize: int(stateSize), Records: *records, Partitions: *partitions,
		ProduceDuration: *produceDuration, LatencySamples: *samples,
		HTTPConcurrency: *httpConc, HTTPDuration: *httpDuration, Instantiations: *insts,
		Actors: *actors, ActorStateSize: int(actorSize),
		Settle:    *settle,
		Dir:       *dir,
		Log:       agent.TuneLog(bucketurl.File, commitlog.Options{Linger: linger}),
		OpenAgent: openAgentInChild,
		Progress:  progress,
	}
	if *actors == 0 {
		opts.Actors = -1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.ConsumeProfile = f
	}
	res, err := bench.Fn(ctx, opts)
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, res, printFnResult)
}

// benchFnOpenCommand is the child process of bench fn's memory phase:
// "twoway bench fn-open DIR ACTORS SETTLE" opens an agent on DIR and prints what
// bench.OpenAndMeasure measured, as JSON.
const benchFnOpenCommand = "fn-open"

func runBenchFnOpen(ctx context.Context, e *env, args []string) error {
	if len(args) != 3 {
		return errors.New("bench fn-open: want DIR ACTORS SETTLE")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	settle, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	r, err := bench.OpenAndMeasure(ctx, args[0], n, settle)
	if err != nil {
		return err
	}
	return json.NewEncoder(e.stdout).Encode(r)
}

// openAgentInChild runs bench fn-open in a new process of this binary, so
// that the resident memory measured is the agent's alone.
func openAgentInChild(ctx context.Context, dir string, actors int, settle time.Duration) (bench.FnOpenResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return bench.FnOpenResult{}, err
	}
	cmd := exec.CommandContext(ctx, exe, "bench", benchFnOpenCommand, dir, strconv.Itoa(actors), settle.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return bench.FnOpenResult{}, fmt.Errorf("the agent's process: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var r bench.FnOpenResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("the agent's process printed %q: %v", out, err)
	}
	r.Child = true
	return r, nil
}

func printFnResult(w io.Writer, r bench.FnResult) error {
	m := r.Machine
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "machine      %s/%s, %d CPUs, %s, %s\n", m.GOOS, m.GOARCH, m.NumCPU, m.CPUModel, m.GoVersion)
	fmt.Fprintf(w, "workload     %d records for %d actors of %s, %d partitions, linger %v, directory bucket\n\n",
		r.Records, r.Keys, formatByteSize(int64(r.StateSize)), r.Partitions, ms(r.LingerMs))

	fmt.Fprintf(w, "updates      %.0f /s   (%d timed over %.2f s, %d commits)   target >= 20000: %s\n",
		r.UpdatesS, r.UpdatesTimed, r.ConsumeS, r.ConsumeCommits, verdict(r.UpdatesS >= 20000))
	fmt.Fprintf(w, "produce      %.0f records/s   %s MB/s   (same records, bench produce's load)\n", r.ProduceRecordsS, megabytes(r.ProduceMBs))
	fmt.Fprintf(w, "ratio        %.3f   (updates / produced records)\n\n", r.UpdatesVsProduce)

	fmt.Fprintf(w, "latency      ack -> effects p50 %.2f ms   p99 %.2f ms   (%d records; ack p50 %.2f ms)\n",
		r.LatencyP50Ms, r.LatencyP99Ms, r.LatencySamples, r.AckP50Ms)
	fmt.Fprintf(w, "             target p50 <= linger + 2 x put-if-absent p50 = %.2f + 2 x %.2f = %.2f ms (%s objects): %s\n\n",
		r.LingerMs, r.PutIfAbsentP50Ms, r.LatencyTargetMs, formatByteSize(int64(r.PutIfAbsentSize)), verdict(r.LatencyP50Ms <= r.LatencyTargetMs))

	fmt.Fprintf(w, "http guest   %.0f req/s   p50 %.2f ms   (%d clients, %d instances started)\n", r.GuestReqS, r.GuestP50Ms, r.HTTPConcurrency, r.GuestInstantiated)
	fmt.Fprintf(w, "http native  %.0f req/s   p50 %.2f ms\n", r.NativeReqS, r.NativeP50Ms)
	fmt.Fprintf(w, "ratio        %.3f   target >= 0.5: %s\n\n", r.HTTPRatio, verdict(r.HTTPRatio >= 0.5))

	fmt.Fprintf(w, "%-30s %9s %11s %12s %14s %14s\n", "module", "size", "compile ms", "cached load", "instantiate", "inst. p99 ms")
	for _, t := range r.Modules {
		fmt.Fprintf(w, "%-30s %9s %11.1f %9.2f ms %11.3f ms %14.3f   (<= 1 ms: %s)\n", t.Name, approxByteSize(float64(t.Bytes)),
			t.CompileMs, t.CachedLoadP50Ms, t.InstantiateP50Ms, t.InstantiateP99Ms, verdict(t.InstantiateP50Ms <= 1))
	}
	if mem := r.Memory; mem != nil {
		where := "in this process"
		if mem.Child {
			where = "in a child process"
		}
		fmt.Fprintf(w, "\nmemory       %d actors of %s, seeded in %.1f s, checkpoint %.1f MB\n", mem.Actors, formatByteSize(int64(mem.ActorStateSize)), mem.SeedS, mem.CheckpointMB)
		fmt.Fprintf(w, "agent open   %.0f ms %s; RSS %.1f MB after open, %.1f MB after %.0f s, peak %.1f MB   target <= 300 MB: %s\n",
			mem.OpenMs, where, mem.RSSOpenMB, mem.RSSSettledMB, mem.SettleS, mem.HWMMB, verdict(max(mem.RSSOpenMB, mem.RSSSettledMB) <= 300))
	}
	return nil
}
