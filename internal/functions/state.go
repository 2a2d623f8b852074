package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/keyed"
)

// Entry types 300-399 belong to functions. All are gated: they came after
// the first release.
const (
	// TypeDeploy deploys a version of a function (payload: Deployment).
	TypeDeploy uint16 = 300
	// TypeDelete deletes a function, its history, actors, timers and
	// input positions.
	TypeDelete uint16 = 301
	// TypeEffects is the guard and the effects of invocations: input
	// position, actor versions read, timers fired; state writes (values
	// in the blob), timers set. It heads an all-or-none group with the
	// records the invocations published (commitlog.All).
	TypeEffects uint16 = 302
)

// Deployment is one version of a function, as committed.
type Deployment struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Module is the SHA-256 of the module's bytes, stored at
	// modules/{Module}.
	Module  string   `json:"module"`
	Size    int64    `json:"size"`
	Imports []string `json:"imports"`
	Grants  []string `json:"grants"`
	// Subscribe lists input topics; HTTP serves /fn/{name}/....
	Subscribe []string          `json:"subscribe,omitempty"`
	HTTP      bool              `json:"http,omitempty"`
	Config    map[string]string `json:"config,omitempty"`
	Limits    Limits            `json:"limits"`
	// DeployedMs is the proposer's clock.
	DeployedMs int64 `json:"deployed_ms"`
	// RollbackOf is the version this one copies, for a rollback.
	RollbackOf int `json:"rollback_of,omitempty"`
}

// Limits bound a deployment's invocations.
type Limits struct {
	MemoryPages    uint32 `json:"memory_pages"`
	TimeoutMs      int64  `json:"timeout_ms"`
	MaxConcurrency int    `json:"max_concurrency"`
	MaxOutput      int    `json:"max_output_bytes"`
	MaxState       int    `json:"max_state_bytes"`
	MaxRecord      int    `json:"max_record_bytes"`
	// MaxEffects bounds the records, state writes and timers of one
	// invocation.
	MaxEffects int `json:"max_effects"`
}

// ModuleKey is where a module's bytes are kept.
func ModuleKey(sum string) string { return ModulesPrefix + sum }

// ModulesPrefix holds modules, content-addressed.
const ModulesPrefix = "modules/"

// function is a function's applied state.
type function struct {
	History []Deployment `json:"history"`
	// Current is the index in History of the live version.
	Current int `json:"current"`
	// Positions: "topic/partition" -> the next input offset.
	Positions map[string]int64 `json:"positions,omitempty"`
	// Timers: actor key -> timer name -> timer (encoded beside the
	// functions in a snapshot; see Snapshot).
	Timers *timerSet `json:"-"`
	// Actors and StateBytes count the actors with state and their bytes.
	Actors     int64 `json:"actors,omitempty"`
	StateBytes int64 `json:"state_bytes,omitempty"`
}

func (f *function) live() *Deployment { return &f.History[f.Current] }

// Timer is a durable timer of an actor.
type Timer struct {
	AtMs    int64  `json:"at"`
	ID      uint64 `json:"id"`
	Payload []byte `json:"payload,omitempty"`
}

// effects is the payload of TypeEffects.
type effects struct {
	Fn string `json:"fn"`
	// Guard.
	Input *inputRange `json:"in,omitempty"`
	Bases []keyBase   `json:"bases,omitempty"`
	Fired []fired     `json:"fired,omitempty"`
	// Effects.
	Writes []write   `json:"w,omitempty"`
	Timers []timerOp `json:"t,omitempty"`
}

