package buckettest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
)

// ChildTestName is the test the multi-process tests run in child processes
// of the test binary. The package that calls Run must define it, calling
// ChildProcess.
const ChildTestName = "TestBucketChildProcess"

// The environment tells a child what to do.
const (
	envURL  = "TWOWAY_BUCKETTEST_URL"
	envKey  = "TWOWAY_BUCKETTEST_KEY"
	envBody = "TWOWAY_BUCKETTEST_BODY"
)

// childMarker starts the lines a child reports on; the test binary's own
// output ("PASS") is ignored.
const childMarker = "buckettest-child: "

// ChildProcess is the body of the test named ChildTestName. Started by the
// suite, it opens the bucket at the URL NewBucket returned using open,
// reports that it is ready, waits for the go-ahead on stdin, makes one
// PutIfAbsent and reports whether it won. Run any other way, it skips.
func ChildProcess(t *testing.T, open func(ctx context.Context, url string) (bucket.Bucket, error)) {
	url := os.Getenv(envURL)
	if url == "" {
		t.Skip("runs only as a child process of the conformance suite's multi-process tests")
	}
	report := func(format string, args ...any) {
		msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
		fmt.Fprintln(os.Stdout, childMarker+msg)
	}
	ctx := t.Context()
	b, err := open(ctx, url)
	if err != nil {
		report("ERROR opening %s: %v", url, err)
		t.Fatal(err)
	}
	report("READY")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		report("ERROR waiting for the go-ahead: %v", err)
		t.Fatal(err)
	}
	key, body := os.Getenv(envKey), os.Getenv(envBody)
	_, err = b.PutIfAbsent(ctx, key, strings.NewReader(body), int64(len(body)))
	switch {
	case err == nil:
		report("WIN")
	case bucket.IsPrecondition(err):
		report("LOSE")
	default:
		report("ERROR %v", err)
		t.Fatal(err)
	}
}

// testMultiProcessPutIfAbsent: of 4 processes creating one key at once,
// exactly one wins, round after round. The processes are the test binary
// itself, run as ChildTestName.
func testMultiProcessPutIfAbsent(t *testing.T, b bucket.Bucket, url string) {
	const rounds, procs = 30, 4
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	for round := range rounds {
		processRound(t, b, exe, url, round, procs)
	}
}

// processRound races procs child processes to create one key.
func processRound(t *testing.T, b bucket.Bucket, exe, url string, round, procs int) {
	t.Helper()
	key := fmt.Sprintf("multiprocess/%02d", round)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	children := make([]*child, procs)
	for i := range children {
		children[i] = startChild(ctx, t, exe, url, key, raceContent(round, i))
	}
	for i, c := range children {
		if line := c.next(); line != "READY" {
			hint := ""
			if line == "" {
				hint = fmt.Sprintf(" (a test binary that runs the conformance suite must also define "+
					"func %s(t *testing.T) calling buckettest.ChildProcess)", ChildTestName)
			}
			t.Fatalf("round %d: child %d said %q instead of READY%s%s", round, i, line, hint, c.failure())
		}
	}
	// Release them together: a line on each stdin, microseconds apart.
	for _, c := range children {
		io.WriteString(c.stdin, "go\n")
	}
	winner := -1
	for i, c := range children {
		switch line := c.next(); line {
		case "WIN":
			if winner >= 0 {
				t.Fatalf("round %d: processes %d and %d both won", round, winner, i)
			}
			winner = i
		case "LOSE":
		default:
			t.Fatalf("round %d: child %d said %q%s", round, i, line, c.failure())
		}
	}
	for i, c := range children {
		if err := c.wait(); err != nil {
			t.Fatalf("round %d: child %d: %v%s", round, i, err, c.failure())
		}
	}
	if winner < 0 {
		t.Fatalf("round %d: no process won", round)
	}
	checkContent(t, b, key, raceContent(round, winner))
}

// child is one child process of a multi-process round.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // what the child reports, closed at its exit
	stderr bytes.Buffer
	output bytes.Buffer // everything else it printed, for failures
}

func startChild(ctx context.Context, t *testing.T, exe, url, key, body string) *child {
	t.Helper()
	c := &child{lines: make(chan string, 8)}
	c.cmd = exec.CommandContext(ctx, exe, "-test.run=^"+ChildTestName+"$", "-test.count=1", "-test.timeout=2m")
	c.cmd.Env = append(os.Environ(), envURL+"="+url, envKey+"="+key, envBody+"="+body,
		// Under -race, a process otherwise lingers a second at exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting %s as a child: %v", exe, err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.wait()
	})
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if msg, ok := strings.CutPrefix(sc.Text(), childMarker); ok {
				c.lines <- msg
			} else {
				c.output.WriteString(sc.Text() + "\n")
			}
		}
	}()
	return c
}

// next returns the child's next report, or "" if it exited without one.
func (c *child) next() string {
	return <-c.lines
}

// wait waits for the child to exit, once all its output has been read.
func (c *child) wait() error {
	for range c.lines {
	}
	if c.cmd.ProcessState != nil {
		return nil
	}
	c.stdin.Close()
	return c.cmd.Wait()
}

// failure describes what a misbehaving child printed.
func (c *child) failure() string {
	c.cmd.Process.Kill()
	c.wait()
	return fmt.Sprintf("\nchild stdout:\n%s\nchild stderr:\n%s", c.output.String(), c.stderr.String())
}
