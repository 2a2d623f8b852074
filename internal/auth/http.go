package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/module"
)

// The users API (docs/HTTP.md, "Users"):
//
//	PUT    /v1/users/{name}   {"password": "...", "mechanisms": [...]}: create, or set the password
//	GET    /v1/users          {"users": [{"name","mechanisms","created_ms"}]}
//	DELETE /v1/users/{name}
func (m *Module) routes(mux module.Routes) {
	// Users, tokens and ACLs are the cluster's: describing them needs
	// DESCRIBE on the cluster, changing them ALTER (as Kafka's SCRAM and
	// ACL APIs).
	r := clusterRoutes{mux}
	r.Handle("PUT /v1/users/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Password   string   `json:"password"`
			Mechanisms []string `json:"mechanisms"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("the body: %v", err))
			return
		}
		if err := m.SetUser(r.Context(), r.PathValue("name"), body.Password, body.Mechanisms, time.Now().UnixMilli()); err != nil {
			writeErr(w, statusOf(err), codeOf(err), err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	r.Handle("GET /v1/users", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		users := m.Users()
		if users == nil {
			users = []UserInfo{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"users": users})
	}))
	r.Handle("POST /v1/tokens", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Principal string `json:"principal"`
			// Expires is a duration ("720h"); empty never expires.
			Expires string `json:"expires"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("the body: %v", err))
			return
		}
		if p := authz.Principal(r.Context()); p == "" || p != body.Principal {
			if err := authz.Check(r.Context(), OpAlter, ResCluster, ClusterName); err != nil {
				writeErr(w, http.StatusForbidden, "forbidden", fmt.Sprintf("%v (a principal may create tokens for itself only)", err))
				return
			}
		}
		var ttl time.Duration
		if body.Expires != "" {
			d, err := time.ParseDuration(body.Expires)
			if err != nil || d <= 0 {
				writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("expires %q: give a positive duration such as 720h", body.Expires))
				return
			}
			ttl = d
		}
		tok, t, err := m.CreateToken(r.Context(), body.Principal, ttl, time.Now())
		if err != nil {
			writeErr(w, statusOf(err), codeOf(err), err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "id": t.ID, "principal": t.Principal, "created_ms": t.CreatedMs, "expires_ms": t.ExpiresMs})
	}))
	r.Handle("GET /v1/tokens", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		toks := m.Tokens()
		if toks == nil {
			toks = []Token{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"tokens": toks})
	}))
	r.Handle("DELETE /v1/tokens/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		if err := m.DeleteToken(r.Context(), r.PathValue("id")); err != nil {
			writeErr(w, statusOf(err), codeOf(err), err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	r.Handle("DELETE /v1/users/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		if err := m.DeleteUser(r.Context(), r.PathValue("name")); err != nil {
			writeErr(w, statusOf(err), codeOf(err), err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	// ACLs (docs/HTTP.md, "ACLs"):
	//
	//	GET    /v1/acls?principal=&resource=&name=&pattern=&operation=&permission=&host=
	//	POST   /v1/acls  {"acls": [...]}
	//	DELETE /v1/acls  {"filters": [...]}: the ACLs deleted
	r.Handle("GET /v1/acls", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		q := r.URL.Query()
		f := ACLFilter{Principal: q.Get("principal"), Host: q.Get("host"), Resource: q.Get("resource"), Pattern: q.Get("pattern"),
			Name: q.Get("name"), Operation: q.Get("operation"), Permission: q.Get("permission")}
		acls := m.ACLs(f)
		if acls == nil {
			acls = []ACL{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"acls": acls})
	}))
	r.Handle("POST /v1/acls", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ACLs []ACL `json:"acls"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || len(body.ACLs) == 0 {
			writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("the body: %v (expected {\"acls\": [{\"principal\", \"resource\", \"name\", \"operation\", ...}]})", err))
			return
		}
		if err := m.CreateACLs(r.Context(), body.ACLs); err != nil {
			writeErr(w, statusOf(err), codeOf(err), err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"acls": body.ACLs})
	}))
	r.Handle("DELETE /v1/acls", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Filters []ACLFilter `json:"filters"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || len(body.Filters) == 0 {
			writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("the body: %v (expected {\"filters\": [{...}]})", err))
			return
		}
		m.log.Sync(r.Context())
		gone, err := m.DeleteACLs(r.Context(), body.Filters)
		if err != nil {
			writeErr(w, statusOf(err), codeOf(err), err.Error())
			return
		}
		if gone == nil {
			gone = []ACL{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"deleted": gone})
	}))
}

