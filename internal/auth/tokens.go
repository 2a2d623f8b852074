package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
)

// HTTP bearer tokens. A token is "tw_{id}_{secret}"; the log keeps its
// id, the SHA-256 of its secret, its principal and its expiry, so the
// token itself exists only where `twoway token create` printed it.
const (
	// TypeTokenCreate creates a token.
	TypeTokenCreate uint16 = 502
	// TypeTokenDelete revokes a token.
	TypeTokenDelete uint16 = 503
)

// Token is a token as the log keeps it.
type Token struct {
	ID        string `json:"id"`
	Hash      []byte `json:"hash"`
	Principal string `json:"principal"`
	CreatedMs int64  `json:"created_ms"`
	// ExpiresMs is 0 for a token that does not expire.
	ExpiresMs int64 `json:"expires_ms,omitempty"`
}

// ErrNoToken is the result of revoking a token that does not exist.
var ErrNoToken = errors.New("no such token")

// ValidatePrincipal checks a principal of the form User:NAME.
func ValidatePrincipal(p string) error {
	name, ok := strings.CutPrefix(p, "User:")
	if !ok {
		return fmt.Errorf("principal %q: use User:NAME", p)
	}
	return ValidateName(name)
}

func (s *state) applyToken(e commitlog.Entry) any {
	switch e.Type {
	case TypeTokenCreate:
		var t Token
		if err := json.Unmarshal(e.Data, &t); err != nil {
			return fmt.Errorf("malformed token entry: %v", err)
		}
		if t.ID == "" || len(t.Hash) != sha256.Size {
			return errors.New("malformed token entry: no id or hash")
		}
		if err := ValidatePrincipal(t.Principal); err != nil {
			return err
		}
		if _, ok := s.tokens[t.ID]; ok {
			return fmt.Errorf("token %s exists", t.ID)
		}
		s.tokens[t.ID] = t
		return nil
	case TypeTokenDelete:
		var d struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("malformed token delete entry: %v", err)
		}
		if _, ok := s.tokens[d.ID]; !ok {
			return fmt.Errorf("%w: %s", ErrNoToken, d.ID)
		}
		delete(s.tokens, d.ID)
		return nil
	}
	return fmt.Errorf("tokens: unknown entry type %d", e.Type)
}

// CreateToken makes a token for principal, valid for ttl (0: forever),
// and returns it: the only time it is seen.
func (m *Module) CreateToken(ctx context.Context, principal string, ttl time.Duration, now time.Time) (string, Token, error) {
	if err := ValidatePrincipal(principal); err != nil {
		return "", Token{}, fmt.Errorf("%w: %w", errInvalid, err)
	}
	if ttl < 0 {
		return "", Token{}, fmt.Errorf("%w: a negative expiry", errInvalid)
	}
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Token{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Token{}, err
	}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	t := Token{ID: hex.EncodeToString(id[:]), Hash: sum[:], Principal: principal, CreatedMs: now.UnixMilli()}
	if ttl > 0 {
		t.ExpiresMs = now.Add(ttl).UnixMilli()
	}
	data, _ := json.Marshal(t)
	if err := m.propose(ctx, commitlog.Entry{Type: TypeTokenCreate, Data: data}); err != nil {
		return "", Token{}, err
	}
	t.Hash = nil
	return "tw_" + t.ID + "_" + sec, t, nil
}

// DeleteToken revokes token id.
func (m *Module) DeleteToken(ctx context.Context, id string) error {
	data, _ := json.Marshal(map[string]string{"id": id})
	return m.propose(ctx, commitlog.Entry{Type: TypeTokenDelete, Data: data})
}

// Tokens lists the tokens, without their hashes.
func (m *Module) Tokens() []Token {
	var out []Token
	m.log.View(m.st, func() {
		for _, t := range m.st.tokens {
			t.Hash = nil
			out = append(out, t)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CheckToken returns the principal of a bearer token that exists and has
// not expired.
func (m *Module) CheckToken(token string, now time.Time) (string, bool) {
	rest, ok := strings.CutPrefix(token, "tw_")
	if !ok {
		return "", false
	}
	id, sec, ok := strings.Cut(rest, "_")
	if !ok {
		return "", false
	}
	var t Token
	var found bool
	m.log.View(m.st, func() { t, found = m.st.tokens[id] })
	sum := sha256.Sum256([]byte(sec))
	if !found || subtle.ConstantTimeCompare(sum[:], t.Hash) != 1 {
		return "", false
	}
	if t.ExpiresMs != 0 && now.UnixMilli() >= t.ExpiresMs {
		return "", false
	}
	return t.Principal, true
}
