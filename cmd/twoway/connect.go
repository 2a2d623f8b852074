package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/stream"
)

// streams is what the topic, produce and consume commands need of twoway.
// *httpapi.Client provides it in both modes: over HTTP to an agent
// (--server), or in process to an agent this command opens straight on the
// bucket (--bucket). Either way the same API answers, with the same errors.
type streams interface {
	CreateTopic(ctx context.Context, cfg stream.TopicConfig) (httpapi.Topic, error)
	Topics(ctx context.Context) ([]httpapi.Topic, error)
	Topic(ctx context.Context, name string) (httpapi.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	AddPartitions(ctx context.Context, name string, n int32) (httpapi.Topic, error)
	SetRetention(ctx context.Context, name string, retentionMs, retentionBytes *int64) (httpapi.Topic, error)
	SetConfigs(ctx context.Context, name string, configs map[string]*string) (httpapi.Topic, error)
	Produce(ctx context.Context, topic string, recs []httpapi.ProduceRecord) ([]httpapi.ProduceOffset, error)
	Read(ctx context.Context, topic string, partition int32, offset int64, max int, wait time.Duration) (httpapi.ReadResult, error)
	ReadCommitted(ctx context.Context, topic string, partition int32, offset int64, max int, wait time.Duration) (httpapi.ReadResult, error)
}

const connectHelp = `
Works through a running agent with --server URL, or straight on the bucket
with --bucket (the default, ./twoway-data): the bucket is all the state
there is, so no agent needs to run.`

// connection is the --server and --bucket flags of a command.
type connection struct {
	fs     *flagSet
	server *string
	bucket *string
	token  *string
}

func addConnectionFlags(fs *flagSet) *connection {
	return &connection{
		fs:     fs,
		server: fs.String("server", "", "`URL` of a twoway agent to work through, such as http://127.0.0.1:8080 (or just host:port)"),
		bucket: fs.String("bucket", defaultBucket, "bucket `URL` to work on directly when no --server is given: a directory path, file:///path or s3://bucket/prefix?..."),
		token:  fs.String("token", "", "bearer `token` for an agent that requires authentication (twoway token create; default $TWOWAY_TOKEN)"),
	}
}

// httpClient is the client for --server: it sends the token, if any.
func (c *connection) httpClient() *http.Client {
	tok := *c.token
	if tok == "" {
		tok = os.Getenv("TWOWAY_TOKEN")
	}
	if tok == "" {
		return http.DefaultClient
	}
	return &http.Client{Transport: bearer{token: tok, next: http.DefaultTransport}}
}

// bearer adds an Authorization header to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// open connects as the flags say. close releases the embedded agent.
func (c *connection) open(ctx context.Context, e *env) (s streams, close func(), err error) {
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["server"] && set["bucket"] {
		return nil, nil, c.usageError(e, errors.New("give --server or --bucket, not both"))
	}
	if *c.server != "" {
		if !strings.Contains(*c.server, "://") {
			*c.server = "http://" + *c.server // host:port
		}
		cl, err := httpapi.NewClient(*c.server, c.httpClient())
		if err != nil {
			return nil, nil, c.usageError(e, fmt.Errorf("--server: %w", err))
		}
		return cl, func() {}, nil
	}
	a, err := agent.Open(ctx, agent.Config{Bucket: *c.bucket, NoJanitor: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, nil, err
	}
	return httpapi.NewInProcessClient(a.HTTP), func() { a.Close() }, nil
}

func (c *connection) usageError(e *env, err error) error {
	return &usageError{err: fmt.Errorf("%s: %w", c.fs.Name(), err), usage: func() { c.fs.usage(e.stderr) }}
}

// explain rewords an error of the API: a network error says which agent
// could not be reached.
func (c *connection) explain(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok && *c.server != "" && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("cannot reach the agent at %s (is twoway serve running there?): %w", *c.server, ue.Err)
	}
	return err
}

// parseArgs parses flags given before, between or after the positional
// arguments ("twoway topic create orders --partitions 3") and returns the
// positional ones, which must be exactly names (as many as there are,
// each named in the error when missing). After "--" everything is
// positional.
func (fs *flagSet) parseArgs(e *env, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.parse(e, args, math.MaxInt); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	bad := func(err error) error {
		return &usageError{err: fmt.Errorf("%s: %w", fs.Name(), err), usage: func() { fs.usage(e.stderr) }}
	}
	if len(pos) < len(names) {
		return nil, bad(fmt.Errorf("no %s given", names[len(pos)]))
	}
	if len(pos) > len(names) {
		return nil, bad(fmt.Errorf("unexpected argument %q", pos[len(names)]))
	}
	return pos, nil
}

// formatRetention writes retention_ms as a duration, or "forever".
func formatRetention(ms int64) string {
	if ms < 0 {
		return "forever"
	}
	return httpapi.FormatDuration(time.Duration(ms) * time.Millisecond)
}

// formatRetentionBytes writes retention_bytes as a size, or "unlimited".
func formatRetentionBytes(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return formatByteSize(n)
}

// retentionFlag is --retention: a duration with units s, m, h, d, w, or
// "forever".
type retentionFlag struct {
	ms  int64 // -1: forever
	set bool
}

func (r *retentionFlag) String() string {
	if !r.set {
		return ""
	}
	return formatRetention(r.ms)
}

func (r *retentionFlag) Set(s string) error {
	if s == "forever" || s == "-1" {
		r.ms, r.set = -1, true
		return nil
	}
	d, err := httpapi.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < time.Millisecond {
		return fmt.Errorf("retention %q is shorter than 1ms", s)
	}
	r.ms, r.set = d.Milliseconds(), true
	return nil
}

// retentionBytesFlag is --retention-bytes: a size (1GiB, 500MB), or
// "unlimited".
type retentionBytesFlag struct {
	n   int64 // -1: unlimited
	set bool
}

func (r *retentionBytesFlag) String() string {
	if !r.set {
		return ""
	}
	return formatRetentionBytes(r.n)
}

func (r *retentionBytesFlag) Set(s string) error {
	if s == "unlimited" || s == "-1" {
		r.n, r.set = -1, true
		return nil
	}
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	if n < 1 {
		return errors.New("retention bytes must be at least 1 (or unlimited)")
	}
	r.n, r.set = n, true
	return nil
}

// partitionFlag is an optional partition number.
type partitionFlag struct {
	p   int32
	set bool
}

func (f *partitionFlag) String() string {
	if !f.set {
		return ""
	}
	return strconv.Itoa(int(f.p))
}

func (f *partitionFlag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a partition number", s)
	}
	f.p, f.set = int32(n), true
	return nil
}
