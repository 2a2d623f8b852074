package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// The transaction coordinator. Every transaction's state is applied from the
// log (stream.TypeTxn*), so any agent could serve it; one agent at a time
// does, the holder of the lease TxnLease, so that FindCoordinator has one
// answer and one agent aborts the transactions that outlive their timeout.
// A coordinator that dies is replaced once its lease goes unrenewed for
// Config.TxnLeaseDuration; the client looks the coordinator up again and
// retries, and each retry is answered from the state in the log.

// TxnLease is the name of the transaction coordinator's lease.
const TxnLease = "transactions"

// Defaults for the transaction settings of Config.
const (
	DefaultTxnLeaseDuration = 10 * time.Second
	// DefaultTxnMaxTimeout is Kafka's transaction.max.timeout.ms.
	DefaultTxnMaxTimeout = 15 * time.Minute
)

type txnCoordinator struct {
	s     *Server
	lease time.Duration

	mu         sync.Mutex
	epoch      uint64 // of the lease while held; 0 when not
	validUntil time.Time
	watch      commitlog.LeaseWatch
	acquiring  chan struct{}
}

func (t *txnCoordinator) addr() string { return t.s.agents.self.Addr }

// holding reports whether this agent coordinates transactions now.
func (t *txnCoordinator) holding() bool {
	l := t.s.svc.Log()
	cur := l.Lease(TxnLease)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.epoch != 0 && cur.Holder == l.AgentID() && cur.Epoch == t.epoch && time.Now().Before(t.validUntil)
}

// locate returns the coordinator's address, taking the lease if nobody
// alive holds it.
func (t *txnCoordinator) locate(ctx context.Context) (string, error) {
	l := t.s.svc.Log()
	for range 4 {
		if t.holding() {
			return t.addr(), nil
		}
		cur := l.Lease(TxnLease)
		t.mu.Lock()
		expired := t.watch.Expired(cur, time.Now(), t.lease)
		t.mu.Unlock()
		if cur.Holder != "" && cur.Holder != l.AgentID() && !expired {
			return cur.Addr, nil
		}
		if err := t.acquire(ctx, cur); err != nil {
			return "", err
		}
	}
	return "", errors.New("the transaction coordinator's lease keeps changing hands")
}

func (t *txnCoordinator) acquire(ctx context.Context, seen commitlog.Lease) error {
	t.mu.Lock()
	if ch := t.acquiring; ch != nil {
		t.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	t.acquiring = done
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.acquiring = nil
		t.mu.Unlock()
		close(done)
	}()
	l := t.s.svc.Log()
	if seen.Holder != "" && seen.Holder != l.AgentID() {
		if err := l.Sync(ctx); err != nil {
			return err
		}
		if cur := l.Lease(TxnLease); cur != seen {
			return nil
		}
	}
	start := time.Now()
	_, res, err := l.Propose(ctx, commitlog.LeaseAcquire(TxnLease, l.AgentID(), t.addr(), seen))
	if err != nil || res[0] != nil {
		return err
	}
	t.mu.Lock()
	t.epoch, t.validUntil = seen.Epoch+1, start.Add(t.lease)
	t.mu.Unlock()
	t.s.log.Info("coordinating transactions", "epoch", seen.Epoch+1)
	return nil
}

// run renews the lease while held, watches it otherwise, and aborts
// transactions past their timeout while coordinating.
func (t *txnCoordinator) run(ctx context.Context) {
	tick := time.NewTicker(max(min(t.lease/4, time.Second), 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.release()
			return
		case <-tick.C:
		}
		l := t.s.svc.Log()
		t.mu.Lock()
		epoch := t.epoch
		t.mu.Unlock()
		if epoch != 0 {
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, t.lease/2)
			_, res, err := l.Propose(rctx, commitlog.LeaseRenew(TxnLease, l.AgentID(), epoch))
			cancel()
			t.mu.Lock()
			switch {
			case err == nil && res[0] == nil:
				t.validUntil = start.Add(t.lease)
			case err == nil:
				t.s.log.Warn("lost the transaction coordinator's lease", "epoch", epoch)
				t.epoch = 0
			}
			t.mu.Unlock()
		} else {
			cur := l.Lease(TxnLease)
			t.mu.Lock()
			expired := t.watch.Expired(cur, time.Now(), t.lease)
			t.mu.Unlock()
			// A dead coordinator's open transactions must still time out,
			// though no client may be asking for the coordinator (one
			// blocked on its own pending offsets, say): take the lease
			// over then.
			if (cur.Holder == "" || expired) && t.openTransactions() {
				if err := t.acquire(ctx, cur); err != nil && ctx.Err() == nil {
					t.s.log.Warn("taking over the transaction coordinator's lease failed", "err", err)
				}
			}
		}
		if t.holding() {
			t.abortExpired(ctx)
		}
	}
}

