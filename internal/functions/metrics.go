package functions

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's, per function; the guests' own counters and
// gauges (the metrics capability) are labelled with the function and the
// guest's name for them.
type metrics struct {
	invocations  *prometheus.CounterVec
	errors       *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	deadLetters  *prometheus.CounterVec
	conflicts    *prometheus.CounterVec
	guestCounter *prometheus.CounterVec
	guestGauge   *prometheus.GaugeVec
}

func newMetrics(m *Module, reg prometheus.Registerer) (*metrics, error) {
	met := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twoway_fn_invocations_total",
			Help: "Function invocations, by function and trigger (http, invoke, record, timer)."}, []string{"function", "trigger"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twoway_fn_errors_total",
			Help: "Failed invocations, by function and kind (trap, timeout, memory, bad_pointer, limit, output, status)."}, []string{"function", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "twoway_fn_duration_seconds",
			Help: "Time in the guest per invocation.", Buckets: prometheus.ExponentialBuckets(0.00002, 4, 10)}, []string{"function"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twoway_fn_dead_letters_total",
			Help: "Records written to a function's dead-letter topic."}, []string{"function"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twoway_fn_conflicts_total",
			Help: "Commits of invocations refused because what they read had changed (they ran again)."}, []string{"function"}),
		guestCounter: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twoway_fn_guest_counter",
			Help: "Counters a function defines (the metrics capability)."}, []string{"function", "name"}),
		guestGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "twoway_fn_guest_gauge",
			Help: "Gauges a function defines (the metrics capability)."}, []string{"function", "name"}),
	}
	for _, c := range []prometheus.Collector{met.invocations, met.errors, met.duration, met.deadLetters, met.conflicts, met.guestCounter, met.guestGauge, &stateCollector{m}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return met, nil
}

var (
	descInstances = prometheus.NewDesc("twoway_fn_instances", "Instances started for the live version of a function on this agent.", []string{"function"}, nil)
	descActors    = prometheus.NewDesc("twoway_fn_actors", "Actors with state.", []string{"function"}, nil)
	descState     = prometheus.NewDesc("twoway_fn_state_bytes", "Bytes of actor state.", []string{"function"}, nil)
	descLag       = prometheus.NewDesc("twoway_fn_consumer_lag", "Records of a subscribed partition not yet processed.", []string{"function", "topic", "partition"}, nil)
	descTimers    = prometheus.NewDesc("twoway_fn_timers", "Timers set.", []string{"function"}, nil)
)

// stateCollector reports what the applied state says, at scrape time.
type stateCollector struct{ m *Module }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInstances, descActors, descState, descLag, descTimers} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	if m.log == nil {
		return
	}
	type fnStats struct {
		actors, bytes, timers int64
		pos                   map[string]int64
		subscribe             []string
	}
	stats := map[string]*fnStats{}
	m.log.View(m.st, func() {
		for name, f := range m.st.fns {
			s := &fnStats{actors: f.Actors, bytes: f.StateBytes, pos: map[string]int64{}, subscribe: f.live().Subscribe}
			s.timers = int64(f.Timers.Len())
			for k, v := range f.Positions {
				s.pos[k] = v
			}
			stats[name] = s
		}
	})
	for name, s := range stats {
		ch <- prometheus.MustNewConstMetric(descActors, prometheus.GaugeValue, float64(s.actors), name)
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, float64(s.bytes), name)
		ch <- prometheus.MustNewConstMetric(descTimers, prometheus.GaugeValue, float64(s.timers), name)
		for _, t := range s.subscribe {
			ti, err := m.streams.Topic(t)
			if err != nil {
				continue
			}
			for _, p := range ti.PartitionsInfo {
				pos, ok := s.pos[posKey(t, p.Partition)]
				if !ok {
					pos = p.Start
				}
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(max(0, p.End-max(pos, p.Start))), name, t, itoa(p.Partition))
			}
		}
	}
	m.mu.Lock()
	for _, l := range m.loaded {
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.CounterValue, float64(l.mod.Stats.Instantiated.Load()), l.d.Name)
	}
	m.mu.Unlock()
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }
