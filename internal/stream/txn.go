package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/twoway/twoway/internal/commitlog"
)

// Transactions (Kafka's KIP-98, as clients use it). The coordinator's state
// (each transactional id's producer id and epoch, the partitions and groups
// of its open transaction, its pending group offsets) and each partition's
// open transactions and aborted ranges are applied from entries 600-605
// and from the transactional batches themselves (a batch adds its
// partition to its producer's transaction, beginning it if need be, as
// KIP-890 has brokers do), so every agent holds the same and any of them can take over as
// coordinator. A transaction ends in ONE entry (TypeTxnEnd, or the abort
// inside TypeTxnInit and TypeTxnTimeout): applying it appends the control
// batch to every partition of the transaction and moves their last stable
// offsets on together; it never half-applies.
const (
	TypeTxnInit         uint16 = 600 // InitProducerId with a transactional id
	TypeTxnAddOffsets   uint16 = 602 // 601 is reserved: partitions join with their first batch
	TypeTxnOffsetCommit uint16 = 603
	TypeTxnEnd          uint16 = 604
	TypeTxnTimeout      uint16 = 605
)

// Transaction errors; the Kafka front door maps each to its code.
var (
	// ErrProducerFenced: a newer producer with the same transactional id
	// exists (or the transaction timed out and the epoch was bumped).
	ErrProducerFenced = errors.New("producer fenced: a newer producer with this transactional id exists, or its transaction timed out")
	// ErrInvalidTxnState: the request does not fit the transaction's state.
	ErrInvalidTxnState = errors.New("invalid transaction state")
	// ErrConcurrentTxn: the transaction changed since the proposer looked;
	// the proposer catches up with the log and tries again.
	ErrConcurrentTxn = errors.New("the transaction changed concurrently; retry")
	// ErrUnknownTxnID: no producer was initialised with this id.
	ErrUnknownTxnID = errors.New("unknown transactional id")
)

// Transaction states, as DescribeTransactions names them.
const (
	TxnEmpty          = "Empty"
	TxnOngoing        = "Ongoing"
	TxnCompleteCommit = "CompleteCommit"
	TxnCompleteAbort  = "CompleteAbort"
)

// TxnPartition names a partition of a transaction; TopicID is the topic's
// incarnation (the seq of its creating commit).
type TxnPartition struct {
	Topic     string `json:"topic"`
	TopicID   uint64 `json:"tid"`
	Partition int32  `json:"p"`
}

// TxnOffset is a pending group offset of a transaction.
type TxnOffset struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"p"`
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata,omitempty"`
}

// Txn is the coordinator's state of one transactional id.
type Txn struct {
	ID        string `json:"id"`
	PID       int64  `json:"pid"`
	Epoch     int16  `json:"epoch"`
	TimeoutMs int64  `json:"timeout_ms"`
	State     string `json:"state"`
	// StartMs is the proposer's clock when the open transaction began;
	// Begun the seq of that commit; Rev the seq of the commit that last
	// changed the transaction.
	StartMs    int64                  `json:"start_ms"`
	Begun      uint64                 `json:"begun"`
	Rev        uint64                 `json:"rev"`
	UpdatedMs  int64                  `json:"updated_ms"`
	Partitions []TxnPartition         `json:"partitions,omitempty"`
	Groups     []string               `json:"groups,omitempty"`
	Offsets    map[string][]TxnOffset `json:"offsets,omitempty"`
	// TimedOut: the last epoch bump was a timeout's.
	TimedOut bool `json:"timed_out,omitempty"`
}

