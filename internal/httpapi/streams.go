package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// Limits of GET .../records.
const (
	DefaultReadMax = 100              // records per read unless max says
	MaxReadMax     = 10000            // larger max values are lowered to this
	MaxWait        = 60 * time.Second // longer waits are shortened to this
)

// Offsets a read may start from besides a number, as Kafka's ListOffsets
// spells them.
const (
	OffsetEarliest int64 = -2
	OffsetLatest   int64 = -1
)

// RegisterStreams adds the streams API for svc to s (docs/HTTP.md):
//
//	POST   /v1/topics                                       create a topic
//	GET    /v1/topics                                       list topics
//	GET    /v1/topics/{topic}                               describe a topic and its partitions
//	PATCH  /v1/topics/{topic}                               change retention and configs
//	DELETE /v1/topics/{topic}                               delete a topic
//	POST   /v1/topics/{topic}/partitions                    add partitions
//	POST   /v1/topics/{topic}/records                       produce (one commit per request)
//	GET    /v1/topics/{topic}/partitions/{partition}/records  read, long-polling with wait
func RegisterStreams(s *Server, svc *stream.Service) {
	a := &streamsAPI{svc: svc, srv: s}
	s.HandleFunc("POST /v1/topics", a.createTopic)
	s.HandleFunc("GET /v1/topics", a.listTopics)
	s.HandleFunc("GET /v1/topics/{topic}", a.describeTopic)
	s.HandleFunc("PATCH /v1/topics/{topic}", a.alterTopic)
	s.HandleFunc("DELETE /v1/topics/{topic}", a.deleteTopic)
	s.HandleFunc("POST /v1/topics/{topic}/partitions", a.addPartitions)
	s.HandleFunc("POST /v1/topics/{topic}/records", a.produce)
	s.HandleFunc("GET /v1/topics/{topic}/partitions/{partition}/records", a.read)
	s.HandleFunc("GET /v1/topics/{topic}/partitions/{partition}/offsets", a.offsetForTime)
}

type streamsAPI struct {
	svc *stream.Service
	srv *Server
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers with the error err maps to, and logs what is the agent's
// fault rather than the client's.
func (a *streamsAPI) fail(w http.ResponseWriter, r *http.Request, err error, write bool) {
	if r.Context().Err() != nil {
		return // the client has gone: nobody to answer
	}
	e := errorFor(err, write)
	if e.Status >= 500 {
		a.srv.log.Warn("HTTP request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
	}
	writeError(w, e)
}

// readBody reads the request body, up to the server's limit.
func (a *streamsAPI) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, a.srv.maxBody))
}

// decodeBody reads a JSON object into v, refusing unknown fields (a typo in
// a field name must not be ignored silently).
func (a *streamsAPI) decodeBody(w http.ResponseWriter, r *http.Request, v any, fields string) error {
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return &fieldError{"", errors.New("the body is empty: send a JSON object")}
	}
	if body[0] != '{' {
		return &fieldError{"", fmt.Errorf("the body must be a JSON object, not %s", jsonKind(body[0]))}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		err = describeJSONError(err, fields)
		if _, ok := errors.AsType[*fieldError](err); !ok {
			err = &fieldError{"", fmt.Errorf("invalid JSON: %w", err)}
		}
		return err
	}
	if dec.More() {
		return &fieldError{"", errors.New("invalid JSON: data after the object")}
	}
	return nil
}

// sync catches up with the log, for answers that must include other
// agents' latest commits.
func (a *streamsAPI) sync(ctx context.Context) error {
	if err := a.svc.Sync(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &unavailableError{err}
	}
	return nil
}

// writeTopic answers with a topic as this agent knows it: after a change it
// committed (its state includes it) or after catching up.
func (a *streamsAPI) writeTopic(w http.ResponseWriter, r *http.Request, status int, name string) {
	ti, err := a.svc.Topic(name)
	if err != nil {
		// Deleted by another agent right after our change.
		a.fail(w, r, err, false)
		return
	}
	writeJSON(w, status, topicFrom(ti))
}

