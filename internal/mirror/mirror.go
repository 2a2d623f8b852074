// Package mirror replicates topics from one deployment to another, exactly
// once, reading the source's bucket directly (no agent needs to run on the
// source side) and committing into the destination's log.
//
// Each commit a mirror makes on the destination is one all-or-none group
// (commitlog.All): a TypePosition guard holding, for every source
// partition it covers, the position the commit was built on and the one it
// moves to, then the produce entries (type 104) of the records read between
// them. The guard applies only if every position is unchanged, so the
// records and the position land together or not at all, and a commit built
// on a stale position (a mirror killed and restarted, two mirrors at once,
// a retry after an unknown outcome) is refused whole. The positions are
// read back from the destination's applied state before every round: the
// destination's log is the only truth about how far a mirror has come.
//
// Each mirrored record keeps its key, value, headers and timestamp, lands
// in the same partition number, and gains two headers: HeaderSource
// ("topic/partition/offset" of the source record) and HeaderOrigin (the
// source's name).
package mirror

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// The headers a mirrored record gains.
const (
	// HeaderSource is "topic/partition/offset" of the source record.
	HeaderSource = "twoway.mirror.source"
	// HeaderOrigin is the source's name (Config.Source).
	HeaderOrigin = "twoway.mirror.origin"
)

// PositionFeature is the feature that enables TypePosition.
const PositionFeature = "type:700"

