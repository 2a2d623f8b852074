package functions

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
	"github.com/twoway/twoway/internal/wasm"
)

// actorView is an actor's state as a batch sees it: the committed value
// and version it read, and what its invocations wrote.
type actorView struct {
	value  []byte
	exists bool
	ver    uint64
	dirty  bool
}

// pub is a record an invocation published.
type pub struct {
	topic      string
	key, value []byte
	headers    []records.Header
}

// batch gathers the effects of invocations committed together: one
// actor's turns, or a run of a subscription's records.
type batch struct {
	m      *Module
	d      *Deployment
	input  *inputRange
	actors map[string]*actorView
	order  []string
	fired  []fired
	timers []timerOp
	pubs   []pub
}

func (m *Module) newBatch(d *Deployment) *batch {
	return &batch{m: m, d: d, actors: map[string]*actorView{}}
}

// actor returns key's view, reading its committed state the first time.
func (b *batch) actor(ctx context.Context, key string) (*actorView, error) {
	if a := b.actors[key]; a != nil {
		return a, nil
	}
	v, ok, ver, err := b.m.readState(ctx, b.d.Name, key)
	if err != nil {
		return nil, err
	}
	a := &actorView{value: v, exists: ok, ver: ver}
	b.actors[key] = a
	b.order = append(b.order, key)
	return a, nil
}

// readState reads an actor's committed state.
func (m *Module) readState(ctx context.Context, fn, key string) ([]byte, bool, uint64, error) {
	var ref commitlog.Ref
	var ver uint64
	var ok bool
	m.log.View(m.st, func() {
		v, found := m.st.actors.Get(actorKey(fn, key))
		ref, ver, ok = v.Ref, v.Ver, found
	})
	if !ok {
		return nil, false, 0, nil
	}
	// State written by a recent commit is often still in the log's memory
	// (inline data of its newest commits): no bucket read.
	if data, ok := m.log.RecentBlob(ref); ok && commitlog.VerifyBlob(ref, data) == nil {
		return data, true, ver, nil
	}
	data, err := m.reader.Read(ctx, ref)
	if err != nil {
		return nil, false, 0, fmt.Errorf("read the state of %s actor %q: %w", fn, key, err)
	}
	return data, true, ver, nil
}

// ActorState reads an actor's committed state and its version.
func (m *Module) ActorState(ctx context.Context, fn, key string) ([]byte, bool, uint64, error) {
	return m.readState(ctx, fn, key)
}

// invocation is one call's view and effects; it serves the guest's
// imports (wasm.Host).
type invocation struct {
	ctx    context.Context
	b      *batch
	d      *Deployment
	key    string
	keyed  bool
	id     string
	logger *slog.Logger

	a       *actorView // nil when unkeyed
	value   []byte
	exists  bool
	dirty   bool
	timers  []timerOp
	pubs    []pub
	effects int
}

// begin starts an invocation on b for actor key (keyed) or none.
func (b *batch) begin(ctx context.Context, key string, keyed bool, id string) (*invocation, error) {
	inv := &invocation{ctx: ctx, b: b, d: b.d, key: key, keyed: keyed, id: id}
	args := []any{"function", b.d.Name, "version", b.d.Version, "invocation", id}
	if keyed {
		args = append(args, "key", key)
	}
	inv.logger = lazyWith(b.m.logger, args...)
	if keyed {
		a, err := b.actor(ctx, key)
		if err != nil {
			return nil, err
		}
		inv.a, inv.value, inv.exists = a, a.value, a.exists
	}
	return inv, nil
}

// merge keeps a successful invocation's effects in the batch.
func (b *batch) merge(inv *invocation) {
	if inv.a != nil && inv.dirty {
		inv.a.value, inv.a.exists, inv.a.dirty = inv.value, inv.exists, true
	}
	b.timers = append(b.timers, inv.timers...)
	b.pubs = append(b.pubs, inv.pubs...)
}

func (b *batch) empty() bool {
	if b.input != nil || len(b.fired) > 0 || len(b.timers) > 0 || len(b.pubs) > 0 {
		return false
	}
	for _, a := range b.actors {
		if a.dirty {
			return false
		}
	}
	return true
}