// AbortedTxn is an aborted transaction's range on one partition: its first
// offset and the offset of its abort marker.
type AbortedTxn struct {
	PID   int64 `json:"pid"`
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

type txnPartKey struct {
	Topic     string
	TopicID   uint64
	Partition int32
}

// txnPart is one partition's transactional state: the first offset of
// each producer's open transaction, and the aborted ranges not yet
// truncated away.
type txnPart struct {
	Open    map[int64]int64
	Aborted []AbortedTxn
}

type txnState struct {
	ids   map[string]*Txn
	byPID map[int64]string
	parts map[txnPartKey]*txnPart
}

func newTxnState() txnState {
	return txnState{ids: map[string]*Txn{}, byPID: map[int64]string{}, parts: map[txnPartKey]*txnPart{}}
}

func (t *txnState) empty() bool { return len(t.ids) == 0 && len(t.parts) == 0 }

// txnSnap is the snapshot form of txnState (JSON; deterministic since maps
// are encoded with sorted keys and parts as a sorted list).
type txnSnap struct {
	IDs   map[string]*Txn `json:"ids"`
	Parts []txnPartSnap   `json:"parts,omitempty"`
}

type txnPartSnap struct {
	Topic     string          `json:"topic"`
	TopicID   uint64          `json:"tid"`
	Partition int32           `json:"p"`
	Open      map[int64]int64 `json:"open,omitempty"`
	Aborted   []AbortedTxn    `json:"aborted,omitempty"`
}

// encode captures the state as JSON; called with applying paused.
func (t *txnState) encode() json.RawMessage {
	if t.empty() {
		return nil
	}
	s := txnSnap{IDs: t.ids}
	for k, p := range t.parts {
		if len(p.Open) == 0 && len(p.Aborted) == 0 {
			continue
		}
		s.Parts = append(s.Parts, txnPartSnap{Topic: k.Topic, TopicID: k.TopicID, Partition: k.Partition, Open: p.Open, Aborted: p.Aborted})
	}
	sort.Slice(s.Parts, func(i, j int) bool {
		a, b := s.Parts[i], s.Parts[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.TopicID != b.TopicID {
			return a.TopicID < b.TopicID
		}
		return a.Partition < b.Partition
	})
	b, _ := json.Marshal(s)
	return b
}

func (t *txnState) restore(b []byte) error {
	*t = newTxnState()
	if len(b) == 0 {
		return nil
	}
	var s txnSnap
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("streams snapshot: transactions: %w", err)
	}
	for id, x := range s.IDs {
		t.ids[id] = x
		t.byPID[x.PID] = id
	}
	for _, p := range s.Parts {
		tp := &txnPart{Open: p.Open, Aborted: p.Aborted}
		if tp.Open == nil {
			tp.Open = map[int64]int64{}
		}
		t.parts[txnPartKey{p.Topic, p.TopicID, p.Partition}] = tp
	}
	return nil
}

func (s *state) txnPart(topic string, id uint64, p int32) *txnPart {
	k := txnPartKey{topic, id, p}
	tp := s.txn.parts[k]
	if tp == nil {
		tp = &txnPart{Open: map[int64]int64{}}
		s.txn.parts[k] = tp
	}
	return tp
}

// Entry payloads.
type txnInitEntry struct {
	TxnID     string `json:"txn"`
	TimeoutMs int64  `json:"timeout_ms"`
	NowMs     int64  `json:"now_ms"`
	// PID and Epoch, when PID > 0, are the producer the client had
	// (InitProducerId v3+, KIP-360): only the id's current producer, or
	// the one its transaction's timeout fenced, may initialise again that
	// way; anyone else is a zombie.
	PID   int64 `json:"pid,omitempty"`
	Epoch int16 `json:"epoch,omitempty"`
}

type txnAddOffsetsEntry struct {
	TxnID string `json:"txn"`
	PID   int64  `json:"pid"`
	Epoch int16  `json:"epoch"`
	NowMs int64  `json:"now_ms"`
	Group string `json:"group"`
}

type txnOffsetCommitEntry struct {
	TxnID   string      `json:"txn"`
	PID     int64       `json:"pid"`
	Epoch   int16       `json:"epoch"`
	Group   string      `json:"group"`
	Offsets []TxnOffset `json:"offsets"`
}

type txnEndEntry struct {
	TxnID  string `json:"txn"`
	PID    int64  `json:"pid"`
	Epoch  int16  `json:"epoch"`
	Commit bool   `json:"commit"`
	NowMs  int64  `json:"now_ms"`
	// Rev is the transaction's Rev the proposer saw: the pending offsets
	// it commits in the same group of entries are those of that revision.
	Rev uint64 `json:"rev"`
}

type txnTimeoutEntry struct {
	TxnID string `json:"txn"`
	PID   int64  `json:"pid"`
	Epoch int16  `json:"epoch"`
	Begun uint64 `json:"begun"`
	NowMs int64  `json:"now_ms"`
}

// TxnEndResult is the apply result of TypeTxnEnd.
type TxnEndResult struct {
	// Retried: the transaction had already ended this way (a client's
	// retry); nothing was applied.
	Retried bool
}

func (s *state) applyTxn(seq uint64, e commitlog.Entry) any {
	switch e.Type {
	case TypeTxnInit:
		var en txnInitEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.TxnID == "" {
			return fmt.Errorf("malformed transaction init entry: %v", err)
		}
		x := s.txn.ids[en.TxnID]
		if x == nil {
			s.nextPID++
			s.producers[s.nextPID] = 0
			x = &Txn{ID: en.TxnID, PID: s.nextPID, State: TxnEmpty}
			s.txn.ids[en.TxnID] = x
			s.txn.byPID[x.PID] = en.TxnID
		} else {
			if en.PID > 0 && (en.PID != x.PID || (en.Epoch != x.Epoch && !(x.TimedOut && en.Epoch == x.Epoch-1))) {
				return fmt.Errorf("%w: %q is at producer %d epoch %d, the request has %d epoch %d", ErrProducerFenced, en.TxnID, x.PID, x.Epoch, en.PID, en.Epoch)
			}
			if x.State == TxnOngoing {
				if e.Ref.IsZero() {
					return fmt.Errorf("%w: %s has a transaction to abort", ErrConcurrentTxn, en.TxnID)
				}
				s.endTxn(x, false, e.Ref, en.NowMs)
			}
			s.bumpEpoch(x)
		}
		x.TimedOut = false
		x.TimeoutMs, x.UpdatedMs = en.TimeoutMs, en.NowMs
		x.Rev = seq
		return ProducerID{ID: x.PID, Epoch: x.Epoch}
	case TypeTxnAddOffsets:
		var en txnAddOffsetsEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
			return fmt.Errorf("malformed add offsets entry: %v", err)
		}
		x, err := s.txnFor(en.TxnID, en.PID, en.Epoch)
		if err != nil {
			return err
		}
		s.beginTxn(x, seq, en.NowMs)
		found := false
		for _, g := range x.Groups {
			found = found || g == en.Group
		}
		if !found {
			x.Groups = append(x.Groups, en.Group)
		}
		x.Rev, x.UpdatedMs = seq, en.NowMs
		return nil
	case TypeTxnOffsetCommit:
		var en txnOffsetCommitEntry
		if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
			return fmt.Errorf("malformed transactional offset commit entry: %v", err)
		}
		x, err := s.txnFor(en.TxnID, en.PID, en.Epoch)
		if err != nil {
			return err
		}
		added := false
		for _, g := range x.Groups {
			added = added || g == en.Group
		}
		if x.State != TxnOngoing || !added {
			return fmt.Errorf("%w: group %s was not added to the transaction of %s (AddOffsetsToTxn first)", ErrInvalidTxnState, en.Group, en.TxnID)
		}
		if x.Offsets == nil {
			x.Offsets = map[string][]TxnOffset{}
		}
		cur := x.Offsets[en.Group]
		for _, o := range en.Offsets {
			replaced := false
			for i := range cur {
				if cur[i].Topic == o.Topic && cur[i].Partition == o.Partition {
					cur[i], replaced = o, true
				}
			}
			if !replaced {
				cur = append(cur, o)
			}
		}
		x.Offsets[en.Group] = cur
		x.Rev = seq
		return nil
	case TypeTxnEnd:
		var en txnEndEntry
		if err := json.Unmarshal(e.Data, &en); err != nil {
			return fmt.Errorf("malformed end transaction entry: %v", err)
		}
		x, err := s.txnFor(en.TxnID, en.PID, en.Epoch)
		if err != nil {
			return err
		}
		switch {
		case x.State == TxnCompleteCommit && en.Commit, x.State != TxnOngoing && !en.Commit:
			// A retry of the end; or an abort of a transaction none of
			// whose batches landed (its partitions join with their
			// first batch), which has nothing to abort.
			return TxnEndResult{Retried: true}
		case x.State != TxnOngoing:
			return fmt.Errorf("%w: %s has no open transaction to %s (it is %s)", ErrInvalidTxnState, en.TxnID, map[bool]string{true: "commit", false: "abort"}[en.Commit], x.State)
		case x.Rev != en.Rev, len(x.Partitions) > 0 && e.Ref.IsZero():
			return fmt.Errorf("%w: %s", ErrConcurrentTxn, en.TxnID)
		}
		s.endTxn(x, en.Commit, e.Ref, en.NowMs)
		x.Rev = seq
		return TxnEndResult{}
	case TypeTxnTimeout:
		var en txnTimeoutEntry
		if err := json.Unmarshal(e.Data, &en); err != nil {
			return fmt.Errorf("malformed transaction timeout entry: %v", err)
		}
		x := s.txn.ids[en.TxnID]
		if x == nil || x.PID != en.PID || x.Epoch != en.Epoch || x.State != TxnOngoing || x.Begun != en.Begun {
			return fmt.Errorf("%w: the transaction of %s ended or changed producer", ErrConcurrentTxn, en.TxnID)
		}
		if len(x.Partitions) > 0 && e.Ref.IsZero() {
			return fmt.Errorf("%w: %s", ErrConcurrentTxn, en.TxnID)
		}
		s.endTxn(x, false, e.Ref, en.NowMs)
		// The producer is fenced, as Kafka's coordinator fences one whose
		// transaction timed out; it may initialise again with its old
		// epoch (KIP-588).
		s.bumpEpoch(x)
		x.TimedOut = true
		x.Rev = seq
		return nil
	}
	return fmt.Errorf("streams: entry type %d not handled", e.Type)
}

