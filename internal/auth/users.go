// Package auth keeps users in the log and authenticates them: SASL PLAIN,
// SCRAM-SHA-256 and SCRAM-SHA-512 for the Kafka listener, HTTP Basic for
// the HTTP one. A user's password is never stored: the log holds, per
// SCRAM mechanism, a random salt, the iteration count and the stored and
// server keys of RFC 5802 (the derived password itself is not kept
// either); PLAIN and Basic are checked against the SCRAM-SHA-256 ones.
// Every agent applies the same user entries, so a user created through
// one agent authenticates on any other from the next commit on.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
)

// Entry types 500-599 belong to security; all gated.
const (
	// TypeUserSet creates a user or replaces its credentials.
	TypeUserSet uint16 = 500
	// TypeUserDelete deletes a user.
	TypeUserDelete uint16 = 501
)

// SCRAM mechanisms.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	Plain       = "PLAIN"
)

// Mechanisms are the SCRAM mechanisms a user may have credentials for.
var Mechanisms = []string{ScramSHA256, ScramSHA512}

// DefaultIterations is the SCRAM iteration count of new credentials
// (Kafka's minimum is 4096).
const DefaultIterations = 8192

// Credential is one mechanism's SCRAM credential.
type Credential struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// User is a user as the log keeps it.
type User struct {
	Name        string                `json:"name"`
	Credentials map[string]Credential `json:"credentials"`
	CreatedMs   int64                 `json:"created_ms"`
	// Remove (in an entry only) lists mechanisms whose credentials go; a
	// user left without any is deleted.
	Remove []string `json:"remove,omitempty"`
}

func hashFor(mech string) func() hash.Hash {
	if mech == ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// NewCredential derives mech's credential for password with a new salt.
func NewCredential(mech, password string, iterations int) (Credential, error) {
	salt := make([]byte, 24)
	if _, err := rand.Read(salt); err != nil {
		return Credential{}, err
	}
	return credentialFor(mech, password, salt, iterations)
}

func credentialFor(mech, password string, salt []byte, iterations int) (Credential, error) {
	h := hashFor(mech)
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return Credential{}, err
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return Credential{Salt: salt, Iterations: iterations, StoredKey: stored.Sum(nil), ServerKey: hmacSum(h, salted, []byte("Server Key"))}, nil
}

// ValidateName checks a user name: 1 to 128 printable characters, no
// spaces, commas or colons (they delimit SASL and Basic messages).
func ValidateName(n string) error {
	if n == "" || len(n) > 128 {
		return fmt.Errorf("user name %q: use 1 to 128 characters", n)
	}
	for _, r := range n {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == ',' || r == ':' || r == '=' {
			return fmt.Errorf("user name %q: no spaces, commas, colons, equals signs or control characters", n)
		}
	}
	return nil
}

// ErrNoUser is the result of deleting a user that does not exist.
var ErrNoUser = errors.New("no such user")

// state is the users Owner.
type state struct {
	users  map[string]User
	tokens map[string]Token
	acls   []ACL
}

func (s *state) Name() string { return "users" }
func (s *state) Types() []uint16 {
	return []uint16{TypeUserSet, TypeUserDelete, TypeTokenCreate, TypeTokenDelete, TypeACLCreate, TypeACLDelete}
}
func (s *state) GatedTypes() []uint16 { return s.Types() }
func (s *state) Reset() {
	s.users, s.tokens, s.acls = map[string]User{}, map[string]Token{}, nil
}
func (s *state) LiveObjects(func(string)) {}

func (s *state) Apply(_ uint64, e commitlog.Entry) any {
	switch e.Type {
	case TypeTokenCreate, TypeTokenDelete:
		return s.applyToken(e)
	case TypeACLCreate, TypeACLDelete:
		return s.applyACL(e)
	case TypeUserSet:
		var u User
		if err := json.Unmarshal(e.Data, &u); err != nil {
			return fmt.Errorf("malformed user entry: %v", err)
		}
		if err := ValidateName(u.Name); err != nil {
			return err
		}
		if old, ok := s.users[u.Name]; ok {
			// Credentials of mechanisms not given stay.
			merged := maps.Clone(old.Credentials)
			maps.Copy(merged, u.Credentials)
			u.Credentials, u.CreatedMs = merged, old.CreatedMs
		}
		for _, mech := range u.Remove {
			delete(u.Credentials, mech)
		}
		u.Remove = nil
		if len(u.Credentials) == 0 {
			delete(s.users, u.Name)
			return nil
		}
		s.users[u.Name] = u
		return nil
	case TypeUserDelete:
		var d struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("malformed user delete entry: %v", err)
		}
		if _, ok := s.users[d.Name]; !ok {
			return fmt.Errorf("%w: %s", ErrNoUser, d.Name)
		}
		delete(s.users, d.Name)
		return nil
	}
	return fmt.Errorf("users: unknown entry type %d", e.Type)
}