// deadLetter adds r to the function's dead-letter topic with why.
func (b *batch) deadLetter(r *Record, why string) {
	b.pubs = append(b.pubs, pub{topic: DLQTopic(b.d.Name), key: r.Key, value: r.Value, headers: []records.Header{
		{Key: "twoway.error", Value: []byte(why)},
		{Key: "twoway.function", Value: []byte(b.d.Name)},
		{Key: "twoway.version", Value: []byte(strconv.Itoa(b.d.Version))},
		{Key: "twoway.topic", Value: []byte(r.Topic)},
		{Key: "twoway.partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
		{Key: "twoway.offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
	}})
}

// entries builds the all-or-none group that commits b.
func (b *batch) entries() ([]commitlog.Entry, error) {
	ef := effects{Fn: b.d.Name, Input: b.input, Fired: b.fired, Timers: b.timers}
	var blob []byte
	for _, k := range b.order {
		a := b.actors[k]
		ef.Bases = append(ef.Bases, keyBase{Key: k, Ver: a.ver})
		if !a.dirty {
			continue
		}
		if !a.exists {
			ef.Writes = append(ef.Writes, write{Key: k, Del: true})
			continue
		}
		ef.Writes = append(ef.Writes, write{Key: k, Off: int64(len(blob)), Len: int64(len(a.value)), CRC: commitlog.CRC(a.value)})
		blob = append(blob, a.value...)
	}
	data, err := json.Marshal(ef)
	if err != nil {
		return nil, err
	}
	group := []commitlog.Entry{{Type: TypeEffects, Data: data, Blob: blob}}
	// Published records, by topic and partition, in publishing order.
	byTopic := map[string]map[int32][]records.Record{}
	var topics []string
	now := time.Now().UnixMilli()
	for _, p := range b.pubs {
		n, err := b.m.streams.Partitions(p.topic)
		if err != nil {
			return nil, fmt.Errorf("publish to %s: %w", p.topic, err)
		}
		part := b.m.streams.PickPartition(p.key, n)
		if byTopic[p.topic] == nil {
			byTopic[p.topic] = map[int32][]records.Record{}
			topics = append(topics, p.topic)
		}
		byTopic[p.topic][part] = append(byTopic[p.topic][part], records.Record{Timestamp: now, Key: p.key, Value: p.value, Headers: p.headers})
	}
	for _, t := range topics {
		var parts []int32
		for p := range byTopic[t] {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		var batches []stream.Batch
		for _, p := range parts {
			batches = append(batches, stream.Batch{Partition: p, Records: byTopic[t][p]})
		}
		es, err := b.m.streams.ProduceEntries(t, batches)
		if err != nil {
			return nil, fmt.Errorf("publish to %s: %w", t, err)
		}
		group = append(group, es...)
	}
	return commitlog.All(group...), nil
}

// commit commits b. ErrConflict means nothing was applied and the
// invocations may run again; commitlog.ErrOutcomeUnknown that they may
// or may not have been.
func (m *Module) commit(ctx context.Context, b *batch) error {
	if b.empty() {
		return nil
	}
	entries, err := b.entries()
	if err != nil {
		return err
	}
	res, err := m.propose(ctx, entries...)
	if err != nil {
		return err
	}
	if err, ok := res[1].(error); ok {
		return err
	}
	for _, r := range res[2:] {
		if err, ok := r.(error); ok {
			// Validated before proposing: only a concurrent change (the
			// topic deleted) gets here.
			m.logger.Warn("a published record was refused", "function", b.d.Name, "err", err)
		}
	}
	return nil
}

// run calls the guest with event for inv, within the deployment's limits.
func (m *Module) run(ctx context.Context, l *loaded, inv *invocation, trigger string, event []byte) (Response, error) {
	sem := m.sem(&l.d)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
	defer func() { <-sem }()
	start := time.Now()
	out, err := l.mod.Invoke(ctx, inv, event)
	m.met.invocations.WithLabelValues(l.d.Name, trigger).Inc()
	m.met.duration.WithLabelValues(l.d.Name).Observe(time.Since(start).Seconds())
	if err != nil {
		m.met.errors.WithLabelValues(l.d.Name, errorKind(err)).Inc()
		inv.logger.Warn("invocation failed", "err", err)
		return Response{}, fmt.Errorf("%w: %w", ErrInvocation, err)
	}
	if len(out) > l.d.Limits.MaxOutput {
		m.met.errors.WithLabelValues(l.d.Name, "limit").Inc()
		return Response{}, fmt.Errorf("%w: function %s: its output of %d bytes is over the limit of %d bytes (max_output_bytes)", ErrInvocation, l.d.Name, len(out), l.d.Limits.MaxOutput)
	}
	resp, err := DecodeResponse(out)
	if err != nil {
		m.met.errors.WithLabelValues(l.d.Name, "output").Inc()
		return Response{}, fmt.Errorf("%w: function %s: %w", ErrInvocation, l.d.Name, err)
	}
	if !resp.OK() {
		m.met.errors.WithLabelValues(l.d.Name, "status").Inc()
	}
	return resp, nil
}

func errorKind(err error) string {
	var oob *wasm.OutOfBoundsError
	s := err.Error()
	switch {
	case errors.As(err, &oob):
		return "bad_pointer"
	case bytes.Contains([]byte(s), []byte("time limit")):
		return "timeout"
	case bytes.Contains([]byte(s), []byte("out of memory")), bytes.Contains([]byte(s), []byte("memory limit")):
		return "memory"
	default:
		return "trap"
	}
}

// ---- the imports ----

func (inv *invocation) granted(g string) bool { return hasGrant(inv.d.Grants, g) }

func (inv *invocation) Log(level int32, msg string) {
	if !inv.granted("log") {
		return
	}
	lv := slog.LevelInfo
	switch level {
	case wasm.LevelDebug:
		lv = slog.LevelDebug
	case wasm.LevelWarn:
		lv = slog.LevelWarn
	case wasm.LevelError:
		lv = slog.LevelError
	}
	inv.logger.Log(inv.ctx, lv, msg, "source", "guest")
}

func (inv *invocation) StateGet(key string, own bool) ([]byte, int32) {
	if !inv.granted("state") {
		return nil, wasm.ErrDenied
	}
	if own {
		if !inv.keyed {
			return nil, wasm.ErrNoActor
		}
		if !inv.exists {
			return nil, wasm.ErrNotFound
		}
		return inv.value, 0
	}
	if inv.keyed && key == inv.key {
		return inv.StateGet("", true)
	}
	v, ok, _, err := inv.b.m.readState(inv.ctx, inv.d.Name, key)
	if err != nil {
		inv.logger.Warn("state_get failed", "of", key, "err", err)
		return nil, wasm.ErrFailed
	}
	if !ok {
		return nil, wasm.ErrNotFound
	}
	return v, 0
}

func (inv *invocation) StateSet(v []byte) int32 {
	switch {
	case !inv.granted("state"):
		return wasm.ErrDenied
	case !inv.keyed:
		return wasm.ErrNoActor
	case len(v) > inv.d.Limits.MaxState:
		inv.logger.Warn("state_set over the limit", "bytes", len(v), "limit", inv.d.Limits.MaxState)
		return wasm.ErrTooLarge
	}
	inv.value, inv.exists, inv.dirty = v, true, true
	return 0
}

func (inv *invocation) StateDelete() int32 {
	switch {
	case !inv.granted("state"):
		return wasm.ErrDenied
	case !inv.keyed:
		return wasm.ErrNoActor
	}
	inv.value, inv.exists, inv.dirty = nil, false, true
	return 0
}

func (inv *invocation) effect() bool {
	inv.effects++
	if inv.effects > inv.d.Limits.MaxEffects {
		inv.logger.Warn("too many effects in one invocation", "limit", inv.d.Limits.MaxEffects)
		return false
	}
	return true
}

func (inv *invocation) Publish(topic string, key, value []byte) int32 {
	if !inv.granted("publish:" + topic) {
		return wasm.ErrDenied
	}
	if _, err := inv.b.m.streams.Partitions(topic); err != nil {
		return wasm.ErrNotFound
	}
	if len(key)+len(value) > inv.d.Limits.MaxRecord {
		inv.logger.Warn("publish over the record limit", "topic", topic, "bytes", len(key)+len(value), "limit", inv.d.Limits.MaxRecord)
		return wasm.ErrTooLarge
	}
	if !inv.effect() {
		return wasm.ErrTooLarge
	}
	inv.pubs = append(inv.pubs, pub{topic: topic, key: key, value: value})
	return 0
}

// maxTimerPayload bounds a timer's payload (timers live in the state).
const maxTimerPayload = 4 << 10

func (inv *invocation) TimerSet(name string, atMs int64, payload []byte) int32 {
	switch {
	case !inv.granted("timers"):
		return wasm.ErrDenied
	case !inv.keyed:
		return wasm.ErrNoActor
	case len(payload) > maxTimerPayload:
		return wasm.ErrTooLarge
	case !inv.effect():
		return wasm.ErrTooLarge
	}
	inv.timers = append(inv.timers, timerOp{Key: inv.key, Name: name, AtMs: atMs, Payload: payload})
	return 0
}

func (inv *invocation) TimerCancel(name string) int32 {
	switch {
	case !inv.granted("timers"):
		return wasm.ErrDenied
	case !inv.keyed:
		return wasm.ErrNoActor
	case !inv.effect():
		return wasm.ErrTooLarge
	}
	set := false
	for _, t := range append(slices.Clone(inv.b.timers), inv.timers...) {
		if t.Key == inv.key && t.Name == name {
			set = !t.Cancel
		}
	}
	if !set {
		inv.b.m.log.View(inv.b.m.st, func() {
			if f := inv.b.m.st.fns[inv.d.Name]; f != nil {
				_, set = f.Timers.get(inv.key, name)
			}
		})
	}
	inv.timers = append(inv.timers, timerOp{Key: inv.key, Name: name, Cancel: true})
	if !set {
		return wasm.ErrNotFound
	}
	return 0
}

func (inv *invocation) ConfigGet(name string) ([]byte, int32) {
	if !inv.granted("config") {
		return nil, wasm.ErrDenied
	}
	v, ok := inv.d.Config[name]
	if !ok {
		return nil, wasm.ErrNotFound
	}
	return []byte(v), 0
}

func (inv *invocation) MetricAdd(name string, delta float64) int32 {
	if !inv.granted("metrics") {
		return wasm.ErrDenied
	}
	if !validMetricName(name) || delta < 0 {
		return wasm.ErrInvalid
	}
	inv.b.m.met.guestCounter.WithLabelValues(inv.d.Name, name).Add(delta)
	return 0
}

func (inv *invocation) MetricSet(name string, v float64) int32 {
	if !inv.granted("metrics") {
		return wasm.ErrDenied
	}
	if !validMetricName(name) {
		return wasm.ErrInvalid
	}
	inv.b.m.met.guestGauge.WithLabelValues(inv.d.Name, name).Set(v)
	return 0
}

func validMetricName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i, c := range n {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// fetchClient sends outbound requests.
var fetchClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (inv *invocation) HTTPFetch(raw []byte) ([]byte, int32) {
	req, err := DecodeFetchRequest(raw)
	if err != nil {
		return nil, wasm.ErrInvalid
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, wasm.ErrInvalid
	}
	if !inv.granted("http:"+u.Hostname()) && !inv.granted("http:"+u.Host) {
		return nil, wasm.ErrDenied
	}
	hr, err := http.NewRequestWithContext(inv.ctx, req.Method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return nil, wasm.ErrInvalid
	}
	for _, h := range req.Headers {
		hr.Header.Add(h[0], h[1])
	}
	// At least once: a retried invocation sends the same key.
	if hr.Header.Get("Idempotency-Key") == "" {
		hr.Header.Set("Idempotency-Key", inv.id)
	}
	resp, err := fetchClient.Do(hr)
	if err != nil {
		inv.logger.Warn("http_fetch failed", "url", u.Redacted(), "err", err)
		return nil, wasm.ErrFailed
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(inv.d.Limits.MaxOutput)+1))
	if err != nil {
		return nil, wasm.ErrFailed
	}
	if len(body) > inv.d.Limits.MaxOutput {
		return nil, wasm.ErrTooLarge
	}
	out := Response{Status: resp.StatusCode, Body: body}
	var names []string
	for k := range resp.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range resp.Header[k] {
			out.Headers = append(out.Headers, [2]string{k, v})
		}
	}
	return encodeResponse(&out), 0
}

// maxReadRecords bounds the records of one read; their bytes are bounded
// by the output limit.
const maxReadRecords = 1000

// Read serves twoway_v1.read: committed records of a partition, not
// guarded (a read sees what is committed when it runs).
func (inv *invocation) Read(topic string, partition int32, offset int64, max int32) ([]byte, int32) {
	if !inv.granted("read:" + topic) {
		return nil, wasm.ErrDenied
	}
	if max <= 0 || partition < 0 || offset < 0 {
		return nil, wasm.ErrInvalid
	}
	recs, res, err := inv.b.m.streams.Read(inv.ctx, topic, partition, offset, min(int(max), maxReadRecords), 0)
	var oor *stream.OffsetOutOfRangeError
	switch {
	case errors.Is(err, stream.ErrUnknownTopic), errors.Is(err, stream.ErrUnknownPartition):
		return nil, wasm.ErrNotFound
	case errors.As(err, &oor):
		return nil, wasm.ErrInvalid
	case err != nil:
		inv.logger.Warn("read failed", "topic", topic, "partition", partition, "offset", offset, "err", err)
		return nil, wasm.ErrFailed
	}
	e := &enc{}
	e.i64(res.LogStart)
	e.i64(res.HighWatermark)
	countAt := len(e.b)
	e.u32(0)
	n := 0
	for _, r := range recs {
		before := len(e.b)
		e.i64(r.Offset)
		e.i64(r.Timestamp)
		e.nullable(r.Key)
		e.nullable(r.Value)
		e.u32(uint32(len(r.Headers)))
		for _, h := range r.Headers {
			e.str(h.Key)
			e.bytes(h.Value)
		}
		if len(e.b) > inv.d.Limits.MaxOutput {
			if n == 0 {
				return nil, wasm.ErrTooLarge
			}
			e.b = e.b[:before]
			break
		}
		n++
	}
	binary.LittleEndian.PutUint32(e.b[countAt:], uint32(n))
	return e.b, 0
}
