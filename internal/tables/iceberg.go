package tables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/twoway/twoway/bucket"
)

// Where a table keeps its files, under the bucket.
func tablePrefix(name string) string { return "tables/" + name + "/" }
func metadataKey(name string, v int) string {
	return fmt.Sprintf("%smetadata/v%d.metadata.json", tablePrefix(name), v)
}
func versionHintKey(name string) string { return tablePrefix(name) + "metadata/version-hint.text" }

// tableProps are the Iceberg properties twoway sets: commits are never
// retried by iceberg-go (a retry replays onto a newer base, which would
// add the same records twice; twoway rebuilds the commit itself), and
// files are never deleted by it (garbage collection does, after a grace
// period that protects readers).
var tableProps = iceberg.Properties{
	"commit.retry.num-retries":                   "0",
	"write.metadata.delete-after-commit.enabled": "false",
	"write.parquet.compression-codec":            "zstd",
	"write.delete.mode":                          "copy-on-write", // retention deletes rewrite files: SQL reads data files only
	"format-version":                             "2",
	"created-by":                                 "twoway",
}

// partitionRE matches one field of a --partition-by spec.
var partitionRE = regexp.MustCompile(`^\s*(?:([a-z]+)\(\s*(?:(\d+)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)|([A-Za-z_][A-Za-z0-9_]*))\s*$`)

// partitionSpec parses "day(_timestamp), bucket(16, id), region": each
// field a column (identity) or a transform of one: year, month, day, hour,
// bucket(N, col), truncate(W, col).
func partitionSpec(spec string, sc *iceberg.Schema) (iceberg.PartitionSpec, error) {
	if strings.TrimSpace(spec) == "" {
		return *iceberg.UnpartitionedSpec, nil
	}
	var opts []iceberg.PartitionOption
	for _, f := range splitPartitionSpec(spec) {
		m := partitionRE.FindStringSubmatch(f)
		if m == nil {
			return iceberg.PartitionSpec{}, fmt.Errorf("%w: partition field %q: expected a column or year|month|day|hour(col), bucket(N, col), truncate(W, col)", ErrInvalid, strings.TrimSpace(f))
		}
		col, tr := m[4], "identity"
		if m[1] != "" {
			col, tr = m[3], m[1]
			switch tr {
			case "year", "month", "day", "hour", "identity":
				if m[2] != "" {
					return iceberg.PartitionSpec{}, fmt.Errorf("%w: partition field %q: %s takes only a column", ErrInvalid, strings.TrimSpace(f), tr)
				}
			case "bucket", "truncate":
				if m[2] == "" {
					return iceberg.PartitionSpec{}, fmt.Errorf("%w: partition field %q: %s(N, col)", ErrInvalid, strings.TrimSpace(f), tr)
				}
				tr += "[" + m[2] + "]"
			default:
				return iceberg.PartitionSpec{}, fmt.Errorf("%w: partition field %q: unknown transform %q", ErrInvalid, strings.TrimSpace(f), tr)
			}
		}
		t, err := iceberg.ParseTransform(tr)
		if err != nil {
			return iceberg.PartitionSpec{}, fmt.Errorf("%w: partition field %q: %v", ErrInvalid, strings.TrimSpace(f), err)
		}
		name := col
		if tr != "identity" {
			name = col + "_" + strings.SplitN(tr, "[", 2)[0]
		}
		opts = append(opts, iceberg.AddPartitionFieldByName(col, name, t, sc, nil))
	}
	ps, err := iceberg.NewPartitionSpecOpts(opts...)
	if err != nil {
		return iceberg.PartitionSpec{}, fmt.Errorf("%w: partition by %q: %v", ErrInvalid, spec, err)
	}
	return ps, nil
}

// splitPartitionSpec splits at the commas between fields, not those
// inside a transform's parentheses.
func splitPartitionSpec(spec string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range spec {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, spec[start:i])
				start = i + 1
			}
		}
	}
	return append(out, spec[start:])
}

// defColumns are the columns of a table, or of its dead-letter table.
func defColumns(d *Def, dlq bool) []Column {
	if dlq {
		return dlqColumns
	}
	return columns(d.Schema)
}

