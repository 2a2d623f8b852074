package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twoway/twoway/bucket"
)

// The agent registry is how agents find each other to list as brokers. Each
// agent Puts agents/{node_id} every few seconds and deletes it on a clean
// shutdown; Metadata lists agents/ and reports those refreshed recently.
//
// This is discovery, not consensus, and lives outside the commit log on
// purpose: a stale or missing entry only makes clients connect to a dead
// agent (and retry elsewhere) or spread over fewer agents. Every agent serves
// every partition, so no decision rests on it.
const agentsPrefix = "agents/"

// agentFormat is the version field of a registration object.
const agentFormat = 1

// agent is the JSON body of agents/{node_id}.
type agent struct {
	Version   int    `json:"version"`
	NodeID    int32  `json:"node_id"`
	Addr      string `json:"addr"` // advertised host:port
	UpdatedMs int64  `json:"updated_ms"`
}

// broker is an agent as Metadata reports it.
type broker struct {
	NodeID int32
	Host   string
	Port   int32
}

// registryCacheFor is how long a listing of agents/ is reused.
const registryCacheFor = time.Second

// staleAgentAge is when an entry left by an agent that died without
// deregistering is deleted by whichever agent lists it.
const staleAgentAge = time.Hour

type registry struct {
	b    bucket.Bucket
	self agent
	ttl  time.Duration
	log  *slog.Logger

	mu     sync.Mutex
	listed time.Time
	cached []broker
}

func newRegistry(b bucket.Bucket, self agent, ttl time.Duration, log *slog.Logger) *registry {
	self.Version = agentFormat
	return &registry{b: b, self: self, ttl: ttl, log: log}
}

func agentKey(id int32) string { return fmt.Sprintf("%s%d", agentsPrefix, id) }

// run refreshes this agent's registration every interval until ctx ends.
func (r *registry) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.register(ctx)
	}
}

func (r *registry) register(ctx context.Context) {
	a := r.self
	a.UpdatedMs = time.Now().UnixMilli()
	body, _ := json.Marshal(a)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := r.b.Put(ctx, agentKey(a.NodeID), bytes.NewReader(body), int64(len(body))); err != nil && ctx.Err() == nil {
		r.log.Warn("kafka agent registration failed; other agents may not list this one", "err", err)
	}
}

func (r *registry) deregister(ctx context.Context) {
	if err := r.b.Delete(ctx, agentKey(r.self.NodeID)); err != nil {
		r.log.Warn("kafka agent deregistration failed; the entry expires by itself", "err", err)
	}
}

// brokers lists the live agents, this one always included, sorted by node
// id. A failed listing falls back to the previous one.
func (r *registry) brokers(ctx context.Context) []broker {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.listed) < registryCacheFor && r.cached != nil {
		return r.cached
	}
	list, err := r.list(ctx)
	if err != nil {
		r.log.Warn("kafka: listing agents failed; reporting the last known set", "err", err)
		if r.cached != nil {
			return r.cached
		}
		list = nil
	}
	self := toBroker(r.self)
	found := false
	for _, b := range list {
		found = found || b.NodeID == self.NodeID
	}
	if !found {
		list = append(list, self)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].NodeID < list[j].NodeID })
	r.cached, r.listed = list, time.Now()
	return list
}

func (r *registry) list(ctx context.Context) ([]broker, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	keys, err := bucket.Keys(ctx, r.b, agentsPrefix, "")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []broker
	for _, k := range keys {
		if _, err := strconv.ParseInt(strings.TrimPrefix(k, agentsPrefix), 10, 32); err != nil {
			continue // not a registration
		}
		body, _, err := bucket.ReadAll(ctx, r.b, k)
		if bucket.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var a agent
		if err := json.Unmarshal(body, &a); err != nil || a.Version < 1 {
			r.log.Warn("kafka: ignoring an unreadable agent registration", "key", k, "err", err)
			continue
		}
		age := now.Sub(time.UnixMilli(a.UpdatedMs))
		if age > staleAgentAge && a.NodeID != r.self.NodeID {
			_ = r.b.Delete(ctx, k)
			continue
		}
		if age > r.ttl || agentKey(a.NodeID) != k {
			continue
		}
		if b := toBroker(a); b.Port > 0 {
			out = append(out, b)
		}
	}
	return out, nil
}

func toBroker(a agent) broker {
	host, port, err := net.SplitHostPort(a.Addr)
	if err != nil {
		return broker{NodeID: a.NodeID}
	}
	p, _ := strconv.ParseUint(port, 10, 16)
	return broker{NodeID: a.NodeID, Host: host, Port: int32(p)}
}
