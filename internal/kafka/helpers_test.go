package kafka

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testBucket(t testing.TB) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testService(t testing.TB, b bucket.Bucket) *stream.Service {
	t.Helper()
	s, err := stream.Open(context.Background(), b, stream.Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond,
		Logger: quietLogger(), NoJanitor: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testServer serves svc on a loopback port until the test ends.
func testServer(t testing.TB, svc *stream.Service, mod ...func(*Config)) *Server {
	t.Helper()
	cfg := Config{Service: svc, Addr: "127.0.0.1:0", Logger: quietLogger()}
	for _, m := range mod {
		m(&cfg)
	}
	s := NewServer(cfg)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func testClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
