package groups

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func members(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("m%02d", i))
	}
	return out
}

// The uniform assignor: every partition to exactly one subscribed member,
// counts within one of each other when all subscribe to the same topics,
// and a member joining moves no more partitions than it takes.
func TestAssignUniform(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		parts := map[string]int32{"a": int32(r.IntN(30)), "b": int32(r.IntN(30))}
		ms := members(1 + r.IntN(8))
		subs := map[string][]string{}
		for _, m := range ms {
			subs[m] = []string{"a", "b"}
		}
		in := assignInput{members: ms, subs: subs, parts: parts}
		out := assignUniform(in)
		checkCover(t, out, parts, subs)
		lo, hi := 1<<30, 0
		for _, m := range ms {
			lo, hi = min(lo, len(out[m])), max(hi, len(out[m]))
		}
		if hi-lo > 1 {
			t.Fatalf("unbalanced: %d to %d partitions per member (%v over %d members)", lo, hi, parts, len(ms))
		}
		// One more member: only what it gets moves.
		grown := append(slices.Clone(ms), "m99")
		subs["m99"] = []string{"a", "b"}
		next := assignUniform(assignInput{members: grown, subs: subs, parts: parts, prev: out})
		checkCover(t, next, parts, subs)
		moved := 0
		for _, m := range ms {
			moved += len(out[m].minus(next[m]))
		}
		if moved != len(next["m99"]) {
			t.Fatalf("%d partitions moved, the new member got %d", moved, len(next["m99"]))
		}
	}
}

// Members subscribing to different topics get only theirs.
func TestAssignUniformHeterogeneous(t *testing.T) {
	subs := map[string][]string{"m1": {"a"}, "m2": {"a", "b"}, "m3": {"b"}, "m4": nil}
	parts := map[string]int32{"a": 5, "b": 3}
	out := assignUniform(assignInput{members: []string{"m1", "m2", "m3", "m4"}, subs: subs, parts: parts})
	checkCover(t, out, parts, subs)
	if len(out["m4"]) != 0 {
		t.Errorf("a member subscribing to nothing got %v", out["m4"].sorted())
	}
}

// The range assignor: contiguous ranges per topic in member order, the
// first members one more, the same ranges for topics of equal size.
func TestAssignRange(t *testing.T) {
	subs := map[string][]string{"m1": {"a", "b"}, "m2": {"a", "b"}, "m3": {"a"}}
	parts := map[string]int32{"a": 7, "b": 7}
	out := assignRange(assignInput{members: []string{"m1", "m2", "m3"}, subs: subs, parts: parts})
	checkCover(t, out, parts, subs)
	want := map[string][]tp{
		"m1": {{"a", 0}, {"a", 1}, {"a", 2}, {"b", 0}, {"b", 1}, {"b", 2}, {"b", 3}},
		"m2": {{"a", 3}, {"a", 4}, {"b", 4}, {"b", 5}, {"b", 6}},
		"m3": {{"a", 5}, {"a", 6}},
	}
	for m, w := range want {
		if got := out[m].sorted(); !slices.Equal(got, w) {
			t.Errorf("%s: %v, want %v", m, got, w)
		}
	}
}

func checkCover(t *testing.T, out map[string]tpSet, parts map[string]int32, subs map[string][]string) {
	t.Helper()
	owner := map[tp]string{}
	for m, s := range out {
		for p := range s {
			if o, dup := owner[p]; dup {
				t.Fatalf("%v assigned to %s and %s", p, o, m)
			}
			if !slices.Contains(subs[m], p.topic) || p.p >= parts[p.topic] {
				t.Fatalf("%v assigned to %s, which does not subscribe to it (or it does not exist)", p, m)
			}
			owner[p] = m
		}
	}
	for tn, n := range parts {
		subscribed := false
		for _, ts := range subs {
			subscribed = subscribed || slices.Contains(ts, tn)
		}
		for p := range n {
			if _, ok := owner[tp{tn, p}]; subscribed && !ok {
				t.Fatalf("%s/%d assigned to nobody", tn, p)
			}
		}
	}
}
