package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrAuthFailed is every failed authentication, whatever failed (an
// unknown user and a wrong password answer alike).
var ErrAuthFailed = errors.New("authentication failed: invalid credentials")

// Exchange is one SASL authentication in progress.
type Exchange interface {
	// Next takes the client's next message and returns the reply, whether
	// the exchange is over, and then the authenticated principal. An error
	// ends it unauthenticated.
	Next(msg []byte) (reply []byte, done bool, principal string, err error)
}

// SASLMechanisms are the mechanisms Start takes.
func (m *Module) SASLMechanisms() []string { return []string{Plain, ScramSHA256, ScramSHA512} }

// StartSASL begins an exchange of mechanism mech.
func (m *Module) StartSASL(mech string) (Exchange, error) {
	switch mech {
	case Plain:
		return &plainExchange{m: m}, nil
	case ScramSHA256, ScramSHA512:
		return &scramExchange{m: m, mech: mech}, nil
	}
	return nil, fmt.Errorf("SASL mechanism %q is not supported (supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", mech)
}

// Principal is how a user is named as a principal.
func Principal(user string) string { return "User:" + user }

type plainExchange struct{ m *Module }

// Next: [authzid] NUL authcid NUL password (RFC 4616).
func (p *plainExchange) Next(msg []byte) ([]byte, bool, string, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return nil, true, "", fmt.Errorf("%w: malformed PLAIN message", ErrAuthFailed)
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		return nil, true, "", fmt.Errorf("%w: PLAIN authorization id %q differs from the user", ErrAuthFailed, authz)
	}
	if !p.m.CheckPassword(user, pass) {
		return nil, true, "", ErrAuthFailed
	}
	return nil, true, Principal(user), nil
}

// scramExchange is the server side of RFC 5802 (without channel
// binding).
type scramExchange struct {
	m    *Module
	mech string
	step int

	user, gs2, clientFirstBare, serverFirst, nonce string
	cred                                           Credential
	known                                          bool
}

func (s *scramExchange) fail(why string) ([]byte, bool, string, error) {
	return nil, true, "", fmt.Errorf("%w (%s): %s", ErrAuthFailed, s.mech, why)
}

func (s *scramExchange) Next(msg []byte) ([]byte, bool, string, error) {
	s.step++
	switch s.step {
	case 1:
		return s.first(string(msg))
	case 2:
		return s.final(string(msg))
	}
	return s.fail("unexpected message after the exchange")
}

func (s *scramExchange) first(msg string) ([]byte, bool, string, error) {
	// gs2-header: "n,," "y,," or with "a=authzid"; "p=" asks for channel
	// binding, which is not offered.
	i := strings.Index(msg, ",")
	if i < 0 {
		return s.fail("malformed client-first message")
	}
	j := strings.Index(msg[i+1:], ",")
	if j < 0 {
		return s.fail("malformed client-first message")
	}
	flag, authz := msg[:i], msg[i+1:i+1+j]
	if flag != "n" && flag != "y" {
		return s.fail("channel binding is not supported")
	}
	s.gs2 = msg[:i+1+j+1]
	s.clientFirstBare = msg[i+1+j+1:]
	var cnonce string
	for _, f := range strings.Split(s.clientFirstBare, ",") {
		switch {
		case strings.HasPrefix(f, "n="):
			s.user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(f[2:])
		case strings.HasPrefix(f, "r="):
			cnonce = f[2:]
		case strings.HasPrefix(f, "m="):
			return s.fail("mandatory extensions are not supported")
		}
	}
	if s.user == "" || cnonce == "" {
		return s.fail("client-first message without a user or nonce")
	}
	if a := strings.TrimPrefix(authz, "a="); authz != "" && a != s.user {
		return s.fail("authorization id differs from the user")
	}
	s.cred, s.known = s.m.credential(s.user, s.mech)
	if !s.known {
		// Go on with a made-up credential, so that an unknown user is
		// told apart from a wrong password by nobody.
		s.cred = Credential{Salt: []byte("twoway-unknown-user:" + s.user), Iterations: DefaultIterations}
	}
	var b [18]byte
	rand.Read(b[:])
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(b[:])
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), false, "", nil
}

func (s *scramExchange) final(msg string) ([]byte, bool, string, error) {
	k := strings.LastIndex(msg, ",p=")
	if k < 0 {
		return s.fail("client-final message without a proof")
	}
	withoutProof, proofB64 := msg[:k], msg[k+3:]
	var cb, nonce string
	for _, f := range strings.Split(withoutProof, ",") {
		switch {
		case strings.HasPrefix(f, "c="):
			cb = f[2:]
		case strings.HasPrefix(f, "r="):
			nonce = f[2:]
		}
	}
	if cb != base64.StdEncoding.EncodeToString([]byte(s.gs2)) {
		return s.fail("channel binding data does not match")
	}
	// It must end with the nonce of server-first (as Kafka checks it:
	// librdkafka repeats its own nonce in front of it).
	if !strings.HasSuffix(nonce, s.nonce) {
		return s.fail("nonce does not match")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	h := hashFor(s.mech)
	if err != nil || len(proof) != h().Size() || !s.known {
		return s.fail("invalid credentials")
	}
	authMsg := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	clientSig := hmacSum(h, s.cred.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSig[i]
	}
	stored := h()
	stored.Write(clientKey)
	if !hmac.Equal(stored.Sum(nil), s.cred.StoredKey) {
		return s.fail("invalid credentials")
	}
	serverSig := hmacSum(h, s.cred.ServerKey, authMsg)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), true, Principal(s.user), nil
}
