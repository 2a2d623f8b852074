package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/prefixed"
	"github.com/twoway/twoway/internal/bucketcopy"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/mirror"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// DefaultMirrorBacklog is the record bytes the mirror benchmark mirrors.
const DefaultMirrorBacklog = 256 << 20

// MirrorOptions tune the mirror benchmark. Zero values take the defaults.
type MirrorOptions struct {
	// Produce is the destination's produce phase (bench produce): its
	// throughput is the mirror's baseline.
	Produce ProduceOptions
	// Backlog is the record bytes written to the source before the mirror
	// starts, which it then drains. Default DefaultMirrorBacklog.
	Backlog int64
	// FromLog and ToLog are the commit-log settings of the source and the
	// destination (as twoway serve and twoway mirror use them).
	FromLog, ToLog commitlog.Options
	// CopyConcurrency is bucket copy's (and the raw copy's) objects at
	// once. Default 8, bucket copy's default.
	CopyConcurrency int
}

// MirrorResult is what the mirror benchmark measured.
type MirrorResult struct {
	From string `json:"from"`
	To   string `json:"to"`
	// ProduceMBs is the destination's bench produce throughput (record
	// bytes), measured first in the same run.
	ProduceMBs float64 `json:"produce_mb_s"`
	// MirrorMBs is the record bytes per second a mirror moved from the
	// source to the destination, draining a backlog.
	MirrorMBs     float64 `json:"mirror_mb_s"`
	MirrorRecords int64   `json:"mirror_records"`
	MirrorCommits int64   `json:"mirror_commits"`
	MirrorS       float64 `json:"mirror_s"`
	// MirrorRatio = MirrorMBs / ProduceMBs (target ≥ 0.7).
	MirrorRatio float64 `json:"mirror_ratio"`
	// CopyMBs is bucket copy's throughput copying the source deployment
	// to the destination bucket; RawCopyMBs that of a plain copy of the
	// same objects (a Get and a Put each, as many at once); CopyRatio the
	// first over the second (target ≥ 0.8).
	CopyMBs     float64 `json:"copy_mb_s"`
	RawCopyMBs  float64 `json:"raw_copy_mb_s"`
	CopyRatio   float64 `json:"copy_ratio"`
	CopyObjects int     `json:"copy_objects"`
	CopyBytes   int64   `json:"copy_bytes"`
	// Produce is the full bench produce result of the destination.
	Produce ProduceResult `json:"produce"`
	Machine Machine       `json:"machine"`
}

// side is one deployment of the benchmark: streams and the mirror module.
type mirrorSide struct {
	b       bucket.Bucket
	streams *stream.Service
	mirror  *mirror.Module
	set     *module.Set
}

func openMirrorSide(ctx context.Context, b bucket.Bucket, opts commitlog.Options) (*mirrorSide, error) {
	s := &mirrorSide{b: b, streams: stream.New(stream.Options{}), mirror: mirror.NewModule()}
	opts.NoJanitor = true
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	set, err := module.Open(ctx, module.Config{Bucket: b, Log: opts, HTTP: http.NewServeMux(), Logger: opts.Logger}, s.streams, s.mirror)
	if err != nil {
		return nil, err
	}
	s.set = set
	return s, nil
}

