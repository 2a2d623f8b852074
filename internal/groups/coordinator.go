package groups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

// Config configures a Coordinator. Zero values take the defaults noted.
type Config struct {
	// NodeID derives a Kafka node id from an advertised address; it must
	// be the derivation the Kafka server uses for its Metadata answers
	// (clients look the coordinator's node id up in Metadata). Default:
	// DefaultNodeID, the Kafka server's default derivation.
	NodeID func(addr string) int32
	// LeaseDuration is how long a group's coordinator lease lasts
	// unrenewed; another agent takes the group over after watching it go
	// unrenewed this long. Default 10s.
	LeaseDuration time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound the session timeouts
	// members may ask for (Kafka's group.min/max.session.timeout.ms).
	// Default 6s and 30m.
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay holds the first rebalance of an empty group
	// open for more members (group.initial.rebalance.delay.ms). Default 3s;
	// negative means no delay.
	InitialRebalanceDelay time.Duration
	// IdleRelease releases the lease of a group that has had no members
	// for this long, so idle groups cost no renewals. Default 5m; negative
	// means never.
	IdleRelease time.Duration
	// ConsumerSessionTimeout is how long a member of a KIP-848 consumer
	// group may go without heartbeating before it is fenced and its
	// partitions reassigned (group.consumer.session.timeout.ms; in that
	// protocol the broker sets it, not the client). Default 45s.
	ConsumerSessionTimeout time.Duration
	// ConsumerHeartbeatInterval is the heartbeat interval given to
	// KIP-848 members (group.consumer.heartbeat.interval.ms). Default 5s.
	ConsumerHeartbeatInterval time.Duration
	// ConsumerMaxSize bounds the members of a KIP-848 consumer group
	// (group.consumer.max.size). Default: no bound.
	ConsumerMaxSize int
	Logger          *slog.Logger
}