// positive checks an optional retention_bytes or retention_ms: the stream
// package reads 0 as "unset", which a client that sends 0 does not mean.
func positive(field string, v *int64) error {
	if v != nil && (*v == 0 || *v < -1) {
		return fmt.Errorf("%w: %s must be positive or -1 (no limit), got %d", stream.ErrInvalidConfig, field, *v)
	}
	return nil
}

func (a *streamsAPI) createTopic(w http.ResponseWriter, r *http.Request) {
	var req createTopicRequest
	if err := a.decodeBody(w, r, &req, "name, partitions, retention, retention_ms, retention_bytes, configs"); err != nil {
		a.fail(w, r, err, true)
		return
	}
	ms, err := retentionMs(req.Retention, req.RetentionMs)
	if err == nil {
		err = errors.Join(positive("retention_ms", ms), positive("retention_bytes", req.RetentionBytes))
	}
	if err != nil {
		a.fail(w, r, err, true)
		return
	}
	cfg := stream.TopicConfig{Name: req.Name, Partitions: 1}
	if err := authz.CheckCreate(r.Context(), authz.ResTopic, req.Name); err != nil {
		a.fail(w, r, err, true)
		return
	}
	if req.Partitions != nil {
		cfg.Partitions = *req.Partitions
	}
	if ms != nil {
		cfg.RetentionMs = *ms
	}
	if req.RetentionBytes != nil {
		cfg.RetentionBytes = *req.RetentionBytes
	}
	if err := applyConfigs(&cfg, ms != nil, req.RetentionBytes != nil, req.Configs); err != nil {
		a.fail(w, r, err, true)
		return
	}
	if err := a.svc.CreateTopic(r.Context(), cfg); err != nil {
		a.fail(w, r, err, true)
		return
	}
	w.Header().Set("Location", "/v1/topics/"+url.PathEscape(cfg.Name))
	a.writeTopic(w, r, http.StatusCreated, cfg.Name)
}