func (t *txnCoordinator) openTransactions() bool {
	for _, x := range t.s.svc.Transactions() {
		if x.State == stream.TxnOngoing {
			return true
		}
	}
	return false
}

func (t *txnCoordinator) release() {
	t.mu.Lock()
	epoch := t.epoch
	t.epoch = 0
	t.mu.Unlock()
	if epoch == 0 {
		return
	}
	l := t.s.svc.Log()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.Propose(ctx, commitlog.LeaseRelease(TxnLease, l.AgentID(), epoch))
}

// abortExpired aborts every open transaction older than its timeout.
func (t *txnCoordinator) abortExpired(ctx context.Context) {
	now := time.Now()
	for _, x := range t.s.svc.Transactions() {
		if x.State != stream.TxnOngoing || now.UnixMilli()-x.StartMs <= x.TimeoutMs {
			continue
		}
		marker := records.EncodeControl(x.PID, x.Epoch+1, false, 0, now.UnixMilli())
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, res, err := t.s.svc.Log().Propose(pctx, stream.TxnTimeoutEntry(x, now.UnixMilli(), marker))
		cancel()
		if err == nil && res[0] == nil {
			t.s.log.Info("aborted a transaction past its timeout", "transactional_id", x.ID, "producer_id", x.PID, "timeout_ms", x.TimeoutMs)
		}
	}
}

// ---- request handling ----

// fencedCode is PRODUCER_FENCED from the request versions that know it
// (KIP-588), INVALID_PRODUCER_EPOCH before.
func fencedCode(version, from int16) int16 {
	if version >= from {
		return kerr.ProducerFenced.Code
	}
	return kerr.InvalidProducerEpoch.Code
}

// txnCode maps a transaction entry's result to a Kafka error code.
func (s *Server) txnCode(err error, version, fencedFrom int16) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, stream.ErrProducerFenced):
		return fencedCode(version, fencedFrom)
	case errors.Is(err, stream.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, stream.ErrConcurrentTxn):
		return kerr.ConcurrentTransactions.Code
	case errors.Is(err, stream.ErrUnknownTxnID):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, stream.ErrUnknownTopic), errors.Is(err, stream.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, commitlog.ErrNotEnabled):
		// The fleet has not switched transactions on yet (an agent of an
		// older version is live): retriable.
		return kerr.CoordinatorNotAvailable.Code
	}
	s.log.Warn("kafka transaction request failed", "err", err)
	return kerr.CoordinatorNotAvailable.Code
}

// proposeTxn proposes what build returns and returns the guard's result
// (the first entry's, or the first of an all-or-none group's). A result of
// ErrConcurrentTxn means the proposer's view was behind: it catches up
// with the log and builds again.
func (s *Server) proposeTxn(ctx context.Context, build func() ([]commitlog.Entry, error)) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last any
	for range 5 {
		entries, err := build()
		if err != nil {
			return nil, err
		}
		_, res, err := s.svc.Log().Propose(ctx, entries...)
		if err != nil {
			return nil, err
		}
		last = res[0]
		if entries[0].Type == commitlog.TypeAll {
			last = res[1]
		}
		if e, ok := last.(error); !ok || !errors.Is(e, stream.ErrConcurrentTxn) {
			break
		}
		if err := s.svc.Sync(ctx); err != nil {
			return nil, err
		}
	}
	return last, nil
}

func resultErr(v any) error {
	err, _ := v.(error)
	return err
}

func (s *Server) mayTxn(ctx context.Context, op, id string) error {
	return s.authorize(ctx, op, auth.ResTransactionalID, id)
}

