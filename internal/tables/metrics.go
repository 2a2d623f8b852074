package tables

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the tables module's Prometheus collectors.
type metrics struct {
	rows          *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	conflicts     *prometheus.CounterVec
	failures      *prometheus.CounterVec
	merged        *prometheus.CounterVec
	expired       *prometheus.CounterVec
	commitSeconds *prometheus.HistogramVec
	queries       *prometheus.CounterVec
	querySeconds  prometheus.Histogram
}

func newMetrics(m *Module, reg prometheus.Registerer) (*metrics, error) {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"table"})
	}
	met := &metrics{
		rows:        vec("twoway_table_rows_total", "Rows committed to tables by this agent."),
		deadLetters: vec("twoway_table_dead_letters_total", "Records that did not match the table's schema, committed to its dead-letter table by this agent."),
		skipped:     vec("twoway_table_records_skipped_total", "Records the topic's retention deleted before they were materialized."),
		conflicts:   vec("twoway_table_commit_conflicts_total", "Table commits refused because the pointer had moved (built again)."),
		failures:    vec("twoway_table_materialize_failures_total", "Materializer sessions that failed and started again."),
		merged:      vec("twoway_table_files_merged_total", "Small data files merged into larger ones."),
		expired:     vec("twoway_table_snapshots_expired_total", "Snapshots expired."),
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "twoway_table_commit_seconds",
			Help: "Time to write a table commit's files and commit its pointer.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}, []string{"table"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "twoway_sql_queries_total",
			Help: "SQL queries by result (ok, error)."}, []string{"result"}),
		querySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "twoway_sql_query_seconds",
			Help: "SQL query time.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	for _, c := range []prometheus.Collector{met.rows, met.deadLetters, met.skipped, met.conflicts, met.failures,
		met.merged, met.expired, met.commitSeconds, met.queries, met.querySeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return met, nil
}
