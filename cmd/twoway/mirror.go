package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/mirror"
)

const mirrorHelp = `
Replicate the records of the topics matching --topics from the deployment
at --from to the one at --to, continuously, until interrupted (SIGINT or
SIGTERM). Typically from an edge agent's directory to a central bucket on
S3, or the other way. No agent needs to run on either side: the command
reads the source's bucket and commits into the destination's.

Each record keeps its key, value, headers, timestamp and partition number,
and gains the headers twoway.mirror.source ("topic/partition/offset" of
the source record) and twoway.mirror.origin (the source's --name). The
destination topic is created with the source's partition count, and grown
with it; topics created later that match are mirrored too.

Exactly once: each commit at the destination holds the records and the
mirror's new position (per source partition, the next source offset)
together, and applies only if the position it was built on is unchanged.
Kill the mirror at any moment, run two at once, cut the link for hours:
when it runs again it resumes where the destination says it stands, with
nothing lost and nothing twice. While the destination cannot be reached,
the mirror retries (the source keeps serving its own data); the backlog
then drains at the available bandwidth, or at --rate. Records the source's
retention removed before they were mirrored are skipped, with a warning
and a count.

--topics is a comma-separated list of names, globs (* ? [a-z]) and
regular expressions between slashes that must match the whole name:
  --topics telemetry
  --topics 'telemetry,events-*,/sensor-[0-9]+/'

--name identifies the source in the destination's positions (default:
host:/absolute/path for a directory, s3://bucket/prefix for S3). Keep it
when the source moves to another bucket; give each source its own.

"twoway mirror status" shows each mirrored partition's position and lag.`

func runMirror(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "status" {
		return runMirrorStatus(ctx, e, args[1:])
	}
	fs := newFlagSet("mirror", "twoway mirror --from URL --to URL --topics PATTERN [--name NAME] [--rate SIZE] [--http ADDR]\n  twoway mirror status (--to URL [--from URL] | --server URL)", mirrorHelp)
	from := fs.String("from", "", "bucket `URL` of the source deployment: a directory path, file:///path or s3://bucket/prefix?...")
	to := fs.String("to", "", "bucket `URL` of the destination deployment")
	topics := fs.String("topics", "", "`pattern` of the topics to mirror: names, globs and /regexps/, comma-separated")
	name := fs.String("name", "", "`name` of the source in the destination's positions (default: host:/dir, or s3://bucket/prefix)")
	var rate byteSize
	fs.Var(&rate, "rate", "limit the records read from the source to this many `bytes` a second, such as 10MiB (0: no limit)")
	var maxCommit byteSize = 4 << 20
	fs.Var(&maxCommit, "max-commit", "record `bytes` in one commit at the destination")
	httpAddr := fs.String("http", "", "`address` to serve GET /metrics and GET /v1/mirrors on, host:port (empty: none)")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	bad := func(msg string) error {
		return &usageError{err: fmt.Errorf("mirror: %s", msg), usage: func() { fs.usage(e.stderr) }}
	}
	switch {
	case *from == "":
		return bad("no --from given")
	case *to == "":
		return bad("no --to given")
	case *topics == "":
		return bad("no --topics given")
	case rate < 0:
		return bad("--rate must not be negative")
	case maxCommit < 1<<10 || maxCommit > 8<<20:
		return bad("--max-commit must be between 1KiB and 8MiB")
	}
	if *httpAddr != "" {
		host, _, err := net.SplitHostPort(*httpAddr)
		if err != nil {
			return bad(fmt.Sprintf("--http %s: %v", *httpAddr, err))
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return bad(fmt.Sprintf("--http %s: the mirror's status and metrics are served on loopback only (127.0.0.1:PORT); scrape them through a local agent or proxy", *httpAddr))
		}
	}
	pat, err := mirror.ParsePattern(*topics)
	if err != nil {
		return bad(err.Error())
	}
	if *from == *to {
		return bad("--from and --to are the same bucket")
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	src, err := agent.OpenEmbedded(ctx, *from, log.With("bucket", *from))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("--http %s: %w", *httpAddr, err)
		}
		log.Info("serving the mirror's metrics and status", "http", "http://"+ln.Addr().String())
		// Only what the mirror reports: the embedded agent's other routes
		// (produce, topics) are not this command's to serve.
		only := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodGet && (r.URL.Path == "/metrics" || r.URL.Path == "/v1/mirrors" || r.URL.Path == "/healthz"):
				src.HTTP.ServeHTTP(w, r)
			default:
				http.Error(w, "twoway mirror serves only GET /metrics, /v1/mirrors and /healthz", http.StatusNotFound)
			}
		})
		srv := &http.Server{Handler: only, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	err = src.RunMirror(ctx, agent.MirrorConfig{Remote: *to, Source: *name, Topics: pat, Rate: int64(rate), MaxBytes: int(maxCommit), Logger: log})
	if err != nil && ctx.Err() == nil {
		return err
	}
	log.Info("mirror stopped")
	return nil
}

