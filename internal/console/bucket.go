package console

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/httpapi"
)

// Kinds of objects, by the first segment of their key (docs/FORMAT.md).
var kindOf = map[string]string{
	"log":         "commits",
	"chunks":      "chunks",
	"checkpoints": "checkpoints",
	"modules":     "modules",
	"tables":      "tables",
	"agents":      "agents",
}

// KindCount is the objects of one kind.
type KindCount struct {
	Kind    string `json:"kind"`
	Objects int64  `json:"objects"`
	Bytes   int64  `json:"bytes"`
}

// objectCounts counts the bucket's objects by kind, at most once per
// every: a count lists the whole bucket, which on S3 is one request per
// thousand objects and takes a while on a big bucket. A count runs in the
// background; requests meanwhile get the previous one.
type objectCounts struct {
	b      bucket.Bucket
	every  time.Duration
	logger *slog.Logger

	mu      sync.Mutex
	running bool
	kinds   []KindCount
	countMs int64 // when the last count finished
	tookMs  int64
	lists   int64 // list pages it took (1 per 1000 objects on S3)
	lastErr string
	lastTry time.Time
}

func (c *objectCounts) snapshot() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running && time.Since(c.lastTry) >= c.every {
		c.running, c.lastTry = true, time.Now()
		go c.count()
	}
	kinds := c.kinds
	if kinds == nil {
		kinds = []KindCount{}
	}
	out := map[string]any{
		"kinds": kinds, "counted_ms": c.countMs, "took_ms": c.tookMs,
		"list_requests": c.lists, "counting": c.running,
		"recount_every_ms": c.every.Milliseconds(),
	}
	if c.lastErr != "" {
		out["error"] = c.lastErr
	}
	return out
}

func (c *objectCounts) count() {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	byKind := map[string]*KindCount{}
	var order []string
	var n int64
	var err error
	for info, e := range c.b.List(ctx, "", "") {
		if e != nil {
			err = e
			break
		}
		n++
		first, _, _ := strings.Cut(info.Key, "/")
		kind, ok := kindOf[first]
		if !ok {
			kind = "other"
		}
		k := byKind[kind]
		if k == nil {
			k = &KindCount{Kind: kind}
			byKind[kind] = k
			order = append(order, kind)
		}
		k.Objects++
		k.Bytes += info.Size
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = false
	if err != nil {
		c.lastErr = "counting the bucket's objects: " + err.Error()
		if c.logger != nil {
			c.logger.Warn("console: counting the bucket's objects failed", "err", err)
		}
		return
	}
	kinds := make([]KindCount, 0, len(byKind))
	for _, name := range []string{"commits", "chunks", "checkpoints", "modules", "tables", "agents", "other"} {
		if k := byKind[name]; k != nil {
			kinds = append(kinds, *k)
		}
	}
	c.kinds, c.countMs, c.tookMs, c.lists, c.lastErr = kinds, time.Now().UnixMilli(), time.Since(start).Milliseconds(), n/1000+1, ""
}

func (m *Module) handleBucket(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	out := m.counts.snapshot()
	out["bucket"] = m.b.String()
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// maxObjects bounds one answer of GET /v1/bucket/objects.
const maxObjects = 1000

func (m *Module) handleObjects(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r, "prefix", "after", "max"); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	q := r.URL.Query()
	limit := 100
	if s := q.Get("max"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			httpapi.WriteError(w, httpapi.BadRequest("max", "max: want a count from 1, got "+strconv.Quote(s)))
			return
		}
		limit = min(v, maxObjects)
	}
	type object struct {
		Key  string `json:"key"`
		Size int64  `json:"size"`
	}
	out := []object{}
	more := false
	for info, err := range m.b.List(r.Context(), q.Get("prefix"), q.Get("after")) {
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if len(out) == limit {
			more = true
			break
		}
		out = append(out, object{Key: info.Key, Size: info.Size})
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"objects": out, "more": more})
}