func (a *streamsAPI) listTopics(w http.ResponseWriter, r *http.Request) {
	if err := a.sync(r.Context()); err != nil {
		a.fail(w, r, err, false)
		return
	}
	out := struct {
		Topics []Topic `json:"topics"`
	}{Topics: []Topic{}}
	for _, ti := range a.svc.Topics() {
		// Only the topics the principal may describe are listed.
		if authz.Allowed(r.Context(), authz.OpDescribe, authz.ResTopic, ti.Name) {
			out.Topics = append(out.Topics, topicFrom(ti))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *streamsAPI) describeTopic(w http.ResponseWriter, r *http.Request) {
	if err := authz.Check(r.Context(), authz.OpDescribe, authz.ResTopic, r.PathValue("topic")); err != nil {
		a.fail(w, r, err, false)
		return
	}
	if err := a.sync(r.Context()); err != nil {
		a.fail(w, r, err, false)
		return
	}
	a.writeTopic(w, r, http.StatusOK, r.PathValue("topic"))
}

func (a *streamsAPI) deleteTopic(w http.ResponseWriter, r *http.Request) {
	if err := authz.Check(r.Context(), authz.OpDelete, authz.ResTopic, r.PathValue("topic")); err != nil {
		a.fail(w, r, err, true)
		return
	}
	if err := a.svc.DeleteTopic(r.Context(), r.PathValue("topic")); err != nil {
		a.fail(w, r, err, true)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *streamsAPI) alterTopic(w http.ResponseWriter, r *http.Request) {
	var req alterTopicRequest
	if err := a.decodeBody(w, r, &req, "retention, retention_ms, retention_bytes, configs"); err != nil {
		a.fail(w, r, err, true)
		return
	}
	ms, err := retentionMs(req.Retention, req.RetentionMs)
	if err == nil && ms == nil && req.RetentionBytes == nil && len(req.Configs) == 0 {
		err = &fieldError{"", errors.New("nothing to change: give retention, retention_ms, retention_bytes or configs")}
	}
	if err == nil {
		err = errors.Join(positive("retention_ms", ms), positive("retention_bytes", req.RetentionBytes))
	}
	if err != nil {
		a.fail(w, r, err, true)
		return
	}
	name := r.PathValue("topic")
	if err := authz.Check(r.Context(), authz.OpAlterConfigs, authz.ResTopic, name); err != nil {
		a.fail(w, r, err, true)
		return
	}
	if len(req.Configs) > 0 {
		err = a.alterConfigs(r.Context(), name, ms, req.RetentionBytes, req.Configs)
	} else {
		err = a.svc.AlterTopic(r.Context(), name, 0, ms, req.RetentionBytes)
	}
	if err != nil {
		a.fail(w, r, err, true)
		return
	}
	a.writeTopic(w, r, http.StatusOK, name)
}

// alterConfigs changes a topic's retention and Kafka configs together.
func (a *streamsAPI) alterConfigs(ctx context.Context, name string, ms, bytes *int64, configs map[string]*string) error {
	if err := a.sync(ctx); err != nil {
		return err
	}
	ti, err := a.svc.Topic(name)
	if err != nil {
		return err
	}
	cfg := ti.TopicConfig
	if ms != nil {
		cfg.RetentionMs = *ms
	}
	if bytes != nil {
		cfg.RetentionBytes = *bytes
	}
	for _, k := range slices.Sorted(maps.Keys(configs)) {
		if (k == "retention.ms" && ms != nil) || (k == "retention.bytes" && bytes != nil) {
			return &fieldError{"configs", fmt.Errorf("%s is given twice: as a field and in configs", k)}
		}
		if err := cfg.Set(k, configs[k]); err != nil {
			return &fieldError{"configs", err}
		}
	}
	return a.svc.SetTopicConfigs(ctx, cfg)
}

// applyConfigs sets a new topic's Kafka configs.
func applyConfigs(cfg *stream.TopicConfig, msSet, bytesSet bool, configs map[string]string) error {
	if cfg.RetentionMs == 0 {
		cfg.RetentionMs = -1
	}
	if cfg.RetentionBytes == 0 {
		cfg.RetentionBytes = -1
	}
	for _, k := range slices.Sorted(maps.Keys(configs)) {
		if (k == "retention.ms" && msSet) || (k == "retention.bytes" && bytesSet) {
			return &fieldError{"configs", fmt.Errorf("%s is given twice: as a field and in configs", k)}
		}
		v := configs[k]
		if err := cfg.Set(k, &v); err != nil {
			return &fieldError{"configs", err}
		}
	}
	return nil
}

func (a *streamsAPI) addPartitions(w http.ResponseWriter, r *http.Request) {
	var req addPartitionsRequest
	if err := a.decodeBody(w, r, &req, "partitions"); err != nil {
		a.fail(w, r, err, true)
		return
	}
	if req.Partitions == nil || *req.Partitions < 1 {
		a.fail(w, r, &fieldError{"partitions", errors.New("give the new partition count, more than the current one")}, true)
		return
	}
	name := r.PathValue("topic")
	if err := authz.Check(r.Context(), authz.OpAlter, authz.ResTopic, name); err != nil {
		a.fail(w, r, err, true)
		return
	}
	if err := a.svc.AlterTopic(r.Context(), name, *req.Partitions, nil, nil); err != nil {
		a.fail(w, r, err, true)
		return
	}
	a.writeTopic(w, r, http.StatusOK, name)
}

// partitions returns the partition count of a topic, catching up with the
// log first when this agent does not know the topic, or knows fewer
// partitions than need: another agent may have just created or grown it.
func (a *streamsAPI) partitions(ctx context.Context, topic string, need int32) (int32, error) {
	n, err := a.svc.Partitions(topic)
	if (err == nil && need < n) || (err != nil && !errors.Is(err, stream.ErrUnknownTopic)) {
		return n, err
	}
	if err := a.sync(ctx); err != nil {
		return 0, err
	}
	return a.svc.Partitions(topic)
}

func (a *streamsAPI) produce(w http.ResponseWriter, r *http.Request) {
	if err := authz.Check(r.Context(), authz.OpWrite, authz.ResTopic, r.PathValue("topic")); err != nil {
		a.fail(w, r, err, true)
		return
	}
	body, err := a.readBody(w, r)
	if err != nil {
		a.fail(w, r, err, true)
		return
	}
	recs, err := parseProduceBody(body)
	if err != nil {
		a.fail(w, r, err, true)
		return
	}
	topic := r.PathValue("topic")
	need := int32(0)
	for _, rec := range recs {
		if rec.Partition != nil {
			need = max(need, *rec.Partition)
		}
	}
	n, err := a.partitions(r.Context(), topic, need)
	if err != nil {
		a.fail(w, r, err, true)
		return
	}

	// One batch per partition, records in request order within it, all in
	// one Produce: one commit.
	type place struct{ batch, index int }
	places := make([]place, len(recs))
	batchOf := map[int32]int{}
	var batches []stream.Batch
	for i, rec := range recs {
		var p int32
		if rec.Partition != nil {
			p = *rec.Partition
		} else {
			p = a.svc.PickPartition(rec.Key, n)
		}
		bi, ok := batchOf[p]
		if !ok {
			bi = len(batches)
			batchOf[p] = bi
			batches = append(batches, stream.Batch{Partition: p})
		}
		places[i] = place{bi, len(batches[bi].Records)}
		batches[bi].Records = append(batches[bi].Records, records.Record{
			Timestamp: rec.Timestamp, Key: rec.Key, Value: rec.Value, Headers: rec.Headers,
		})
	}
	bases, errs, err := a.svc.Produce(r.Context(), topic, batches)
	if err != nil {
		a.fail(w, r, err, true)
		return
	}
	out := make([]ProduceOffset, len(recs))
	var first *Error
	failed := 0
	for i, pl := range places {
		out[i].Partition = batches[pl.batch].Partition
		if err := errs[pl.batch]; err != nil {
			e := errorFor(err, true)
			if first == nil {
				first = e
			}
			failed++
			out[i].Offset, out[i].Error, out[i].Code = -1, e.Message, e.Code
			continue
		}
		out[i].Offset = bases[pl.batch] + int64(pl.index)
	}
	if first != nil {
		first.Message = fmt.Sprintf("%d of %d records were not appended (the others were): %s", failed, len(recs), first.Message)
		first.Offsets = out
		a.fail(w, r, first, true)
		return
	}
	writeJSON(w, http.StatusOK, produceResponse{Offsets: out})
}

// readParams are the query parameters of a read.
type readParams struct {
	partition int32
	offset    int64 // or OffsetEarliest, OffsetLatest
	max       int
	wait      time.Duration
	committed bool // isolation=read_committed
}

func parseReadParams(r *http.Request) (readParams, error) {
	rp := readParams{offset: OffsetEarliest, max: DefaultReadMax}
	p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	if err != nil || p < 0 {
		return rp, &fieldError{"partition", fmt.Errorf("%q is not a partition number", r.PathValue("partition"))}
	}
	rp.partition = int32(p)
	for name, vs := range r.URL.Query() {
		v := vs[len(vs)-1]
		switch name {
		case "offset":
			switch v {
			case "earliest", "":
				rp.offset = OffsetEarliest
			case "latest":
				rp.offset = OffsetLatest
			default:
				o, err := strconv.ParseInt(v, 10, 64)
				if err != nil || o < 0 {
					return rp, &fieldError{"offset", fmt.Errorf("%q is not an offset: use a number from 0, earliest or latest", v)}
				}
				rp.offset = o
			}
		case "max":
			m, err := strconv.Atoi(v)
			if err != nil || m < 1 {
				return rp, &fieldError{"max", fmt.Errorf("%q is not a record count: use a number from 1 (at most %d are returned)", v, MaxReadMax)}
			}
			rp.max = min(m, MaxReadMax)
		case "wait":
			d, err := parseWait(v)
			if err != nil {
				return rp, &fieldError{"wait", err}
			}
			rp.wait = min(d, MaxWait)
		case "isolation":
			switch v {
			case "read_uncommitted", "":
				rp.committed = false
			case "read_committed":
				rp.committed = true
			default:
				return rp, &fieldError{"isolation", fmt.Errorf("%q is not an isolation level: use read_uncommitted (the default) or read_committed", v)}
			}
		default:
			return rp, &fieldError{name, errors.New("unknown query parameter (the parameters are offset, max, wait, isolation)")}
		}
	}
	return rp, nil
}

// parseWait reads a duration (5s, 500ms) or a number of milliseconds.
func parseWait(v string) (time.Duration, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
		return time.Duration(min(ms, int64(MaxWait/time.Millisecond))) * time.Millisecond, nil
	}
	return ParseDuration(v)
}

func (a *streamsAPI) read(w http.ResponseWriter, r *http.Request) {
	if err := authz.Check(r.Context(), authz.OpRead, authz.ResTopic, r.PathValue("topic")); err != nil {
		a.fail(w, r, err, false)
		return
	}
	rp, err := parseReadParams(r)
	if err != nil {
		a.fail(w, r, err, false)
		return
	}
	topic := r.PathValue("topic")

	// A long poll ends early, with what there is, when the server shuts
	// down.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.srv.stopping, cancel)()

	synced := false
	offset := rp.offset
	switch offset {
	case OffsetEarliest:
		offset = 0 // the log start, or an error that says where it is
	case OffsetLatest:
		offset = math.MaxInt64 // an error that says where the end is
		if rp.committed {
			// As Kafka's read_committed consumers: latest is the last
			// stable offset, so an open transaction's records are read
			// once it commits.
			if v, err := a.svc.TxnView(topic, rp.partition, 0, 0); err == nil {
				offset = v.LastStable
			}
		}
	}
	for attempt := 0; ; attempt++ {
		res, err := a.svc.ReadRecords(ctx, topic, rp.partition, offset, stream.ReadOptions{Max: rp.max, Wait: rp.wait, Committed: rp.committed})
		oor, isOOR := errors.AsType[*stream.OffsetOutOfRangeError](err)
		switch {
		case err == nil:
			out := readResponse{Records: make([]Record, len(res.Records)), NextOffset: res.Next,
				HighWatermark: res.HighWatermark, LastStableOffset: res.LastStable, LogStartOffset: res.LogStart}
			for i, rec := range res.Records {
				out.Records[i] = NewRecord(rp.partition, rec)
			}
			writeJSON(w, http.StatusOK, out)
			return
		case attempt > 3:
			// Retention moving the start as fast as we look: give up.
		case isOOR && rp.offset == OffsetEarliest:
			offset = oor.Start
			continue
		case isOOR && rp.offset == OffsetLatest:
			offset = oor.End
			continue
		case !synced && (isOOR && offset > oor.End || errors.Is(err, stream.ErrUnknownTopic) || errors.Is(err, stream.ErrUnknownPartition)):
			// Another agent may know more: offsets this agent has not
			// seen yet, a new topic or partition.
			synced = true
			if err = a.sync(r.Context()); err == nil {
				continue
			}
		case errors.Is(err, context.Canceled) && r.Context().Err() == nil:
			// Shutting down: answer with what is there now.
			ctx, rp.wait = r.Context(), 0
			continue
		}
		a.fail(w, r, err, false)
		return
	}
}
