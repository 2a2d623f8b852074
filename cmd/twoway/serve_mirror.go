package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/mirror"
)

// serveMirrorFlags are serve's --mirror-* flags.
type serveMirrorFlags struct {
	to, from, topics, name *string
	rate                   byteSize
}

func addServeMirrorFlags(fs *flagSet) *serveMirrorFlags {
	f := &serveMirrorFlags{
		to:     fs.String("mirror-to", "", "bucket `URL` of another deployment to mirror the --mirror-topics of this one to, exactly once (docs/EDGE.md)"),
		from:   fs.String("mirror-from", "", "bucket `URL` of another deployment whose --mirror-topics to mirror into this one"),
		topics: fs.String("mirror-topics", "", "`pattern` of the topics to mirror: names, globs and /regexps/, comma-separated"),
		name:   fs.String("mirror-name", "", "`name` of the mirror's source in the destination's positions (default: host:/dir, or s3://bucket/prefix)"),
	}
	fs.Var(&f.rate, "mirror-rate", "limit the mirror to this many `bytes` a second, such as 10MiB (0: no limit)")
	return f
}

// config returns the mirror to run, or nil for none.
func (f *serveMirrorFlags) config() (*agent.MirrorConfig, error) {
	if *f.to == "" && *f.from == "" {
		if *f.topics != "" || *f.name != "" || f.rate != 0 {
			return nil, errors.New("--mirror-topics, --mirror-name and --mirror-rate go with --mirror-to or --mirror-from")
		}
		return nil, nil
	}
	if *f.to != "" && *f.from != "" {
		return nil, errors.New("give --mirror-to or --mirror-from, not both (run `twoway mirror` for the other direction)")
	}
	if *f.topics == "" {
		return nil, errors.New("--mirror-to and --mirror-from need --mirror-topics")
	}
	if f.rate < 0 {
		return nil, errors.New("--mirror-rate must not be negative")
	}
	pat, err := mirror.ParsePattern(*f.topics)
	if err != nil {
		return nil, err
	}
	c := &agent.MirrorConfig{Remote: *f.to, Topics: pat, Source: *f.name, Rate: int64(f.rate)}
	if *f.from != "" {
		c.Remote, c.Pull = *f.from, true
	}
	return c, nil
}

// startServeMirror runs the mirror beside the agent until ctx ends; the
// returned function waits for it.
func startServeMirror(ctx context.Context, a *agent.Agent, cfg *agent.MirrorConfig, log *slog.Logger) func() {
	if cfg == nil {
		return func() {}
	}
	cfg.Logger = log.With("mirror", cfg.Remote)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.RunMirror(ctx, *cfg); err != nil && ctx.Err() == nil {
			log.Error("the mirror stopped", "err", err)
		}
	})
	return wg.Wait
}
