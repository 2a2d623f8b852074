package tlsconf

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/tlsconf/tlstest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve accepts TLS connections on a loopback listener and echoes one
// line back on each, with the client's principal.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				cs := tc.ConnectionState()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write([]byte(Principal(&cs) + " " + string(buf[:n])))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c *tls.Conn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// A certificate replaced on disk is served to new connections, while a
// connection opened before keeps working; a half-written replacement
// (a key that does not match) keeps the old one.
func TestReloadKeepsConnections(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", true)
	r, err := New(Files{Cert: cert, Key: key}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.Config())
	dial := func() (*tls.Conn, string) {
		c, err := tls.Dial("tcp", addr, ca.ClientConfig(t, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old, first := dial()
	if got := roundTrip(t, old, "hi"); got != "User:ANONYMOUS hi" {
		t.Fatalf("echo %q", got)
	}
	// A key that belongs to no certificate: kept the old pair.
	os.WriteFile(key, []byte("-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n"), 0o600)
	time.Sleep(recheck + 100*time.Millisecond)
	if _, s := dial(); s != first {
		t.Fatalf("a broken key replaced the certificate (serial %s, was %s)", s, first)
	}
	ca.Issue(t, dir, "server", true) // a new pair, same files
	time.Sleep(recheck + 100*time.Millisecond)
	_, second := dial()
	if second == first {
		t.Fatalf("still serial %s after the files changed", second)
	}
	if r.Reloads != 1 {
		t.Fatalf("%d reloads, want 1", r.Reloads)
	}
	if got := roundTrip(t, old, "still"); got != "User:ANONYMOUS still" {
		t.Fatalf("the connection from before the reload: %q", got)
	}
}

// With a client CA, clients without a certificate (or with one from
// another CA) are refused; one with a certificate is its subject.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	other := tlstest.NewCA(t, dir, "other")
	cert, key := ca.Issue(t, dir, "server", true)
	r, err := New(Files{Cert: cert, Key: key, ClientCA: ca.File}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.Config())
	try := func(cfg *tls.Config) (string, error) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return "", err
		}
		buf := make([]byte, 256)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	if _, err := try(ca.ClientConfig(t, "", "")); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	oc, ok := other.Issue(t, dir, "mallory", false)
	if _, err := try(ca.ClientConfig(t, oc, ok)); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
	cc, ck := ca.Issue(t, dir, "alice", false)
	got, err := try(ca.ClientConfig(t, cc, ck))
	if err != nil || got != "User:CN=alice,O=twoway-test x" {
		t.Fatalf("alice: %q %v", got, err)
	}
	// TLS 1.1 is refused.
	old := ca.ClientConfig(t, cc, ck)
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := try(old); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
}

// Bad files fail at start with the file named.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Files{Cert: dir + "/nope.pem", Key: dir + "/nope-key.pem"}, quiet()); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("missing files: %v", err)
	}
	if _, err := New(Files{Cert: dir + "/x.pem"}, quiet()); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("no key: %v", err)
	}
	ca := tlstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", true)
	os.WriteFile(dir+"/junk.pem", []byte("junk"), 0o600)
	if _, err := New(Files{Cert: cert, Key: key, ClientCA: dir + "/junk.pem"}, quiet()); err == nil || !strings.Contains(err.Error(), "junk.pem") {
		t.Fatalf("junk CA: %v", err)
	}
	_ = net.IPv4len
}
