package tables

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/authz"
)

// The Iceberg REST catalog, read-only, under /iceberg/: what engines need
// to list and read the tables (config, namespaces, list, load and exists).
// Every table is in namespace "default"; a table's dead-letter table
// NAME_dlq is listed beside it. Data and metadata are read by the engine
// straight from the bucket at the locations the metadata gives.

// icebergError is the REST spec's error model.
func icebergError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": status}})
}

func (m *Module) icebergRoutes(hf func(string, http.HandlerFunc)) {
	hf("GET /iceberg/v1/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"defaults":  map[string]string{},
			"overrides": map[string]string{},
			"endpoints": []string{
				"GET /v1/{prefix}/namespaces",
				"GET /v1/{prefix}/namespaces/{namespace}",
				"HEAD /v1/{prefix}/namespaces/{namespace}",
				"GET /v1/{prefix}/namespaces/{namespace}/tables",
				"GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
				"HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
			},
		})
	})
	hf("GET /iceberg/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		if parent := r.URL.Query().Get("parent"); parent != "" {
			writeJSON(w, http.StatusOK, map[string]any{"namespaces": [][]string{}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"namespaces": [][]string{{Namespace}}})
	})
	ns := func(w http.ResponseWriter, r *http.Request) bool {
		if r.PathValue("ns") != Namespace {
			icebergError(w, http.StatusNotFound, "NoSuchNamespaceException", fmt.Sprintf("Namespace does not exist: %s (twoway's tables are in %q)", r.PathValue("ns"), Namespace))
			return false
		}
		return true
	}
	hf("GET /iceberg/v1/namespaces/{ns}", func(w http.ResponseWriter, r *http.Request) {
		if ns(w, r) {
			writeJSON(w, http.StatusOK, map[string]any{"namespace": []string{Namespace}, "properties": map[string]string{}})
		}
	})
	hf("HEAD /iceberg/v1/namespaces/{ns}", func(w http.ResponseWriter, r *http.Request) {
		if ns(w, r) {
			w.WriteHeader(http.StatusNoContent)
		}
	})
	hf("GET /iceberg/v1/namespaces/{ns}/tables", func(w http.ResponseWriter, r *http.Request) {
		if !ns(w, r) {
			return
		}
		m.log.Sync(r.Context())
		ids := []map[string]any{}
		for _, t := range m.List() {
			if !authz.Allowed(r.Context(), authz.OpDescribe, authz.ResTable, t.Def.Name) {
				continue
			}
			ids = append(ids, map[string]any{"namespace": []string{Namespace}, "name": t.Def.Name})
			ids = append(ids, map[string]any{"namespace": []string{Namespace}, "name": t.Def.Name + DLQSuffix})
		}
		writeJSON(w, http.StatusOK, map[string]any{"identifiers": ids})
	})
	hf("HEAD /iceberg/v1/namespaces/{ns}/tables/{table}", func(w http.ResponseWriter, r *http.Request) {
		if !ns(w, r) {
			return
		}
		m.log.Sync(r.Context())
		t, _, ok := m.resolve(r.PathValue("table"))
		if !ok || !authz.Allowed(r.Context(), authz.OpDescribe, authz.ResTable, t.Def.Name) {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hf("GET /iceberg/v1/namespaces/{ns}/tables/{table}", func(w http.ResponseWriter, r *http.Request) {
		if !ns(w, r) {
			return
		}
		m.log.Sync(r.Context())
		name := r.PathValue("table")
		t, dlq, ok := m.resolve(name)
		if ok {
			if err := authz.Check(r.Context(), authz.OpRead, authz.ResTable, t.Def.Name); err != nil {
				icebergError(w, http.StatusForbidden, "ForbiddenException", err.Error())
				return
			}
		}
		if !ok {
			icebergError(w, http.StatusNotFound, "NoSuchTableException", fmt.Sprintf("Table does not exist: %s.%s", Namespace, name))
			return
		}
		fio := newBucketIO(r.Context(), m.b)
		p := t.Main
		if dlq {
			p = t.DLQ
		}
		out := map[string]any{"config": map[string]string{}}
		if p.Metadata == "" {
			// Nothing committed yet: the empty table.
			meta, err := newMetadata(&t.Def, dlq, fio.URL(tablePrefix(name)))
			if err != nil {
				icebergError(w, http.StatusInternalServerError, "ServiceFailureException", err.Error())
				return
			}
			out["metadata"] = meta
		} else {
			data, _, err := bucket.ReadAll(r.Context(), m.b, p.Metadata)
			if err != nil {
				icebergError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", err.Error())
				return
			}
			out["metadata-location"] = fio.URL(p.Metadata)
			out["metadata"] = json.RawMessage(data)
		}
		writeJSON(w, http.StatusOK, out)
	})
	// Writes are not served: tables change only by their topics.
	for _, p := range []string{"POST /iceberg/v1/namespaces", "POST /iceberg/v1/namespaces/{ns}/tables",
		"POST /iceberg/v1/namespaces/{ns}/tables/{table}", "DELETE /iceberg/v1/namespaces/{ns}/tables/{table}",
		"DELETE /iceberg/v1/namespaces/{ns}", "POST /iceberg/v1/tables/rename", "POST /iceberg/v1/transactions/commit"} {
		hf(p, func(w http.ResponseWriter, r *http.Request) {
			icebergError(w, http.StatusNotAcceptable, "UnsupportedOperationException",
				"twoway's catalog is read-only: tables are created with `twoway table create` and change only as their topics do")
		})
	}
}

// resolve finds a table by its Iceberg name: NAME, or NAME_dlq for its
// dead-letter table.
func (m *Module) resolve(name string) (*Table, bool, bool) {
	if t, ok := m.Get(name); ok {
		return t, false, true
	}
	if base, ok := cutSuffix(name, DLQSuffix); ok {
		if t, ok := m.Get(base); ok {
			return t, true, true
		}
	}
	return nil, false, false
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return "", false
}
