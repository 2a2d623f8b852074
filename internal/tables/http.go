package tables

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/sqlengine"
	"github.com/twoway/twoway/internal/stream"
)

// Error codes of the tables API (docs/HTTP.md).
const (
	CodeBadRequest     = "bad_request"
	CodeNotFound       = "not_found"
	CodeUnknownTopic   = "unknown_topic"
	CodeExists         = "table_exists"
	CodeSQL            = "sql_error"
	CodeNotReadOnly    = "not_read_only"
	CodeTimeout        = "query_timeout"
	CodeTooManyRows    = "too_many_rows"
	CodeNoSQL          = "sql_not_built"
	CodeNotCommitted   = "not_committed"
	CodeOutcomeUnknown = "outcome_unknown"
	CodeInternal       = "internal"
	CodeForbidden      = "forbidden"
)

// APIError is the JSON body of every non-2xx answer.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Code    string `json:"code"`
}

func (e *APIError) Error() string { return e.Message }

// Unwrap maps the code back to the error it stands for.
func (e *APIError) Unwrap() error {
	switch e.Code {
	case CodeBadRequest:
		return ErrInvalid
	case CodeNotFound:
		return ErrNoTable
	case CodeExists:
		return ErrTableExists
	case CodeUnknownTopic:
		return stream.ErrUnknownTopic
	case CodeNotReadOnly:
		return sqlengine.ErrNotReadOnly
	case CodeTimeout:
		return sqlengine.ErrTimeout
	case CodeTooManyRows:
		return sqlengine.ErrTooManyRows
	case CodeNoSQL:
		return sqlengine.ErrNoSQL
	case CodeForbidden:
		return authz.ErrDenied
	}
	return nil
}

func apiError(err error) *APIError {
	if e, ok := errors.AsType[*APIError](err); ok {
		return e
	}
	e := &APIError{Message: err.Error()}
	set := func(s int, c string) { e.Status, e.Code = s, c }
	var qe *sqlengine.QueryError
	switch {
	case errors.Is(err, authz.ErrDenied):
		set(http.StatusForbidden, CodeForbidden)
	case errors.Is(err, ErrInvalid):
		set(http.StatusBadRequest, CodeBadRequest)
	case errors.Is(err, ErrNoTable):
		set(http.StatusNotFound, CodeNotFound)
	case errors.Is(err, ErrTableExists):
		set(http.StatusConflict, CodeExists)
	case errors.Is(err, stream.ErrUnknownTopic):
		set(http.StatusNotFound, CodeUnknownTopic)
	case errors.Is(err, sqlengine.ErrNotReadOnly):
		set(http.StatusBadRequest, CodeNotReadOnly)
	case errors.Is(err, sqlengine.ErrTimeout):
		set(http.StatusBadRequest, CodeTimeout)
	case errors.Is(err, sqlengine.ErrTooManyRows):
		set(http.StatusBadRequest, CodeTooManyRows)
	case errors.Is(err, sqlengine.ErrNoSQL):
		set(http.StatusNotImplemented, CodeNoSQL)
	case errors.As(err, &qe):
		set(http.StatusBadRequest, CodeSQL)
	case errors.Is(err, commitlog.ErrNotCommitted):
		set(http.StatusServiceUnavailable, CodeNotCommitted)
	case errors.Is(err, commitlog.ErrOutcomeUnknown), errors.Is(err, commitlog.ErrClosed):
		set(http.StatusServiceUnavailable, CodeOutcomeUnknown)
	default:
		set(http.StatusInternalServerError, CodeInternal)
	}
	return e
}