// Config describes a mirror. Zero values take the defaults noted.
type Config struct {
	// Source names the source deployment in the destination's positions:
	// keep it when the source moves; two mirrors with the same Source and
	// destination never copy a record twice.
	Source string
	// Topics selects the source topics, new ones included.
	Topics Pattern
	// From is the source's streams (an embedded agent on the source
	// bucket); To the destination's, whose log gets the commits; ToMirror
	// the destination's mirror module (the positions).
	From     *stream.Service
	To       *stream.Service
	ToMirror *Module
	// Rate limits the record bytes read from the source, per second
	// (0: no limit).
	Rate int64
	// MaxBytes bounds the record bytes of one commit. Default 4 MiB.
	MaxBytes int
	// Depth is how many commits may be in flight at once, each built on
	// the positions of the one before. Default 4.
	Depth int
	// Poll is how often the source is looked at when it has not said it
	// changed (an agent in another process wrote it). Default 1s.
	Poll time.Duration
	// Label names the destination in status and logs (its bucket).
	Label  string
	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.Source == "" {
		return errors.New("mirror: no source name")
	}
	if c.From == nil || c.To == nil || c.ToMirror == nil {
		return errors.New("mirror: source and destination are required")
	}
	if len(c.Topics.globs) == 0 && len(c.Topics.res) == 0 {
		return errors.New("mirror: no topics pattern")
	}
	if c.Rate < 0 {
		return fmt.Errorf("mirror: negative rate %d", c.Rate)
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 4 << 20
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Depth <= 0 {
		c.Depth = 8
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats are a mirror's counters since it started.
type Stats struct {
	Records   atomic.Int64 // records committed to the destination
	Bytes     atomic.Int64 // their keys, values and headers, as stored (with their lengths)
	Commits   atomic.Int64 // commits that applied
	Conflicts atomic.Int64 // commits refused by the guard (another mirror, or a retry, moved a position)
	Skipped   atomic.Int64 // source records gone (retention) before they were mirrored
	Errors    atomic.Int64 // rounds that failed (destination or source unreachable, ...)
}

// Mirror copies the matching topics until its context ends.
type Mirror struct {
	cfg   Config
	Stats Stats
	lim   *limiter

	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
	connected bool
	oldest    time.Time    // submission of the oldest commit in flight
	warned    map[tp]int64 // the position a "behind" warning was given for
}

// New checks cfg and makes a mirror; Run runs it.
func New(cfg Config) (*Mirror, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	m := &Mirror{cfg: cfg, warned: map[tp]int64{}}
	if cfg.Rate > 0 {
		m.lim = newLimiter(cfg.Rate)
	}
	return m, nil
}

// Run mirrors until ctx ends. Errors of the source or the destination
// (unreachable, refused) are retried with backoff for as long as it runs;
// Run returns only ctx's error.
func (m *Mirror) Run(ctx context.Context) error {
	log := m.cfg.Logger
	log.Info("mirroring", "source", m.cfg.Source, "topics", m.cfg.Topics.String(), "to", m.cfg.Label, "rate", m.cfg.Rate)
	failures := 0
	for ctx.Err() == nil {
		changed := m.cfg.From.Log().Changed()
		did, err := m.round(ctx)
		if errors.Is(err, errConflictRound) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			m.Stats.Errors.Add(1)
			m.noteErr(err, failures)
			sleep(ctx, backoff(failures))
			continue
		}
		if failures > 0 {
			log.Info("mirror reaches the destination again", "source", m.cfg.Source, "after_failures", failures)
			failures = 0
		}
		m.setConnected(true)
		if did {
			continue
		}
		t := time.NewTimer(m.cfg.Poll)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
	return ctx.Err()
}

func (m *Mirror) noteErr(err error, failures int) {
	m.mu.Lock()
	m.lastErr, m.lastErrAt, m.connected = err, time.Now(), false
	m.mu.Unlock()
	// The first failure, then one in 20: a link down for hours logs a
	// line every few minutes, not every few seconds.
	if failures == 1 || failures%20 == 0 {
		m.cfg.Logger.Warn("mirror round failed; retrying", "source", m.cfg.Source, "to", m.cfg.Label, "failures", failures, "err", err)
	}
}

func (m *Mirror) setConnected(ok bool) {
	m.mu.Lock()
	m.connected = ok
	m.mu.Unlock()
}

func backoff(failures int) time.Duration {
	d := 100 * time.Millisecond << min(failures-1, 7)
	return min(d, 10*time.Second)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// enable makes sure the destination takes TypePosition and groups.
func (m *Mirror) enable(ctx context.Context) error {
	l := m.cfg.To.Log()
	for _, f := range []string{PositionFeature, commitlog.AllFeature} {
		if l.Enabled(f) {
			continue
		}
		if err := l.EnableFeatures(ctx); err != nil {
			return fmt.Errorf("enable mirroring on the destination: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := l.WaitEnabled(wctx, f)
		cancel()
		if err != nil {
			return fmt.Errorf("mirroring is not enabled on the destination yet (every agent there must run a version that has it): %w", err)
		}
	}
	return nil
}

// topics lists the matching source topics.
func (m *Mirror) topics() []stream.TopicInfo {
	var out []stream.TopicInfo
	for _, t := range m.cfg.From.Topics() {
		if m.cfg.Topics.Match(t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// ensureTopic creates the destination topic with the source's partition
// count, or grows it to that count.
func (m *Mirror) ensureTopic(ctx context.Context, src stream.TopicInfo) error {
	to := m.cfg.To
	for attempt := 0; ; attempt++ {
		n, err := to.Partitions(src.Name)
		switch {
		case err == nil && n >= src.Partitions:
			return nil
		case err == nil:
			err = to.AlterTopic(ctx, src.Name, src.Partitions, nil, nil)
			if err == nil {
				m.cfg.Logger.Info("mirror grew a destination topic", "topic", src.Name, "partitions", src.Partitions)
			}
		case errors.Is(err, stream.ErrUnknownTopic):
			err = to.CreateTopic(ctx, stream.TopicConfig{Name: src.Name, Partitions: src.Partitions})
			if err == nil {
				m.cfg.Logger.Info("mirror created a destination topic", "topic", src.Name, "partitions", src.Partitions)
			}
		}
		if err == nil {
			continue
		}
		if attempt > 2 {
			return fmt.Errorf("destination topic %s: %w", src.Name, err)
		}
		// Another mirror (or agent) changed it meanwhile: look again.
		if err := to.Sync(ctx); err != nil {
			return err
		}
	}
}

// pending is a commit submitted to the destination, not yet known.
type pending struct {
	wait        func(context.Context) (uint64, []any, error)
	at          time.Time // submitted
	recs, bytes int64
	parts       []partAdvance
}

// round submits commits, up to Config.Depth in flight, each built on the
// positions the previous ones move to, and reports whether there was
// anything to do. A commit that fails, or that the guard refuses, makes
// every later one fail the guard too (they were built on it), so the
// positions are then read again from the destination's state.
func (m *Mirror) round(ctx context.Context) (bool, error) {
	if err := m.enable(ctx); err != nil {
		return false, err
	}
	topics := m.topics()
	for _, t := range topics {
		if err := m.ensureTopic(ctx, t); err != nil {
			return false, err
		}
	}
	positions := m.cfg.ToMirror.positionsOf(m.cfg.Source)
	var inflight []*pending
	did := false
	var firstErr error
	settle := func(p *pending) {
		err := m.settle(ctx, p)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	defer func() {
		for _, p := range inflight {
			settle(p)
		}
		m.setOldest(nil)
	}()
	for firstErr == nil && ctx.Err() == nil {
		p, err := m.build(ctx, topics, positions)
		if err != nil {
			return did, err
		}
		if p == nil {
			break
		}
		did = true
		for _, a := range p.parts {
			pos := positions[tp{a.Topic, a.P}]
			pos.Next = a.To
			positions[tp{a.Topic, a.P}] = pos
		}
		inflight = append(inflight, p)
		m.setOldest(inflight)
		if len(inflight) >= m.cfg.Depth {
			settle(inflight[0])
			inflight = inflight[1:]
			m.setOldest(inflight)
		}
	}
	for len(inflight) > 0 {
		settle(inflight[0])
		inflight = inflight[1:]
		m.setOldest(inflight)
	}
	return did, firstErr
}

// setOldest notes when the oldest commit in flight was submitted.
func (m *Mirror) setOldest(inflight []*pending) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(inflight) == 0 {
		m.oldest = time.Time{}
		return
	}
	m.oldest = inflight[0].at
}

// settle waits for a submitted commit and counts what it did; the error is
// nil only when it applied.
func (m *Mirror) settle(ctx context.Context, p *pending) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, res, err := p.wait(wctx)
	if err != nil {
		// Not committed, or not known: the next round reads the positions
		// the destination holds, which say which.
		if errors.Is(err, commitlog.ErrOutcomeUnknown) {
			_ = m.cfg.To.Sync(ctx)
		}
		return fmt.Errorf("commit to the destination: %w", err)
	}
	if gerr, ok := res[1].(error); ok {
		if errors.Is(gerr, ErrConflict) {
			m.Stats.Conflicts.Add(1)
			m.cfg.Logger.Debug("mirror position moved under this mirror (another mirror, or an earlier attempt, committed); reading it again", "source", m.cfg.Source, "err", gerr)
			return errConflictRound
		}
		return fmt.Errorf("the destination refused the mirror's commit: %w", gerr)
	}
	for i, r := range res[2:] {
		if err, ok := r.(error); ok {
			// Only a concurrent change of the destination topic (deleted)
			// makes an entry validated just now fail alone.
			m.Stats.Errors.Add(1)
			m.cfg.Logger.Error("mirrored records refused by the destination after their position committed", "entry", i, "err", err)
		}
	}
	m.Stats.Commits.Add(1)
	m.Stats.Records.Add(p.recs)
	m.Stats.Bytes.Add(p.bytes)
	return nil
}

// errConflictRound ends a round whose commit the guard refused: not a
// failure, the next round reads the positions again.
var errConflictRound = errors.New("mirror position changed")

// build reads what follows positions and submits it as one commit; nil
// when there is nothing to mirror.
func (m *Mirror) build(ctx context.Context, topics []stream.TopicInfo, positions map[tp]Position) (*pending, error) {
	budget := m.cfg.MaxBytes
	if m.lim != nil {
		// Commits of about a quarter second's worth, so a low rate is
		// smooth rather than one large commit now and then.
		budget = int(min(int64(budget), max(m.cfg.Rate/4, 16<<10)))
	}
	var parts []partAdvance
	batches := map[string][]stream.Batch{}
	var order []string
	var recCount, byteCount int64
	for _, t := range topics {
		for p := range t.Partitions {
			if budget <= 0 {
				break
			}
			adv, raw, n, err := m.read(ctx, t.Name, p, positions, budget)
			if err != nil {
				return nil, err
			}
			if adv == nil {
				continue
			}
			parts = append(parts, *adv)
			if raw != nil {
				if batches[t.Name] == nil {
					order = append(order, t.Name)
				}
				batches[t.Name] = append(batches[t.Name], stream.Batch{Partition: p, Raw: raw})
				recCount += int64(binary.BigEndian.Uint32(raw[57:]))
			}
			byteCount += int64(n)
			budget -= n
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	group := make([]commitlog.Entry, 0, 1+len(parts))
	guard, err := positionGuard(m.cfg.Source, parts)
	if err != nil {
		return nil, err
	}
	group = append(group, guard)
	for _, name := range order {
		es, err := m.cfg.To.ProduceEntries(name, batches[name])
		if err != nil {
			return nil, fmt.Errorf("destination topic %s: %w", name, err)
		}
		group = append(group, es...)
	}
	if m.lim != nil {
		if err := m.lim.wait(ctx, byteCount); err != nil {
			return nil, err
		}
	}
	return &pending{wait: m.cfg.To.Log().Submit(commitlog.All(group...)...), at: time.Now(), recs: recCount, bytes: byteCount, parts: parts}, nil
}

func positionGuard(source string, parts []partAdvance) (commitlog.Entry, error) {
	data, err := jsonMarshal(positionEntry{Source: source, AtMs: time.Now().UnixMilli(), Parts: parts})
	if err != nil {
		return commitlog.Entry{}, err
	}
	return commitlog.Entry{Type: TypePosition, Data: data}, nil
}

// read reads up to about budget bytes of records of one source partition
// from its position on. adv is nil when there is nothing to commit; n is
// the record bytes read.
func (m *Mirror) read(ctx context.Context, topic string, p int32, positions map[tp]Position, budget int) (adv *partAdvance, raw []byte, n int, err error) {
	k := tp{topic, p}
	pos, have := positions[k]
	from := int64(-1)
	if have {
		from = pos.Next
	}
	bl, err := m.cfg.From.Backlog(topic, p, max(from, 0))
	if err != nil {
		if errors.Is(err, stream.ErrUnknownTopic) || errors.Is(err, stream.ErrUnknownPartition) {
			return nil, nil, 0, nil // deleted since listed
		}
		return nil, nil, 0, err
	}
	a := partAdvance{Topic: topic, P: p, From: from, End: bl.End}
	next := from
	if !have {
		next, a.Start = bl.Start, bl.Start
	}
	if next < bl.Start {
		a.Skipped = bl.Start - next
		m.Stats.Skipped.Add(a.Skipped)
		m.cfg.Logger.Warn("source records were removed by retention before they were mirrored; skipping them",
			"source", m.cfg.Source, "topic", topic, "partition", p, "from", next, "to", bl.Start, "skipped", a.Skipped)
		next = bl.Start
	}
	if next > bl.End {
		m.mu.Lock()
		first := m.warned[k] != next
		m.warned[k] = next
		m.mu.Unlock()
		if first {
			m.cfg.Logger.Warn("the source partition ends below the mirror's position (was the topic deleted and created again?); not mirroring it",
				"source", m.cfg.Source, "topic", topic, "partition", p, "position", next, "source_end", bl.End)
		}
		return nil, nil, 0, nil
	}
	if next == bl.End {
		if a.Skipped == 0 {
			return nil, nil, 0, nil
		}
		a.To = next
		return &a, nil, 0, nil
	}
	res, err := m.cfg.From.Fetch(ctx, topic, p, next, budget, 0)
	if err != nil {
		if _, ok := errors.AsType[*stream.OffsetOutOfRangeError](err); ok {
			return nil, nil, 0, nil // retention moved the start meanwhile: the next round skips
		}
		return nil, nil, 0, fmt.Errorf("read the source %s/%d at %d: %w", topic, p, next, err)
	}
	a.End = max(a.End, res.HighWatermark)
	// Committed records only, as a read_committed consumer sees them: up
	// to the last stable offset (the first offset of the oldest open
	// transaction, a batch boundary), and no batch of an aborted
	// transaction. The view is taken after the fetch, so every
	// transaction below its last stable offset has ended.
	view, err := m.cfg.From.TxnView(topic, p, next, res.HighWatermark)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read the source %s/%d at %d: %w", topic, p, next, err)
	}
	to := next
	var ss []span
	for _, b := range res.Batches {
		meta, err := records.ParseMeta(b)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("source %s/%d at %d: %w", topic, p, to, err)
		}
		if meta.BaseOffset >= view.LastStable {
			break
		}
		last := meta.BaseOffset + int64(meta.LastOffsetDelta)
		if !view.Committed(meta, max(meta.BaseOffset, to)) {
			to = max(to, last+1) // a marker, or an aborted transaction's batch
			continue
		}
		before := len(ss)
		ss, meta, err = spans(ss, b, to)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("source %s/%d at %d: %w", topic, p, meta.BaseOffset, err)
		}
		to = max(to, last+1)
		for _, s := range ss[before:] {
			n += len(s.kv) + len(s.hs)
		}
		if n >= budget {
			break
		}
	}
	if len(ss) > 0 {
		raw = encodeSpans(ss, topic+"/"+strconv.Itoa(int(p))+"/", m.cfg.Source)
	}
	if to == next && a.Skipped == 0 {
		return nil, nil, 0, nil
	}
	a.To = to
	return &a, raw, n, nil
}

// stuckAfter is how long a commit may take before the status calls the
// destination not connected (the log is still retrying it).
const stuckAfter = 5 * time.Second

// PartitionStatus is one mirrored partition's position and lag.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Next is the next source offset to mirror (the destination's
	// position; the source's start when there is none yet).
	Next int64 `json:"next"`
	// SourceEnd is the source partition's end offset.
	SourceEnd int64 `json:"source_end"`
	// LagRecords, LagBytes: what the source holds from Next on; LagSeconds
	// the age of the oldest of it (0 when caught up).
	LagRecords int64   `json:"lag_records"`
	LagBytes   int64   `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
	Mirrored   int64   `json:"mirrored"`
	Skipped    int64   `json:"skipped"`
}

// Status is a running mirror's state, live: positions from the
// destination's log, ends and backlog from the source's.
type Status struct {
	Source     string            `json:"source"`
	Topics     string            `json:"topics"`
	To         string            `json:"to"`
	Rate       int64             `json:"rate,omitempty"`
	Connected  bool              `json:"connected"`
	LastError  string            `json:"last_error,omitempty"`
	LastErrMs  int64             `json:"last_error_ms,omitempty"`
	Records    int64             `json:"records"`
	Bytes      int64             `json:"bytes"`
	Commits    int64             `json:"commits"`
	Errors     int64             `json:"errors"`
	Conflicts  int64             `json:"conflicts"`
	Skipped    int64             `json:"skipped"`
	Partitions []PartitionStatus `json:"partitions"`
}

// Status reports the mirror's positions and lag now.
func (m *Mirror) Status() Status {
	st := Status{Source: m.cfg.Source, Topics: m.cfg.Topics.String(), To: m.cfg.Label, Rate: m.cfg.Rate,
		Records: m.Stats.Records.Load(), Bytes: m.Stats.Bytes.Load(), Errors: m.Stats.Errors.Load(), Commits: m.Stats.Commits.Load(), Conflicts: m.Stats.Conflicts.Load(), Skipped: m.Stats.Skipped.Load()}
	m.mu.Lock()
	st.Connected = m.connected
	if m.lastErr != nil {
		st.LastError, st.LastErrMs = m.lastErr.Error(), m.lastErrAt.UnixMilli()
	}
	if !m.oldest.IsZero() && time.Since(m.oldest) > stuckAfter {
		st.Connected = false
		st.LastError = fmt.Sprintf("a commit to the destination has been in flight for %v", time.Since(m.oldest).Round(time.Second))
		st.LastErrMs = time.Now().UnixMilli()
	}
	m.mu.Unlock()
	// A commit in flight retries inside the destination's log for a while
	// before the mirror hears of it: the log's own failing reads say at
	// once that the link is down.
	if h := m.cfg.To.Log().Health(); !h.BucketErrorsSince.IsZero() {
		st.Connected = false
		if h.LastError != nil {
			st.LastError, st.LastErrMs = "the destination's bucket: "+h.LastError.Error(), h.LastErrorAt.UnixMilli()
		}
	}
	st.Partitions = Lag(m.cfg.From, m.cfg.Topics, m.cfg.ToMirror.positionsOf(m.cfg.Source), time.Now())
	return st
}

// Lag computes every matching source partition's lag behind positions.
func Lag(from *stream.Service, topics Pattern, positions map[tp]Position, now time.Time) []PartitionStatus {
	var out []PartitionStatus
	for _, t := range from.Topics() {
		if !topics.Match(t.Name) {
			continue
		}
		for p := range t.Partitions {
			pos, have := positions[tp{t.Name, p}]
			bl, err := from.Backlog(t.Name, p, max(pos.Next, 0))
			if err != nil {
				continue
			}
			ps := PartitionStatus{Topic: t.Name, Partition: p, Next: pos.Next, SourceEnd: bl.End, Mirrored: pos.Mirrored, Skipped: pos.Skipped}
			if !have {
				ps.Next = bl.Start
			}
			if ps.Next <= bl.End {
				ps.LagRecords, ps.LagBytes = bl.Records, bl.Bytes
				if bl.Records > 0 && bl.OldestAppendMs > 0 {
					ps.LagSeconds = max(0, now.Sub(time.UnixMilli(bl.OldestAppendMs)).Seconds())
				}
			}
			out = append(out, ps)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// limiter paces bytes to a rate: a debt model with one second of burst.
type limiter struct {
	rate   float64
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(rate int64) *limiter {
	return &limiter{rate: float64(rate), tokens: float64(rate), last: time.Now()}
}

func (l *limiter) wait(ctx context.Context, n int64) error {
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Opening stands in for a mirror whose destination is not open yet (an
// edge started with its link down): not connected, the lag counted from
// the source's log start, since the destination's positions are unknown.
type Opening struct {
	Source string
	Topics Pattern
	To     string
	From   *stream.Service
	mu     sync.Mutex
	err    error
	at     time.Time
}

// Failed records why the destination does not open.
func (o *Opening) Failed(err error) {
	o.mu.Lock()
	o.err, o.at = err, time.Now()
	o.mu.Unlock()
}

// Status reports the stand-in's status.
func (o *Opening) Status() Status {
	st := Status{Source: o.Source, Topics: o.Topics.String(), To: o.To}
	o.mu.Lock()
	if o.err != nil {
		st.LastError, st.LastErrMs = "cannot open the destination: "+o.err.Error(), o.at.UnixMilli()
	}
	o.mu.Unlock()
	if o.From != nil {
		st.Partitions = Lag(o.From, o.Topics, nil, time.Now())
	}
	return st
}

// LagOf is Lag for the positions of source that dest holds.
func LagOf(from *stream.Service, topics Pattern, dest *Module, source string, now time.Time) []PartitionStatus {
	return Lag(from, topics, dest.positionsOf(source), now)
}