// txnFor returns the transactional id's state if pid and epoch are its
// current producer.
func (s *state) txnFor(id string, pid int64, epoch int16) (*Txn, error) {
	x := s.txn.ids[id]
	switch {
	case x == nil:
		return nil, fmt.Errorf("%w: %q", ErrUnknownTxnID, id)
	case x.PID != pid:
		return nil, fmt.Errorf("%w: %q has producer id %d, not %d", ErrProducerFenced, id, x.PID, pid)
	case x.Epoch != epoch:
		return nil, fmt.Errorf("%w: %q is at epoch %d, the request has %d", ErrProducerFenced, id, x.Epoch, epoch)
	}
	return x, nil
}

func (s *state) beginTxn(x *Txn, seq uint64, nowMs int64) {
	if x.State == TxnOngoing {
		return
	}
	x.State, x.StartMs, x.Begun, x.Rev = TxnOngoing, nowMs, seq, seq
	x.Partitions, x.Groups, x.Offsets = nil, nil, nil
}

// bumpEpoch fences the transactional id's current producer; at the last
// epoch the id gets a new producer id, as Kafka does.
func (s *state) bumpEpoch(x *Txn) {
	if x.Epoch >= 32766 {
		delete(s.txn.byPID, x.PID)
		s.nextPID++
		x.PID, x.Epoch = s.nextPID, 0
		s.txn.byPID[x.PID] = x.ID
	} else {
		x.Epoch++
	}
	s.producers[x.PID] = x.Epoch
}

