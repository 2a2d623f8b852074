package kafka

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

// With authentication required, a connection that never authenticates is
// closed after the timeout, and one that does is served.
func TestUnauthenticatedConnectionsTimeOut(t *testing.T) {
	users := auth.New()
	svc, err := stream.Open(context.Background(), testBucket(t), stream.Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond, Logger: quietLogger(),
	}}, users)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := users.SetUser(ctx, "alice", "pw", nil, 1); err != nil {
		t.Fatal(err)
	}
	s := testServer(t, svc, func(c *Config) { c.Auth, c.RequireAuth, c.AuthTimeout = users, true, 300*time.Millisecond })
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
}
