package functions

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twoway/twoway/internal/commitlog"
)

// Accessors for benchmarks (internal/bench, `twoway bench fn`).

// Position returns function fn's next input offset in a partition of
// topic, and whether it has one: every record before it has had its
// effects committed.
func (m *Module) Position(fn, topic string, partition int32) (int64, bool) {
	return m.position(partKey{fn, topic, partition})
}

// ActorCount returns how many actors of function fn have state.
func (m *Module) ActorCount(fn string) (int64, bool) {
	var n int64
	var ok bool
	m.log.View(m.st, func() {
		if f := m.st.fns[fn]; f != nil {
			n, ok = f.Actors, true
		}
	})
	return n, ok
}

// BenchSeedActors is for benchmarks only: it gives actors key(i), for i
// in [from, to), of the deployed function fn the state state(i), in
// commits of perCommit actors each, without running the guest. Each
// commit is one TypeEffects entry (writes only, no guard: the actors must
// not exist yet, or another writer may be racing them), its values in the
// entry's blob: what the subscription path commits, less the input
// position and the versions read.
func (m *Module) BenchSeedActors(ctx context.Context, fn string, from, to, perCommit int, key func(int) string, state func(int) []byte) error {
	if perCommit < 1 {
		perCommit = 1
	}
	for lo := from; lo < to; lo += perCommit {
		hi := min(lo+perCommit, to)
		ef := effects{Fn: fn, Writes: make([]write, 0, hi-lo)}
		var blob []byte
		for i := lo; i < hi; i++ {
			v := state(i)
			ef.Writes = append(ef.Writes, write{Key: key(i), Off: int64(len(blob)), Len: int64(len(v)), CRC: commitlog.CRC(v)})
			blob = append(blob, v...)
		}
		data, err := json.Marshal(ef)
		if err != nil {
			return err
		}
		res, err := m.propose(ctx, commitlog.Entry{Type: TypeEffects, Data: data, Blob: blob})
		if err != nil {
			return fmt.Errorf("seeding actors %d to %d: %w", lo, hi, err)
		}
		if err, ok := res[0].(error); ok {
			return fmt.Errorf("seeding actors %d to %d: %w", lo, hi, err)
		}
	}
	return nil
}

// InstancesStarted counts the instances this agent started of the loaded
// versions of every function.
func (m *Module) InstancesStarted() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, l := range m.loaded {
		n += l.mod.Stats.Instantiated.Load()
	}
	return n
}
