package tables

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twoway/twoway/internal/commitlog"
)

// Entry types 400-499 belong to tables. All are gated: they came after the
// first release.
const (
	// TypeCreate creates a table on a topic (payload: Def).
	TypeCreate uint16 = 400
	// TypeDrop drops a table (payload: {"name"}); its files become garbage.
	TypeDrop uint16 = 401
	// TypeCommit is the table pointer: the Iceberg metadata of the table
	// (and of its dead-letter table) and the end offset of every partition
	// they cover. It applies only on the pointer it was built on, so it is
	// the atomic swap of the table: every record lands in it once.
	TypeCommit uint16 = 402
	// TypeAlter evolves a table's schema (payload: {"name","schema"}).
	TypeAlter uint16 = 403
)

// Errors.
var (
	ErrNoTable     = errors.New("no such table")
	ErrTableExists = errors.New("table already exists")
	ErrInvalid     = errors.New("invalid table")
	// ErrConflict: the pointer moved since the commit was built (another
	// materializer, or our own earlier commit of unknown outcome). The
	// commit's files are garbage; it is built again on the new pointer.
	ErrConflict = errors.New("conflict: the table changed since the commit was built")
)

// Def is a table as created (and altered).
type Def struct {
	Name  string `json:"name"`
	Topic string `json:"topic"`
	// Schema is nil for a table of raw values.
	Schema           *Schema `json:"schema,omitempty"`
	PartitionBy      string  `json:"partition_by,omitempty"`
	CommitIntervalMs int64   `json:"commit_interval_ms"`
	// RetentionMs: rows older than this (by _timestamp) are deleted from
	// the table; 0 keeps them for ever. The topic's retention is its own.
	RetentionMs int64 `json:"retention_ms,omitempty"`
	CreatedMs   int64 `json:"created_ms"`
}

// Pointer is the committed Iceberg metadata of one table.
type Pointer struct {
	// Version is N of metadata/vN.metadata.json (0: nothing committed).
	Version int `json:"version"`
	// Metadata is the bucket key of the metadata file.
	Metadata string `json:"metadata,omitempty"`
}

// Table is a table's applied state.
type Table struct {
	Def Def `json:"def"`
	// Incarnation is the sequence of the create commit: a table dropped
	// and created again is another table.
	Incarnation uint64 `json:"incarnation"`
	// SchemaRev counts schema changes; Applied is the revision the
	// committed Iceberg metadata has.
	SchemaRev int     `json:"schema_rev"`
	Applied   int     `json:"applied_rev"`
	Main      Pointer `json:"main"`
	DLQ       Pointer `json:"dlq"`
	// Offsets: partition -> the next offset not in the table.
	Offsets map[int32]int64 `json:"offsets,omitempty"`
	Rows    int64           `json:"rows"`
	DLQRows int64           `json:"dlq_rows"`
	Commits int64           `json:"commits"`
	// CommittedMs is the proposer's clock at the last commit.
	CommittedMs int64 `json:"committed_ms,omitempty"`
	// Live are the bucket keys the table's retained snapshots reference.
	Live map[string]bool `json:"-"`
}

// commit is the payload of TypeCommit.
type commit struct {
	Name        string `json:"name"`
	Incarnation uint64 `json:"incarnation"`
	// Base versions the commit was built on.
	BaseMain int `json:"base_main"`
	BaseDLQ  int `json:"base_dlq"`
	// New pointers (zero Version: unchanged).
	Main Pointer `json:"main"`
	DLQ  Pointer `json:"dlq"`
	// Offsets covered now (partitions not named are unchanged).
	Offsets map[int32]int64 `json:"offsets,omitempty"`
	Rows    int64           `json:"rows,omitempty"`
	DLQRows int64           `json:"dlq_rows,omitempty"`
	// Applied is the schema revision the new metadata has.
	Applied int `json:"applied_rev"`
	// Add and Drop change the live keys.
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
	AtMs int64    `json:"at_ms"`
}

// state is the tables Owner.
type state struct {
	tables map[string]*Table
}

func newState() *state { return &state{tables: map[string]*Table{}} }

func (s *state) Name() string         { return "tables" }
func (s *state) Types() []uint16      { return []uint16{TypeCreate, TypeDrop, TypeCommit, TypeAlter} }
func (s *state) GatedTypes() []uint16 { return s.Types() }
func (s *state) Reset()               { s.tables = map[string]*Table{} }

func (s *state) LiveObjects(fn func(string)) {
	for _, t := range s.tables {
		for k := range t.Live {
			fn(k)
		}
	}
}

// ValidateName: table names are SQL identifiers.
func ValidateName(n string) error {
	ok := len(n) > 0 && len(n) <= 64 && (n[0] == '_' || n[0] >= 'a' && n[0] <= 'z')
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: name %q: use 1 to 64 characters from [a-z0-9_], starting with a letter or _", ErrInvalid, n)
	}
	if strings.HasSuffix(n, DLQSuffix) {
		return fmt.Errorf("%w: name %q: names ending in %s are the dead-letter tables", ErrInvalid, n, DLQSuffix)
	}
	return nil
}