// clusterRoutes checks the cluster operation of each route: GET needs
// DESCRIBE, the others ALTER.
type clusterRoutes struct{ mux module.Routes }

func (c clusterRoutes) Handle(pattern string, h http.Handler) {
	op := OpAlter
	if strings.HasPrefix(pattern, "GET ") {
		op = OpDescribe
	}
	self := pattern == "POST /v1/tokens" // a principal may make tokens for itself
	c.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if self {
			h.ServeHTTP(w, r)
			return
		}
		if err := authz.Check(r.Context(), op, ResCluster, ClusterName); err != nil {
			writeErr(w, http.StatusForbidden, "forbidden", err.Error())
			return
		}
		h.ServeHTTP(w, r)
	}))
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNoUser), errors.Is(err, ErrNoToken):
		return http.StatusNotFound
	case errors.Is(err, errInvalid), errors.Is(err, ErrInvalidACL):
		return http.StatusBadRequest
	case errors.Is(err, authz.ErrDenied):
		return http.StatusForbidden
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func codeOf(err error) string {
	switch statusOf(err) {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "internal"
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}

// basicCache remembers passwords recently checked right, by a hash of
// user and password, so that HTTP Basic does not cost a key derivation
// per request; an entry counts only while the user's credential is the
// one it was checked against.
type basicCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedCheck
}

type cachedCheck struct {
	stored []byte
	until  time.Time
}

const basicCacheFor = 5 * time.Minute

// HTTPAuth authenticates a request: a bearer token (twoway token
// create) or HTTP Basic with a user. A failure is answered late, later
// for every failure from the same address in a row.
func (m *Module) HTTPAuth(r *http.Request) (string, bool) {
	var p string
	var ok bool
	check := func() {
		if tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
			p, ok = m.CheckToken(strings.TrimSpace(tok), time.Now())
		} else {
			p, ok = m.basicAuth(r)
		}
	}
	check()
	// A token or user made through another agent (or straight on the
	// bucket) a moment ago: catch up once and look again.
	if !ok && r.Header.Get("Authorization") != "" && m.catchUp() {
		check()
	}
	if !ok {
		if r.Header.Get("Authorization") != "" {
			time.Sleep(m.Failed(r.RemoteAddr))
		}
		return "", false
	}
	m.Succeeded(r.RemoteAddr)
	return p, true
}

// basicAuth authenticates a request's HTTP Basic credentials.
func (m *Module) basicAuth(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	cur, known := m.credential(user, ScramSHA256)
	if !known {
		cur, known = m.credential(user, ScramSHA512)
	}
	m.cache.mu.Lock()
	c, hit := m.cache.m[key]
	m.cache.mu.Unlock()
	if hit && known && time.Now().Before(c.until) && string(c.stored) == string(cur.StoredKey) {
		return Principal(user), true
	}
	if !m.CheckPassword(user, pass) {
		return "", false
	}
	m.cache.mu.Lock()
	if len(m.cache.m) > 10000 {
		m.cache.m = map[[32]byte]cachedCheck{}
	}
	m.cache.m[key] = cachedCheck{stored: cur.StoredKey, until: time.Now().Add(basicCacheFor)}
	m.cache.mu.Unlock()
	return Principal(user), true
}