// endTxn appends the marker (the entry's blob) to every partition of the
// transaction that still exists and closes the transaction there; an abort
// records its aborted range. The pending offsets are dropped: a commit's
// are applied by the groups entry proposed with it.
func (s *state) endTxn(x *Txn, commit bool, marker commitlog.Ref, nowMs int64) {
	for _, tp := range x.Partitions {
		t := s.topics[tp.Topic]
		if t == nil || t.ID != tp.TopicID || int(tp.Partition) >= len(t.Partitions) {
			continue // deleted meanwhile
		}
		p := t.Partitions[tp.Partition]
		at := p.End
		p.Segments = append(p.Segments, segment{Base: at, Count: 1, Ref: marker, MaxTs: nowMs, AppendMs: nowMs})
		p.End++
		p.Bytes += marker.Len
		part := s.txnPart(tp.Topic, tp.TopicID, tp.Partition)
		first, open := part.Open[x.PID]
		delete(part.Open, x.PID)
		if !commit && open {
			part.Aborted = append(part.Aborted, AbortedTxn{PID: x.PID, First: first, Last: at})
		}
	}
	x.State = TxnCompleteAbort
	if commit {
		x.State = TxnCompleteCommit
	}
	x.Partitions, x.Groups, x.Offsets = nil, nil, nil
	x.UpdatedMs = nowMs
}