func writeErr(w http.ResponseWriter, err error) {
	e := apiError(err)
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Info describes a table in the API.
type Info struct {
	Name           string   `json:"name"`
	Topic          string   `json:"topic"`
	Columns        []Column `json:"columns"`
	PartitionBy    string   `json:"partition_by,omitempty"`
	CommitInterval string   `json:"commit_interval"`
	Retention      string   `json:"retention"`
	CreatedMs      int64    `json:"created_ms"`
	// Location of the current metadata file ("" before the first commit).
	Metadata string `json:"metadata_location,omitempty"`
	Version  int    `json:"metadata_version"`
	DLQ      string `json:"dlq_table"`
	// Rows and DLQRows count what was committed.
	Rows    int64 `json:"rows"`
	DLQRows int64 `json:"dlq_rows"`
	Commits int64 `json:"commits"`
	// Partitions: the table's offsets and the topic's end, per partition.
	Partitions   []PartitionLag `json:"partitions"`
	CommittedMs  int64          `json:"committed_ms,omitempty"`
	Files        int            `json:"live_files"`
	Materializer string         `json:"materializer,omitempty"`
}

// PartitionLag is how far a table is behind its topic in one partition.
type PartitionLag struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"table_offset"`
	End       int64 `json:"topic_end"`
}

func (m *Module) info(t *Table) Info {
	in := Info{Name: t.Def.Name, Topic: t.Def.Topic, Columns: columns(t.Def.Schema), PartitionBy: t.Def.PartitionBy,
		CommitInterval: (time.Duration(t.Def.CommitIntervalMs) * time.Millisecond).String(), CreatedMs: t.Def.CreatedMs,
		Retention: "forever",
		Version:   t.Main.Version, DLQ: t.Def.Name + DLQSuffix, Rows: t.Rows, DLQRows: t.DLQRows, Commits: t.Commits,
		CommittedMs: t.CommittedMs, Files: len(t.Live), Partitions: []PartitionLag{}}
	if t.Def.RetentionMs > 0 {
		in.Retention = httpapi.FormatDuration(time.Duration(t.Def.RetentionMs) * time.Millisecond)
	}
	if t.Main.Metadata != "" {
		in.Metadata = newBucketIO(nil, m.b).URL(t.Main.Metadata)
	}
	in.Materializer = m.log.Lease(leaseName(t.Def.Name)).Holder
	for _, p := range m.partitionsOf(t.Def.Topic) {
		off, ok := t.Offsets[p.Partition]
		if !ok {
			off = p.Start
		}
		in.Partitions = append(in.Partitions, PartitionLag{Partition: p.Partition, Offset: off, End: p.End})
	}
	return in
}

// CreateBody is the body of POST /v1/tables.
type CreateBody struct {
	Name           string  `json:"name"`
	Topic          string  `json:"topic"`
	Schema         *Schema `json:"schema,omitempty"`
	PartitionBy    string  `json:"partition_by,omitempty"`
	CommitInterval string  `json:"commit_interval,omitempty"`
	// Retention deletes rows older than it, by _timestamp ("720h";
	// empty: kept for ever).
	Retention string `json:"retention,omitempty"`
}

// SQLBody is the body of POST /v1/sql (or the body is the SQL itself, as
// text/plain or application/sql).
type SQLBody struct {
	SQL string `json:"sql"`
}

// allowed checks that the request's principal may do op on the table of
// the route, answering 403 if not.
func allowed(w http.ResponseWriter, r *http.Request, op string) bool {
	if err := authz.Check(r.Context(), op, authz.ResTable, r.PathValue("name")); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

func (m *Module) routes(r module.Routes) {
	hf := func(p string, f http.HandlerFunc) { r.Handle(p, f) }
	hf("GET /v1/tables", func(w http.ResponseWriter, r *http.Request) {
		if err := m.log.Sync(r.Context()); err != nil {
			writeErr(w, err)
			return
		}
		out := []Info{}
		for _, t := range m.List() {
			if authz.Allowed(r.Context(), authz.OpDescribe, authz.ResTable, t.Def.Name) {
				out = append(out, m.info(t))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"tables": out})
	})
	hf("POST /v1/tables", func(w http.ResponseWriter, r *http.Request) {
		var b CreateBody
		if err := decodeBody(r, &b); err != nil {
			writeErr(w, err)
			return
		}
		if err := authz.CheckCreate(r.Context(), authz.ResTable, b.Name); err != nil {
			writeErr(w, err)
			return
		}
		// The table holds the topic's records: its creator must be able
		// to read them.
		if err := authz.Check(r.Context(), authz.OpRead, authz.ResTopic, b.Topic); err != nil {
			writeErr(w, err)
			return
		}
		req := CreateRequest{Name: b.Name, Topic: b.Topic, Schema: b.Schema, PartitionBy: b.PartitionBy}
		if b.CommitInterval != "" {
			d, err := time.ParseDuration(b.CommitInterval)
			if err != nil {
				writeErr(w, fmt.Errorf("%w: commit_interval %q: %v", ErrInvalid, b.CommitInterval, err))
				return
			}
			req.CommitInterval = d
		}
		if b.Retention != "" {
			d, err := httpapi.ParseDuration(b.Retention)
			if err != nil {
				writeErr(w, fmt.Errorf("%w: retention %q: %v", ErrInvalid, b.Retention, err))
				return
			}
			req.Retention = d
		}
		m.log.Sync(r.Context())
		t, err := m.Create(r.Context(), req)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, m.info(t))
	})
	hf("GET /v1/tables/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r, authz.OpDescribe) {
			return
		}
		m.log.Sync(r.Context())
		t, ok := m.Get(r.PathValue("name"))
		if !ok {
			writeErr(w, fmt.Errorf("%w: %s", ErrNoTable, r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, m.info(t))
	})
	hf("PUT /v1/tables/{name}/schema", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r, authz.OpAlter) {
			return
		}
		var s Schema
		if err := decodeBody(r, &s); err != nil {
			writeErr(w, err)
			return
		}
		m.log.Sync(r.Context())
		t, err := m.Alter(r.Context(), r.PathValue("name"), &s)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, m.info(t))
	})
	hf("DELETE /v1/tables/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r, authz.OpDelete) {
			return
		}
		m.log.Sync(r.Context())
		if err := m.Drop(r.Context(), r.PathValue("name")); err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hf("POST /v1/sql", m.handleSQL)
	m.icebergRoutes(hf)
}

func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %v", ErrInvalid, err)
	}
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrInvalid, err)
	}
	return nil
}

// Media types of SQL results.
const (
	MediaJSON  = "application/json"
	MediaCSV   = "text/csv"
	MediaArrow = "application/vnd.apache.arrow.stream"
)

func (m *Module) handleSQL(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeErr(w, fmt.Errorf("%w: reading the body: %v", ErrInvalid, err))
		return
	}
	query := string(data)
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") || ct == "" && strings.HasPrefix(strings.TrimSpace(query), "{") {
		var b SQLBody
		if err := json.Unmarshal(data, &b); err != nil {
			writeErr(w, fmt.Errorf("%w: body: %v (expected {\"sql\": \"...\"})", ErrInvalid, err))
			return
		}
		query = b.SQL
	}
	if strings.TrimSpace(query) == "" {
		writeErr(w, fmt.Errorf("%w: no SQL given", ErrInvalid))
		return
	}
	res, err := m.Query(r.Context(), query)
	if err != nil {
		writeErr(w, err)
		return
	}
	accept := r.Header.Get("Accept")
	switch {
	case strings.Contains(accept, MediaArrow):
		w.Header().Set("Content-Type", MediaArrow)
		res.WriteArrow(w)
	case strings.Contains(accept, MediaCSV):
		w.Header().Set("Content-Type", MediaCSV+"; charset=utf-8")
		res.WriteCSV(w)
	default:
		w.Header().Set("Content-Type", MediaJSON)
		res.WriteJSON(w)
	}
}
