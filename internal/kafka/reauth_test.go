package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// reauthServer serves users with authentication required and the SASL
// session lifetime given; its log (debug included) is returned.
func reauthServer(t *testing.T, ctx context.Context, lifetime time.Duration) (*Server, *lockedLog, func(user, pass string)) {
	t.Helper()
	svc, users := withUsers(t, ctx, "alice", "pw")
	logs := &lockedLog{}
	s := testServer(t, svc, func(c *Config) {
		c.Auth, c.RequireAuth, c.SessionLifetime = users, true, lifetime
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	setUser := func(user, pass string) {
		t.Helper()
		if err := users.SetUser(ctx, user, pass, nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	return s, logs, setUser
}

// plainAuth runs SaslHandshake and SaslAuthenticate (at version v) with
// PLAIN on rc and returns the SaslAuthenticate response.
func plainAuth(t *testing.T, rc *rawConn, v int16, user, pass string) *kmsg.SASLAuthenticateResponse {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "PLAIN"
	if r := rc.do(t, hs).(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
		t.Fatalf("SASL handshake: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = v, []byte("\x00"+user+"\x00"+pass)
	return rc.do(t, au).(*kmsg.SASLAuthenticateResponse)
}

func mustPlainAuth(t *testing.T, rc *rawConn, v int16, user, pass string) *kmsg.SASLAuthenticateResponse {
	t.Helper()
	r := plainAuth(t, rc, v, user, pass)
	if r.ErrorCode != 0 {
		t.Fatalf("SASL authenticate as %s: %v (%s)", user, kerr.ErrorForCode(r.ErrorCode), str(r.ErrorMessage))
	}
	return r
}

func mustMetadata(t *testing.T, rc *rawConn, what string) {
	t.Helper()
	if r := rc.do(t, metadataRequest(false)).(*kmsg.MetadataResponse); len(r.Brokers) == 0 {
		t.Fatalf("%s: metadata without brokers", what)
	}
}

// franz-go re-authenticates on its own when the server sends a session
// lifetime: producing and consuming across several lifetimes goes on
// without an error, and no connection is closed for an expired session.
func TestReauthenticationKeepsClientsServed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// franz-go re-authenticates 1s (at least) before the lifetime ends.
	const lifetime = 2 * time.Second
	s, logs, _ := reauthServer(t, ctx, lifetime)
	addr := s.Addr().String()
	mech := kgo.SASL(scram.Auth{User: "alice", Pass: "pw"}.AsSha256Mechanism())
	prod := testClient(t, addr, mech)
	createTopic(t, prod, "reauth", 2)
	cons := testClient(t, addr, mech, kgo.ConsumeTopics("reauth"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))

	var consumed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cons.PollFetches(pctx)
			pcancel()
			fs.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("fetch %s/%d: %v", topic, p, err)
				}
			})
			consumed.Add(int64(fs.NumRecords()))
		}
	}()
	produced := 0
	start := time.Now()
	for end := start.Add(2*lifetime + lifetime/2); time.Now().Before(end); produced++ {
		r := &kgo.Record{Topic: "reauth", Partition: int32(produced % 2), Value: fmt.Appendf(nil, "v%d", produced)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d, %v in: %v", produced, time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitLong := time.Now().Add(10 * time.Second)
	for consumed.Load() < int64(produced) && time.Now().Before(waitLong) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-done
	if got := consumed.Load(); got != int64(produced) {
		t.Fatalf("consumed %d of %d records", got, produced)
	}
	out := logs.String()
	if n := strings.Count(out, "kafka client re-authenticated"); n < 3 {
		t.Fatalf("%d re-authentications in %v with a %v lifetime, want at least 3:\n%s", n, 2*lifetime+lifetime/2, lifetime, out)
	}
	for _, bad := range []string{"session expired", "re-authentication failed", "authentication failed"} {
		if strings.Contains(out, bad) {
			t.Fatalf("log has %q:\n%s", bad, out)
		}
	}
}

// A connection that authenticated and does not re-authenticate is closed
// on its first request after the lifetime (ApiVersions aside); one that
// re-authenticates, even late, goes on. SaslAuthenticate v0 is not told
// the lifetime, and is held to it all the same, as on Kafka.
func TestSessionLifetime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const lifetime = 400 * time.Millisecond
	s, logs, _ := reauthServer(t, ctx, lifetime)
	addr := s.Addr().String()

	t.Run("expired", func(t *testing.T) {
		rc := &rawConn{c: dial(t, addr)}
		if r := mustPlainAuth(t, rc, 1, "alice", "pw"); r.SessionLifetimeMillis != lifetime.Milliseconds() {
			t.Fatalf("session_lifetime_ms %d, want %d", r.SessionLifetimeMillis, lifetime.Milliseconds())
		}
		mustMetadata(t, rc, "within the lifetime")
		time.Sleep(lifetime + 100*time.Millisecond)
		av := kmsg.NewPtrApiVersionsRequest()
		av.Version = 3
		if r := rc.do(t, av).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
			t.Fatalf("ApiVersions after the lifetime: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		rc.corr++
		send(t, rc.c, rc.corr, metadataRequest(false))
		expectClosed(t, rc.c)
		waitFor(t, "the expiry logged", func() bool {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "level=INFO") && strings.Contains(l, "kafka SASL session expired without re-authentication") &&
					strings.Contains(l, "principal=User:alice api=Metadata") {
					return true
				}
			}
			return false
		})
	})

	t.Run("reauthenticated", func(t *testing.T) {
		before := strings.Count(logs.String(), "kafka client re-authenticated")
		rc := &rawConn{c: dial(t, addr)}
		mustPlainAuth(t, rc, 2, "alice", "pw")
		time.Sleep(lifetime / 2)
		if r := mustPlainAuth(t, rc, 2, "alice", "pw"); r.SessionLifetimeMillis != lifetime.Milliseconds() {
			t.Fatalf("re-authentication: session_lifetime_ms %d, want %d", r.SessionLifetimeMillis, lifetime.Milliseconds())
		}
		time.Sleep(lifetime/2 + 100*time.Millisecond) // past the first session's end
		mustMetadata(t, rc, "after the first session's end, re-authenticated within it")
		// Late: the session is over, but re-authenticating is allowed.
		time.Sleep(lifetime)
		mustPlainAuth(t, rc, 2, "alice", "pw")
		mustMetadata(t, rc, "re-authenticated after the session ended")
		if n := strings.Count(logs.String(), "kafka client re-authenticated") - before; n != 2 {
			t.Fatalf("%d re-authentications logged, want 2:\n%s", n, logs.String())
		}
	})

	t.Run("v0", func(t *testing.T) {
		rc := &rawConn{c: dial(t, addr)}
		mustPlainAuth(t, rc, 0, "alice", "pw")
		waitFor(t, "the v0 warning", func() bool { return strings.Contains(logs.String(), "SaslAuthenticate v0") })
		mustMetadata(t, rc, "v0 within the lifetime")
		time.Sleep(lifetime + 100*time.Millisecond)
		rc.corr++
		send(t, rc.c, rc.corr, metadataRequest(false))
		expectClosed(t, rc.c)
	})
}