// checkTxnProduce checks a transactional batch: its producer must be the
// current one of a transactional id.
func (s *state) checkTxnProduce(pe produceEntry) error {
	id, ok := s.txn.byPID[pe.PID]
	if !ok {
		return fmt.Errorf("%w: producer %d has no transactional id", ErrInvalidTxnState, pe.PID)
	}
	if x := s.txn.ids[id]; x.Epoch != pe.Epoch {
		return fmt.Errorf("%w: producer %d is at epoch %d, batch has %d", ErrInvalidProducerEpoch, pe.PID, x.Epoch, pe.Epoch)
	}
	return nil
}

// noteTxnProduce adds the batch's partition to its producer's transaction
// (beginning the transaction if none is open) and records where the
// transaction starts on the partition.
func (s *state) noteTxnProduce(seq uint64, pe produceEntry, base int64) {
	t := s.topics[pe.Topic]
	x := s.txn.ids[s.txn.byPID[pe.PID]]
	s.beginTxn(x, seq, pe.AppendMs)
	tp := TxnPartition{Topic: pe.Topic, TopicID: t.ID, Partition: pe.Partition}
	if !slices.Contains(x.Partitions, tp) {
		x.Partitions = append(x.Partitions, tp)
	}
	x.UpdatedMs = pe.AppendMs
	part := s.txnPart(pe.Topic, t.ID, pe.Partition)
	if _, ok := part.Open[pe.PID]; !ok {
		part.Open[pe.PID] = base
	}
}

// trimTxn drops aborted ranges wholly below a partition's new start.
func (s *state) trimTxn(topic string, id uint64, p int32, start int64) {
	part := s.txn.parts[txnPartKey{topic, id, p}]
	if part == nil {
		return
	}
	i := 0
	for i < len(part.Aborted) && part.Aborted[i].Last < start {
		i++
	}
	if i > 0 {
		part.Aborted = append([]AbortedTxn(nil), part.Aborted[i:]...)
	}
}

// lastStable is the partition's last stable offset: the first offset of
// its oldest open transaction, or its end.
func (s *state) lastStable(topic string, t *topic, idx int32, p *partition) int64 {
	lso := p.End
	if part := s.txn.parts[txnPartKey{topic, t.ID, idx}]; part != nil {
		for _, first := range part.Open {
			lso = min(lso, first)
		}
	}
	return lso
}

// TxnView is what the Kafka front door reads of a partition for
// read_committed fetches.
type TxnView struct {
	LastStable int64
	// Aborted are the aborted transactions overlapping the range asked for,
	// by first offset.
	Aborted []AbortedTxn
}

// TxnView returns the partition's last stable offset and its aborted
// transactions whose range reaches [from, to).
func (s *Service) TxnView(topicName string, part int32, from, to int64) (TxnView, error) {
	var v TxnView
	var err error
	s.log.View(s.st, func() {
		var p *partition
		if p, err = s.st.partition(topicName, part); err != nil {
			return
		}
		t := s.st.topics[topicName]
		v.LastStable = s.st.lastStable(topicName, t, part, p)
		if tp := s.st.txn.parts[txnPartKey{topicName, t.ID, part}]; tp != nil {
			for _, a := range tp.Aborted {
				if a.Last >= from && a.First < to {
					v.Aborted = append(v.Aborted, a)
				}
			}
		}
	})
	return v, err
}

