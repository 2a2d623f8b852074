package groups

import (
	"cmp"
	"slices"
)

// Server-side assignors of KIP-848 consumer groups, named as Kafka names
// them (group.consumer.assignors): a member picks one with its
// ServerAssignor, the group uses the one most of its members ask for.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// DefaultAssignor is used when no member names one (Kafka's default too).
const DefaultAssignor = AssignorUniform

func knownAssignor(name string) bool { return name == AssignorUniform || name == AssignorRange }

// tp names one partition.
type tp struct {
	topic string
	p     int32
}

func cmpTP(a, b tp) int {
	if c := cmp.Compare(a.topic, b.topic); c != 0 {
		return c
	}
	return cmp.Compare(a.p, b.p)
}

// tpSet is a set of partitions.
type tpSet map[tp]struct{}

func (s tpSet) has(p tp) bool { _, ok := s[p]; return ok }

func (s tpSet) sorted() []tp {
	out := make([]tp, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	slices.SortFunc(out, cmpTP)
	return out
}

func (s tpSet) clone() tpSet {
	out := make(tpSet, len(s))
	for p := range s {
		out[p] = struct{}{}
	}
	return out
}

// minus returns the partitions of s not in o.
func (s tpSet) minus(o tpSet) tpSet {
	out := tpSet{}
	for p := range s {
		if !o.has(p) {
			out[p] = struct{}{}
		}
	}
	return out
}

// assignInput is what an assignor sees: the members in id order with the
// topics each subscribes to, the partition counts of those topics, and the
// previous target assignment (for stickiness).
type assignInput struct {
	members []string
	subs    map[string][]string // member → subscribed topics, sorted
	parts   map[string]int32
	prev    map[string]tpSet
}

// assign computes a target assignment. It is deterministic: the same input
// gives the same assignment.
func assign(assignor string, in assignInput) map[string]tpSet {
	if assignor == AssignorRange {
		return assignRange(in)
	}
	return assignUniform(in)
}

// assignRange is Kafka's range assignor, per topic: the members subscribed
// to it, in id order, get contiguous ranges of its partitions, the first
// ones one more when the count does not divide. Topics with the same
// partition count are thus co-partitioned.
func assignRange(in assignInput) map[string]tpSet {
	out := map[string]tpSet{}
	for _, m := range in.members {
		out[m] = tpSet{}
	}
	byTopic := map[string][]string{}
	for _, m := range in.members {
		for _, t := range in.subs[m] {
			byTopic[t] = append(byTopic[t], m)
		}
	}
	for t, ms := range byTopic {
		n := in.parts[t]
		k := int32(len(ms))
		per, extra := n/k, n%k
		next := int32(0)
		for i, m := range ms {
			c := per
			if int32(i) < extra {
				c++
			}
			for range c {
				out[m][tp{t, next}] = struct{}{}
				next++
			}
		}
	}
	return out
}

// assignUniform spreads partitions evenly over the members subscribed to
// them and moves as few as it can from the previous assignment (Kafka's
// uniform assignor aims at the same): first every member keeps up to its
// quota of what it had, then the rest go, one by one, to the eligible member
// holding the fewest.
func assignUniform(in assignInput) map[string]tpSet {
	out := map[string]tpSet{}
	count := map[string]int{}
	subscribed := map[string]map[string]bool{}
	var active []string
	for _, m := range in.members {
		out[m] = tpSet{}
		if len(in.subs[m]) == 0 {
			continue
		}
		active = append(active, m)
		subscribed[m] = map[string]bool{}
		for _, t := range in.subs[m] {
			subscribed[m][t] = true
		}
	}
	if len(active) == 0 {
		return out
	}
	var all []tp
	topics := map[string]bool{}
	for _, m := range active {
		for _, t := range in.subs[m] {
			topics[t] = true
		}
	}
	for t := range topics {
		for p := range in.parts[t] {
			all = append(all, tp{t, p})
		}
	}
	slices.SortFunc(all, cmpTP)
	floor, extra := len(all)/len(active), len(all)%len(active)
	taken := tpSet{}
	give := func(m string, p tp) {
		out[m][p] = struct{}{}
		taken[p] = struct{}{}
		count[m]++
	}
	eligible := func(m string, p tp) bool {
		return subscribed[m][p.topic] && p.p < in.parts[p.topic] && !taken.has(p)
	}
	for _, m := range active {
		for _, p := range in.prev[m].sorted() {
			if count[m] >= floor {
				break
			}
			if eligible(m, p) {
				give(m, p)
			}
		}
	}
	for _, m := range active {
		if extra == 0 {
			break
		}
		for _, p := range in.prev[m].sorted() {
			if eligible(m, p) {
				give(m, p)
				extra--
				break
			}
		}
	}
	for _, p := range all {
		if taken.has(p) {
			continue
		}
		best := ""
		for _, m := range active {
			if subscribed[m][p.topic] && (best == "" || count[m] < count[best]) {
				best = m
			}
		}
		give(best, p)
	}
	return out
}