// newMetadata is the metadata of an empty table at location (before its
// first commit, never written itself).
func newMetadata(d *Def, dlq bool, location string) (table.Metadata, error) {
	sc, err := icebergSchema(defColumns(d, dlq))
	if err != nil {
		return nil, err
	}
	spec := *iceberg.UnpartitionedSpec
	if !dlq {
		if spec, err = partitionSpecOf(d.PartitionBy, sc); err != nil {
			return nil, err
		}
	}
	return table.NewMetadata(sc, &spec, table.UnsortedSortOrder, location, tableProps)
}

func partitionSpecOf(spec string, sc *iceberg.Schema) (iceberg.PartitionSpec, error) {
	return partitionSpec(spec, sc)
}

// staging is iceberg-go's catalog for one commit: CommitTable applies the
// updates to the base and writes the next vN.metadata.json, and nothing
// else; the table pointer entry that makes it the table is committed to
// the log afterwards, for the table and its dead-letter table at once.
type staging struct {
	b       bucket.Bucket
	fio     *bucketIO
	name    string // the Iceberg table's name (NAME or NAME_dlq)
	base    table.Metadata
	version int // of base (0: new table)

	// Set by CommitTable.
	written  table.Metadata
	key      string
	wrote    int
	commited bool
}

func (s *staging) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	return nil, errors.New("tables: the staging catalog loads no tables")
}

func (s *staging) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	if s.commited {
		return nil, "", errors.New("tables: one commit per staging catalog")
	}
	for _, r := range reqs {
		if err := r.Validate(s.base); err != nil {
			return nil, "", err
		}
	}
	// The version is the base's plus one unless that file exists (a
	// materializer that lost its lease, or a table of the same name
	// dropped and created again, wrote it): names are never reused.
	for v := s.version + 1; v < s.version+1000; v++ {
		key := metadataKey(s.name, v)
		loc := s.fio.URL(key)
		meta, err := table.UpdateTableMetadata(s.base, updates, loc)
		if err != nil {
			return nil, "", err
		}
		data, err := json.Marshal(meta)
		if err != nil {
			return nil, "", err
		}
		_, err = s.b.PutIfAbsent(ctx, key, bytes.NewReader(data), int64(len(data)))
		if bucket.IsPrecondition(err) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		s.written, s.key, s.wrote, s.commited = meta, key, v, true
		return meta, loc, nil
	}
	return nil, "", fmt.Errorf("tables: no free metadata version after v%d", s.version)
}

// loadMetadata reads a committed metadata file.
func loadMetadata(ctx context.Context, b bucket.Bucket, key string) (table.Metadata, error) {
	data, _, err := bucket.ReadAll(ctx, b, key)
	if err != nil {
		return nil, err
	}
	return table.ParseMetadataBytes(data)
}

// liveFiles lists the keys meta references: itself, the manifest lists
// and manifests of its snapshots and their data files. Manifests are
// immutable, so their entries are cached by key.
func liveFiles(fio *bucketIO, metaKey string, meta table.Metadata, cache map[string][]string) (map[string]bool, error) {
	live := map[string]bool{metaKey: true}
	add := func(loc string) error {
		k, err := fio.Key(loc)
		if err != nil {
			return err
		}
		live[k] = true
		return nil
	}
	for _, snap := range meta.Snapshots() {
		if err := add(snap.ManifestList); err != nil {
			return nil, err
		}
		mans, err := snap.Manifests(fio)
		if err != nil {
			return nil, fmt.Errorf("manifest list %s: %w", snap.ManifestList, err)
		}
		for _, mf := range mans {
			mk, err := fio.Key(mf.FilePath())
			if err != nil {
				return nil, err
			}
			live[mk] = true
			files, ok := cache[mk]
			if !ok {
				entries, err := mf.FetchEntries(fio, true)
				if err != nil {
					return nil, fmt.Errorf("manifest %s: %w", mf.FilePath(), err)
				}
				for _, e := range entries {
					k, err := fio.Key(e.DataFile().FilePath())
					if err != nil {
						return nil, err
					}
					files = append(files, k)
				}
				cache[mk] = files
			}
			for _, k := range files {
				live[k] = true
			}
		}
	}
	return live, nil
}

// parseVersion reads a version-hint.text.
func parseVersion(b []byte) (int, error) {
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