const mirrorStatusHelp = `
Show each mirrored partition's position and lag.

With --to, read the destination's bucket: every mirror writing into it,
each partition's next source offset, and its lag (records) as of the
mirror's last commit. Add --from (the source's bucket) for the lag now,
in records, bytes and seconds (the age of the oldest record not yet
mirrored).

With --server, ask a running agent (twoway serve --mirror-to or
--mirror-from, or twoway mirror --http): the mirrors it runs, live, and
the positions its own deployment holds.`

func runMirrorStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("mirror status", "twoway mirror status (--to URL [--from URL --topics PATTERN] [--name NAME] | --server URL) [--format text|json]", mirrorStatusHelp)
	to := fs.String("to", "", "bucket `URL` of the destination deployment")
	from := fs.String("from", "", "bucket `URL` of the source deployment, for the live lag")
	topics := fs.String("topics", "*", "with --from, the `pattern` of the mirrored topics")
	name := fs.String("name", "", "only the mirror of this source `name` (with --from, default: the source's default name)")
	server := fs.String("server", "", "`URL` of a twoway agent to ask, such as http://127.0.0.1:8080")
	format := fs.String("format", "text", "`format`: text or json")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	bad := func(msg string) error {
		return &usageError{err: fmt.Errorf("mirror status: %s", msg), usage: func() { fs.usage(e.stderr) }}
	}
	if *format != "text" && *format != "json" {
		return bad("--format must be text or json")
	}
	if (*server == "") == (*to == "") {
		return bad("give --to (a bucket) or --server (an agent), one of them")
	}
	var rep mirror.StatusReport
	if *server != "" {
		if *from != "" {
			return bad("--from goes with --to, not --server")
		}
		r, err := fetchMirrorStatus(ctx, *server)
		if err != nil {
			return err
		}
		rep = r
	} else {
		quiet := slog.New(slog.DiscardHandler)
		dst, err := agent.Open(ctx, agent.Config{Bucket: *to, NoJanitor: true, Logger: quiet})
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		defer dst.Close()
		rep.Positions = dst.Mirror.Positions()
		if *from != "" {
			pat, err := mirror.ParsePattern(*topics)
			if err != nil {
				return bad(err.Error())
			}
			src, err := agent.Open(ctx, agent.Config{Bucket: *from, NoJanitor: true, Logger: quiet})
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			defer src.Close()
			source := *name
			if source == "" {
				if source, err = agent.DefaultSourceName(*from); err != nil {
					return err
				}
			}
			rep.Mirrors = []mirror.Status{{Source: source, Topics: pat.String(), To: dst.Bucket.String(),
				Partitions: mirror.LagOf(src.Service, pat, dst.Mirror, source, time.Now())}}
		}
	}
	if *name != "" {
		var keep []mirror.Position
		for _, p := range rep.Positions {
			if p.Source == *name {
				keep = append(keep, p)
			}
		}
		rep.Positions = keep
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printMirrorStatus(e.stdout, rep)
	return nil
}

func fetchMirrorStatus(ctx context.Context, server string) (mirror.StatusReport, error) {
	var rep mirror.StatusReport
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(server, "/")+"/v1/mirrors", nil)
	if err != nil {
		return rep, fmt.Errorf("--server: %w", err)
	}
	conn := &connection{token: new(string)}
	resp, err := conn.httpClient().Do(req)
	if err != nil {
		return rep, fmt.Errorf("cannot reach the agent at %s (is twoway serve running there?): %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return rep, fmt.Errorf("%s: %s: %s", server, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("%s: unreadable answer: %w", server, err)
	}
	return rep, nil
}

func printMirrorStatus(w io.Writer, rep mirror.StatusReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range rep.Mirrors {
		state := "connected"
		if !m.Connected {
			state = "not connected"
			if m.LastError != "" {
				state += " (" + m.LastError + ")"
			}
		}
		if m.Commits == 0 && m.LastError == "" && !m.Connected {
			state = "positions read from the buckets"
		}
		fmt.Fprintf(tw, "mirror %s → %s, topics %s: %s\n", m.Source, m.To, m.Topics, state)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEXT\tSOURCE END\tLAG RECORDS\tLAG BYTES\tLAG SECONDS\tMIRRORED\tSKIPPED")
		for _, p := range m.Partitions {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.1f\t%d\t%d\n", p.Topic, p.Partition, p.Next, p.SourceEnd, p.LagRecords, formatByteSize(p.LagBytes), p.LagSeconds, p.Mirrored, p.Skipped)
		}
		fmt.Fprintln(tw)
	}
	if len(rep.Positions) == 0 {
		if len(rep.Mirrors) == 0 {
			fmt.Fprintln(tw, "no mirror runs here, and none has written into this deployment")
		}
	} else {
		fmt.Fprintln(tw, "positions held by the destination (lag as of each mirror's last commit):")
		fmt.Fprintln(tw, "SOURCE\tTOPIC\tPARTITION\tNEXT\tSOURCE END\tLAG RECORDS\tMIRRORED\tSKIPPED\tLAST COMMIT")
		for _, p := range rep.Positions {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Source, p.Topic, p.Partition, p.Next, p.End, p.End-p.Next, p.Mirrored, p.Skipped,
				time.UnixMilli(p.AtMs).UTC().Format(time.RFC3339))
		}
	}
	tw.Flush()
}