func (s *Server) findTxnCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		r := kmsg.NewFindCoordinatorResponseCoordinator()
		r.Key, r.NodeID, r.Port = key, -1, -1
		fail := func(code int16, msg string) {
			r.ErrorCode, r.ErrorMessage = code, &msg
		}
		switch {
		case key == "":
			fail(kerr.InvalidRequest.Code, "the transactional id is empty")
		case s.mayTxn(ctx, auth.OpDescribe, key) != nil:
			fail(kerr.TransactionalIDAuthorizationFailed.Code, "not authorized to describe transactional id "+key)
		default:
			addr, err := s.txn.locate(ctx)
			if err != nil {
				fail(kerr.CoordinatorNotAvailable.Code, "no transaction coordinator yet: "+err.Error())
				break
			}
			id := NodeIDFor(addr)
			if addr == s.agents.self.Addr {
				id = s.agents.self.NodeID
			}
			b := toBroker(agent{NodeID: id, Addr: addr})
			if b.Port == 0 {
				fail(kerr.CoordinatorNotAvailable.Code, fmt.Sprintf("the transaction coordinator's address %q is unusable", addr))
				break
			}
			r.NodeID, r.Host, r.Port = b.NodeID, b.Host, b.Port
		}
		resp.Coordinators = append(resp.Coordinators, r)
	}
	if req.Version < 4 {
		o := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = o.ErrorCode, o.ErrorMessage, o.NodeID, o.Host, o.Port
		resp.Coordinators = nil
	}
	return resp
}

// initTxnProducer is InitProducerId with a transactional id: the id's
// producer is allocated, or its epoch bumped (fencing the previous
// producer), aborting its open transaction in the same commit.
func (s *Server) initTxnProducer(ctx context.Context, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) *kmsg.InitProducerIDResponse {
	id := *req.TransactionalID
	switch {
	case s.mayTxn(ctx, auth.OpWrite, id) != nil:
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	case req.TransactionTimeoutMillis <= 0 || time.Duration(req.TransactionTimeoutMillis)*time.Millisecond > s.cfg.TxnMaxTimeout:
		resp.ErrorCode = kerr.InvalidTransactionTimeout.Code
		return resp
	case !s.txn.holding():
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	res, err := s.proposeTxn(ctx, func() ([]commitlog.Entry, error) {
		now := time.Now().UnixMilli()
		// The abort marker of an open transaction, in case apply finds
		// one (the blob is unreferenced otherwise).
		var marker []byte
		if x, ok := s.svc.Transaction(id); ok {
			marker = records.EncodeControl(x.PID, x.Epoch+1, false, 0, now)
		}
		pid, epoch := int64(0), int16(0)
		if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 {
			pid, epoch = req.ProducerID, req.ProducerEpoch
		}
		return []commitlog.Entry{stream.TxnInitEntry(id, int64(req.TransactionTimeoutMillis), now, pid, epoch, marker)}, nil
	})
	if err == nil {
		err = resultErr(res)
	}
	if err != nil {
		resp.ErrorCode = s.txnCode(err, req.Version, 4)
		return resp
	}
	p := res.(stream.ProducerID)
	resp.ProducerID, resp.ProducerEpoch = p.ID, p.Epoch
	return resp
}

func (s *Server) addPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	codes := map[string]map[int32]int16{}
	setAll := func(code int16) {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				if codes[t.Topic] == nil {
					codes[t.Topic] = map[int32]int16{}
				}
				if c, ok := codes[t.Topic][p]; !ok || c == 0 {
					codes[t.Topic][p] = code
				}
			}
		}
	}
	respond := func() *kmsg.AddPartitionsToTxnResponse {
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p, ErrorCode: codes[t.Topic][p]})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	switch {
	case s.mayTxn(ctx, auth.OpWrite, req.TransactionalID) != nil:
		setAll(kerr.TransactionalIDAuthorizationFailed.Code)
		return respond()
	case !s.txn.holding():
		setAll(kerr.NotCoordinator.Code)
		return respond()
	}
	writes := s.topicAuth(ctx, auth.OpWrite)
	failed := false
	for _, t := range req.Topics {
		code := int16(0)
		_, n, ok := s.svc.TopicID(t.Topic)
		if !ok && s.svc.Sync(ctx) == nil {
			_, n, ok = s.svc.TopicID(t.Topic)
		}
		switch {
		case writes.check(t.Topic) != nil:
			code = kerr.TopicAuthorizationFailed.Code
		case !ok:
			code = kerr.UnknownTopicOrPartition.Code
		}
		for _, p := range t.Partitions {
			c := code
			if c == 0 && (p < 0 || p >= n) {
				c = kerr.UnknownTopicOrPartition.Code
			}
			if c != 0 {
				failed = true
				if codes[t.Topic] == nil {
					codes[t.Topic] = map[int32]int16{}
				}
				codes[t.Topic][p] = c
				continue
			}
		}
	}
	if failed {
		// Kafka adds none when one fails.
		setAll(kerr.OperationNotAttempted.Code)
		return respond()
	}
	// Nothing to commit: a partition joins the transaction with its first
	// transactional batch (stream.TypeProduce), which saves a commit per
	// transaction. The producer is checked here as this agent knows it,
	// and again, on every agent alike, when the batch is applied.
	err := s.svc.CheckTxnProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch)
	if err != nil && s.svc.Sync(ctx) == nil {
		err = s.svc.CheckTxnProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch)
	}
	setAll(s.txnCode(err, req.Version, 2))
	return respond()
}