// DLQSuffix names a table's dead-letter table: NAME_dlq.
const DLQSuffix = "_dlq"

func (s *state) Apply(seq uint64, e commitlog.Entry) any {
	switch e.Type {
	case TypeCreate:
		var d Def
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("malformed create entry: %v", err)
		}
		if err := ValidateName(d.Name); err != nil {
			return err
		}
		if s.tables[d.Name] != nil {
			return fmt.Errorf("%w: %s", ErrTableExists, d.Name)
		}
		s.tables[d.Name] = &Table{Def: d, Incarnation: seq, Live: map[string]bool{}}
		return nil
	case TypeDrop:
		var d struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("malformed drop entry: %v", err)
		}
		if s.tables[d.Name] == nil {
			return fmt.Errorf("%w: %s", ErrNoTable, d.Name)
		}
		delete(s.tables, d.Name)
		return nil
	case TypeAlter:
		var a struct {
			Name   string  `json:"name"`
			Schema *Schema `json:"schema"`
		}
		if err := json.Unmarshal(e.Data, &a); err != nil {
			return fmt.Errorf("malformed alter entry: %v", err)
		}
		t := s.tables[a.Name]
		if t == nil {
			return fmt.Errorf("%w: %s", ErrNoTable, a.Name)
		}
		if t.Def.Schema == nil || a.Schema == nil {
			return fmt.Errorf("%w: %s: a table of raw values has no schema to change", ErrInvalid, a.Name)
		}
		if err := a.Schema.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if err := t.Def.Schema.Evolves(a.Schema); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		t.Def.Schema = a.Schema
		t.SchemaRev++
		return nil
	case TypeCommit:
		var c commit
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return fmt.Errorf("malformed commit entry: %v", err)
		}
		t := s.tables[c.Name]
		if t == nil || t.Incarnation != c.Incarnation {
			return fmt.Errorf("%w: %s (dropped since the commit was built)", ErrConflict, c.Name)
		}
		if t.Main.Version != c.BaseMain || t.DLQ.Version != c.BaseDLQ {
			return fmt.Errorf("%w: %s is at versions %d/%d, the commit was built on %d/%d", ErrConflict, c.Name, t.Main.Version, t.DLQ.Version, c.BaseMain, c.BaseDLQ)
		}
		if c.Main.Version != 0 {
			t.Main = c.Main
		}
		if c.DLQ.Version != 0 {
			t.DLQ = c.DLQ
		}
		if t.Offsets == nil {
			t.Offsets = map[int32]int64{}
		}
		maps.Copy(t.Offsets, c.Offsets)
		t.Rows += c.Rows
		t.DLQRows += c.DLQRows
		t.Commits++
		t.Applied = c.Applied
		t.CommittedMs = c.AtMs
		for _, k := range c.Drop {
			delete(t.Live, k)
		}
		for _, k := range c.Add {
			t.Live[k] = true
		}
		return nil
	}
	return fmt.Errorf("tables: unknown entry type %d", e.Type)
}

// snapshotTable is a table's encoding in a checkpoint.
type snapshotTable struct {
	Table
	LiveKeys []string `json:"live"`
}

func (s *state) Snapshot() func() ([]byte, error) {
	// Tables are few; their live sets change in place, so copy them now.
	out := make([]snapshotTable, 0, len(s.tables))
	for _, name := range slices.Sorted(maps.Keys(s.tables)) {
		t := s.tables[name]
		st := snapshotTable{Table: *t, LiveKeys: slices.Sorted(maps.Keys(t.Live))}
		st.Offsets = maps.Clone(t.Offsets)
		if t.Def.Schema != nil {
			sc := *t.Def.Schema
			st.Def.Schema = &sc
		}
		out = append(out, st)
	}
	return func() ([]byte, error) { return json.Marshal(out) }
}

func (s *state) Restore(b []byte) error {
	var in []snapshotTable
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("tables snapshot: %v", err)
	}
	s.tables = map[string]*Table{}
	for _, st := range in {
		t := st.Table
		t.Live = map[string]bool{}
		for _, k := range st.LiveKeys {
			t.Live[k] = true
		}
		s.tables[t.Def.Name] = &t
	}
	return nil
}

// clone copies a table for use outside the log's lock.
func (t *Table) clone() *Table {
	c := *t
	c.Offsets = maps.Clone(t.Offsets)
	c.Live = maps.Clone(t.Live)
	if t.Def.Schema != nil {
		sc := *t.Def.Schema
		sc.Columns = slices.Clone(sc.Columns)
		c.Def.Schema = &sc
	}
	return &c
}
