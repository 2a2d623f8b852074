package s3bucket_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/bucket/s3bucket"
)

// testConfig is the configuration of the S3 store the tests run against,
// from TWOWAY_TEST_S3_URL (set by scripts/with-minio.sh, which `make test`
// runs the tests under), with a prefix of its own for every call so that runs
// and tests never see each other's objects.
func testConfig(t testing.TB) s3bucket.Config {
	t.Helper()
	raw := os.Getenv("TWOWAY_TEST_S3_URL")
	if raw == "" {
		const how = "run `make test`, or scripts/with-minio.sh go test ./bucket/s3bucket"
		if os.Getenv("CI") == "true" {
			t.Fatal("TWOWAY_TEST_S3_URL is not set, and CI=true requires the S3 tests to run: " + how)
		}
		t.Skip("TWOWAY_TEST_S3_URL is not set, so there is no S3 store to test against: " + how)
	}
	loc, err := bucketurl.Parse(raw)
	if err != nil {
		t.Fatalf("TWOWAY_TEST_S3_URL: %v", err)
	}
	if loc.Kind != bucketurl.S3 {
		t.Fatalf("TWOWAY_TEST_S3_URL=%q is not an s3:// URL", raw)
	}
	cfg := loc.S3
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	cfg.Prefix += fmt.Sprintf("test-%s-%s/", time.Now().UTC().Format("20060102T150405"), randomHex(4))
	return cfg
}

// openTest opens the test store under a fresh prefix and removes what the
// test left there when it ends.
func openTest(t testing.TB, edit func(*s3bucket.Config)) *s3bucket.Bucket {
	t.Helper()
	cfg := testConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	b, err := s3bucket.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(t, b) })
	return b
}

func removeAll(t testing.TB, b bucket.Bucket) {
	ctx := context.Background()
	keys, err := bucket.Keys(ctx, b, "", "")
	if err != nil {
		t.Logf("cleaning up %s: %v", b, err)
		return
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			t.Logf("cleaning up %s: %v", b, err)
		}
	}
}

func randomHex(n int) string {
	p := make([]byte, n)
	rand.Read(p)
	return hex.EncodeToString(p)
}

// faultyTransport sits between the bucket and the store and fails requests
// as a test's rules say, to play the failures of a real network and a busy
// store deterministically.
type faultyTransport struct {
	base http.RoundTripper

	mu    sync.Mutex
	rules []*faultRule
	seen  []string // "METHOD status" of every request, in order
}

type faultRule struct {
	method string // the requests the rule applies to
	times  int    // how many of them; the rule is spent after that
	// forward sends the request to the store before failing it, so that it
	// takes effect but its caller cannot know.
	forward bool
	// status and code make a synthetic S3 error response; status 0 drops the
	// connection instead.
	status int
	code   string
}

func newFaultyTransport(rules ...*faultRule) *faultyTransport {
	return &faultyTransport{base: http.DefaultTransport, rules: rules}
}