// snapshotJSON is the owner's snapshot.
type snapshotJSON struct {
	Users  map[string]User  `json:"users"`
	Tokens map[string]Token `json:"tokens"`
	ACLs   []ACL            `json:"acls,omitempty"`
}

func (s *state) Snapshot() func() ([]byte, error) {
	b, err := json.Marshal(snapshotJSON{Users: s.users, Tokens: s.tokens, ACLs: s.acls})
	return func() ([]byte, error) { return b, err }
}

func (s *state) Restore(b []byte) error {
	s.Reset()
	var sj snapshotJSON
	if err := json.Unmarshal(b, &sj); err != nil {
		return err
	}
	if sj.Users != nil {
		s.users = sj.Users
	}
	if sj.Tokens != nil {
		s.tokens = sj.Tokens
	}
	s.acls = sj.ACLs
	return nil
}

// Module is the security module: users and their authentication.
type Module struct {
	st    *state
	log   *commitlog.Log
	cache basicCache
	fails failures
	authz Authorizer
}

// New makes the module.
func New() *Module {
	return &Module{st: &state{users: map[string]User{}, tokens: map[string]Token{}}, cache: basicCache{m: map[[32]byte]cachedCheck{}},
		fails: failures{m: map[string]*failure{}}}
}

// errInvalid marks a bad name, password or mechanism.
var errInvalid = errors.New("invalid")

func (m *Module) Name() string              { return "security" }
func (m *Module) Owners() []commitlog.Owner { return []commitlog.Owner{m.st} }
func (m *Module) Close() error              { return nil }

// Start keeps the log and registers the users routes.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	m.log = env.Log
	m.routes(env.HTTP)
	return nil
}

func (m *Module) propose(ctx context.Context, e commitlog.Entry) error {
	_, err := m.proposeResult(ctx, "type:500", e.Type, e.Data)
	return err
}

// proposeResult commits one entry of type typ, once feature is enabled,
// and returns its result (an error result as the error).
func (m *Module) proposeResult(ctx context.Context, feature string, typ uint16, data []byte) (any, error) {
	if !m.log.Enabled(feature) {
		if err := m.log.EnableFeatures(ctx); err != nil {
			return nil, err
		}
		if err := m.log.WaitEnabled(ctx, feature); err != nil {
			return nil, fmt.Errorf("this is not enabled yet (every agent must run a version that has it): %w", err)
		}
	}
	_, res, err := m.log.Propose(ctx, commitlog.Entry{Type: typ, Data: data})
	if err != nil {
		return nil, err
	}
	if err, ok := res[0].(error); ok {
		return nil, err
	}
	return res[0], nil
}

// SetUser creates user name, or replaces its credentials for mechs
// (default: both SCRAM mechanisms), from password.
func (m *Module) SetUser(ctx context.Context, name, password string, mechs []string, nowMs int64) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("%w: %w", errInvalid, err)
	}
	if password == "" {
		return fmt.Errorf("%w: the password is empty", errInvalid)
	}
	if len(mechs) == 0 {
		mechs = Mechanisms
	}
	u := User{Name: name, Credentials: map[string]Credential{}, CreatedMs: nowMs}
	for _, mech := range mechs {
		if !slices.Contains(Mechanisms, mech) {
			return fmt.Errorf("%w: mechanism %q: use %s", errInvalid, mech, strings.Join(Mechanisms, " or "))
		}
		c, err := NewCredential(mech, password, DefaultIterations)
		if err != nil {
			return err
		}
		u.Credentials[mech] = c
	}
	data, _ := json.Marshal(u)
	return m.propose(ctx, commitlog.Entry{Type: TypeUserSet, Data: data})
}

