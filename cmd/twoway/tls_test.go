package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/internal/tlsconf/tlstest"
)

// twoway serve with TLS on both listeners and client certificates
// required: HTTPS and Kafka's SSL (franz-go and kcat) work with a client
// certificate and are refused without one; plaintext is refused; a
// certificate replaced on disk is served to new connections while open
// ones keep working.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", true)
	alice, aliceKey := ca.Issue(t, dir, "alice", false)
	a := startServe(t, "--bucket", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0",
		"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca.File)
	if !strings.HasPrefix(a.base, "https://") {
		t.Fatalf("serving %s, want https://", a.base)
	}
	m := regexp.MustCompile(` kafka=(\S+)`).FindStringSubmatch(a.Logs())
	if m == nil {
		t.Fatalf("no Kafka address in the log:\n%s", a.Logs())
	}
	kafkaAddr := m[1]
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	withCert := client(ca.ClientConfig(t, alice, aliceKey))
	get := func(c *http.Client, path string) (*http.Response, string, error) {
		resp, err := c.Get(a.base + path)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	resp, body, err := get(withCert, "/healthz")
	if err != nil || resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("HTTPS with a client certificate: %v %s", err, body)
	}
	firstSerial := resp.TLS.PeerCertificates[0].SerialNumber.String()
	if _, _, err := get(client(ca.ClientConfig(t, "", "")), "/healthz"); err == nil {
		t.Fatal("HTTPS without a client certificate was served")
	}
	if r, err := http.Get(strings.Replace(a.base, "https://", "http://", 1) + "/healthz"); err == nil && r.StatusCode == 200 {
		t.Fatal("plain HTTP was served on the TLS listener")
	}

	// Kafka over TLS with franz-go.
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.DialTLSConfig(ca.ClientConfig(t, alice, aliceKey)),
		kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("secure"), kgo.ConsumeTopics("secure"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "franz-%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce over TLS: %v", err)
		}
	}
	got := 0
	for got < 5 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("fetch over TLS: %v", err)
		}
		got += fs.NumRecords()
	}
	// Without a client certificate the broker refuses the connection.
	anon, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.DialTLSConfig(ca.ClientConfig(t, "", "")), kgo.DefaultProduceTopic("secure"),
		kgo.RecordRetries(1), kgo.RequestRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	if err := anon.ProduceSync(actx, &kgo.Record{Value: []byte("anonymous")}).FirstErr(); err == nil {
		t.Fatal("a Kafka client without a client certificate produced")
	}
	acancel()
	anon.Close()

	// kcat, with librdkafka's SSL.
	kcat := kcatPath(t)
	ssl := []string{"-b", kafkaAddr, "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + ca.File,
		"-X", "ssl.certificate.location=" + alice, "-X", "ssl.key.location=" + aliceKey}
	prod := exec.CommandContext(ctx, kcat, append(ssl, "-P", "-t", "secure")...)
	prod.Stdin = strings.NewReader("kcat-1\nkcat-2\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P over SSL: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, kcat, append(ssl, "-C", "-t", "secure", "-o", "beginning", "-e", "-q")...).Output()
	if err != nil || !bytes.Contains(out, []byte("franz-4")) || !bytes.Contains(out, []byte("kcat-2")) {
		t.Fatalf("kcat -C over SSL: %v\n%s", err, out)
	}

	// Replace the server certificate: new connections get the new one,
	// the client connected before keeps producing.
	ca.Issue(t, dir, "server", true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fresh := client(ca.ClientConfig(t, alice, aliceKey))
		resp, _, err := get(fresh, "/healthz")
		if err == nil && resp.TLS.PeerCertificates[0].SerialNumber.String() != firstSerial {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced certificate is not served (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after-reload")}).FirstErr(); err != nil {
		t.Fatalf("produce on the connection from before the reload: %v", err)
	}
	eventually(t, 10*time.Second, a.Logs, func() bool {
		return strings.Contains(a.Logs(), "TLS certificate reloaded") && strings.Contains(a.Logs(), "kafka TLS handshake failed")
	})
}