// inputRange is the input a batch consumed: offsets [From, To) of a
// partition. It applies only at the function's position there.
type inputRange struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"p"`
	From      int64  `json:"from"`
	To        int64  `json:"to"`
}

// keyBase is the version of an actor's state an invocation read (0: it
// had none).
type keyBase struct {
	Key string `json:"k"`
	Ver uint64 `json:"v"`
}

// fired is a timer an invocation handled; it must still be set.
type fired struct {
	Key  string `json:"k"`
	Name string `json:"n"`
	ID   uint64 `json:"id"`
}

// write sets an actor's state to [Off, Off+Len) of the entry's blob, or
// deletes it.
type write struct {
	Key string `json:"k"`
	Del bool   `json:"del,omitempty"`
	Off int64  `json:"off,omitempty"`
	Len int64  `json:"len,omitempty"`
	CRC uint32 `json:"crc,omitempty"`
}

// timerOp sets or cancels an actor's timer.
type timerOp struct {
	Key     string `json:"k"`
	Name    string `json:"n"`
	Cancel  bool   `json:"cancel,omitempty"`
	AtMs    int64  `json:"at,omitempty"`
	Payload []byte `json:"payload,omitempty"`
}

// Guard failures. They are results of TypeEffects, never errors of the
// log: the invocation runs again on the newer state.
var (
	ErrConflict = errors.New("conflict: the state changed since the invocation read it")
	ErrNoFunc   = errors.New("no such function")
)

// state is the functions Owner.
type state struct {
	fns map[string]*function
	// actors maps fn "\x00" key to the actor's state value and version
	// (the sequence of the commit that wrote it).
	actors *keyed.Index
	// nextTimer numbers timers.
	nextTimer uint64
}

func newState() *state { return &state{fns: map[string]*function{}, actors: keyed.New()} }

func actorKey(fn, key string) string { return fn + "\x00" + key }

func (s *state) Name() string         { return "functions" }
func (s *state) Types() []uint16      { return []uint16{TypeDeploy, TypeDelete, TypeEffects} }
func (s *state) GatedTypes() []uint16 { return s.Types() }
func (s *state) Reset() {
	s.fns, s.actors, s.nextTimer = map[string]*function{}, keyed.New(), 0
}

func (s *state) LiveObjects(fn func(string)) {
	s.actors.LiveObjects(fn)
	for _, f := range s.fns {
		for _, d := range f.History {
			fn(ModuleKey(d.Module))
		}
	}
}

func (s *state) Apply(seq uint64, e commitlog.Entry) any {
	switch e.Type {
	case TypeDeploy:
		var d Deployment
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("malformed deploy entry: %v", err)
		}
		if err := ValidateName(d.Name); err != nil {
			return err
		}
		f := s.fns[d.Name]
		if f == nil {
			f = &function{Timers: newTimerSet()}
			s.fns[d.Name] = f
		}
		d.Version = len(f.History) + 1
		f.History = append(f.History, d)
		f.Current = len(f.History) - 1
		return d.Version
	case TypeDelete:
		var d struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("malformed delete entry: %v", err)
		}
		if s.fns[d.Name] == nil {
			return fmt.Errorf("%w: %s", ErrNoFunc, d.Name)
		}
		delete(s.fns, d.Name)
		prefix := d.Name + "\x00"
		var gone []string
		s.actors.Range(func(k string, _ keyed.Value) {
			if strings.HasPrefix(k, prefix) {
				gone = append(gone, k)
			}
		})
		for _, k := range gone {
			s.actors.Delete(k)
		}
		return nil
	case TypeEffects:
		var ef effects
		if err := json.Unmarshal(e.Data, &ef); err != nil {
			return fmt.Errorf("malformed effects entry: %v", err)
		}
		return s.applyEffects(seq, e.Ref, &ef)
	}
	return fmt.Errorf("functions: unknown entry type %d", e.Type)
}

func posKey(topic string, p int32) string { return fmt.Sprintf("%s/%d", topic, p) }

func (s *state) applyEffects(seq uint64, blob commitlog.Ref, ef *effects) error {
	f := s.fns[ef.Fn]
	if f == nil {
		return fmt.Errorf("%w: %s", ErrNoFunc, ef.Fn)
	}
	// The guard: everything read must be as it was.
	if in := ef.Input; in != nil {
		if pos, ok := f.Positions[posKey(in.Topic, in.Partition)]; ok && pos != in.From {
			return fmt.Errorf("%w: %s input %s/%d is at %d, not %d", ErrConflict, ef.Fn, in.Topic, in.Partition, pos, in.From)
		}
		if in.To < in.From {
			return fmt.Errorf("malformed effects entry: input range %d to %d", in.From, in.To)
		}
	}
	for _, b := range ef.Bases {
		var cur uint64
		if v, ok := s.actors.Get(actorKey(ef.Fn, b.Key)); ok {
			cur = v.Ver
		}
		if cur != b.Ver {
			return fmt.Errorf("%w: %s actor %q is at version %d, not %d", ErrConflict, ef.Fn, b.Key, cur, b.Ver)
		}
	}
	for _, t := range ef.Fired {
		if cur, ok := f.Timers.get(t.Key, t.Name); !ok || cur.ID != t.ID {
			return fmt.Errorf("%w: %s timer %q of %q was replaced or has fired", ErrConflict, ef.Fn, t.Name, t.Key)
		}
	}
	for _, w := range ef.Writes {
		if !w.Del && (blob.IsZero() || w.Off < 0 || w.Len < 0 || w.Off+w.Len > blob.Len) {
			return fmt.Errorf("malformed effects entry: write of %q outside the blob", w.Key)
		}
	}
	// The effects.
	if in := ef.Input; in != nil {
		if f.Positions == nil {
			f.Positions = map[string]int64{}
		}
		f.Positions[posKey(in.Topic, in.Partition)] = in.To
	}
	for _, t := range ef.Fired {
		f.Timers.del(t.Key, t.Name)
	}
	for _, w := range ef.Writes {
		k := actorKey(ef.Fn, w.Key)
		if old, ok := s.actors.Get(k); ok {
			f.Actors--
			f.StateBytes -= old.Len
		}
		if w.Del {
			s.actors.Delete(k)
			continue
		}
		s.actors.Set(k, commitlog.Ref{Key: blob.Key, Off: blob.Off + w.Off, Len: w.Len, CRC: w.CRC}, seq)
		f.Actors++
		f.StateBytes += w.Len
	}
	for _, t := range ef.Timers {
		if t.Cancel {
			f.Timers.del(t.Key, t.Name)
			continue
		}
		s.nextTimer++
		f.Timers.set(t.Key, t.Name, Timer{AtMs: t.AtMs, ID: s.nextTimer, Payload: t.Payload})
	}
	return nil
}

// snapshotJSON is the encoding of everything but the actors' index.
type snapshotJSON struct {
	Functions json.RawMessage `json:"functions"`
	NextTimer uint64          `json:"next_timer"`
	// Timers: function -> actor key -> timer name -> timer.
	Timers map[string]*frozenTimers `json:"timers,omitempty"`
}

type snapshotRead struct {
	Functions map[string]*function                   `json:"functions"`
	NextTimer uint64                                 `json:"next_timer"`
	Timers    map[string]map[string]map[string]Timer `json:"timers"`
}

// Snapshot encoding: "TWFN" 0x01, u32 length of the JSON part, the JSON
// (functions, positions, timers), then the actors' keyed index.
const snapMagic = "TWFN\x01"

func (s *state) Snapshot() func() ([]byte, error) {
	// Functions change in place (positions): copy them deeply now,
	// through JSON, which is also their encoding; they are small. Timers
	// and actors, which may be millions, are captured copy-on-write and
	// encoded later.
	fns, err := json.Marshal(s.fns)
	timers := map[string]*frozenTimers{}
	for name, f := range s.fns {
		if f.Timers.Len() > 0 {
			timers[name] = f.Timers.capture()
		}
	}
	next := s.nextTimer
	frozen := s.actors.Capture()
	return func() ([]byte, error) {
		if err != nil {
			return nil, err
		}
		js, err := json.Marshal(snapshotJSON{Functions: fns, NextTimer: next, Timers: timers})
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.WriteString(snapMagic)
		n := uint32(len(js))
		b.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		b.Write(js)
		b.Write(frozen.Encode())
		return b.Bytes(), nil
	}
}

func (s *state) Restore(b []byte) error {
	if len(b) < len(snapMagic)+4 || string(b[:len(snapMagic)]) != snapMagic {
		return fmt.Errorf("functions snapshot: unknown encoding")
	}
	b = b[len(snapMagic):]
	n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	b = b[4:]
	if n > len(b) {
		return fmt.Errorf("functions snapshot: truncated")
	}
	var sj snapshotRead
	if err := json.Unmarshal(b[:n], &sj); err != nil {
		return fmt.Errorf("functions snapshot: %w", err)
	}
	actors := keyed.New()
	if err := actors.Restore(b[n:]); err != nil {
		return fmt.Errorf("functions snapshot: %w", err)
	}
	if sj.Functions == nil {
		sj.Functions = map[string]*function{}
	}
	for name, f := range sj.Functions {
		f.Timers = timerSetFrom(sj.Timers[name])
	}
	s.fns, s.actors, s.nextTimer = sj.Functions, actors, sj.NextTimer
	return nil
}

// ---- reads (under Log.View) ----

func (s *state) deployment(name string) (Deployment, bool) {
	f := s.fns[name]
	if f == nil {
		return Deployment{}, false
	}
	return cloneDeployment(*f.live()), true
}

func cloneDeployment(d Deployment) Deployment {
	d.Imports = slices.Clone(d.Imports)
	d.Grants = slices.Clone(d.Grants)
	d.Subscribe = slices.Clone(d.Subscribe)
	d.Config = maps.Clone(d.Config)
	return d
}

func (s *state) list() []Deployment {
	out := make([]Deployment, 0, len(s.fns))
	for _, f := range s.fns {
		out = append(out, cloneDeployment(*f.live()))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *state) history(name string) []Deployment {
	f := s.fns[name]
	if f == nil {
		return nil
	}
	out := make([]Deployment, len(f.History))
	for i, d := range f.History {
		out[i] = cloneDeployment(d)
	}
	return out
}

// ValidateName checks a function name: 1 to 64 of [a-z0-9-], starting
// with a letter or digit (it is part of URLs, lease names and the
// dead-letter topic's name).
func ValidateName(n string) error {
	if len(n) == 0 || len(n) > 64 || n[0] == '-' {
		return fmt.Errorf("invalid function name %q: use 1 to 64 characters from [a-z0-9-], not starting with '-'", n)
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("invalid function name %q: use 1 to 64 characters from [a-z0-9-], not starting with '-'", n)
		}
	}
	return nil
}