// Mirror measures, in one run: the destination's produce throughput; a
// mirror draining a backlog of opts.Backlog record bytes from the source
// into the destination; bucket copy of the source deployment into the
// destination bucket, against a plain copy of the same objects.
// Everything is written under bench/ prefixes of its own and deleted at
// the end.
func Mirror(ctx context.Context, from, to bucket.Bucket, opts MirrorOptions) (res MirrorResult, err error) {
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultMirrorBacklog
	}
	if opts.CopyConcurrency <= 0 {
		opts.CopyConcurrency = 8
	}
	po, err := opts.Produce.withDefaults()
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	res = MirrorResult{From: from.String(), To: to.String(), Machine: CurrentMachine()}
	prod, err := Produce(ctx, to, opts.Produce)
	if err != nil {
		return res, fmt.Errorf("bench: the destination's produce phase: %w", err)
	}
	res.Produce, res.ProduceMBs = prod, prod.ProduceMBs

	tag := randomHex(8)
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	area := func(b bucket.Bucket, name string) (bucket.Bucket, error) {
		prefix := "bench/mirror-" + tag + "-" + name + "/"
		pb, err := prefixed.Wrap(b, prefix)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() error {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			if err := deleteAll(cctx, pb, 16); err != nil {
				return fmt.Errorf("bench: deleting the objects under %s: %w", prefix, err)
			}
			return nil
		})
		return pb, nil
	}
	srcB, err := area(from, "source")
	if err != nil {
		return res, err
	}
	src, err := openMirrorSide(ctx, srcB, opts.FromLog)
	if err != nil {
		return res, fmt.Errorf("bench: open the source: %w", err)
	}
	defer src.set.Close()
	if err := fillBacklog(ctx, src.streams, po, opts.Backlog); err != nil {
		return res, fmt.Errorf("bench: fill the source: %w", err)
	}

	// The mirror drains the backlog.
	dstB, err := area(to, "destination")
	if err != nil {
		return res, err
	}
	dst, err := openMirrorSide(ctx, dstB, opts.ToLog)
	if err != nil {
		return res, fmt.Errorf("bench: open the destination: %w", err)
	}
	defer dst.set.Close()
	pat, _ := mirror.ParsePattern(benchTopic)
	m, err := mirror.New(mirror.Config{Source: "bench", Topics: pat, From: src.streams, To: dst.streams, ToMirror: dst.mirror,
		Poll: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return res, err
	}
	ti, err := src.streams.Topic(benchTopic)
	if err != nil {
		return res, err
	}
	var want, records int64
	for _, p := range ti.PartitionsInfo {
		want += p.End
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); m.Run(mctx) }()
	for {
		var at int64
		for _, p := range dst.mirror.Positions() {
			at += p.Next
		}
		if at >= want {
			break
		}
		if st := m.Status(); st.Errors > 0 && !st.Connected {
			stop()
			<-done
			return res, fmt.Errorf("bench: the mirror failed: %s", st.LastError)
		}
		select {
		case <-ctx.Done():
			stop()
			<-done
			return res, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	stop()
	<-done
	records = m.Stats.Records.Load()
	res.MirrorS = elapsed.Seconds()
	res.MirrorRecords, res.MirrorCommits = records, m.Stats.Commits.Load()
	res.MirrorMBs = float64(records) * float64(po.RecordSize) / 1e6 / elapsed.Seconds()
	if res.ProduceMBs > 0 {
		res.MirrorRatio = res.MirrorMBs / res.ProduceMBs
	}

	// bucket copy of the source deployment, against a plain copy.
	cs, err := src.set.Log().CopySet(ctx)
	if err != nil {
		return res, fmt.Errorf("bench: the source's copy set: %w", err)
	}
	rawB, err := area(to, "raw-copy")
	if err != nil {
		return res, err
	}
	rawBytes, rawElapsed, err := rawCopy(ctx, srcB, rawB, cs.Keys, opts.CopyConcurrency)
	if err != nil {
		return res, fmt.Errorf("bench: raw copy: %w", err)
	}
	res.RawCopyMBs = float64(rawBytes) / 1e6 / rawElapsed.Seconds()
	copyB, err := area(to, "copy")
	if err != nil {
		return res, err
	}
	p, err := bucketcopy.Copy(ctx, srcB, copyB, cs, bucketcopy.Options{Concurrency: opts.CopyConcurrency})
	if err != nil {
		return res, fmt.Errorf("bench: bucket copy: %w", err)
	}
	res.CopyObjects, res.CopyBytes = p.Objects, p.Bytes
	res.CopyMBs = float64(p.Bytes) / 1e6 / p.Elapsed.Seconds()
	if res.RawCopyMBs > 0 {
		res.CopyRatio = res.CopyMBs / res.RawCopyMBs
	}
	return res, nil
}

// fillBacklog writes backlog record bytes to the benchmark topic, with the
// produce phase's record and batch sizes and partitions.
func fillBacklog(ctx context.Context, s *stream.Service, po ProduceOptions, backlog int64) error {
	if err := s.CreateTopic(ctx, stream.TopicConfig{Name: benchTopic, Partitions: int32(po.Partitions)}); err != nil {
		return err
	}
	n := po.recordsPerCall()
	value := bytes.Repeat([]byte{'m'}, po.RecordSize)
	recs := make([]records.Record, n)
	for i := range recs {
		recs[i] = records.Record{Timestamp: time.Now().UnixMilli(), Value: value}
	}
	raw := records.Encode(recs)
	calls := (backlog + po.callBytes() - 1) / po.callBytes()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= calls {
					return
				}
				_, perr, err := s.Produce(ctx, benchTopic, []stream.Batch{{Partition: int32(i % int64(po.Partitions)), Raw: raw}})
				if err == nil {
					err = perr[0]
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// rawCopy copies keys from src to dst, a Get and a Put each, conc at once.
func rawCopy(ctx context.Context, src, dst bucket.Bucket, keys []string, conc int) (int64, time.Duration, error) {
	start := time.Now()
	var total atomic.Int64
	ch := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range conc {
		wg.Go(func() {
			for k := range ch {
				err := func() error {
					rc, _, err := src.Get(ctx, k)
					if err != nil {
						return err
					}
					body, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						return err
					}
					if _, err := dst.Put(ctx, k, bytes.NewReader(body), int64(len(body))); err != nil {
						return err
					}
					total.Add(int64(len(body)))
					return nil
				}()
				if err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
	return total.Load(), time.Since(start), first
}
