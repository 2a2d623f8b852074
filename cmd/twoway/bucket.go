package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/bucketcopy"
)

const bucketHelp = `
Work on whole buckets: copy a deployment from one bucket to another.`

func runBucket(ctx context.Context, e *env, args []string) error {
	return runGroup(ctx, e, args, "bucket", bucketHelp, []command{
		{name: "copy", summary: "copy a deployment to another bucket, consistently, while it serves", run: runBucketCopy},
	})
}

const bucketCopyHelp = `
Copy everything a deployment holds (topics and records, consumer-group
offsets, producer state, functions and their modules, actor state, users,
ACLs, tables) from one bucket to another: a directory to S3, S3 to a
directory, one S3 bucket to another. The source may keep serving.

The copy is as of one commit of the source's log, the newest when the copy
starts: it holds the newest checkpoint at or below it, the commits after
that, and only the objects the state at that commit references; an agent
started on the copy serves exactly what the source held at that commit.
Every object is checked (its checksums, and the copy read back against the
source's bytes). Objects go in at most --concurrency at a time.

Run again after an interruption: objects already copied are skipped, and
the copy is brought up to the source's newest commit. The destination must
be empty or hold an earlier copy of the same deployment; one holding
another deployment (or a copy an agent has served and so changed) is
refused before anything is written.

With --verify nothing is copied: the copy is compared with its source,
object by object, and any difference is listed (exit status 1).

Progress (objects, bytes, rate, time left) is shown on standard error when
it is a terminal; a summary is always printed.`

func runBucketCopy(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("bucket copy", "twoway bucket copy --from URL --to URL [--verify] [--concurrency N]", bucketCopyHelp)
	from := fs.String("from", "", "bucket `URL` of the deployment to copy: a directory path, file:///path or s3://bucket/prefix?...")
	to := fs.String("to", "", "bucket `URL` to copy into (empty, or an earlier copy of the same deployment)")
	verify := fs.Bool("verify", false, "copy nothing: compare the copy at --to with its source at --from, and fail on any difference")
	conc := fs.Int("concurrency", 8, "objects copied (or compared) at once")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	bad := func(msg string) error {
		return &usageError{err: fmt.Errorf("bucket copy: %s", msg), usage: func() { fs.usage(e.stderr) }}
	}
	switch {
	case *from == "":
		return bad("no --from given")
	case *to == "":
		return bad("no --to given")
	case *conc < 1:
		return bad("--concurrency must be at least 1")
	}
	fromLoc, err := bucketurl.Parse(*from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	toLoc, err := bucketurl.Parse(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	if fromLoc == toLoc {
		return bad("--from and --to are the same bucket")
	}
	quiet := slog.New(slog.DiscardHandler)
	src, err := agent.Open(ctx, agent.Config{Bucket: *from, NoJanitor: true, Logger: quiet})
	if err != nil {
		return fmt.Errorf("open the source: %w", err)
	}
	defer src.Close()
	opts := bucketcopy.Options{Concurrency: *conc}
	if *verify {
		return verifyCopy(ctx, e, src, *to, toLoc, opts)
	}
	dst, err := toLoc.Open(ctx)
	if err != nil {
		return fmt.Errorf("open the destination: %w", err)
	}
	cs, err := src.Log().CopySet(ctx)
	if err != nil {
		return fmt.Errorf("the source: %w", err)
	}
	fmt.Fprintf(e.stderr, "copying %s to %s as of commit %d (checkpoint %d): %d objects\n", src.Bucket, dst, cs.Seq, cs.Checkpoint, len(cs.Keys))
	tty := isTerminal(e.stderr)
	if tty {
		opts.Progress = func(p bucketcopy.Progress) { fmt.Fprintf(e.stderr, "\r\033[K%s", progressLine(p)) }
	}
	p, err := bucketcopy.Copy(ctx, src.Log().Bucket(), dst, cs, opts)
	if tty {
		fmt.Fprint(e.stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "stopped: %s\n", progressLine(p))
		return err
	}
	fmt.Fprintf(e.stderr, "copied %d objects (%s) in %v, %s/s; %d (%s) were there already\n",
		p.Objects-p.Skipped, humanSize(p.Bytes-p.SkippedBytes), p.Elapsed.Round(time.Millisecond), humanSize(int64(p.Rate())), p.Skipped, humanSize(p.SkippedBytes))
	fmt.Fprintf(e.stdout, "copied as of commit %d: %d objects, %d bytes, %d skipped\n", cs.Seq, p.Objects, p.Bytes, p.Skipped)
	return nil
}

// verifyCopy compares the copy at to with the source: the copy's own copy
// set (an agent opened on it computes it), or, when the copy does not open,
// every object it holds.
func verifyCopy(ctx context.Context, e *env, src *agent.Agent, to string, toLoc bucketurl.Location, opts bucketcopy.Options) error {
	start := time.Now()
	var diffs []bucketcopy.Difference
	var what string
	dst, openErr := agent.Open(ctx, agent.Config{Bucket: to, NoJanitor: true, HintAddr: "off", Logger: slog.New(slog.DiscardHandler)})
	if openErr == nil {
		defer dst.Close()
		cs, err := dst.Log().CopySet(ctx)
		if err != nil {
			return fmt.Errorf("the copy: %w", err)
		}
		what = fmt.Sprintf("%d objects of the copy as of commit %d", len(cs.Keys), cs.Seq)
		diffs, err = bucketcopy.Verify(ctx, src.Log().Bucket(), dst.Log().Bucket(), cs, opts)
		if err != nil {
			return err
		}
	} else {
		if ctx.Err() != nil {
			return openErr
		}
		fmt.Fprintf(e.stderr, "the copy does not open (%v): comparing every object it holds\n", openErr)
		b, oerr := toLoc.Open(ctx)
		if oerr != nil {
			return fmt.Errorf("open the copy: %w", oerr)
		}
		what = "every object of the copy"
		var err error
		diffs, err = bucketcopy.VerifyObjects(ctx, src.Log().Bucket(), b, opts)
		if err != nil {
			return err
		}
		if len(diffs) == 0 {
			return fmt.Errorf("the copy does not open, yet its objects match the source's: %w", openErr)
		}
	}
	for _, d := range diffs {
		fmt.Fprintln(e.stdout, d)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the copy differs from its source in %d objects (listed above)", len(diffs))
	}
	fmt.Fprintf(e.stdout, "verified: %s match the source (%v)\n", what, time.Since(start).Round(time.Millisecond))
	return nil
}

func progressLine(p bucketcopy.Progress) string {
	left := "?"
	if d := p.Left(); d > 0 {
		left = d.Round(time.Second).String()
	}
	return fmt.Sprintf("%d/%d objects, %s/%s, %s/s, %s left (%d skipped)",
		p.Objects, p.TotalObjects, humanSize(p.Bytes), humanSize(p.TotalBytes), humanSize(int64(p.Rate())), left, p.Skipped)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