// Re-authentication must be as the session's principal, with its
// mechanism and with credentials valid now: otherwise it fails with
// SASL_AUTHENTICATION_FAILED and the connection is closed, and nothing sent
// after it is served.
func TestReauthenticationRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, logs, setUser := reauthServer(t, ctx, time.Minute)
	addr := s.Addr().String()
	setUser("bob", "bob-pw")

	refused := func(t *testing.T, rc *rawConn, r *kmsg.SASLAuthenticateResponse, why string) {
		t.Helper()
		if r.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("re-authentication answered %v, want SASL_AUTHENTICATION_FAILED", kerr.ErrorForCode(r.ErrorCode))
		}
		if !strings.Contains(str(r.ErrorMessage), why) {
			t.Fatalf("error message %q does not say %q", str(r.ErrorMessage), why)
		}
		expectClosed(t, rc.c)
	}

	t.Run("another principal", func(t *testing.T) {
		rc := &rawConn{c: dial(t, addr)}
		mustPlainAuth(t, rc, 1, "alice", "pw")
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 1, "PLAIN"
		if r := rc.do(t, hs).(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
			t.Fatalf("SASL handshake: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		// A metadata request right behind the failing authenticate is
		// not answered.
		au := kmsg.NewPtrSASLAuthenticateRequest()
		au.Version, au.SASLAuthBytes = 1, []byte("\x00bob\x00bob-pw")
		frames := formatter.AppendRequest(nil, au, rc.corr+1)
		frames = formatter.AppendRequest(frames, metadataRequest(false), rc.corr+2)
		if _, err := rc.c.Write(frames); err != nil {
			t.Fatal(err)
		}
		r := recv(t, rc.c, rc.corr+1, au).(*kmsg.SASLAuthenticateResponse)
		refused(t, rc, r, "cannot change its principal to User:bob")
		waitFor(t, "the refusal logged", func() bool {
			return strings.Contains(logs.String(), "kafka SASL re-authentication failed; closing the connection")
		})
	})

	t.Run("another mechanism", func(t *testing.T) {
		rc := &rawConn{c: dial(t, addr)}
		mustPlainAuth(t, rc, 1, "alice", "pw")
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 1, "SCRAM-SHA-256"
		if r := rc.do(t, hs).(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
			t.Fatalf("SASL handshake: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		au := kmsg.NewPtrSASLAuthenticateRequest()
		au.Version, au.SASLAuthBytes = 1, []byte("n,,n=alice,r=abcdefgh")
		refused(t, rc, rc.do(t, au).(*kmsg.SASLAuthenticateResponse), "not allowed to re-authenticate a session of PLAIN")
	})

	t.Run("password changed", func(t *testing.T) {
		rc := &rawConn{c: dial(t, addr)}
		mustPlainAuth(t, rc, 1, "alice", "pw")
		setUser("alice", "pw2")
		mustMetadata(t, rc, "before re-authenticating") // the session holds until it ends
		refused(t, rc, plainAuth(t, rc, 1, "alice", "pw"), "invalid credentials")
		rc = &rawConn{c: dial(t, addr)}
		mustPlainAuth(t, rc, 1, "alice", "pw2")
		mustPlainAuth(t, rc, 1, "alice", "pw2")
		mustMetadata(t, rc, "re-authenticated with the new password")
	})

	t.Run("no lifetime", func(t *testing.T) {
		// Without a lifetime a session is not re-authenticated: a second
		// handshake is refused, as Kafka does.
		svc, users := withUsers(t, ctx, "carol", "pw")
		s := testServer(t, svc, func(c *Config) { c.Auth, c.RequireAuth = users, true })
		rc := &rawConn{c: dial(t, s.Addr().String())}
		if r := mustPlainAuth(t, rc, 1, "carol", "pw"); r.SessionLifetimeMillis != 0 {
			t.Fatalf("session_lifetime_ms %d without a lifetime", r.SessionLifetimeMillis)
		}
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 1, "PLAIN"
		if r := rc.do(t, hs).(*kmsg.SASLHandshakeResponse); r.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("second handshake answered %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(r.ErrorCode))
		}
		expectClosed(t, rc.c)
	})
}

// A franz-go client whose password changed fails to re-authenticate when
// its session ends, instead of going on with the old one.
func TestReauthenticationAfterPasswordChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const lifetime = 1500 * time.Millisecond
	s, logs, setUser := reauthServer(t, ctx, lifetime)
	cl := testClient(t, s.Addr().String(), kgo.SASL(scram.Auth{User: "alice", Pass: "pw"}.AsSha512Mechanism()),
		kgo.RequestRetries(0))
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	setUser("alice", "new-pw")
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("within the session, after the password changed: %v", err)
	}
	time.Sleep(lifetime)
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := cl.Ping(pctx); err == nil {
		t.Fatal("the client was served after its session ended, with a password that no longer holds")
	}
	if !strings.Contains(logs.String(), "kafka SASL re-authentication failed") {
		t.Fatalf("no failed re-authentication logged:\n%s", logs.String())
	}
}
