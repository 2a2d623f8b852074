package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Re-authentication (KIP-368) follows Kafka's broker. With a session
// lifetime (Config.SessionLifetime) every successful SaslAuthenticate
// starts a session that long, told to v1+ clients in session_lifetime_ms
// (no SASL credential here expires sooner, so it is always the configured
// lifetime). A client re-authenticates on the same connection with
// SaslHandshake and SaslAuthenticate again, with the mechanism and as the
// principal of its session, whenever it likes; its other requests go on
// meanwhile, each with the principal it was read with. A connection whose
// session is over is closed on its next request other than those and
// ApiVersions. As on Kafka, the expiry holds for every SASL connection,
// whatever the SaslAuthenticate version: a v0 client is not told the
// lifetime, so it is disconnected when the session ends and has to connect
// again. Without a lifetime a second SaslHandshake is refused, as on Kafka.

// errReauth is a re-authentication refused with the right credentials:
// another mechanism or principal than the session's. It is not slowed
// down as a guessed password is.
var errReauth = errors.New("re-authentication refused")

// refusedExchange fails at its first message.
type refusedExchange struct{ err error }

func (r refusedExchange) Next([]byte) ([]byte, bool, string, error) { return nil, true, "", r.err }

// saslHandshake starts an exchange of the mechanism the client names
// (KIP-152: the exchange then travels in SaslAuthenticate requests).
func (s *Server) saslHandshake(c *conn, h header, r *kmsg.SASLHandshakeRequest) (kmsg.Response, bool) {
	resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
	if s.cfg.Auth == nil {
		c.log.Warn("kafka client asked for SASL, which this agent does not serve (serve --auth); connect without SASL", "client_id", h.clientID, "mechanism", r.Mechanism)
		resp.ErrorCode, resp.SupportedMechanisms = kerr.UnsupportedSaslMechanism.Code, []string{}
		return resp, false
	}
	resp.SupportedMechanisms = s.cfg.Auth.SASLMechanisms()
	c.saslMu.Lock()
	defer c.saslMu.Unlock()
	reauth := c.authenticated.Load()
	if c.sasl != nil || reauth && c.sessionEnd.IsZero() {
		// An exchange is under way, or the session does not expire and
		// so is not re-authenticated (Kafka refuses it alike).
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, true
	}
	if h.version == 0 {
		// v0 sends the exchange as raw frames, which this server does
		// not read: ask for v1.
		c.log.Warn("kafka client uses SaslHandshake v0 (raw SASL frames), which is not served; use a client that sends SaslAuthenticate", "client_id", h.clientID)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, true
	}
	ex, err := s.cfg.Auth.StartSASL(r.Mechanism)
	if err != nil {
		c.log.Warn("kafka SASL mechanism refused", "mechanism", r.Mechanism, "client_id", h.clientID)
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, reauth
	}
	if reauth && r.Mechanism != c.saslMech {
		// Kafka answers the handshake, then fails the exchange.
		ex = refusedExchange{fmt.Errorf("%w: SASL mechanism %s is not allowed to re-authenticate a session of %s", errReauth, r.Mechanism, c.saslMech)}
	}
	c.sasl, c.saslNext, c.reauth = ex, r.Mechanism, reauth
	return resp, false
}

// saslAuthenticate takes the next message of the exchange. A failure is
// answered, logged with the peer address (never the secret), and closes
// the connection, as Kafka does.
func (s *Server) saslAuthenticate(c *conn, h header, r *kmsg.SASLAuthenticateRequest) (kmsg.Response, bool) {
	resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	c.saslMu.Lock()
	defer c.saslMu.Unlock()
	if c.sasl == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a SaslHandshake naming the mechanism"
		resp.ErrorMessage = &msg
		return resp, true
	}
	reply, done, principal, err := c.sasl.Next(r.SASLAuthBytes)
	if err == nil && done && c.reauth && principal != c.principal {
		err = fmt.Errorf("%w: a session of %s cannot change its principal to %s", errReauth, c.principal, principal)
	}
	if err != nil {
		c.sasl = nil
		if c.reauth {
			c.log.Warn("kafka SASL re-authentication failed; closing the connection", "client_id", h.clientID, "principal", c.principal, "err", err)
		} else {
			c.log.Warn("kafka SASL authentication failed", "client_id", h.clientID, "err", err)
		}
		if !errors.Is(err, errReauth) {
			// Later for every failure from the address in a row:
			// guessing passwords is slow.
			time.Sleep(s.cfg.Auth.Failed(c.nc.RemoteAddr().String()))
		}
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := err.Error()
		resp.ErrorMessage = &msg
		return resp, true
	}
	resp.SASLAuthBytes = reply
	if !done {
		return resp, false
	}
	c.sasl, c.saslMech = nil, c.saslNext
	if lifetime := s.cfg.SessionLifetime; lifetime > 0 {
		// Only v1+ responses carry it; the session ends for v0 too.
		c.sessionEnd = time.Now().Add(lifetime)
		resp.SessionLifetimeMillis = lifetime.Milliseconds()
	}
	s.cfg.Auth.Succeeded(c.nc.RemoteAddr().String())
	if c.reauth {
		c.reauth = false
		c.log.Debug("kafka client re-authenticated", "client_id", h.clientID, "principal", principal, "session_lifetime", s.cfg.SessionLifetime)
		return resp, false
	}
	c.principal = principal
	c.authenticated.Store(true)
	c.log.Info("kafka client authenticated", "client_id", h.clientID, "principal", principal)
	if s.cfg.SessionLifetime > 0 && h.version == 0 {
		// Kafka counts these (successful-authentication-no-reauth).
		c.log.Warn("kafka client authenticated with SaslAuthenticate v0, which cannot tell it the session lifetime; its connection will be closed when the session ends",
			"client_id", h.clientID, "principal", principal, "session_lifetime", s.cfg.SessionLifetime)
	}
	return resp, false
}

// sessionExpired reports whether the connection's SASL session is over
// (reader goroutine).
func (c *conn) sessionExpired() bool {
	if c.s.cfg.SessionLifetime <= 0 {
		return false
	}
	c.saslMu.Lock()
	defer c.saslMu.Unlock()
	return !c.sessionEnd.IsZero() && time.Now().After(c.sessionEnd)
}
