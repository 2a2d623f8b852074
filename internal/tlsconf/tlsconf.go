// Package tlsconf gives the agent's listeners their TLS configuration: a
// certificate and key from files, reloaded when the files change (new
// connections get the new certificate; connections already open keep
// theirs), TLS 1.2 at least with Go's default cipher suites, and
// optionally client certificates required and verified against a CA,
// whose subject is then the connection's principal.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a TLS configuration.
type Files struct {
	Cert, Key string
	// ClientCA, if set, requires client certificates signed by it.
	ClientCA string
}

// Enabled reports whether TLS is asked for.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" }

// recheck is how often, at most, a handshake looks at the files again.
const recheck = time.Second

// Reloader holds the current certificate and client CAs.
type Reloader struct {
	files Files
	log   *slog.Logger

	mu      sync.Mutex
	checked time.Time
	stamp   string // the files' sizes and modification times
	cert    *tls.Certificate
	pool    *x509.CertPool
	// Reloads counts successful reloads after the first load.
	Reloads int
}

// New loads the files, failing with a message that names the bad one.
func New(f Files, log *slog.Logger) (*Reloader, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{files: f, log: log}
	stamp, err := r.stampFiles()
	if err != nil {
		return nil, err
	}
	cert, pool, err := r.load()
	if err != nil {
		return nil, err
	}
	r.stamp, r.cert, r.pool, r.checked = stamp, cert, pool, time.Now()
	return r, nil
}

func (r *Reloader) stampFiles() (string, error) {
	s := ""
	for _, p := range []string{r.files.Cert, r.files.Key, r.files.ClientCA} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("TLS file: %w", err)
		}
		s += fmt.Sprintf("%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

func (r *Reloader) load() (*tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS certificate %s and key %s: %w", r.files.Cert, r.files.Key, err)
	}
	var pool *x509.CertPool
	if r.files.ClientCA != "" {
		pem, err := os.ReadFile(r.files.ClientCA)
		if err != nil {
			return nil, nil, fmt.Errorf("TLS client CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("TLS client CA %s: no PEM certificate in it", r.files.ClientCA)
		}
	}
	return &cert, pool, nil
}

// current returns the certificate and CAs, reloading them first if the
// files changed since the last look (at most once per recheck). A change
// that does not load (a key written after its certificate, say) keeps
// the old ones and is tried again at the next look.
func (r *Reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < recheck {
		return r.cert, r.pool
	}
	r.checked = time.Now()
	stamp, err := r.stampFiles()
	if err != nil || stamp == r.stamp {
		if err != nil {
			r.log.Warn("TLS files unreadable; serving the certificate loaded before", "err", err)
		}
		return r.cert, r.pool
	}
	cert, pool, err := r.load()
	if err != nil {
		r.log.Warn("TLS files changed but do not load; serving the certificate loaded before", "err", err)
		return r.cert, r.pool
	}
	r.stamp, r.cert, r.pool = stamp, cert, pool
	r.Reloads++
	r.log.Info("TLS certificate reloaded", "cert", r.files.Cert)
	return r.cert, r.pool
}

// Config is the listeners' TLS configuration.
func (r *Reloader) Config() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := r.current()
		c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
		if pool != nil {
			c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
		}
		return c, nil
	}
	return base
}

// Principal is the principal of a connection, as Kafka names it:
// "User:" and the client certificate's subject (CN=alice,O=...), or
// "User:ANONYMOUS" without one.
func Principal(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "User:ANONYMOUS"
	}
	return "User:" + cs.PeerCertificates[0].Subject.String()
}
