package console

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// HistoryLen is how many samples the history keeps: 15 minutes at 1 s.
const HistoryLen = 900

// maxSeries bounds the series a history tracks, so that a deployment with
// thousands of partitions or functions cannot grow it without limit: the
// series beyond it are not recorded (the answer says how many were
// dropped).
const maxSeries = 4000

// history is a ring of samples, each a value per series. Series are
// numbered in the order they first appear; a sample holds the values of
// the series known when it was taken (NaN for those absent then).
type history struct {
	mu      sync.Mutex
	names   []string
	index   map[string]int
	times   [HistoryLen]int64
	values  [HistoryLen][]float64
	next    int // where the next sample goes
	n       int // samples held
	dropped int // series refused past maxSeries
}

func newHistory() *history { return &history{index: map[string]int{}} }

// add records one sample taken at t (milliseconds). The slice of the slot
// it overwrites is reused, so a full ring allocates nothing per sample.
func (h *history) add(t int64, vals map[string]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name := range vals {
		if _, ok := h.index[name]; ok {
			continue
		}
		if len(h.names) >= maxSeries {
			h.dropped++
			continue
		}
		h.index[name] = len(h.names)
		h.names = append(h.names, name)
	}
	row := h.values[h.next][:0]
	for range h.names {
		row = append(row, math.NaN())
	}
	for name, v := range vals {
		if i, ok := h.index[name]; ok {
			row[i] = v
		}
	}
	h.times[h.next], h.values[h.next] = t, row
	h.next = (h.next + 1) % HistoryLen
	h.n = min(h.n+1, HistoryLen)
}

// appendJSON writes the samples taken after since (ms), of the series
// whose names start with one of prefixes (all when none), as
// {"interval_ms":1000,"now_ms":...,"t":[...],"series":{"name":[v|null...]}}.
func (h *history) appendJSON(b []byte, since, now int64, prefixes []string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := (h.next - h.n + HistoryLen) % HistoryLen
	var rows []int
	for i := 0; i < h.n; i++ {
		r := (first + i) % HistoryLen
		if h.times[r] > since {
			rows = append(rows, r)
		}
	}
	b = append(b, `{"interval_ms":1000,"now_ms":`...)
	b = strconv.AppendInt(b, now, 10)
	b = append(b, `,"dropped_series":`...)
	b = strconv.AppendInt(b, int64(h.dropped), 10)
	b = append(b, `,"t":[`...)
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, h.times[r], 10)
	}
	b = append(b, `],"series":{`...)
	order := make([]int, 0, len(h.names))
	for i, name := range h.names {
		if matches(name, prefixes) {
			order = append(order, i)
		}
	}
	sort.Slice(order, func(a, c int) bool { return h.names[order[a]] < h.names[order[c]] })
	for k, i := range order {
		if k > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, h.names[i])
		b = append(b, ":["...)
		for j, r := range rows {
			if j > 0 {
				b = append(b, ',')
			}
			v := math.NaN()
			if i < len(h.values[r]) {
				v = h.values[r][i]
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendFloat(b, v, 'g', 6, 64)
			}
		}
		b = append(b, ']')
	}
	return append(b, "}}"...)
}

func matches(name string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// counters remembers the previous value of each cumulative series, to turn
// counters into per-second rates and histograms into the percentiles of
// the last interval.
type counters struct {
	prev  map[string]float64
	hists map[string]histSnap
	at    time.Time
}

type histSnap struct {
	count  uint64
	bounds []float64
	cum    []uint64
}

func newCounters() *counters {
	return &counters{prev: map[string]float64{}, hists: map[string]histSnap{}}
}

// rate returns the per-second change of a counter since the last sample
// (false on the first sight of it). A counter that went down (a restart,
// a deleted topic) counts from zero.
func (c *counters) rate(name string, v float64, dt float64, seen map[string]bool) (float64, bool) {
	seen[name] = true
	old, ok := c.prev[name]
	c.prev[name] = v
	if !ok || dt <= 0 {
		return 0, false
	}
	d := v - old
	if d < 0 {
		d = v
	}
	return d / dt, true
}

// quantiles returns the q-quantiles (seconds) of the observations a
// histogram took since the last sample, interpolated inside buckets as
// Prometheus's histogram_quantile does; ok is false when there were none.
func (c *counters) quantiles(name string, h *dto.Histogram, qs []float64, seen map[string]bool) ([]float64, uint64, bool) {
	seen[name] = true
	snap := histSnap{count: h.GetSampleCount()}
	for _, bk := range h.GetBucket() {
		snap.bounds = append(snap.bounds, bk.GetUpperBound())
		snap.cum = append(snap.cum, bk.GetCumulativeCount())
	}
	old, had := c.hists[name]
	c.hists[name] = snap
	if !had || snap.count < old.count || len(old.cum) != len(snap.cum) {
		return nil, 0, false
	}
	total := snap.count - old.count
	if total == 0 {
		return nil, 0, false
	}
	out := make([]float64, len(qs))
	for k, q := range qs {
		rank := q * float64(total)
		lower, prevCum := 0.0, uint64(0)
		out[k] = snap.bounds[len(snap.bounds)-1]
		for i := range snap.bounds {
			cum := snap.cum[i] - old.cum[i]
			if float64(cum) >= rank {
				inBucket := cum - prevCum
				frac := 1.0
				if inBucket > 0 {
					frac = (rank - float64(prevCum)) / float64(inBucket)
				}
				out[k] = lower + (snap.bounds[i]-lower)*frac
				break
			}
			lower, prevCum = snap.bounds[i], cum
		}
	}
	return out, total, true
}

// forget drops what was not seen in the last sample (a deleted function
// or topic), so the maps do not grow with names long gone.
func (c *counters) forget(seen map[string]bool) {
	for k := range c.prev {
		if !seen[k] {
			delete(c.prev, k)
		}
	}
	for k := range c.hists {
		if !seen[k] {
			delete(c.hists, k)
		}
	}
}