func (c *Config) fill() error {
	if c.NodeID == nil {
		c.NodeID = DefaultNodeID
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 10 * time.Second
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	if c.MinSessionTimeout > c.MaxSessionTimeout {
		return fmt.Errorf("groups: minimum session timeout %v exceeds the maximum %v", c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	switch {
	case c.InitialRebalanceDelay == 0:
		c.InitialRebalanceDelay = 3 * time.Second
	case c.InitialRebalanceDelay < 0:
		c.InitialRebalanceDelay = 0
	}
	if c.IdleRelease == 0 {
		c.IdleRelease = 5 * time.Minute
	}
	if c.ConsumerSessionTimeout <= 0 {
		c.ConsumerSessionTimeout = 45 * time.Second
	}
	if c.ConsumerHeartbeatInterval <= 0 {
		c.ConsumerHeartbeatInterval = 5 * time.Second
	}
	if c.ConsumerHeartbeatInterval >= c.ConsumerSessionTimeout {
		return fmt.Errorf("groups: consumer heartbeat interval %v must be below the session timeout %v", c.ConsumerHeartbeatInterval, c.ConsumerSessionTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// DefaultNodeID derives a non-negative node id from an address (FNV-1a).
func DefaultNodeID(addr string) int32 {
	h := fnv.New32a()
	h.Write([]byte(addr))
	return int32(h.Sum32() & 0x7fffffff)
}

func splitAddr(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || host == "" {
		return "", 0, fmt.Errorf("bad port or empty host")
	}
	return host, int32(p), nil
}

// LeaseName is the name of the lease whose holder coordinates a group.
func LeaseName(group string) string { return "group/" + group }

// TopicLookup tells whether a topic and partition exist;
// *stream.Service implements it.
type TopicLookup interface {
	Partitions(topic string) (int32, error)
}

// TopicLister lists the topics, which KIP-848 consumer groups are assigned
// from; *stream.Service implements it.
type TopicLister interface {
	Topics() []stream.TopicInfo
}

// catalog lists the topics for the consumer groups' assignors.
func (c *Coordinator) catalog() []topicMeta {
	c.mu.Lock()
	l := c.lister
	c.mu.Unlock()
	if l == nil {
		return nil
	}
	ts := l.Topics()
	out := make([]topicMeta, len(ts))
	for i, t := range ts {
		out[i] = topicMeta{name: t.Name, id: t.ID(), partitions: t.Partitions}
	}
	return out
}

// ClientInfo identifies the client connection a request came on; members
// are named after it and DescribeGroups reports it.
type ClientInfo struct {
	ID   string
	Host string
}

type clientKey struct{}

// WithClient attaches the client's id and host to a request's context.
func WithClient(ctx context.Context, id, host string) context.Context {
	return context.WithValue(ctx, clientKey{}, ClientInfo{ID: id, Host: host})
}

func clientFrom(ctx context.Context) ClientInfo {
	ci, _ := ctx.Value(clientKey{}).(ClientInfo)
	return ci
}

// held is a group this agent coordinates.
type held struct {
	epoch uint64
	// validUntil: the lease is surely ours until then (the start of the
	// last successful acquire or renew, plus the lease duration); after
	// it, other agents may have taken over and we stop answering.
	validUntil time.Time
	g          *group         // classic membership
	cg         *consumerGroup // KIP-848 membership
}

func (h *held) shutdown() {
	h.g.shutdown()
	h.cg.shutdown()
}

// idleSince: when the group was last used, false while it has members of
// either protocol.
func (h *held) idleSince() (time.Time, bool) {
	a, ok := h.g.idleSince()
	if !ok {
		return a, false
	}
	b, ok := h.cg.idleSince()
	if !ok {
		return b, false
	}
	if b.After(a) {
		a = b
	}
	return a, true
}

// Coordinator is one agent's group coordinator. See the package comment for
// the wiring.
type Coordinator struct {
	cfg     Config
	offsets *Offsets
	timing  timing
	log     *slog.Logger

	mu        sync.Mutex
	cl        *commitlog.Log
	addr      string // advertised, recorded in our leases
	topics    TopicLookup
	lister    TopicLister
	closed    bool
	held      map[string]*held
	watches   map[string]*commitlog.LeaseWatch
	acquiring map[string]chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a coordinator and the Owner of its entries. Pass the Owner to
// the log (stream.Options.Owners) when opening it, then call Start.
func New(cfg Config) (*Coordinator, commitlog.Owner, error) {
	if err := cfg.fill(); err != nil {
		return nil, nil, err
	}
	c := &Coordinator{
		cfg:     cfg,
		offsets: NewOffsets(),
		timing: timing{
			minSession:   cfg.MinSessionTimeout,
			maxSession:   cfg.MaxSessionTimeout,
			initialDelay: cfg.InitialRebalanceDelay,
		},
		log:       cfg.Logger,
		held:      map[string]*held{},
		watches:   map[string]*commitlog.LeaseWatch{},
		acquiring: map[string]chan struct{}{},
		stop:      make(chan struct{}),
	}
	return c, c.offsets, nil
}

// Start attaches the coordinator to the log that applies its Owner and
// starts serving. advertised is this agent's Kafka address (host:port) as
// clients reach it; it is recorded in the leases of the groups this agent
// coordinates, so every agent can send clients here. topics, if not nil, is
// used to refuse offset commits for partitions that do not exist.
func (c *Coordinator) Start(l *commitlog.Log, advertised string, topics TopicLookup) error {
	if _, _, err := splitAddr(advertised); err != nil {
		return fmt.Errorf("groups: advertised address %q: %v (want host:port)", advertised, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return errClosed
	case c.cl != nil:
		return errors.New("groups: coordinator started twice")
	}
	c.cl, c.addr, c.topics = l, advertised, topics
	c.lister, _ = topics.(TopicLister)
	c.log = c.log.With("agent", l.AgentID())
	c.wg.Add(1)
	go c.maintain()
	return nil
}

// Close stops coordinating: waiting requests get NOT_COORDINATOR and the
// group leases are released in one commit, so other agents take the groups
// over at once. Call it before closing the log.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	hs := c.held
	c.held = map[string]*held{}
	cl := c.cl
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	if cl == nil {
		return nil
	}
	var entries []commitlog.Entry
	for name, h := range hs {
		h.shutdown()
		entries = append(entries, commitlog.LeaseRelease(LeaseName(name), cl.AgentID(), h.epoch))
	}
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.LeaseDuration)
	defer cancel()
	if _, _, err := cl.Propose(ctx, entries...); err != nil {
		// The leases expire on their own.
		return fmt.Errorf("groups: releasing %d group leases: %w", len(entries), err)
	}
	return nil
}

// Offsets is the state machine holding committed offsets; read it through
// the log's View.
func (c *Coordinator) Offsets() *Offsets { return c.offsets }

func (c *Coordinator) commitLog() *commitlog.Log {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.cl
}

// leaseOp is the payload of the log core's lease entry (docs/FORMAT.md,
// entry type 1). Proposing the entries directly lets one commit carry many
// renewals, or an acquisition together with our fencing entry.
func jsonEntry(typ uint16, v any) commitlog.Entry {
	data, _ := json.Marshal(v)
	return commitlog.Entry{Type: typ, Data: data}
}

// errLost: the lease of a group is no longer ours.
var errLost = errors.New("not the coordinator of this group")

// coordinating returns the group if this agent coordinates it now.
func (c *Coordinator) coordinating(group string) (*held, *commitlog.Log, error) {
	c.mu.Lock()
	cl, h := c.cl, c.held[group]
	closed := c.closed
	c.mu.Unlock()
	if cl == nil || closed || h == nil {
		return nil, cl, errLost
	}
	lease := cl.Lease(LeaseName(group))
	if lease.Holder != cl.AgentID() || lease.Epoch != h.epoch {
		c.drop(group, h)
		return nil, cl, errLost
	}
	c.mu.Lock()
	valid := time.Now().Before(h.validUntil)
	c.mu.Unlock()
	if !valid {
		return nil, cl, errLost
	}
	return h, cl, nil
}

// drop forgets a group whose lease is gone.
func (c *Coordinator) drop(group string, h *held) {
	c.mu.Lock()
	if c.held[group] == h {
		delete(c.held, group)
	}
	c.mu.Unlock()
	h.shutdown()
}

// expired reports whether a lease held by another agent has gone unrenewed
// for the lease duration, as this agent has watched it.
func (c *Coordinator) expired(group string, lease commitlog.Lease) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.watches[group]
	if w == nil {
		w = &commitlog.LeaseWatch{}
		c.watches[group] = w
	}
	return w.Expired(lease, time.Now(), c.cfg.LeaseDuration)
}

// locate returns the address of the group's coordinator, taking the group
// over if nobody (alive) coordinates it.
func (c *Coordinator) locate(ctx context.Context, group string) (string, error) {
	for range 4 {
		cl := c.commitLog()
		if cl == nil {
			return "", errClosed
		}
		lease := cl.Lease(LeaseName(group))
		if lease.Holder == cl.AgentID() {
			c.mu.Lock()
			h := c.held[group]
			c.mu.Unlock()
			if h != nil && h.epoch == lease.Epoch {
				return c.addr, nil
			}
		} else if lease.Holder != "" && !c.expired(group, lease) {
			return lease.Addr, nil
		}
		if err := c.acquire(ctx, cl, group, lease); err != nil {
			return "", err
		}
	}
	return "", errors.New("the group's lease keeps changing hands")
}

var errClosed = errors.New("group coordinator closed")

// acquire proposes to take the group's lease at the next epoch, together
// with the fencing entry that makes the takeover final for offset commits.
// Only one acquisition per group runs at a time on this agent.
func (c *Coordinator) acquire(ctx context.Context, cl *commitlog.Log, group string, seen commitlog.Lease) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if ch, busy := c.acquiring[group]; busy {
		c.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	c.acquiring[group] = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.acquiring, group)
		c.mu.Unlock()
		close(done)
	}()

	if seen.Holder != "" && seen.Holder != cl.AgentID() {
		// Our view of another agent's renewals may lag: catch up with the
		// log before deposing it.
		if err := cl.Sync(ctx); err != nil {
			return err
		}
		cur := cl.Lease(LeaseName(group))
		if cur != seen || !c.expired(group, cur) {
			return nil
		}
	}
	start := time.Now()
	epoch := seen.Epoch + 1
	_, res, err := cl.Propose(ctx,
		commitlog.LeaseAcquire(LeaseName(group), cl.AgentID(), c.addr, seen),
		jsonEntry(TypeCoordinatorEpoch, epochEntry{Group: group, Epoch: epoch}))
	if err != nil {
		return err
	}
	if res[0] != nil {
		return nil // someone else moved first; the caller looks again
	}
	var restored *consumerState
	cl.View(c.offsets, func() { restored = c.offsets.consumerState(group) })
	h := &held{epoch: epoch, validUntil: start.Add(c.cfg.LeaseDuration), g: newGroup(group, c.timing)}
	h.cg = newConsumerGroup(group, consumerTiming{
		session: c.cfg.ConsumerSessionTimeout, heartbeat: c.cfg.ConsumerHeartbeatInterval, maxSize: c.cfg.ConsumerMaxSize,
	}, c.catalog, restored)
	h.cg.persist = func(ctx context.Context, st consumerState) int16 {
		st.Epoch = h.epoch
		return c.proposeFenced(ctx, cl, group, h, commitlog.Entry{Type: TypeConsumerGroup, Data: marshalState(st)})
	}
	c.mu.Lock()
	old := c.held[group]
	closed := c.closed
	if !closed {
		c.held[group] = h
	}
	c.mu.Unlock()
	if old != nil {
		old.shutdown()
	}
	if closed {
		h.shutdown()
		return errClosed
	}
	c.log.Info("coordinating consumer group", "group", group, "epoch", epoch)
	return nil
}

// maintain renews the leases of the groups this agent coordinates, in one
// commit per round, releases idle ones, and keeps watching the leases of
// other groups so a dead coordinator is noticed promptly.
func (c *Coordinator) maintain() {
	defer c.wg.Done()
	tick := time.NewTicker(max(c.cfg.LeaseDuration/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		c.renew()
		c.observe()
	}
}

func (c *Coordinator) renew() {
	cl := c.commitLog()
	if cl == nil {
		return
	}
	now := time.Now()
	type item struct {
		name    string
		h       *held
		release bool
	}
	var items []item
	c.mu.Lock()
	for name, h := range c.held {
		idle := false
		if c.cfg.IdleRelease > 0 {
			if since, ok := h.idleSince(); ok && now.Sub(since) >= c.cfg.IdleRelease {
				idle = true
				// Stop answering before the release can be seen.
				delete(c.held, name)
			}
		}
		items = append(items, item{name, h, idle})
	}
	c.mu.Unlock()
	if len(items) == 0 {
		return
	}
	entries := make([]commitlog.Entry, len(items))
	for i, it := range items {
		if it.release {
			it.h.shutdown()
			entries[i] = commitlog.LeaseRelease(LeaseName(it.name), cl.AgentID(), it.h.epoch)
		} else {
			entries[i] = commitlog.LeaseRenew(LeaseName(it.name), cl.AgentID(), it.h.epoch)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.LeaseDuration/2)
	defer cancel()
	_, res, err := cl.Propose(ctx, entries...)
	if err != nil {
		c.log.Warn("renewing consumer group leases failed", "groups", len(items), "err", err)
		return
	}
	for i, it := range items {
		switch {
		case it.release:
			c.log.Info("released idle consumer group", "group", it.name)
		case res[i] == nil:
			c.mu.Lock()
			if c.held[it.name] == it.h {
				it.h.validUntil = now.Add(c.cfg.LeaseDuration)
			}
			c.mu.Unlock()
		default:
			c.log.Warn("lost consumer group lease", "group", it.name, "epoch", it.h.epoch)
			c.drop(it.name, it.h)
		}
	}
}

// observe feeds every known group's lease to its watch.
func (c *Coordinator) observe() {
	cl := c.commitLog()
	if cl == nil {
		return
	}
	var names []string
	cl.View(c.offsets, func() { names = c.offsets.Groups(true) })
	for _, name := range names {
		lease := cl.Lease(LeaseName(name))
		if lease.Holder != cl.AgentID() {
			c.expired(name, lease)
		}
	}
}