// Transactions returns a copy of every transactional id's state, by id.
func (s *Service) Transactions() []Txn {
	var out []Txn
	s.log.View(s.st, func() {
		for _, x := range s.st.txn.ids {
			out = append(out, x.clone())
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Transaction returns a copy of one transactional id's state.
func (s *Service) Transaction(id string) (Txn, bool) {
	var x Txn
	ok := false
	s.log.View(s.st, func() {
		if cur := s.st.txn.ids[id]; cur != nil {
			x, ok = cur.clone(), true
		}
	})
	return x, ok
}

func (x *Txn) clone() Txn {
	c := *x
	c.Partitions = slices.Clone(x.Partitions)
	c.Groups = slices.Clone(x.Groups)
	if x.Offsets != nil {
		c.Offsets = map[string][]TxnOffset{}
		for g, o := range x.Offsets {
			c.Offsets[g] = slices.Clone(o)
		}
	}
	return c
}

// CheckTxnProducer tells whether pid and epoch are the current producer of
// transactional id, as this agent knows it.
func (s *Service) CheckTxnProducer(id string, pid int64, epoch int16) error {
	var err error
	s.log.View(s.st, func() { _, err = s.st.txnFor(id, pid, epoch) })
	return err
}

// TopicID is the incarnation of a topic (the seq of its creating commit).
func (s *Service) TopicID(name string) (uint64, int32, bool) {
	var id uint64
	var n int32
	ok := false
	s.log.View(s.st, func() {
		if t := s.st.topics[name]; t != nil {
			id, n, ok = t.ID, int32(len(t.Partitions)), true
		}
	})
	return id, n, ok
}

// Txn entry constructors for the Kafka front door.

// TxnInitEntry allocates or bumps the producer of a transactional id;
// abortMarker, if the proposer sees an open transaction, ends it.
// pid and epoch are the client's producer (pid 0: none, a fresh start).
func TxnInitEntry(id string, timeoutMs, nowMs int64, pid int64, epoch int16, abortMarker []byte) commitlog.Entry {
	data, _ := json.Marshal(txnInitEntry{TxnID: id, TimeoutMs: timeoutMs, NowMs: nowMs, PID: max(pid, 0), Epoch: epoch})
	return commitlog.Entry{Type: TypeTxnInit, Data: data, Blob: abortMarker}
}

// TxnAddOffsetsEntry adds a group to the open transaction.
func TxnAddOffsetsEntry(id string, pid int64, epoch int16, nowMs int64, group string) commitlog.Entry {
	data, _ := json.Marshal(txnAddOffsetsEntry{TxnID: id, PID: pid, Epoch: epoch, NowMs: nowMs, Group: group})
	return commitlog.Entry{Type: TypeTxnAddOffsets, Data: data}
}

// TxnOffsetCommitEntry records pending group offsets of the transaction.
func TxnOffsetCommitEntry(id string, pid int64, epoch int16, group string, offsets []TxnOffset) commitlog.Entry {
	data, _ := json.Marshal(txnOffsetCommitEntry{TxnID: id, PID: pid, Epoch: epoch, Group: group, Offsets: offsets})
	return commitlog.Entry{Type: TypeTxnOffsetCommit, Data: data}
}

// TxnEndEntry commits or aborts the transaction at revision rev.
func TxnEndEntry(id string, pid int64, epoch int16, commit bool, nowMs int64, rev uint64, marker []byte) commitlog.Entry {
	data, _ := json.Marshal(txnEndEntry{TxnID: id, PID: pid, Epoch: epoch, Commit: commit, NowMs: nowMs, Rev: rev})
	return commitlog.Entry{Type: TypeTxnEnd, Data: data, Blob: marker}
}

// TxnTimeoutEntry aborts a transaction that outlived its timeout.
func TxnTimeoutEntry(x Txn, nowMs int64, marker []byte) commitlog.Entry {
	data, _ := json.Marshal(txnTimeoutEntry{TxnID: x.ID, PID: x.PID, Epoch: x.Epoch, Begun: x.Begun, NowMs: nowMs})
	return commitlog.Entry{Type: TypeTxnTimeout, Data: data, Blob: marker}
}
