package mirror

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
)

// Module is the mirror module every agent assembles: the Owner of the
// mirror positions (TypePosition) of the mirrors writing into this
// deployment, the route GET /v1/mirrors, and the metrics of the mirrors
// this agent runs (Attach).
type Module struct {
	st  *state
	log *commitlog.Log

	mu      sync.Mutex
	mirrors []Reporter
}

// Reporter is a mirror this agent runs, as status and metrics see it: a
// *Mirror, or a stand-in while its other side is not open yet.
type Reporter interface {
	Status() Status
}

// NewModule makes the mirror module.
func NewModule() *Module { return &Module{st: newState()} }

func (m *Module) Name() string              { return "mirror" }
func (m *Module) Owners() []commitlog.Owner { return []commitlog.Owner{m.st} }
func (m *Module) Close() error              { return nil }

// Start registers the route and the metrics.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	m.log = env.Log
	env.HTTP.Handle("GET /v1/mirrors", http.HandlerFunc(m.serveStatus))
	return env.Metrics.Register(&collector{m})
}

// Positions lists the positions of every mirror writing into this
// deployment, as its log holds them.
func (m *Module) Positions() []Position {
	var out []Position
	m.log.View(m.st, func() { out = m.st.list() })
	return out
}

func (m *Module) positionsOf(source string) map[tp]Position {
	out := map[tp]Position{}
	m.log.View(m.st, func() {
		for k, p := range m.st.pos[source] {
			out[k] = *p
		}
	})
	return out
}

// Attach lists mirror among those this agent runs (status, metrics) until
// the returned function is called.
func (m *Module) Attach(mir Reporter) (detach func()) {
	m.mu.Lock()
	m.mirrors = append(m.mirrors, mir)
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.mirrors = slices.DeleteFunc(m.mirrors, func(x Reporter) bool { return x == mir })
		m.mu.Unlock()
	}
}

func (m *Module) running() []Reporter {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.mirrors)
}

// StatusReport is the body of GET /v1/mirrors: the mirrors this agent runs,
// live, and the positions of the mirrors writing into its deployment.
type StatusReport struct {
	Mirrors   []Status   `json:"mirrors"`
	Positions []Position `json:"positions"`
}

// Report is what GET /v1/mirrors answers.
func (m *Module) Report() StatusReport {
	r := StatusReport{Mirrors: []Status{}, Positions: m.Positions()}
	for _, mir := range m.running() {
		r.Mirrors = append(r.Mirrors, mir.Status())
	}
	if r.Positions == nil {
		r.Positions = []Position{}
	}
	return r
}

// serveStatus answers GET /v1/mirrors. With authorization on, it needs
// describe on the cluster: it names the deployments and topics mirrored.
func (m *Module) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := authz.Check(r.Context(), authz.OpDescribe, authz.ResCluster, authz.ClusterName); err != nil {
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "mirror status needs describe on the cluster: " + err.Error(), "code": "forbidden"})
		return
	}
	_ = json.NewEncoder(w).Encode(m.Report())
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

var (
	labels         = []string{"source", "topic", "partition"}
	descLagRecords = prometheus.NewDesc("twoway_mirror_lag_records", "Source records not yet mirrored, per mirrored partition (mirrors this agent runs).", labels, nil)
	descLagBytes   = prometheus.NewDesc("twoway_mirror_lag_bytes", "Stored bytes of the source batches not yet mirrored.", labels, nil)
	descLagSeconds = prometheus.NewDesc("twoway_mirror_lag_seconds", "Age of the oldest source record not yet mirrored (0 when caught up).", labels, nil)
	descRecords    = prometheus.NewDesc("twoway_mirror_records_total", "Records this agent's mirror committed to its destination.", []string{"source"}, nil)
	descBytes      = prometheus.NewDesc("twoway_mirror_bytes_total", "Bytes of those records' keys, values and headers, as stored.", []string{"source"}, nil)
	descCommits    = prometheus.NewDesc("twoway_mirror_commits_total", "Mirror commits that applied at the destination.", []string{"source"}, nil)
	descConflicts  = prometheus.NewDesc("twoway_mirror_conflicts_total", "Mirror commits refused because the position had moved (another mirror, or a retry).", []string{"source"}, nil)
	descSkipped    = prometheus.NewDesc("twoway_mirror_skipped_records_total", "Source records removed by retention before they were mirrored.", []string{"source"}, nil)
	descErrors     = prometheus.NewDesc("twoway_mirror_errors_total", "Mirror rounds that failed (destination or source unreachable, ...) and were retried.", []string{"source"}, nil)
	descConnected  = prometheus.NewDesc("twoway_mirror_connected", "1 while the mirror's last round reached the destination.", []string{"source"}, nil)
	descPosition   = prometheus.NewDesc("twoway_mirror_position", "Next source offset to mirror, per source partition, as this deployment's log holds it (mirrors writing into it).", labels, nil)
)

type collector struct{ m *Module }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLagRecords, descLagBytes, descLagSeconds, descRecords, descBytes, descCommits, descConflicts, descSkipped, descErrors, descConnected, descPosition} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.m.Positions() {
		ch <- prometheus.MustNewConstMetric(descPosition, prometheus.GaugeValue, float64(p.Next), p.Source, p.Topic, itoa(p.Partition))
	}
	for _, mir := range c.m.running() {
		st := mir.Status()
		src := st.Source
		for _, p := range st.Partitions {
			ch <- prometheus.MustNewConstMetric(descLagRecords, prometheus.GaugeValue, float64(p.LagRecords), src, p.Topic, itoa(p.Partition))
			ch <- prometheus.MustNewConstMetric(descLagBytes, prometheus.GaugeValue, float64(p.LagBytes), src, p.Topic, itoa(p.Partition))
			ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, p.LagSeconds, src, p.Topic, itoa(p.Partition))
		}
		ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(st.Records), src)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.Bytes), src)
		ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(st.Commits), src)
		ch <- prometheus.MustNewConstMetric(descConflicts, prometheus.CounterValue, float64(st.Conflicts), src)
		ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(st.Skipped), src)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(st.Errors), src)
		conn := 0.0
		if st.Connected {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, conn, src)
	}
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }
