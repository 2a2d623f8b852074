package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/twoway/twoway/internal/module"
)

// The users API (docs/HTTP.md, "Users"):
//
//	PUT    /v1/users/{name}   {"password": "...", "mechanisms": [...]}: create, or set the password
//	GET    /v1/users          {"users": [{"name","mechanisms","created_ms"}]}
//	DELETE /v1/users/{name}
func (m *Module) routes(r module.Routes) {
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
	r.Handle("DELETE /v1/users/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		if err := m.DeleteUser(r.Context(), r.PathValue("name")); err != nil {
			writeErr(w, statusOf(err), codeOf(err), err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNoUser):
		return http.StatusNotFound
	case errors.Is(err, errInvalid):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func codeOf(err error) string {
	switch statusOf(err) {
	case http.StatusNotFound:
		return "not_found"
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

// BasicAuth authenticates a request's HTTP Basic credentials.
func (m *Module) BasicAuth(r *http.Request) (string, bool) {
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
