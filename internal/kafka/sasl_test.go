package kafka

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

// With authentication required, a connection that never authenticates is
// closed after the timeout, and one that does is served.
func TestUnauthenticatedConnectionsTimeOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, users := withUsers(t, ctx, "alice", "pw")
	var logs lockedLog
	s := testServer(t, svc, func(c *Config) {
		c.Auth, c.RequireAuth, c.AuthTimeout = users, true, 300*time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server sent something to a silent client")
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Fatalf("closed after %v, want about 300ms", d)
	}
	// An authenticated client stays past the timeout.
	cl := testClient(t, s.Addr().String(), kgo.SASL(scram.Auth{User: "alice", Pass: "pw"}.AsSha256Mechanism()))
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("an authenticated client after the timeout: %v", err)
	}
	// Only the silent connection was closed for it (a client that
	// reconnected would hide that its connection had been).
	if n := strings.Count(logs.String(), "did not authenticate in time"); n != 1 {
		t.Fatalf("%d connections closed for not authenticating, want 1:\n%s", n, logs.String())
	}
}

// withUsers is a streams service whose log also holds users, with one
// user made.
func withUsers(t *testing.T, ctx context.Context, user, pass string) (*stream.Service, *auth.Module) {
	t.Helper()
	users := auth.New()
	svc, err := stream.Open(ctx, testBucket(t), stream.Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond, Logger: quietLogger(),
	}}, users)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if err := users.SetUser(ctx, user, pass, nil, 1); err != nil {
		t.Fatal(err)
	}
	return svc, users
}

// lockedLog collects log output written from several goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// AlterUserScramCredentials and DescribeUserScramCredentials, as Kafka's
// tools send them: a credential set from a salted password (derived by
// the client) authenticates; deleted, it does not.
func TestUserSCRAMCredentialsAPIs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, users := withUsers(t, ctx, "admin", "pw")
	s := testServer(t, svc, func(c *Config) { c.Auth, c.RequireAuth = users, true })
	admin := testClient(t, s.Addr().String(), kgo.SASL(scram.Auth{User: "admin", Pass: "pw"}.AsSha256Mechanism()))

	salt := []byte("dave-salt-0123456789")
	salted, err := pbkdf2.Key(sha512.New, "dave-pw", salt, 4096, sha512.Size)
	if err != nil {
		t.Fatal(err)
	}
	alter := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "dave", 2, 4096, salt, salted
	bad := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	bad.Name, bad.Mechanism, bad.Iterations, bad.Salt, bad.SaltedPassword = "eve", 2, 10, salt, salted
	alter.Upsertions = append(alter.Upsertions, up, bad)
	resp, err := alter.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 2 || resp.Results[0].ErrorCode != 0 || resp.Results[1].ErrorCode != kerr.UnacceptableCredential.Code {
		t.Fatalf("alter: %+v", resp.Results)
	}
	desc := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for _, n := range []string{"dave", "nobody"} {
		u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		u.Name = n
		desc.Users = append(desc.Users, u)
	}
	dresp, err := desc.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(dresp.Results) != 2 || len(dresp.Results[0].CredentialInfos) != 1 || dresp.Results[0].CredentialInfos[0].Mechanism != 2 ||
		dresp.Results[0].CredentialInfos[0].Iterations != 4096 || dresp.Results[1].ErrorCode != kerr.ResourceNotFound.Code {
		t.Fatalf("describe: %+v", dresp.Results)
	}
	dave := testClient(t, s.Addr().String(), kgo.SASL(scram.Auth{User: "dave", Pass: "dave-pw"}.AsSha512Mechanism()))
	if err := dave.Ping(ctx); err != nil {
		t.Fatalf("dave with the credential set through AlterUserScramCredentials: %v", err)
	}
	del := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
	d.Name, d.Mechanism = "dave", 2
	del.Deletions = append(del.Deletions, d)
	if resp, err := del.RequestWith(ctx, admin); err != nil || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("delete: %+v %v", resp, err)
	}
	if _, ok := users.Credentials("dave"); ok {
		t.Fatal("dave is still a user without credentials")
	}
	gone := testClient(t, s.Addr().String(), kgo.SASL(scram.Auth{User: "dave", Pass: "dave-pw"}.AsSha512Mechanism()))
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := gone.Ping(pctx); err == nil {
		t.Fatal("dave authenticated after his credential was deleted")
	}
}
