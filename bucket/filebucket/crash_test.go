package filebucket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
)

// The crash test runs this test binary as a writer process and kills it
// with SIGKILL at random moments. The environment tells a process that it
// is the writer.
const (
	envCrashRoot = "TWOWAY_FILEBUCKET_CRASH_ROOT"
	envCrashRun  = "TWOWAY_FILEBUCKET_CRASH_RUN"
	envCrashSeed = "TWOWAY_FILEBUCKET_CRASH_SEED"
)

func TestMain(m *testing.M) {
	if root := os.Getenv(envCrashRoot); root != "" {
		crashWriter(root)
		os.Exit(1) // crashWriter only returns on failure
	}
	os.Exit(m.Run())
}

// crashContent is an object that proves its own integrity: a header naming
// its key and the SHA-256 of the payload that follows.
func crashContent(key string, payload []byte) []byte {
	sum := sha256.Sum256(payload)
	header := fmt.Sprintf("crash-test\n%s\n%x\n", key, sum)
	return append([]byte(header), payload...)
}

// checkCrashContent says what is wrong with an object read back, if
// anything.
func checkCrashContent(key string, data []byte) error {
	magic, rest, ok1 := bytes.Cut(data, []byte("\n"))
	gotKey, rest, ok2 := bytes.Cut(rest, []byte("\n"))
	sum, payload, ok3 := bytes.Cut(rest, []byte("\n"))
	switch {
	case !ok1 || !ok2 || !ok3 || string(magic) != "crash-test":
		return fmt.Errorf("%d bytes without a complete header: a partial object", len(data))
	case string(gotKey) != key:
		return fmt.Errorf("holds the content written for %q", gotKey)
	}
	if got := sha256.Sum256(payload); hex.EncodeToString(got[:]) != string(sum) {
		return fmt.Errorf("payload of %d bytes does not match its checksum: a partial or torn object", len(payload))
	}
	return nil
}

// crashWriter writes objects in a loop until it is killed: new keys with
// PutIfAbsent (reporting each success as "ACK key sha256"), replacements
// with Put and PutIfMatch, and deletes, with bodies up to a few MiB so that
// a kill often lands mid-write.
func crashWriter(root string) {
	fail := func(err error) {
		fmt.Println("ERROR", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	run := os.Getenv(envCrashRun)
	seed, _ := strconv.ParseUint(os.Getenv(envCrashSeed), 10, 64)
	rng := rand.New(rand.NewPCG(seed, 1))
	payloads := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b, err := Open(root)
	if err != nil {
		fail(err)
		return
	}
	fmt.Println("RUNNING")
	ctx := context.Background()
	// Half the bodies arrive slowly, as from a network, so that a kill
	// often lands while one streams in.
	body := func(data []byte) io.Reader {
		if rng.IntN(2) == 0 {
			return &slowReader{r: bytes.NewReader(data)}
		}
		return bytes.NewReader(data)
	}
	for i := 0; ; i++ {
		size := rng.IntN(256 << 10)
		if rng.IntN(4) == 0 {
			size = 2<<20 + rng.IntN(2<<20)
		}
		payload := make([]byte, size)
		payloads.Read(payload)
		switch op := rng.IntN(10); {
		case op < 4:
			key := fmt.Sprintf("unique/%s/%06d", run, i)
			data := crashContent(key, payload)
			if _, err := b.PutIfAbsent(ctx, key, body(data), int64(len(data))); err != nil {
				fail(err)
				return
			}
			fmt.Printf("ACK %s %x\n", key, sha256.Sum256(data))
		case op < 7:
			key := fmt.Sprintf("replace/%d", rng.IntN(8))
			data := crashContent(key, payload)
			if _, err := b.Put(ctx, key, body(data), int64(len(data))); err != nil {
				fail(err)
				return
			}
		case op < 9:
			key := fmt.Sprintf("cas/%d", rng.IntN(4))
			data := crashContent(key, payload)
			cur, err := b.Stat(ctx, key)
			if errors.Is(err, bucket.ErrNotFound) {
				_, err = b.PutIfAbsent(ctx, key, body(data), int64(len(data)))
			} else if err == nil {
				_, err = b.PutIfMatch(ctx, key, body(data), int64(len(data)), cur.Version)
			}
			if err != nil {
				fail(err)
				return
			}
		default:
			if err := b.Delete(ctx, fmt.Sprintf("replace/%d", rng.IntN(8))); err != nil {
				fail(err)
				return
			}
		}
	}
}

// slowReader delivers 64 KiB at a time, a millisecond apart.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

// TestCrashSafety kills a writer process again and again, and checks
// after each kill that the bucket reopens, holds only complete objects,
// holds every object whose write was acknowledged, and has no temp files
// left once reopened.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	acked := map[string]string{} // key → SHA-256 of what was acknowledged
	leftovers := 0               // temp files found after kills
	const minRuns, maxRuns = 10, 40
	run := 0
	for ; run < maxRuns && (run < minRuns || leftovers < 3); run++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(),
			envCrashRoot+"="+root,
			envCrashRun+"="+strconv.Itoa(run),
			envCrashSeed+"="+strconv.FormatUint(seed+uint64(run), 10))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Meanwhile, read every object: none may ever be seen partial.
		stopWatching := make(chan struct{})
		watched := make(chan error, 1)
		go func() { watched <- watchCrashBucket(root, stopWatching) }()

		// Kill it a random while after its first acknowledged write.
		var killed atomic.Bool
		var timer *time.Timer
		for line := range lines {
			if timer == nil && strings.HasPrefix(line, "ACK ") {
				timer = time.AfterFunc(time.Duration(rng.IntN(150))*time.Millisecond, func() {
					killed.Store(true)
					cmd.Process.Kill() // SIGKILL: no chance to clean up
				})
			}
			if err := record(acked, line); err != nil {
				cmd.Process.Kill()
				t.Fatalf("run %d: %v\nstderr:\n%s", run, err, stderr.String())
			}
		}
		close(stopWatching)
		if err := <-watched; err != nil {
			cmd.Process.Kill()
			t.Fatalf("run %d: a concurrent reader saw %v", run, err)
		}
		err = cmd.Wait()
		if !killed.Load() || err == nil {
			t.Fatalf("run %d: the writer exited by itself (%v)\nstderr:\n%s", run, err, stderr.String())
		}
		leftovers += len(dirEntries(t, root+"/"+internalDir+"/tmp"))
		verifyCrashBucket(t, root, acked)
	}
	t.Logf("%d runs killed, %d acknowledged objects, %d temp files left by killed writers", run, len(acked), leftovers)
	if leftovers == 0 {
		t.Errorf("no kill caught a write in progress in %d runs; the test proved nothing", run)
	}
}

