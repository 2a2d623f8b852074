package commitlog

// Rolling upgrades. Every agent advertises, in its registration object
// agents/{agent}.json, the entry types and formats it understands. An entry
// type an Owner declares gated (a new module's, or a new type of an old
// one) is usable only once a TypeFeatures commit has enabled it, and the
// janitor proposes that commit only when every live agent advertises the
// type. Until then proposals of the type fail with ErrNotEnabled and the
// janitor logs which agents hold it back. So an older agent, which would
// stop at an entry type it does not know, never meets one while it is
// running; one that was offline and starts later still stops, with the
// UnknownEntryError it always gave.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twoway/twoway/bucket"
)

// AgentsPrefix holds agents' registrations. It is discovery, not part of
// the log: a missing or stale registration can only delay the enabling of
// a feature (or, for the Kafka front door, list a broker that is gone).
const AgentsPrefix = "agents/"

// registrationFormat is the version field of a registration object.
const registrationFormat = 1

// Registration is the JSON body of agents/{agent}.json.
type Registration struct {
	Version   int    `json:"version"`
	Agent     string `json:"agent"`
	StartedMs int64  `json:"started_ms"`
	UpdatedMs int64  `json:"updated_ms"`
	// Features lists every entry type ("type:104") and format
	// ("checkpoint:2") this agent understands.
	Features []string `json:"features"`
	// Hint is the UDP address the agent takes commit hints on (hint.go).
	Hint string `json:"hint,omitempty"`
}

func registrationKey(agent string) string { return AgentsPrefix + agent + ".json" }

// featuresEntry is the payload of TypeFeatures.
type featuresEntry struct {
	Enable []string `json:"enable"`
}

// features is the core Owner holding the enabled feature set.
type features struct {
	on map[string]bool
}

func (f *features) Name() string    { return "features" }
func (f *features) Types() []uint16 { return []uint16{TypeFeatures, TypeAll} }

// GatedTypes: TypeAll came after the first release.
func (f *features) GatedTypes() []uint16 { return []uint16{TypeAll} }
func (f *features) Reset()               { f.on = map[string]bool{} }

func (f *features) Apply(_ uint64, e Entry) any {
	if e.Type == TypeAll {
		// The grouping itself is the log's (applyLocked); the entry
		// changes no state.
		if _, err := allCount(e); err != nil {
			return err
		}
		return nil
	}
	var fe featuresEntry
	if err := json.Unmarshal(e.Data, &fe); err != nil {
		return fmt.Errorf("malformed features entry: %v", err)
	}
	for _, name := range fe.Enable {
		f.on[name] = true
	}
	return nil
}

