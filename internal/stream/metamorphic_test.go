package stream

// The many-writers checker with its tuning drawn at random: every run draws
// the log's linger, inline threshold, chunk size and uploads, checkpoint
// cadence, GC grace and polling, the compaction options, the blob cache,
// the fault seeds and the moment of the kill from a seed, and logs the seed;
// the same seed replays the same draw. The children get the seed and redraw
// the same options.
//
//	go test ./internal/stream -run TestManyWritersOneTruthMetamorphic -v                 # a few random seeds
//	go test ./internal/stream -run TestManyWritersOneTruthMetamorphic -truth.seeds=20 -v # 20 of them
//	go test ./internal/stream -run TestManyWritersOneTruthMetamorphic -truth.seed=S -v   # replay S

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var (
	truthSeeds = flag.Int("truth.seeds", 3, "how many random seeds TestManyWritersOneTruthMetamorphic runs (1 under -short)")
	truthSeed  = flag.Uint64("truth.seed", 0, "replay this one seed of TestManyWritersOneTruthMetamorphic")
)

func TestManyWritersOneTruthMetamorphic(t *testing.T) {
	var seeds []uint64
	switch {
	case *truthSeed != 0:
		seeds = []uint64{*truthSeed}
	default:
		n := *truthSeeds
		if testing.Short() && !flagSet("truth.seeds") {
			n = 1
		}
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
		for range n {
			seeds = append(seeds, r.Uint64()|1) // never 0, the fixed run
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			d := drawTruth(seed)
			t.Logf("seed %d: %s", seed, d.desc)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("failed with seed %d (%s); replay: go test ./internal/stream -run TestManyWritersOneTruthMetamorphic -truth.seed=%d -v", seed, d.desc, seed)
				}
			})
			runTruth(t, "file://"+t.TempDir(), seed)
		})
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// truthDraw is what a seed decides for one run of the checker.
type truthDraw struct {
	opts Options
	// killAt is when agent 1 is killed, in thousandths of the run.
	killAt int
	// faultSeed is mixed into each child's fault seed.
	faultSeed uint64
	desc      string
}

// drawTruth draws a run from seed; seed 0 is the fixed run of truthOptions.
// Everything starts from truthOptions, so that options added there reach
// the drawn runs too. Grace stays at 2 s or more: far above the stalls of a
// loaded test machine, which the GC safety rules assume.
func drawTruth(seed uint64) truthDraw {
	d := truthDraw{opts: truthOptions(), killAt: 400}
	if seed == 0 {
		d.desc = "the fixed options"
		return d
	}
	r := rand.New(rand.NewPCG(seed, 0x7472757468)) // "truth"
	pick := func(vs ...int) int { return vs[r.IntN(len(vs))] }
	ms := func(vs ...int) time.Duration { return time.Duration(pick(vs...)) * time.Millisecond }
	var desc []string
	note := func(name string, v any) { desc = append(desc, fmt.Sprintf("%s=%v", name, v)) }

	lo := &d.opts.Log
	// Zero means the default (5 ms) to commitlog: 1 ns is no linger.
	lo.Linger = max(time.Duration(r.IntN(21))*time.Millisecond/2, time.Nanosecond)
	lo.InlineMax = pick(1, 256, 2<<10, 16<<10, 64<<10) // 1: every batch to a chunk
	lo.ChunkMax = pick(1<<10, 16<<10, 256<<10, 8<<20)
	lo.ChunkUploads = pick(1, 2, 4, 8)
	lo.PollMax = ms(10, 50, 200)
	lo.Grace = time.Duration(2000+r.IntN(3001)) * time.Millisecond
	lo.CheckpointCommits = pick(5, 20, 50, 200, 1000)
	lo.CheckpointInterval = ms(50, 200, 1000, 5000)
	note("linger", lo.Linger)
	note("inline", lo.InlineMax)
	note("chunk", lo.ChunkMax)
	note("uploads", lo.ChunkUploads)
	note("pollmax", lo.PollMax)
	note("grace", lo.Grace)
	note("checkpoint", fmt.Sprintf("%d/%v", lo.CheckpointCommits, lo.CheckpointInterval))

	co := &d.opts.Compact
	if r.IntN(5) == 0 {
		co.Disabled = true
		note("compact", "off")
	} else {
		co.Interval = ms(20, 100, 500)
		co.Age = ms(20, 200, 1000)
		co.Target = int64(pick(4<<10, 64<<10, 1<<20))
		co.MinSegments = pick(2, 8, 32)
		co.MaxBytesPerPass = int64(pick(16<<10, 256<<10, 64<<20))
		note("compact", fmt.Sprintf("every %v age %v target %d min %d pass %d", co.Interval, co.Age, co.Target, co.MinSegments, co.MaxBytesPerPass))
	}
	d.opts.CacheBytes = int64(pick(16<<10, 1<<20, 256<<20))
	note("cache", d.opts.CacheBytes)

	d.killAt = 150 + r.IntN(601)
	d.faultSeed = r.Uint64()
	note("kill", fmt.Sprintf("%.2f", float64(d.killAt)/1000))
	d.desc = strings.Join(desc, " ")
	return d
}
