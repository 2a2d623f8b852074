package console

import (
	"context"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/groups"
)

// Series names of the history (GET /v1/metrics/history). Per-name series
// are prefix:NAME:measure.
const (
	seriesProduceRecords = "produce_records_per_s" // records appended, every topic, every agent
	seriesProduceBytes   = "produce_bytes_per_s"
	seriesCommits        = "commits_per_s"     // commits applied: every agent's
	seriesOwnCommits     = "own_commits_per_s" // commits this agent wrote
	seriesAppliedSeq     = "applied_seq"
	seriesBucketErrors   = "bucket_errors_per_s"
	seriesSQL            = "sql_queries_per_s"
)

var quantiles = []float64{0.5, 0.9, 0.99}

// sample takes a sample every interval until ctx ends.
func (m *Module) sample(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	c := newCounters()
	for {
		m.sampleOnce(c, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Module) sampleOnce(c *counters, now time.Time) {
	dt := now.Sub(c.at).Seconds()
	if c.at.IsZero() {
		dt = 0
	}
	c.at = now
	vals := map[string]float64{}
	seen := map[string]bool{}
	rate := func(series, key string, v float64) {
		if r, ok := c.rate(key, v, dt, seen); ok {
			vals[series] += r
		}
	}
	hist := func(prefix, key string, h *dto.Histogram) {
		qs, n, ok := c.quantiles(key, h, quantiles, seen)
		if dt > 0 {
			vals[prefix+"per_s"] = float64(n) / dt
		}
		if !ok {
			return
		}
		vals[prefix+"p50_ms"] = qs[0] * 1000
		vals[prefix+"p90_ms"] = qs[1] * 1000
		vals[prefix+"p99_ms"] = qs[2] * 1000
	}
	if m.cfg.Gatherer != nil {
		fams, err := m.cfg.Gatherer.Gather()
		if err != nil && m.logger != nil && len(fams) == 0 {
			m.logger.Warn("console: gathering metrics failed", "err", err)
		}
		for _, f := range fams {
			name := f.GetName()
			for _, mt := range f.GetMetric() {
				l := labels(mt)
				key := name + "{" + l["op"] + l["result"] + l["api"] + l["route"] + l["function"] + l["trigger"] + l["kind"] + l["topic"] + l["partition"] + "}"
				switch name {
				case "twoway_log_applied_total":
					rate(seriesCommits, key, mt.GetCounter().GetValue())
				case "twoway_log_commits_total":
					rate(seriesOwnCommits, key, mt.GetCounter().GetValue())
				case "twoway_log_applied_seq":
					vals[seriesAppliedSeq] = mt.GetGauge().GetValue()
				case "twoway_bucket_requests_total":
					rate("bucket:"+l["op"]+":per_s", key, mt.GetCounter().GetValue())
					if l["result"] == "error" {
						rate(seriesBucketErrors, key+"e", mt.GetCounter().GetValue())
					}
				case "twoway_bucket_request_duration_seconds":
					if l["op"] == "put-if-absent" {
						hist("commit:", key, mt.GetHistogram())
					}
				case "twoway_kafka_request_duration_seconds":
					hist("kafka:"+l["api"]+":", key, mt.GetHistogram())
				case "twoway_kafka_record_bytes_total":
					rate("kafka:"+l["api"]+":bytes_per_s", key, mt.GetCounter().GetValue())
				case "twoway_http_request_duration_seconds":
					switch l["route"] {
					case "POST /v1/topics/{topic}/records":
						hist("http:produce:", key, mt.GetHistogram())
					case "GET /v1/topics/{topic}/partitions/{partition}/records":
						hist("http:read:", key, mt.GetHistogram())
					}
				case "twoway_fn_invocations_total":
					rate("fn:"+l["function"]+":invocations_per_s", key, mt.GetCounter().GetValue())
				case "twoway_fn_errors_total":
					rate("fn:"+l["function"]+":errors_per_s", key, mt.GetCounter().GetValue())
				case "twoway_fn_duration_seconds":
					hist("fn:"+l["function"]+":", key, mt.GetHistogram())
				case "twoway_fn_consumer_lag":
					vals["fn:"+l["function"]+":lag"] += mt.GetGauge().GetValue()
				case "twoway_sql_queries_total":
					rate(seriesSQL, key, mt.GetCounter().GetValue())
				}
			}
		}
	}
	if s := m.cfg.Streams; s != nil {
		ends := map[string][]int64{}
		var records, bytes float64
		for _, ti := range s.Topics() {
			full, err := s.Topic(ti.Name)
			if err != nil {
				continue
			}
			var n float64
			e := make([]int64, len(full.PartitionsInfo))
			for i, p := range full.PartitionsInfo {
				n += float64(p.End)
				bytes += float64(p.Bytes)
				e[i] = p.End
			}
			records += n
			ends[ti.Name] = e
			rate("topic:"+ti.Name+":records_per_s", "end{"+ti.Name+"}", n)
		}
		rate(seriesProduceRecords, "records", records)
		vals["records_total"] = records
		rate(seriesProduceBytes, "bytes", bytes)
		m.sampleLag(vals, ends)
	}
	c.forget(seen)
	m.hist.add(now.UnixMilli(), vals)
}

// sampleLag records each group's lag per partition: the partition's end
// offset less the group's committed offset.
func (m *Module) sampleLag(vals map[string]float64, ends map[string][]int64) {
	if m.cfg.Groups == nil || m.log == nil {
		return
	}
	for _, g := range committedOffsets(m.log, m.cfg.Groups.Offsets()) {
		var total float64
		for _, p := range g.partitions {
			e := ends[p.topic]
			if int(p.partition) >= len(e) {
				continue
			}
			lag := float64(max(e[p.partition]-p.offset, 0))
			total += lag
			vals["group:"+g.name+":"+p.topic+":"+strconv.Itoa(int(p.partition))+":lag"] = lag
		}
		vals["group:"+g.name+":lag"] = total
	}
}

type groupOffsets struct {
	name       string
	partitions []committedPartition
}

type committedPartition struct {
	topic     string
	partition int32
	offset    int64
	commitMs  int64
	metadata  string
}

// committedOffsets reads every group's committed offsets from the applied
// state.
func committedOffsets(l *commitlog.Log, o *groups.Offsets) []groupOffsets {
	var out []groupOffsets
	l.View(o, func() {
		for _, g := range o.Groups(false) {
			out = append(out, offsetsOf(o, g))
		}
	})
	return out
}

func offsetsOf(o *groups.Offsets, g string) groupOffsets {
	gr := groupOffsets{name: g}
	for _, t := range o.Topics(g) {
		for _, p := range o.Partitions(g, t) {
			if c, ok := o.Committed(g, t, p); ok {
				gr.partitions = append(gr.partitions, committedPartition{topic: t, partition: p, offset: c.Offset, commitMs: c.CommitMs, metadata: c.Metadata})
			}
		}
	}
	return gr
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
