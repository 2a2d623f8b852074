package bench

import (
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var l Latencies
	// 1ms..100ms in a shuffled order: percentile p is p ms exactly.
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(100) {
		l.Add(time.Duration(i+1) * time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{
		0:    1 * time.Millisecond,
		1:    1 * time.Millisecond,
		1.5:  2 * time.Millisecond,
		50:   50 * time.Millisecond,
		90:   90 * time.Millisecond,
		99:   99 * time.Millisecond,
		99.9: 100 * time.Millisecond,
		100:  100 * time.Millisecond,
		-5:   1 * time.Millisecond,
		250:  100 * time.Millisecond,
	} {
		if got := l.Percentile(p); got != want {
			t.Errorf("Percentile(%v) = %v, want %v", p, got, want)
		}
	}
	if l.Len() != 100 {
		t.Errorf("Len() = %d, want 100", l.Len())
	}
	if got := l.Mean(); got != 50500*time.Microsecond {
		t.Errorf("Mean() = %v, want 50.5ms", got)
	}
}

func TestPercentileSmallSets(t *testing.T) {
	var empty Latencies
	if empty.Percentile(50) != 0 || empty.Mean() != 0 || empty.Len() != 0 {
		t.Error("an empty set is not all zeros")
	}

	var one Latencies
	one.Add(7 * time.Millisecond)
	for _, p := range []float64{0, 50, 99, 100} {
		if got := one.Percentile(p); got != 7*time.Millisecond {
			t.Errorf("one sample: Percentile(%v) = %v", p, got)
		}
	}

	// With 10 samples the p99 is the maximum and the median the 5th.
	var ten Latencies
	for i := 10; i >= 1; i-- {
		ten.Add(time.Duration(i))
	}
	if got := ten.Percentile(99); got != 10 {
		t.Errorf("p99 of 1..10 = %v, want 10", got)
	}
	if got := ten.Percentile(50); got != 5 {
		t.Errorf("p50 of 1..10 = %v, want 5", got)
	}
	// Adding after a percentile was asked re-sorts.
	ten.Add(0)
	if got := ten.Percentile(0); got != 0 {
		t.Errorf("min after adding 0 = %v", got)
	}
}

// rank must not suffer from float error at exact ranks: p99 of 1000 samples
// is the 990th, not the 991st.
func TestRankExact(t *testing.T) {
	for _, c := range []struct {
		p    float64
		n    int
		want int
	}{
		{99, 1000, 989},
		{99.9, 1000, 998},
		{50, 2, 0},
		{50, 3, 1},
		{0.0001, 1000000, 0},
		{100, 5, 4},
	} {
		if got := rank(c.p, c.n); got != c.want {
			t.Errorf("rank(%v, %d) = %d, want %d", c.p, c.n, got, c.want)
		}
	}
}

func TestMergeAndConcurrentAdd(t *testing.T) {
	var a, b Latencies
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 250 {
				a.Add(time.Duration(w*250 + i + 1))
			}
		})
	}
	wg.Wait()
	b.Add(0)
	b.Merge(&a)
	if b.Len() != 1001 {
		t.Fatalf("Len after merge = %d, want 1001", b.Len())
	}
	if b.Percentile(0) != 0 || b.Percentile(100) != 1000 {
		t.Errorf("min, max = %v, %v; want 0, 1000", b.Percentile(0), b.Percentile(100))
	}
}

func TestCPUModel(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ text, want string }{
		"x86":   {"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\n", "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"},
		"arm":   {"processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n", "Raspberry Pi 4 Model B Rev 1.4"},
		"empty": {"", ""},
	} {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := cpuModel(path); got != c.want {
			t.Errorf("%s: cpuModel = %q, want %q", name, got, c.want)
		}
	}
	if got := cpuModel(dir + "/missing"); got != "" {
		t.Errorf("missing file: cpuModel = %q", got)
	}
	m := CurrentMachine()
	if m.NumCPU < 1 || m.GOOS == "" || m.GOARCH == "" || m.GoVersion == "" {
		t.Errorf("CurrentMachine() = %+v", m)
	}
}
