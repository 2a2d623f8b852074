package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/mirror"
)

// MirrorConfig describes a mirror between an agent's own bucket and
// another deployment's (Remote).
type MirrorConfig struct {
	// Remote is the other deployment's bucket URL.
	Remote string
	// Pull mirrors Remote's topics into this agent's bucket; otherwise
	// this agent's topics go to Remote.
	Pull bool
	// Source names the source deployment in the destination's positions.
	// Default: DefaultSourceName of the source's bucket URL.
	Source   string
	Topics   mirror.Pattern
	Rate     int64 // bytes per second, 0: no limit
	MaxBytes int   // per commit, 0: the default
	Logger   *slog.Logger
}

// DefaultSourceName names a deployment by its bucket: host:/absolute/dir
// for a directory (the host keeps many edge devices with the same path
// apart), s3://bucket/prefix for S3.
func DefaultSourceName(raw string) (string, error) {
	loc, err := bucketurl.Parse(raw)
	if err != nil {
		return "", err
	}
	if loc.Kind == bucketurl.File {
		dir, err := filepath.Abs(loc.Dir)
		if err != nil {
			return "", err
		}
		host, _ := os.Hostname()
		return host + ":" + dir, nil
	}
	name := "s3://" + loc.S3.Bucket
	if p := strings.Trim(loc.S3.Prefix, "/"); p != "" {
		name += "/" + p
	}
	return name, nil
}

// OpenEmbedded opens an agent without listeners or janitor on raw, as the
// one-shot commands do, retrying while the bucket cannot be reached (an
// edge's link down) until ctx ends.
func OpenEmbedded(ctx context.Context, raw string, logger *slog.Logger) (*Agent, error) {
	return openEmbedded(ctx, raw, logger, nil)
}

func openEmbedded(ctx context.Context, raw string, logger *slog.Logger, failed func(error)) (*Agent, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if _, err := bucketurl.Parse(raw); err != nil {
		return nil, err // a bad URL never gets better
	}
	for failures := 0; ; failures++ {
		a, err := Open(ctx, Config{Bucket: raw, NoJanitor: true, Linger: NoLinger, Logger: logger})
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if failed != nil {
			failed(err)
		}
		if failures == 0 || failures%20 == 0 {
			logger.Warn("cannot open the bucket yet; retrying", "bucket", raw, "err", err)
		}
		t := time.NewTimer(min(200*time.Millisecond<<min(failures, 6), 10*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// RunMirror runs a mirror between a's bucket and cfg.Remote until ctx
// ends, opening Remote (and waiting for it while it cannot be reached).
// Its status and metrics are this agent's (GET /v1/mirrors, /metrics).
func (a *Agent) RunMirror(ctx context.Context, cfg MirrorConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = a.cfg.Logger
	}
	srcURL := a.cfg.Bucket
	if cfg.Pull {
		srcURL = cfg.Remote
	}
	if cfg.Source == "" {
		name, err := DefaultSourceName(srcURL)
		if err != nil {
			return err
		}
		cfg.Source = name
	}
	// Until the other side opens, status and metrics show the mirror as
	// not connected (and, pushing, the whole source as its lag).
	opening := &mirror.Opening{Source: cfg.Source, Topics: cfg.Topics, To: cfg.Remote}
	if !cfg.Pull {
		opening.From = a.Service
	}
	detach := a.Mirror.Attach(opening)
	remote, err := openEmbedded(ctx, cfg.Remote, cfg.Logger.With("bucket", cfg.Remote), opening.Failed)
	detach()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer remote.Close()
	mc := mirror.Config{Source: cfg.Source, Topics: cfg.Topics, Rate: cfg.Rate, MaxBytes: cfg.MaxBytes, Logger: cfg.Logger,
		From: a.Service, To: remote.Service, ToMirror: remote.Mirror, Label: remote.Bucket.String()}
	if cfg.Pull {
		mc.From, mc.To, mc.ToMirror, mc.Label = remote.Service, a.Service, a.Mirror, a.Bucket.String()
	}
	m, err := mirror.New(mc)
	if err != nil {
		return err
	}
	defer a.Mirror.Attach(m)()
	err = m.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("mirror: %w", err)
}
