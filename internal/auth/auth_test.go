package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/module"
)

func openUsers(t testing.TB) *Module {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	set, err := module.Open(context.Background(), module.Config{Bucket: b, HTTP: http.NewServeMux(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.SetUser(ctx, "alice", "pencil", nil, 1); err != nil {
		t.Fatal(err)
	}
	return m
}

// run drives a franz-go client mechanism (a SASL client we did not write)
// against an exchange of ours.
func run(t *testing.T, m *Module, mech sasl.Mechanism) (string, error) {
	t.Helper()
	ctx := context.Background()
	sess, msg, err := mech.Authenticate(ctx, "127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := m.StartSASL(mech.Name())
	if err != nil {
		t.Fatal(err)
	}
	for {
		reply, done, principal, err := ex.Next(msg)
		if err != nil {
			return "", err
		}
		clientDone, next, cerr := sess.Challenge(reply)
		if cerr != nil {
			t.Fatalf("the client refused the server's reply: %v", cerr)
		}
		if done {
			if !clientDone {
				t.Fatal("the server finished before the client")
			}
			return principal, nil
		}
		msg = next
	}
}

func TestMechanismsAgainstFranzGo(t *testing.T) {
	m := openUsers(t)
	for _, tc := range []struct {
		mech sasl.Mechanism
		ok   bool
	}{
		{scram.Auth{User: "alice", Pass: "pencil"}.AsSha256Mechanism(), true},
		{scram.Auth{User: "alice", Pass: "pencil"}.AsSha512Mechanism(), true},
		{plain.Auth{User: "alice", Pass: "pencil"}.AsMechanism(), true},
		{scram.Auth{User: "alice", Pass: "pen"}.AsSha256Mechanism(), false},
		{scram.Auth{User: "bob", Pass: "pencil"}.AsSha512Mechanism(), false},
		{plain.Auth{User: "alice", Pass: "pen"}.AsMechanism(), false},
		{plain.Auth{Zid: "root", User: "alice", Pass: "pencil"}.AsMechanism(), false},
	} {
		p, err := run(t, m, tc.mech)
		if tc.ok && (err != nil || p != "User:alice") {
			t.Fatalf("%s: %q %v", tc.mech.Name(), p, err)
		}
		if !tc.ok && err == nil {
			t.Fatalf("%s with a bad credential authenticated as %q", tc.mech.Name(), p)
		}
	}
	if _, err := m.StartSASL("GSSAPI"); err == nil {
		t.Fatal("GSSAPI accepted")
	}
	// A password change takes effect: the old one fails.
	if err := m.SetUser(context.Background(), "alice", "eraser", []string{ScramSHA256}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, m, scram.Auth{User: "alice", Pass: "pencil"}.AsSha256Mechanism()); err == nil {
		t.Fatal("the old password still works")
	}
	if p, err := run(t, m, scram.Auth{User: "alice", Pass: "eraser"}.AsSha256Mechanism()); err != nil || p != "User:alice" {
		t.Fatalf("the new password: %v", err)
	}
	// The log holds no password.
	m.log.View(m.st, func() {
		b, _ := m.st.Snapshot()()
		if strings.Contains(string(b), "eraser") || strings.Contains(string(b), "pencil") {
			t.Fatal("a password is in the state")
		}
	})
}

// The SCRAM and PLAIN decoders take any bytes without panicking, and
// authenticate nothing they should not.
func FuzzExchanges(f *testing.F) {
	f.Add([]byte("n,,n=alice,r=abc"), []byte("c=biws,r=abcdef,p=AAAA"), "SCRAM-SHA-256")
	f.Add([]byte("\x00alice\x00pencil"), []byte(""), "PLAIN")
	f.Add([]byte("y,a=alice,n=alice,r=x"), []byte("c=eSxhPWFsaWNlLA==,r=x,p="), "SCRAM-SHA-512")
	f.Add([]byte("p=tls-unique,,n=a,r=b"), []byte(","), "SCRAM-SHA-256")
	m := openUsers(f)
	f.Fuzz(func(t *testing.T, first, final []byte, mech string) {
		if mech != Plain && mech != ScramSHA256 && mech != ScramSHA512 {
			mech = ScramSHA256
		}
		ex, err := m.StartSASL(mech)
		if err != nil {
			t.Fatal(err)
		}
		_, done, p, err := ex.Next(first)
		if err == nil && done && mech == Plain && !strings.HasSuffix(string(first), "\x00pencil") {
			t.Fatalf("PLAIN %q authenticated as %s", first, p)
		}
		if err != nil || done {
			return
		}
		if _, _, p, err := ex.Next(final); err == nil {
			t.Fatalf("a made-up SCRAM final message %q authenticated as %s", final, p)
		}
	})
}

// Failures from one address are answered later and later; a success, or
// another address, starts over.
func TestFailuresSlowDown(t *testing.T) {
	m := New()
	var last time.Duration
	for i := range 8 {
		d := m.Failed("10.0.0.1:5555")
		if i > 0 && d <= last && d != maxDelay {
			t.Fatalf("failure %d: %v after %v", i, d, last)
		}
		last = d
	}
	if last != maxDelay && last < 5*time.Second {
		t.Fatalf("after 8 failures: %v", last)
	}
	if d := m.Failed("10.0.0.1:6666"); d != maxDelay {
		t.Fatalf("a new port of the same host started over: %v", d)
	}
	if d := m.Failed("10.0.0.2:1"); d != firstDelay {
		t.Fatalf("another host: %v", d)
	}
	m.Succeeded("10.0.0.1:1")
	if d := m.Failed("10.0.0.1:1"); d != firstDelay {
		t.Fatalf("after a success: %v", d)
	}
}