func (s *Server) addOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case s.mayTxn(ctx, auth.OpWrite, req.TransactionalID) != nil:
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	case s.authorize(ctx, auth.OpRead, auth.ResGroup, req.Group) != nil:
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	case !s.txn.holding():
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	res, err := s.proposeTxn(ctx, func() ([]commitlog.Entry, error) {
		return []commitlog.Entry{stream.TxnAddOffsetsEntry(req.TransactionalID, req.ProducerID, req.ProducerEpoch, time.Now().UnixMilli(), req.Group)}, nil
	})
	if err == nil {
		err = resultErr(res)
	}
	resp.ErrorCode = s.txnCode(err, req.Version, 2)
	return resp
}

// txnOffsetCommit records a transaction's pending offsets. Kafka's clients
// send it to the group's coordinator; here any agent takes it, since the
// offsets are state of the log until the transaction commits. The group's
// generation and member are not checked (the producer's epoch fences).
func (s *Server) txnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	code := int16(0)
	switch {
	case s.mayTxn(ctx, auth.OpWrite, req.TransactionalID) != nil:
		code = kerr.TransactionalIDAuthorizationFailed.Code
	case s.authorize(ctx, auth.OpRead, auth.ResGroup, req.Group) != nil:
		code = kerr.GroupAuthorizationFailed.Code
	}
	reads := s.topicAuth(ctx, auth.OpRead)
	var offs []stream.TxnOffset
	topicCode := map[string]int16{}
	for _, t := range req.Topics {
		if code == 0 && reads.check(t.Topic) != nil {
			topicCode[t.Topic] = kerr.TopicAuthorizationFailed.Code
			continue
		}
		for _, p := range t.Partitions {
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			le := p.LeaderEpoch
			if req.Version < 2 {
				le = -1
			}
			offs = append(offs, stream.TxnOffset{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: le, Metadata: md})
		}
	}
	if code == 0 && len(offs) > 0 {
		res, err := s.proposeTxn(ctx, func() ([]commitlog.Entry, error) {
			return []commitlog.Entry{stream.TxnOffsetCommitEntry(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, offs)}, nil
		})
		if err == nil {
			err = resultErr(res)
		}
		code = s.txnCode(err, req.Version, 3)
	}
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			c := code
			if tc := topicCode[t.Topic]; tc != 0 {
				c = tc
			}
			rt.Partitions = append(rt.Partitions, kmsg.TxnOffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: c})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// endTxn commits or aborts: one entry whose apply writes the markers to
// every partition of the transaction, with, for a commit, the groups'
// offsets in the same all-or-none group.
func (s *Server) endTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	switch {
	case s.mayTxn(ctx, auth.OpWrite, req.TransactionalID) != nil:
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	case !s.txn.holding():
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	res, err := s.proposeTxn(ctx, func() ([]commitlog.Entry, error) {
		now := time.Now().UnixMilli()
		x, _ := s.svc.Transaction(req.TransactionalID)
		marker := records.EncodeControl(req.ProducerID, req.ProducerEpoch, req.Commit, 0, now)
		end := stream.TxnEndEntry(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, now, x.Rev, marker)
		if !req.Commit || x.State != stream.TxnOngoing || len(x.Offsets) == 0 {
			return []commitlog.Entry{end}, nil
		}
		group := []commitlog.Entry{end}
		names := make([]string, 0, len(x.Offsets))
		for g := range x.Offsets {
			names = append(names, g)
		}
		slices.Sort(names)
		for _, g := range names {
			var topics []groups.TopicOffsets
			for _, o := range x.Offsets[g] {
				i := slices.IndexFunc(topics, func(t groups.TopicOffsets) bool { return t.Topic == o.Topic })
				if i < 0 {
					topics = append(topics, groups.TopicOffsets{Topic: o.Topic})
					i = len(topics) - 1
				}
				topics[i].Partitions = append(topics[i].Partitions, groups.PartitionOffset{Partition: o.Partition, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata})
			}
			group = append(group, groups.TxnOffsetsEntry(g, now, topics))
		}
		return commitlog.All(group...), nil
	})
	if err == nil {
		err = resultErr(res)
	}
	resp.ErrorCode = s.txnCode(err, req.Version, 2)
	return resp
}

