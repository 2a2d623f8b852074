package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/twoway/twoway/internal/commitlog"
)

// TypePosition is the guard of a mirror's commit: the source positions the
// records after it in the same all-or-none group (commitlog.All, type-104
// produce entries) were read from, and where they move to. It applies
// only if every position is still what the mirror built the commit on, so
// a commit of a killed mirror retried, or of a second mirror running at
// once, can never apply twice. Gated (features.go).
const TypePosition uint16 = 700

// ErrConflict is the guard's rejection: a position moved since the commit
// was built (another mirror, or an earlier attempt of this one, committed).
// Nothing of the group applied; read the positions again.
var ErrConflict = errors.New("mirror position changed")

// positionEntry is the payload of TypePosition.
type positionEntry struct {
	// Source names the source deployment (Config.Source).
	Source string `json:"source"`
	// AtMs is when the mirror built the commit (its clock).
	AtMs  int64         `json:"at_ms"`
	Parts []partAdvance `json:"parts"`
}

// partAdvance moves one source partition's position.
type partAdvance struct {
	Topic string `json:"topic"`
	P     int32  `json:"p"`
	// From is the position the commit was built on; -1: none yet.
	From int64 `json:"from"`
	// Start, with From -1, is the source offset the first commit begins
	// at (the source's log start when the mirror began).
	Start int64 `json:"start,omitempty"`
	// To is the next source offset to mirror after this commit.
	To int64 `json:"to"`
	// Skipped of the offsets in [From, To) were gone from the source
	// (retention) before they could be mirrored.
	Skipped int64 `json:"skipped,omitempty"`
	// End is the source partition's end offset when the mirror read it.
	End int64 `json:"end"`
}

// Position is one source partition's mirror position, as the destination's
// log holds it.
type Position struct {
	Source    string `json:"source"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Next is the next source offset to mirror.
	Next int64 `json:"next"`
	// End is the source's end offset as the mirror last read it, so
	// End-Next is the lag as of the mirror's last commit.
	End int64 `json:"source_end"`
	// Mirrored and Skipped count the records copied and the ones the
	// source's retention removed before they were copied.
	Mirrored int64 `json:"mirrored"`
	Skipped  int64 `json:"skipped"`
	// AtMs is when the newest commit moving it was built; Seq that
	// commit's sequence number.
	AtMs int64  `json:"at_ms"`
	Seq  uint64 `json:"seq"`
}

type tp struct {
	Topic string
	P     int32
}

// state is the Owner of mirror positions: source → topic/partition → position.
type state struct {
	pos map[string]map[tp]*Position
}

func newState() *state { return &state{pos: map[string]map[tp]*Position{}} }

func (s *state) Name() string             { return "mirror" }
func (s *state) Types() []uint16          { return []uint16{TypePosition} }
func (s *state) GatedTypes() []uint16     { return []uint16{TypePosition} }
func (s *state) Reset()                   { s.pos = map[string]map[tp]*Position{} }
func (s *state) LiveObjects(func(string)) {}

func (s *state) Apply(seq uint64, e commitlog.Entry) any {
	var pe positionEntry
	if err := json.Unmarshal(e.Data, &pe); err != nil {
		return fmt.Errorf("malformed mirror position entry: %v", err)
	}
	if pe.Source == "" || len(pe.Parts) == 0 {
		return errors.New("malformed mirror position entry: no source or no partitions")
	}
	src := s.pos[pe.Source]
	seen := map[tp]bool{}
	for _, a := range pe.Parts {
		k := tp{a.Topic, a.P}
		if seen[k] || a.To < a.From || a.To < 0 || a.Skipped < 0 || (a.From == -1 && (a.Start < 0 || a.Start > a.To)) {
			return fmt.Errorf("malformed mirror position entry: %s/%d", a.Topic, a.P)
		}
		seen[k] = true
		cur, ok := src[k]
		switch {
		case a.From == -1 && !ok:
		case ok && cur.Next == a.From:
		default:
			have := int64(-1)
			if ok {
				have = cur.Next
			}
			return fmt.Errorf("%w: %s %s/%d is at %d, the commit was built on %d", ErrConflict, pe.Source, a.Topic, a.P, have, a.From)
		}
	}
	if src == nil {
		src = map[tp]*Position{}
		s.pos[pe.Source] = src
	}
	for _, a := range pe.Parts {
		k := tp{a.Topic, a.P}
		p := src[k]
		from := a.From
		if p == nil {
			p = &Position{Source: pe.Source, Topic: a.Topic, Partition: a.P}
			src[k] = p
			from = a.Start
		}
		// Positions are replaced, never changed in place, so a captured
		// snapshot can share them.
		np := *p
		np.Next, np.End, np.AtMs, np.Seq = a.To, max(a.End, a.To), pe.AtMs, seq
		np.Skipped += a.Skipped
		np.Mirrored += max(0, a.To-from-a.Skipped)
		src[k] = &np
	}
	return nil
}

// list returns every position, sorted by source, topic and partition.
func (s *state) list() []Position {
	var out []Position
	for _, m := range s.pos {
		for _, p := range m {
			out = append(out, *p)
		}
	}
	sortPositions(out)
	return out
}

func sortPositions(ps []Position) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
}

// snapshotFormat is the version field of the mirror snapshot body.
const snapshotFormat = 1

type snapshotJSON struct {
	Version   int        `json:"version"`
	Positions []Position `json:"positions"`
}

func (s *state) Snapshot() func() ([]byte, error) {
	ps := s.list()
	return func() ([]byte, error) { return json.Marshal(snapshotJSON{Version: snapshotFormat, Positions: ps}) }
}

func (s *state) Restore(b []byte) error {
	var sj snapshotJSON
	if err := json.Unmarshal(b, &sj); err != nil {
		return fmt.Errorf("mirror snapshot: %w", err)
	}
	if sj.Version > snapshotFormat {
		return fmt.Errorf("mirror snapshot version %d: %w", sj.Version, commitlog.ErrNewerFormat)
	}
	s.Reset()
	for _, p := range sj.Positions {
		if s.pos[p.Source] == nil {
			s.pos[p.Source] = map[tp]*Position{}
		}
		p := p
		s.pos[p.Source][tp{p.Topic, p.Partition}] = &p
	}
	return nil
}