// DeleteUser deletes user name.
func (m *Module) DeleteUser(ctx context.Context, name string) error {
	data, _ := json.Marshal(map[string]string{"name": name})
	return m.propose(ctx, commitlog.Entry{Type: TypeUserDelete, Data: data})
}

// UserInfo is a user as listed: never its credentials.
type UserInfo struct {
	Name       string   `json:"name"`
	Mechanisms []string `json:"mechanisms"`
	CreatedMs  int64    `json:"created_ms"`
}

// Users lists the users by name.
func (m *Module) Users() []UserInfo {
	var out []UserInfo
	m.log.View(m.st, func() {
		for _, u := range m.st.users {
			info := UserInfo{Name: u.Name, CreatedMs: u.CreatedMs}
			for mech := range u.Credentials {
				info.Mechanisms = append(info.Mechanisms, mech)
			}
			sort.Strings(info.Mechanisms)
			out = append(out, info)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *Module) credential(name, mech string) (Credential, bool) {
	var c Credential
	var ok bool
	look := func() {
		m.log.View(m.st, func() {
			if u, found := m.st.users[name]; found {
				c, ok = u.Credentials[mech]
			}
		})
	}
	look()
	if !ok && m.catchUp() { // a user made through another agent a moment ago
		look()
	}
	return c, ok
}

// CheckPassword reports whether password is user name's (PLAIN, Basic).
func (m *Module) CheckPassword(name, password string) bool {
	for _, mech := range Mechanisms {
		c, ok := m.credential(name, mech)
		if !ok {
			continue
		}
		d, err := credentialFor(mech, password, c.Salt, c.Iterations)
		return err == nil && hmac.Equal(d.StoredKey, c.StoredKey)
	}
	// Unknown users cost the same work, so timing does not tell them.
	credentialFor(ScramSHA256, password, []byte("no such user salt"), DefaultIterations)
	return false
}

// CredentialFromSalted is a credential from a SCRAM salted password, as
// Kafka's AlterUserScramCredentials sends it (the client derives it).
func CredentialFromSalted(mech string, salt, salted []byte, iterations int) Credential {
	h := hashFor(mech)
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return Credential{Salt: salt, Iterations: iterations, StoredKey: stored.Sum(nil), ServerKey: hmacSum(h, salted, []byte("Server Key"))}
}

// AlterCredentials sets and removes SCRAM credentials of user name in one
// commit; a user left with none is deleted.
func (m *Module) AlterCredentials(ctx context.Context, name string, set map[string]Credential, remove []string, nowMs int64) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("%w: %w", errInvalid, err)
	}
	for mech := range set {
		if !slices.Contains(Mechanisms, mech) {
			return fmt.Errorf("%w: mechanism %q", errInvalid, mech)
		}
	}
	u := User{Name: name, Credentials: set, Remove: remove, CreatedMs: nowMs}
	if u.Credentials == nil {
		u.Credentials = map[string]Credential{}
	}
	data, _ := json.Marshal(u)
	return m.propose(ctx, commitlog.Entry{Type: TypeUserSet, Data: data})
}

// Credentials lists user name's mechanisms and iteration counts; false
// for no such user.
func (m *Module) Credentials(name string) (map[string]int, bool) {
	out := map[string]int{}
	var ok bool
	m.log.View(m.st, func() {
		var u User
		if u, ok = m.st.users[name]; ok {
			for mech, c := range u.Credentials {
				out[mech] = c.Iterations
			}
		}
	})
	return out, ok
}

// Sync catches up with the log.
func (m *Module) Sync(ctx context.Context) error { return m.log.Sync(ctx) }
