package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

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
	if c.authenticated.Load() || c.sasl != nil {
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
		return resp, false
	}
	c.sasl = ex
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
	if err != nil {
		c.sasl = nil
		c.log.Warn("kafka SASL authentication failed", "client_id", h.clientID, "err", err)
		// Later for every failure from the address in a row: guessing
		// passwords is slow.
		time.Sleep(s.cfg.Auth.Failed(c.nc.RemoteAddr().String()))
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := err.Error()
		resp.ErrorMessage = &msg
		return resp, true
	}
	resp.SASLAuthBytes = reply
	if done {
		c.sasl = nil
		c.principal = principal
		c.authenticated.Store(true)
		s.cfg.Auth.Succeeded(c.nc.RemoteAddr().String())
		c.log.Info("kafka client authenticated", "client_id", h.clientID, "principal", principal)
	}
	return resp, false
}
