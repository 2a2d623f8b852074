package bench

import (
	"slices"
	"sync"
	"time"
)

// Latencies collects durations and answers percentiles over them. It keeps
// every sample (a benchmark makes thousands, not billions, of bucket calls),
// so percentiles are exact. It is safe for concurrent use.
type Latencies struct {
	mu      sync.Mutex
	samples []time.Duration
	sorted  bool
}

// Add records one sample.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.sorted = false
	l.mu.Unlock()
}

// Merge adds every sample of other to l.
func (l *Latencies) Merge(other *Latencies) {
	other.mu.Lock()
	samples := slices.Clone(other.samples)
	other.mu.Unlock()
	l.mu.Lock()
	l.samples = append(l.samples, samples...)
	l.sorted = false
	l.mu.Unlock()
}

// Len returns the number of samples.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples)
}

// Percentile returns the p-th percentile (0 <= p <= 100) by the nearest-rank
// method: the smallest sample that is at least p percent of all samples
// reach. Percentile(50) is the median, Percentile(100) the maximum and
// Percentile(0) the minimum. With no samples it returns 0; p is clamped to
// [0, 100].
func (l *Latencies) Percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.samples)
	if n == 0 {
		return 0
	}
	if !l.sorted {
		slices.Sort(l.samples)
		l.sorted = true
	}
	return l.samples[rank(p, n)]
}

// rank is the index of the nearest-rank p-th percentile of n sorted samples:
// ceil(p/100 * n) - 1, within [0, n-1].
func rank(p float64, n int) int {
	if !(p > 0) { // also NaN
		return 0
	}
	if p >= 100 {
		return n - 1
	}
	// Integer arithmetic on p*1e6 avoids float error at exact ranks, where
	// 0.99*100 would otherwise round up to 100 instead of staying 99.
	scaled := int64(p*1e6 + 0.5)
	total := int64(n)
	r := (scaled*total + 100e6 - 1) / 100e6 // ceil
	return int(max(r-1, 0))
}

// Mean returns the arithmetic mean of the samples, or 0 without samples.
func (l *Latencies) Mean() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l.samples {
		sum += d
	}
	return sum / time.Duration(len(l.samples))
}

// Millis converts d to fractional milliseconds, the unit results report.
func Millis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
