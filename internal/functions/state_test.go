package functions

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/twoway/twoway/internal/commitlog"
)

func applyJSON(t *testing.T, s *state, seq uint64, typ uint16, v any, blob commitlog.Ref) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return s.Apply(seq, commitlog.Entry{Type: typ, Data: data, Ref: blob})
}

// timersOf lists a state's timers as plain maps.
func timersOf(s *state) map[string]map[string]map[string]Timer {
	out := map[string]map[string]map[string]Timer{}
	for name, f := range s.fns {
		all := map[string]map[string]Timer{}
		f.Timers.Range(func(k, n string, tm Timer) {
			if all[k] == nil {
				all[k] = map[string]Timer{}
			}
			all[k][n] = tm
		})
		out[name] = all
	}
	return out
}

// A snapshot captures the timers (and positions, and actors) as they are
// at the capture, whatever is applied between the capture and the
// encoding, and restores to the same state.
func TestSnapshotCapturesTimersCopyOnWrite(t *testing.T) {
	s := newState()
	if r := applyJSON(t, s, 1, TypeDeploy, Deployment{Name: "f", Module: "m"}, commitlog.Ref{}); r != 1 {
		t.Fatalf("deploy: %v", r)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	seq := uint64(2)
	churn := func(n int) {
		for range n {
			var ops []timerOp
			for range 20 {
				k := fmt.Sprintf("dev-%d", rng.IntN(500))
				ops = append(ops, timerOp{Key: k, Name: fmt.Sprintf("t%d", rng.IntN(3)), AtMs: rng.Int64N(1e12), Cancel: rng.IntN(4) == 0})
			}
			if r := applyJSON(t, s, seq, TypeEffects, effects{Fn: "f", Timers: ops, Input: &inputRange{Topic: "x", From: int64(seq - 2), To: int64(seq - 1)}}, commitlog.Ref{}); r != nil {
				t.Fatalf("effects: %v", r)
			}
			seq++
		}
	}
	churn(200)
	want := timersOf(s)
	wantPos := s.fns["f"].Positions["x/0"]
	enc := s.Snapshot()
	churn(200) // after the capture, before the encoding
	b, err := enc()
	if err != nil {
		t.Fatal(err)
	}
	r := newState()
	if err := r.Restore(b); err != nil {
		t.Fatal(err)
	}
	if got := timersOf(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored timers differ from the captured ones (%d vs %d actors)", len(got["f"]), len(want["f"]))
	}
	if r.fns["f"].Timers.Len() != countTimers(want["f"]) || r.fns["f"].Positions["x/0"] != wantPos {
		t.Fatalf("restored %d timers, position %d; want %d, %d", r.fns["f"].Timers.Len(), r.fns["f"].Positions["x/0"], countTimers(want["f"]), wantPos)
	}
	// Encoding is deterministic: the same state encodes to the same bytes.
	b2, err := r.Snapshot()()
	if err != nil {
		t.Fatal(err)
	}
	r2 := newState()
	if err := r2.Restore(b2); err != nil {
		t.Fatal(err)
	}
	b3, _ := r2.Snapshot()()
	if string(b2) != string(b3) {
		t.Fatal("a restored state encodes differently")
	}
}

func countTimers(m map[string]map[string]Timer) int {
	n := 0
	for _, inner := range m {
		n += len(inner)
	}
	return n
}