// record notes an acknowledged write reported by the writer.
func record(acked map[string]string, line string) error {
	switch {
	case line == "RUNNING":
	case strings.HasPrefix(line, "ACK "):
		f := strings.Fields(line)
		if len(f) != 3 {
			return fmt.Errorf("writer said %q", line)
		}
		acked[f[1]] = f[2]
	default:
		return fmt.Errorf("writer said %q", line)
	}
	return nil
}

// watchCrashBucket reads every object of the bucket over and over until
// stop is closed, and returns the first incomplete object it sees.
func watchCrashBucket(root string, stop <-chan struct{}) error {
	b, err := Open(root)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for {
		for info, err := range b.List(ctx, "", "") {
			select {
			case <-stop:
				return nil
			default:
			}
			if err != nil {
				return err
			}
			data, _, err := bucket.ReadAll(ctx, b, info.Key)
			if errors.Is(err, bucket.ErrNotFound) {
				continue // deleted since listed
			}
			if err != nil {
				return err
			}
			if err := checkCrashContent(info.Key, data); err != nil {
				return fmt.Errorf("object %q: %w", info.Key, err)
			}
		}
		select {
		case <-stop:
			return nil
		case <-time.After(time.Millisecond):
		}
	}
}

// verifyCrashBucket reopens the bucket after a kill and checks it.
func verifyCrashBucket(t *testing.T, root string, acked map[string]string) {
	t.Helper()
	ctx := t.Context()
	b, err := Open(root)
	if err != nil {
		t.Fatalf("reopening after a kill: %v", err)
	}
	if names := dirEntries(t, b.tmp); len(names) != 0 {
		t.Errorf("after reopening, temp files remain: %q", names)
	}
	seen := map[string]bool{}
	for info, err := range b.List(ctx, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		seen[info.Key] = true
		data, _, err := bucket.ReadAll(ctx, b, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkCrashContent(info.Key, data); err != nil {
			t.Errorf("object %q: %v", info.Key, err)
		}
		if int64(len(data)) != info.Size {
			t.Errorf("object %q: List says %d bytes, Get gave %d", info.Key, info.Size, len(data))
		}
		if want, ok := acked[info.Key]; ok {
			if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != want {
				t.Errorf("object %q is not the content whose write was acknowledged", info.Key)
			}
		}
	}
	for key := range acked {
		if !seen[key] {
			t.Errorf("object %q was acknowledged but is gone", key)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
