package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/functions"
	"github.com/twoway/twoway/internal/tlsconf"
)

const (
	defaultBucket = "./twoway-data"
	defaultHTTP   = "127.0.0.1:8080"
	defaultKafka  = "127.0.0.1:9092"
)

const serveHelp = `
Run a twoway agent on a bucket until interrupted (SIGINT or SIGTERM), then
finish the requests in flight and exit. Any number of agents may serve the
same bucket at once; the bucket holds all the state.

Front doors:
  HTTP (--http)    the JSON API (docs/HTTP.md), GET /healthz, GET /metrics,
                   and the web console at /ui/ (docs/CONSOLE.md)
  Kafka (--kafka)  the Kafka wire protocol (docs/KAFKA.md): existing
                   producers, consumers and tools such as kcat work unchanged

Listeners bind to 127.0.0.1 unless told otherwise; another address needs
--auth (users with SASL on Kafka, Basic or tokens on HTTP), client
certificates (--tls-client-ca) or, to serve anyone, --insecure-no-auth. With --tls-cert and
--tls-key both speak TLS (1.2 or later): HTTPS, and Kafka's SSL security
protocol; the files are re-read when they change, for new connections.
With --tls-client-ca, clients must present a certificate signed by it.

The bucket is a local directory (a path or file:///path, created if missing)
or S3 and compatible stores:
  s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
S3 credentials come from the standard AWS chain (environment, shared files,
instance roles), never from the URL.

With --mirror-to URL (or --mirror-from URL) and --mirror-topics, the agent
also mirrors the matching topics from its bucket to that deployment (or
from it into its own), exactly once, as "twoway mirror" does: it keeps
serving while the other side cannot be reached, and drains the backlog when
the link returns (docs/EDGE.md).
`

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("serve", "twoway serve [--bucket URL] [--http ADDR] [--kafka ADDR] [--kafka-advertise HOST:PORT] [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--auth]", serveHelp)
	bucketURL := fs.String("bucket", defaultBucket, "bucket `URL`: a directory path, file:///path or s3://bucket/prefix?...")
	httpAddr := fs.String("http", defaultHTTP, "`address` to serve HTTP on, host:port (port 0 picks a free port)")
	kafkaAddr := fs.String("kafka", defaultKafka, "`address` to serve the Kafka protocol on, host:port (empty: no Kafka listener)")
	kafkaAdvertise := fs.String("kafka-advertise", "", "`host:port` Kafka clients are told to connect to (default: the --kafka address)")
	linger := fs.lingerFlag("extra group-commit `wait`: how long a produce waits for others to share its commit\n(default 0 on a directory: commit at once when no commit is in flight; 100ms on S3, where each PUT costs money)")
	tlsCert := fs.String("tls-cert", "", "PEM `file` of the certificate (chain) both listeners serve TLS with; reloaded when it changes")
	tlsKey := fs.String("tls-key", "", "PEM `file` of the certificate's private key")
	tlsClientCA := fs.String("tls-client-ca", "", "PEM `file` of the CA client certificates must be signed by: clients without one are refused,\nand a certificate's subject is its connection's principal (User:CN=...)")
	metricsAuth := fs.Bool("metrics-auth", false, "with --auth, /metrics requires authentication too")
	cacheDir := fs.String("cache-dir", "", "`directory` for compiled function modules and the cache of table data files that SQL reads from S3, kept across restarts (default: the user's cache directory, ~/.cache/twoway)")
	insecure := fs.Bool("insecure-no-auth", false, "allow listening on a non-loopback address without authentication")
	authOn := fs.Bool("auth", false, "require authentication on both listeners: SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)\non Kafka, HTTP Basic on HTTP, with the users of `twoway user create`")
	sessionLifetime := fs.Duration("sasl-session-lifetime", 0, "with SASL, how long an authentication holds on a Kafka connection (Kafka's connections.max.reauth.ms):\nclients re-authenticate within it or are disconnected (0: forever)")
	var memory byteSize
	fs.Var(&memory, "memory", "memory `budget`, e.g. 128MiB: caches and buffers are sized from it and producers are slowed\nrather than the budget exceeded (default: no budget; see docs/EDGE.md)")
	var supers multiFlag
	fs.Var(&supers, "super-user", "with --auth, a `principal` (User:NAME) that bypasses the ACLs (repeatable)")
	hint := fs.String("hint", "127.0.0.1:0", "UDP `address` to take commit hints on: other agents on the bucket tell this one of\ntheir commits at once instead of waiting for its next poll (\"off\": poll only);\nuse an address they can reach when agents run on several hosts")
	mf := addServeMirrorFlags(fs)
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	mcfg, err := mf.config()
	if err != nil {
		return &usageError{err: fmt.Errorf("serve: %w", err), usage: func() { fs.usage(e.stderr) }}
	}
	if len(supers) > 0 && !*authOn {
		return &usageError{err: errors.New("serve: --super-user needs --auth (without it nobody is authorized, so everybody may do everything)"), usage: func() { fs.usage(e.stderr) }}
	}
	if memory != 0 && memory < agent.MinMemory {
		return &usageError{err: fmt.Errorf("serve: --memory %s is too small: at least %s", formatByteSize(int64(memory)), formatByteSize(agent.MinMemory)), usage: func() { fs.usage(e.stderr) }}
	}
	if *sessionLifetime < 0 {
		return &usageError{err: errors.New("serve: --sasl-session-lifetime must not be negative"), usage: func() { fs.usage(e.stderr) }}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	a, err := agent.Open(ctx, agent.Config{
		HintAddr:            *hint,
		Auth:                *authOn,
		SASLSessionLifetime: *sessionLifetime,
		SuperUsers:          supers,
		InsecureNoAuth:      *insecure,
		MetricsAuth:         *metricsAuth,
		Functions:           functions.Config{CacheDir: *cacheDir},
		Tables:              tablesConfig(*cacheDir),
		TLS:                 tlsconf.Files{Cert: *tlsCert, Key: *tlsKey, ClientCA: *tlsClientCA},
		Bucket:              *bucketURL,
		HTTPAddr:            *httpAddr,
		KafkaAddr:           *kafkaAddr,
		KafkaAdvertise:      *kafkaAdvertise,
		Linger:              linger(),
		Memory:              int64(memory),
		Logger:              log,
	})
	if err != nil {
		return err
	}
	stopMirror := startServeMirror(ctx, a, mcfg, log)
	err = a.Serve(ctx)
	stopMirror()
	if err != nil {
		return err
	}
	log.Info("twoway stopped")
	return nil
}
