package functions

import (
	"encoding/json"
	"hash/fnv"
	"maps"
)

// timerSet is a function's timers: actor key -> timer name -> timer, in
// copy-on-write shards, so a checkpoint captures millions of timers
// (device-twin keeps one per device) in O(shards) while applying is
// paused, and encodes them afterwards. A shard's inner maps are never
// changed in place: a write replaces the actor's map.
type timerSet struct {
	shards [timerShards]*timerShard
	n      int // timers
}

const timerShards = 64

type timerShard struct {
	m      map[string]map[string]Timer
	frozen bool
}

func newTimerSet() *timerSet {
	t := &timerSet{}
	for i := range t.shards {
		t.shards[i] = &timerShard{m: map[string]map[string]Timer{}}
	}
	return t
}

func timerShardOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % timerShards)
}

func (t *timerSet) writable(i int) *timerShard {
	s := t.shards[i]
	if s.frozen {
		s = &timerShard{m: maps.Clone(s.m)}
		t.shards[i] = s
	}
	return s
}

func (t *timerSet) get(key, name string) (Timer, bool) {
	tm, ok := t.shards[timerShardOf(key)].m[key][name]
	return tm, ok
}

func (t *timerSet) set(key, name string, tm Timer) {
	s := t.writable(timerShardOf(key))
	inner := maps.Clone(s.m[key])
	if inner == nil {
		inner = map[string]Timer{}
	}
	if _, ok := inner[name]; !ok {
		t.n++
	}
	inner[name] = tm
	s.m[key] = inner
}

func (t *timerSet) del(key, name string) {
	i := timerShardOf(key)
	if _, ok := t.shards[i].m[key][name]; !ok {
		return
	}
	s := t.writable(i)
	inner := maps.Clone(s.m[key])
	delete(inner, name)
	if len(inner) == 0 {
		delete(s.m, key)
	} else {
		s.m[key] = inner
	}
	t.n--
}

// Len is the number of timers.
func (t *timerSet) Len() int { return t.n }

// Range calls fn for every timer, in no order.
func (t *timerSet) Range(fn func(key, name string, tm Timer)) {
	for _, s := range t.shards {
		for k, inner := range s.m {
			for n, tm := range inner {
				fn(k, n, tm)
			}
		}
	}
}

// frozenTimers is a captured timerSet; it never changes.
type frozenTimers struct{ shards [timerShards]*timerShard }

func (t *timerSet) capture() *frozenTimers {
	f := &frozenTimers{}
	for i, s := range t.shards {
		s.frozen = true
		f.shards[i] = s
	}
	return f
}

// MarshalJSON encodes {key: {name: timer}} (encoding/json sorts the keys,
// so the bytes are deterministic).
func (f *frozenTimers) MarshalJSON() ([]byte, error) {
	all := map[string]map[string]Timer{}
	for _, s := range f.shards {
		for k, inner := range s.m {
			all[k] = inner
		}
	}
	return json.Marshal(all)
}

func timerSetFrom(all map[string]map[string]Timer) *timerSet {
	t := newTimerSet()
	for k, inner := range all {
		for n, tm := range inner {
			t.set(k, n, tm)
		}
	}
	return t
}