func (s *Server) describeTransactions(ctx context.Context, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	holding := s.txn.holding()
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.ProducerEpoch, st.StartTimestamp = id, -1, -1, -1
		x, ok := s.svc.Transaction(id)
		switch {
		case s.mayTxn(ctx, auth.OpDescribe, id) != nil:
			st.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		case !holding:
			st.ErrorCode = kerr.NotCoordinator.Code
		case !ok:
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			st.State, st.TimeoutMillis, st.ProducerID, st.ProducerEpoch = x.State, int32(x.TimeoutMs), x.PID, x.Epoch
			if x.State == stream.TxnOngoing {
				st.StartTimestamp = x.StartMs
			}
			for _, p := range x.Partitions {
				i := slices.IndexFunc(st.Topics, func(t kmsg.DescribeTransactionsResponseTransactionStateTopic) bool { return t.Topic == p.Topic })
				if i < 0 {
					t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					t.Topic = p.Topic
					st.Topics = append(st.Topics, t)
					i = len(st.Topics) - 1
				}
				st.Topics[i].Partitions = append(st.Topics[i].Partitions, p.Partition)
			}
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

var txnStates = []string{stream.TxnEmpty, stream.TxnOngoing, stream.TxnCompleteCommit, stream.TxnCompleteAbort}

func (s *Server) listTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	for _, f := range req.StateFilters {
		if !slices.Contains(txnStates, f) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, f)
		}
	}
	if !s.txn.holding() {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	now := time.Now().UnixMilli()
	for _, x := range s.svc.Transactions() {
		switch {
		case len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, x.State),
			len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, x.PID),
			req.DurationFilterMillis > 0 && (x.State != stream.TxnOngoing || now-x.StartMs < req.DurationFilterMillis),
			!authz.Allowed(ctx, auth.OpDescribe, auth.ResTransactionalID, x.ID):
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = x.ID, x.PID, x.State
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

// markUnstable answers UNSTABLE_OFFSET_COMMIT (KIP-447), which clients
// retry, for the groups of an OffsetFetch asking for stable offsets while
// an open transaction holds pending offsets for them (TxnOffsetCommit): a
// consumer taking over partitions must not start from offsets that the
// transaction is about to replace. The transaction's end (or its timeout,
// or its producer's next InitProducerId) releases them.
func (s *Server) markUnstable(ctx context.Context, req *kmsg.OffsetFetchRequest, r kmsg.Response) {
	resp, ok := r.(*kmsg.OffsetFetchResponse)
	if !ok {
		return
	}
	if err := s.svc.Sync(ctx); err != nil {
		s.log.Warn("kafka offset fetch: cannot catch up with the log to check for open transactions", "err", err)
	}
	open := map[string]bool{}
	for _, x := range s.svc.Transactions() {
		if x.State == stream.TxnOngoing {
			for g, offs := range x.Offsets {
				open[g] = open[g] || len(offs) > 0
			}
		}
	}
	if len(open) == 0 {
		return
	}
	code := kerr.UnstableOffsetCommit.Code
	if req.Version < 8 {
		if open[req.Group] && resp.ErrorCode == 0 {
			resp.ErrorCode = code
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					resp.Topics[i].Partitions[j].ErrorCode = code
				}
			}
		}
		return
	}
	for i := range resp.Groups {
		g := &resp.Groups[i]
		if open[g.Group] && g.ErrorCode == 0 {
			g.ErrorCode = code
			for j := range g.Topics {
				for k := range g.Topics[j].Partitions {
					g.Topics[j].Partitions[k].ErrorCode = code
				}
			}
		}
	}
}