func (ft *faultyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ft.mu.Lock()
	var rule *faultRule
	for _, r := range ft.rules {
		if r.method == req.Method && r.times > 0 {
			r.times--
			rule = r
			break
		}
	}
	ft.mu.Unlock()

	if rule == nil {
		resp, err := ft.base.RoundTrip(req)
		if err == nil {
			ft.record(req.Method, resp.StatusCode, "")
		}
		return resp, err
	}
	note := "injected"
	if rule.forward {
		resp, err := ft.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		note = fmt.Sprintf("injected after the store answered %d", resp.StatusCode)
	} else if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	ft.record(req.Method, rule.status, note)
	if rule.status == 0 {
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>%s</Code><Message>injected by the test</Message><RequestId>test</RequestId></Error>`, rule.code)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", rule.status, http.StatusText(rule.status)),
		StatusCode:    rule.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/xml"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

func (ft *faultyTransport) record(method string, status int, note string) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	s := fmt.Sprintf("%s %d", method, status)
	if note != "" {
		s += " (" + note + ")"
	}
	ft.seen = append(ft.seen, s)
}

func (ft *faultyTransport) requests() []string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]string(nil), ft.seen...)
}

// openFaulty opens the test store through a faultyTransport.
func openFaulty(t *testing.T, maxAttempts int, rules ...*faultRule) (*s3bucket.Bucket, *faultyTransport) {
	t.Helper()
	ft := newFaultyTransport(rules...)
	b := openTest(t, func(c *s3bucket.Config) {
		c.HTTPClient = &http.Client{Transport: ft}
		c.MaxAttempts = maxAttempts
	})
	return b, ft
}

// arm adds rules to ft once the test's setup is done.
func (ft *faultyTransport) arm(rules ...*faultRule) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.rules = append(ft.rules, rules...)
	ft.seen = nil
}

func mustPut(t *testing.T, b bucket.Bucket, key, data string) bucket.Info {
	t.Helper()
	info, err := b.Put(context.Background(), key, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func mustRead(t *testing.T, b bucket.Bucket, key string) (string, bucket.Info) {
	t.Helper()
	data, info, err := bucket.ReadAll(context.Background(), b, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), info
}

// wantOpError checks that err is an *OpError for op wrapping want.
func wantOpError(t *testing.T, err error, op string, want error) {
	t.Helper()
	var oe *bucket.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("error %v (%T) is not a *bucket.OpError", err, err)
	}
	if oe.Op != op {
		t.Errorf("OpError.Op = %q, want %q", oe.Op, op)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("error %v is not %v", err, want)
	}
}

func TestPreconditionFailed(t *testing.T) {
	ctx := context.Background()
	b := openTest(t, nil)
	v1 := mustPut(t, b, "k", "one")

	_, err := b.PutIfAbsent(ctx, "k", strings.NewReader("two"), 3)
	wantOpError(t, err, "put-if-absent", bucket.ErrPrecondition)

	_, err = b.PutIfMatch(ctx, "k", strings.NewReader("two"), 3, v1.Version+"0")
	wantOpError(t, err, "put-if-match", bucket.ErrPrecondition)

	// S3 answers If-Match on a missing key with 404, not 412.
	_, err = b.PutIfMatch(ctx, "missing", strings.NewReader("two"), 3, v1.Version)
	wantOpError(t, err, "put-if-match", bucket.ErrPrecondition)
	if _, err := b.Stat(ctx, "missing"); !bucket.IsNotFound(err) {
		t.Fatalf("Stat(missing) after a failed PutIfMatch: %v, want not found", err)
	}

	_, err = b.PutIfMatch(ctx, "k", strings.NewReader("two"), 3, "")
	wantOpError(t, err, "put-if-match", bucket.ErrPrecondition)

	if got, _ := mustRead(t, b, "k"); got != "one" {
		t.Fatalf("after losing conditional writes, k = %q, want %q", got, "one")
	}
	v2, err := b.PutIfMatch(ctx, "k", strings.NewReader("two"), 3, v1.Version)
	if err != nil {
		t.Fatal(err)
	}
	if got, info := mustRead(t, b, "k"); got != "two" || info.Version != v2.Version {
		t.Fatalf("after PutIfMatch, k = %q version %q, want %q version %q", got, info.Version, "two", v2.Version)
	}
}

// A PutIfAbsent whose first attempt lands but whose answer is lost retries,
// gets 412 from its own object, and must report success.
func TestPutIfAbsentUnknownOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule faultRule
	}{
		{"connection dropped", faultRule{method: http.MethodPut, times: 1, forward: true}},
		{"500 after the write", faultRule{method: http.MethodPut, times: 1, forward: true, status: 500, code: "InternalError"}},
		{"503 after the write", faultRule{method: http.MethodPut, times: 1, forward: true, status: 503, code: "ServiceUnavailable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b, ft := openFaulty(t, 0)
			rule := tc.rule
			ft.arm(&rule)

			info, err := b.PutIfAbsent(ctx, "commit/1", strings.NewReader("mine"), 4)
			if err != nil {
				t.Fatalf("PutIfAbsent after a lost answer: %v (requests %q)", err, ft.requests())
			}
			got, stored := mustRead(t, b, "commit/1")
			if got != "mine" || stored.Version != info.Version || info.Size != 4 {
				t.Fatalf("stored %q %+v; PutIfAbsent returned %+v", got, stored, info)
			}
			// The retry must really have met its own object: a PUT that
			// landed, a PUT that got 412, and a HEAD to look.
			reqs := ft.requests()
			if len(reqs) < 3 || !strings.HasPrefix(reqs[0], "PUT") || !strings.Contains(reqs[0], "answered 200") ||
				reqs[1] != "PUT 412" || !strings.HasPrefix(reqs[2], "HEAD 200") {
				t.Fatalf("requests = %q, want a PUT that landed, a PUT answered 412, a HEAD", reqs)
			}
		})
	}
}

// After an unknown outcome, a 412 caused by someone else's object is still a
// lost race, even when that object holds the same bytes.
func TestPutIfAbsentUnknownOutcomeOtherWriter(t *testing.T) {
	ctx := context.Background()
	b, ft := openFaulty(t, 0)
	other := mustPut(t, b, "commit/1", "same")

	// The first attempt never reaches the store; the retry finds the other
	// writer's object.
	ft.arm(&faultRule{method: http.MethodPut, times: 1, status: 500, code: "InternalError"})
	_, err := b.PutIfAbsent(ctx, "commit/1", strings.NewReader("same"), 4)
	wantOpError(t, err, "put-if-absent", bucket.ErrPrecondition)
	if reqs := ft.requests(); len(reqs) != 3 || reqs[1] != "PUT 412" || reqs[2] != "HEAD 200" {
		t.Fatalf("requests = %q, want an injected failure, a PUT answered 412, a HEAD", reqs)
	}
	if _, info := mustRead(t, b, "commit/1"); info.Version != other.Version {
		t.Fatalf("version changed from %q to %q", other.Version, info.Version)
	}
}

func TestPutIfMatchUnknownOutcome(t *testing.T) {
	ctx := context.Background()
	b, ft := openFaulty(t, 0)
	v1 := mustPut(t, b, "lease", "holder=a")

	ft.arm(&faultRule{method: http.MethodPut, times: 1, forward: true})
	v2, err := b.PutIfMatch(ctx, "lease", strings.NewReader("holder=b"), 8, v1.Version)
	if err != nil {
		t.Fatalf("PutIfMatch after a lost answer: %v (requests %q)", err, ft.requests())
	}
	if reqs := ft.requests(); len(reqs) != 3 || reqs[1] != "PUT 412" || reqs[2] != "HEAD 200" {
		t.Fatalf("requests = %q, want a PUT that landed, a PUT answered 412, a HEAD", reqs)
	}
	if got, info := mustRead(t, b, "lease"); got != "holder=b" || info.Version != v2.Version {
		t.Fatalf("lease = %q version %q, want %q version %q", got, info.Version, "holder=b", v2.Version)
	}

	// And when the version really moved on, the retry's 412 stands.
	ft.arm(&faultRule{method: http.MethodPut, times: 1, status: 0})
	_, err = b.PutIfMatch(ctx, "lease", strings.NewReader("holder=c"), 8, v1.Version)
	wantOpError(t, err, "put-if-match", bucket.ErrPrecondition)
}

func TestRetriesBusyStore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		method, code string
		status       int
		op           func(b bucket.Bucket) error
	}{
		{http.MethodPut, "SlowDown", 503, func(b bucket.Bucket) error {
			_, err := b.PutIfAbsent(ctx, "k", strings.NewReader("data"), 4)
			return err
		}},
		{http.MethodPut, "ConditionalRequestConflict", 409, func(b bucket.Bucket) error {
			_, err := b.PutIfAbsent(ctx, "k", strings.NewReader("data"), 4)
			return err
		}},
		{http.MethodPut, "InternalError", 500, func(b bucket.Bucket) error {
			// A body that cannot seek is spooled, and the spool replayed.
			_, err := b.Put(ctx, "k", nonSeeker{strings.NewReader("data")}, 4)
			return err
		}},
		{http.MethodGet, "SlowDown", 503, func(b bucket.Bucket) error {
			_, err := b.GetRange(ctx, "k", 0, 2)
			return err
		}},
		{http.MethodGet, "InternalError", 500, func(b bucket.Bucket) error {
			_, err := bucket.Keys(ctx, b, "", "")
			return err
		}},
		{http.MethodDelete, "ServiceUnavailable", 503, func(b bucket.Bucket) error {
			return b.Delete(ctx, "k")
		}},
	} {
		t.Run(tc.method+"-"+tc.code, func(t *testing.T) {
			b, ft := openFaulty(t, 4)
			if tc.method != http.MethodPut {
				mustPut(t, b, "k", "data")
			}
			ft.arm(&faultRule{method: tc.method, times: 2, status: tc.status, code: tc.code})
			if err := tc.op(b); err != nil {
				t.Fatalf("%v (requests %q)", err, ft.requests())
			}
			reqs := ft.requests()
			if len(reqs) != 3 || !strings.Contains(reqs[0], "injected") || !strings.Contains(reqs[1], "injected") {
				t.Fatalf("requests = %q, want two injected failures and a success", reqs)
			}
		})
	}

	t.Run("gives up", func(t *testing.T) {
		b, ft := openFaulty(t, 3)
		ft.arm(&faultRule{method: http.MethodPut, times: 100, status: 503, code: "SlowDown"})
		_, err := b.PutIfAbsent(ctx, "k", strings.NewReader("data"), 4)
		wantOpError(t, err, "put-if-absent", nil)
		if bucket.IsPrecondition(err) || !strings.Contains(err.Error(), "SlowDown") || !strings.Contains(err.Error(), "3 attempts") {
			t.Fatalf("error %v: want the store's SlowDown after 3 attempts", err)
		}
		if n := len(ft.requests()); n != 3 {
			t.Fatalf("%d requests, want 3 (MaxAttempts)", n)
		}
	})

	t.Run("does not retry a client error", func(t *testing.T) {
		b, ft := openFaulty(t, 5)
		ft.arm(&faultRule{method: http.MethodPut, times: 100, status: 403, code: "AccessDenied"})
		_, err := b.Put(ctx, "k", strings.NewReader("data"), 4)
		wantOpError(t, err, "put", nil)
		if n := len(ft.requests()); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
	})

	t.Run("stops when the context ends", func(t *testing.T) {
		b, ft := openFaulty(t, 100)
		ft.arm(&faultRule{method: http.MethodPut, times: 1000, status: 503, code: "SlowDown"})
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := b.Put(ctx, "k", strings.NewReader("data"), 4)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestGetRangeEnds(t *testing.T) {
	ctx := context.Background()
	b := openTest(t, nil)
	mustPut(t, b, "k", "0123456789")
	mustPut(t, b, "empty", "")
	for _, tc := range []struct {
		key            string
		offset, length int64
		want           string
		err            error
	}{
		{"k", 0, -1, "0123456789", nil},
		{"k", 3, 4, "3456", nil},
		{"k", 8, 100, "89", nil},
		{"k", 9, -1, "9", nil},
		{"k", 10, -1, "", nil}, // S3 says 416; the contract says empty
		{"k", 10, 5, "", nil},
		{"k", 5, 0, "", nil},
		{"k", 11, -1, "", bucket.ErrInvalidRange},
		{"k", 11, 0, "", bucket.ErrInvalidRange},
		{"k", -1, 2, "", bucket.ErrInvalidRange},
		{"k", 2, 1<<63 - 1, "23456789", nil},
		{"empty", 0, -1, "", nil},
		{"empty", 0, 10, "", nil},
		{"empty", 1, -1, "", bucket.ErrInvalidRange},
		{"missing", 0, 1, "", bucket.ErrNotFound},
		{"missing", 0, 0, "", bucket.ErrNotFound},
	} {
		got, err := b.GetRange(ctx, tc.key, tc.offset, tc.length)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("GetRange(%s, %d, %d) = %q, %v; want %v", tc.key, tc.offset, tc.length, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("GetRange(%s, %d, %d) = %q, %v; want %q", tc.key, tc.offset, tc.length, got, err, tc.want)
		}
	}
}

// A missing bucket is an error of its own, never "object not found": taken
// for an empty bucket, it would let twoway start over on a typo.
func TestMissingBucket(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Bucket = "twoway-no-such-bucket-" + randomHex(4)
	b, err := s3bucket.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, "k"); err == nil || bucket.IsNotFound(err) {
		t.Fatalf("Get in a missing bucket: %v, want an error other than not found", err)
	}
	if _, err := b.PutIfMatch(ctx, "k", strings.NewReader("x"), 1, "abc"); err == nil || bucket.IsPrecondition(err) {
		t.Fatalf("PutIfMatch in a missing bucket: %v, want an error other than a precondition", err)
	}
	if _, err := bucket.Keys(ctx, b, "", ""); err == nil {
		t.Fatal("List in a missing bucket succeeded")
	}
}

func TestNoCredentialsInStrings(t *testing.T) {
	ctx := context.Background()
	b := openTest(t, nil)
	cfg := testConfig(t)
	if want := "s3://" + cfg.Bucket + "/"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("String() = %q, want it to start with %q", b.String(), want)
	}
	_, err := b.PutIfAbsent(ctx, "a//b", strings.NewReader("x"), 1)
	wantOpError(t, err, "put-if-absent", bucket.ErrInvalidKey)
	_, err = b.PutIfMatch(ctx, "k", strings.NewReader("x"), 1, "nope")
	for _, secret := range []string{os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")} {
		if secret == "" {
			continue
		}
		if strings.Contains(b.String(), secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("String() or an error reveals a credential")
		}
	}
}

// nonSeeker hides every method of its reader but Read, so that Put has to
// spool it.
type nonSeeker struct{ r io.Reader }

func (n nonSeeker) Read(p []byte) (int, error) { return n.r.Read(p) }

// Put must take a large body that cannot seek without holding it in memory:
// it spools it to a temporary file, which it removes.
func TestPutLargeStream(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 64 MiB")
	}
	ctx := context.Background()
	tmp := t.TempDir()
	b := openTest(t, func(c *s3bucket.Config) { c.TempDir = tmp })
	const size = 64 << 20
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, err := b.PutIfAbsent(ctx, "big", nonSeeker{bytes.NewReader(data)}, size)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("uploading %d bytes allocated %d bytes: is the body held in memory?", size, alloc)
	} else {
		t.Logf("uploading %d bytes allocated %d bytes", size, alloc)
	}
	if info.Size != size {
		t.Errorf("Info.Size = %d, want %d", info.Size, size)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("Put left %d files in its TempDir", len(left))
	}

	rc, got, err := b.Get(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if n, err := io.Copy(h, rc); err != nil || n != size {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	if [32]byte(h.Sum(nil)) != want || got.Version != info.Version {
		t.Fatal("read back different bytes or version")
	}
}

func TestPutBodies(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	b := openTest(t, func(c *s3bucket.Config) { c.TempDir = tmp })

	// A seekable body is uploaded from where it stands, not from its start.
	r := strings.NewReader("skip:payload")
	r.Seek(5, io.SeekStart)
	if _, err := b.Put(ctx, "seek", r, 7); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustRead(t, b, "seek"); got != "payload" {
		t.Fatalf("got %q, want %q", got, "payload")
	}

	// A size that does not match the body writes nothing.
	for _, body := range []io.Reader{strings.NewReader("abc"), nonSeeker{strings.NewReader("abc")}} {
		for _, size := range []int64{2, 4, -1} {
			_, err := b.Put(ctx, "wrong-size", body, size)
			wantOpError(t, err, "put", nil)
			if _, err := b.Stat(ctx, "wrong-size"); !bucket.IsNotFound(err) {
				t.Fatalf("Put of %T with size %d: Stat = %v, want not found", body, size, err)
			}
			if s, ok := body.(io.Seeker); ok {
				s.Seek(0, io.SeekStart)
			}
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("Put left %d files in its TempDir", len(left))
	}

	// A nil body is an empty one.
	if _, err := b.Put(ctx, "nil", nil, 0); err != nil {
		t.Fatal(err)
	}
	if got, info := mustRead(t, b, "nil"); got != "" || info.Size != 0 {
		t.Fatalf("got %q %+v, want an empty object", got, info)
	}
}