func (f *features) list() []string {
	out := make([]string, 0, len(f.on))
	for n := range f.on {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (f *features) Snapshot() func() ([]byte, error) {
	b, err := json.Marshal(f.list())
	return func() ([]byte, error) { return b, err }
}

func (f *features) Restore(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	f.Reset()
	for _, n := range names {
		f.on[n] = true
	}
	return nil
}

func (f *features) LiveObjects(func(string)) {}

// supported lists the features this agent understands.
func (l *Log) supported() []string {
	var out []string
	for t := range l.mux.byType {
		out = append(out, typeFeature(t))
	}
	out = append(out, "checkpoint:2")
	out = append(out, l.mux.formats...)
	sort.Strings(out)
	return out
}

// wanted lists the gated features this agent knows and would enable.
func (l *Log) wanted() []string {
	var out []string
	for t := range l.mux.gated {
		out = append(out, typeFeature(t))
	}
	out = append(out, l.mux.formats...)
	sort.Strings(out)
	return out
}

// Enabled reports whether feature name is enabled in the applied state.
func (l *Log) Enabled(name string) bool {
	var on bool
	l.View(l.features, func() { on = l.features.on[name] })
	return on
}

// Features lists the enabled features.
func (l *Log) Features() []string {
	var out []string
	l.View(l.features, func() { out = l.features.list() })
	return out
}

// checkEnabled refuses proposals of gated entry types not enabled yet.
func (l *Log) checkEnabled(entries []Entry) error {
	for _, e := range entries {
		if !l.mux.gated[e.Type] {
			continue
		}
		if !l.Enabled(typeFeature(e.Type)) {
			return fmt.Errorf("%w: %w: entry type %d (%s) waits until every live agent supports it; see the janitor's log for which do not",
				ErrNotCommitted, ErrNotEnabled, e.Type, l.mux.byType[e.Type].o.Name())
		}
	}
	return nil
}

// register writes this agent's registration.
func (l *Log) register(ctx context.Context) error {
	r := Registration{
		Version:   registrationFormat,
		Agent:     l.opts.AgentID,
		StartedMs: l.started.UnixMilli(),
		UpdatedMs: time.Now().UnixMilli(),
		Features:  l.supported(),
		Hint:      l.hintAddr(),
	}
	body, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := l.b.Put(ctx, registrationKey(l.opts.AgentID), bytes.NewReader(body), int64(len(body)))
	return err
}

func (l *Log) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.b.Delete(ctx, registrationKey(l.opts.AgentID)); err != nil {
		l.log.Warn("deregistration failed; the registration expires by itself", "err", err)
	}
}

// registerLoop refreshes the registration until the log closes.
func (l *Log) registerLoop() {
	defer l.wg.Done()
	for l.sleep(l.opts.RegisterInterval) {
		if err := l.register(l.ctx); err != nil && l.ctx.Err() == nil {
			l.log.Warn("agent registration failed; features wait until it succeeds", "err", err)
		}
		l.refreshPeers(l.ctx)
	}
}

// Agents lists the live agents' registrations: those refreshed within
// three registration intervals.
func (l *Log) Agents(ctx context.Context) ([]Registration, error) {
	keys, err := bucket.Keys(ctx, l.b, AgentsPrefix, "")
	if err != nil {
		return nil, err
	}
	var out []Registration
	now := time.Now()
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue // the Kafka front door's own discovery objects
		}
		body, _, err := bucket.ReadAll(ctx, l.b, k)
		if bucket.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var r Registration
		if err := json.Unmarshal(body, &r); err != nil || r.Version < 1 || registrationKey(r.Agent) != k {
			l.log.Warn("ignoring an unreadable agent registration", "key", k, "err", err)
			continue
		}
		age := now.Sub(time.UnixMilli(r.UpdatedMs))
		if age > time.Hour && r.Agent != l.opts.AgentID {
			_ = l.b.Delete(ctx, k) // left by an agent that died long ago
			continue
		}
		if age <= 3*l.opts.RegisterInterval {
			out = append(out, r)
		}
	}
	return out, nil
}

// enableFeatures is the janitor task that enables the gated features every
// live agent supports.
func (l *Log) enableFeatures(ctx context.Context, _ *Log) error {
	var missing []string
	for _, f := range l.wanted() {
		if !l.Enabled(f) {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	agents, err := l.Agents(ctx)
	if err != nil {
		return err
	}
	var enable []string
	waiting := map[string][]string{}
	for _, f := range missing {
		var lacking []string
		for _, a := range agents {
			if !slices.Contains(a.Features, f) {
				lacking = append(lacking, a.Agent)
			}
		}
		if len(lacking) == 0 {
			enable = append(enable, f)
		} else {
			waiting[f] = lacking
		}
	}
	if msg := fmt.Sprint(waiting); len(waiting) > 0 && msg != l.lastWaiting {
		l.lastWaiting = msg
		for f, lacking := range waiting {
			l.log.Info("feature not enabled: some live agents do not support it (upgrade them, or stop them)", "feature", f, "agents", lacking)
		}
	}
	if len(enable) == 0 {
		return nil
	}
	data, _ := json.Marshal(featuresEntry{Enable: enable})
	if _, _, err := l.Propose(ctx, Entry{Type: TypeFeatures, Data: data}); err != nil {
		return err
	}
	l.log.Info("features enabled: every live agent supports them", "features", enable)
	return nil
}

// EnableFeatures enables now, as the janitor does, the gated features
// every live agent supports. An agent running without the janitor (a
// one-shot command) calls it before it needs a feature.
func (l *Log) EnableFeatures(ctx context.Context) error { return l.enableFeatures(ctx, l) }

// WaitEnabled waits until feature name is enabled (the janitor enables a
// gated feature once every live agent supports it), or ctx ends.
func (l *Log) WaitEnabled(ctx context.Context, name string) error {
	for {
		ch := l.Changed()
		if l.Enabled(name) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for feature %s: %w", name, ctx.Err())
		}
	}
}

// AllFeature is the feature that enables all-or-none groups (All).
var AllFeature = typeFeature(TypeAll)
