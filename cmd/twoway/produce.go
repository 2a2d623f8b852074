package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/httpapi"
)

// Batching of "twoway produce": a request carries up to produceBatchLines
// lines or produceBatchBytes bytes, and leaves at the latest produceLinger
// after its first line was read, so that typing a line sends it at once
// while a pipe fills whole requests.
const (
	produceBatchLines = 1000
	produceBatchBytes = 1 << 20
	produceLinger     = 50 * time.Millisecond
	produceRetries    = 5
)

const produceHelp = `
Read stdin and append one record per line (without its line ending) to
TOPIC. Lines are sent in batches of up to 1000 lines or 1MiB, and at once
when the input pauses; each batch is one commit, acknowledged once durable.

Records without --partition go where their key hashes to (murmur2, as
Kafka's default partitioner), or are spread over the partitions when they
have no key. Bytes that are not UTF-8 are sent as they are.

The command exits with status 1 and the reason as soon as a record is not
acknowledged; the records acknowledged before it are in the topic.
`

func runProduce(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("produce", "twoway produce TOPIC [--key-separator SEP] [--partition N] [--print-offsets]", produceHelp+connectHelp)
	keySep := fs.String("key-separator", "", "read each line as KEY `SEP` VALUE, split at the first SEP (a line without it is an error)")
	var partition partitionFlag
	fs.Var(&partition, "partition", "write every record to partition `N` instead of choosing by key")
	printOffsets := fs.Bool("print-offsets", false, "print \"PARTITION OFFSET\" for each record, in input order, once acknowledged")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "topic")
	if err != nil {
		return err
	}
	p := &producer{
		topic:        pos[0],
		keySep:       []byte(*keySep),
		printOffsets: *printOffsets,
		out:          bufio.NewWriter(e.stdout),
	}
	if partition.set {
		p.partition = &partition.p
	}
	in := e.stdin
	if in == nil {
		in = strings.NewReader("")
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		p.s = s
		err := p.run(ctx, in)
		return errors.Join(err, p.out.Flush())
	})
}

type producer struct {
	s            streams
	topic        string
	keySep       []byte
	partition    *int32
	printOffsets bool
	out          *bufio.Writer

	batch []httpapi.ProduceRecord
	lines []int // input line of each record of batch
	size  int
}

// inputLine is a line of stdin (numbered from 1), or the end of it.
type inputLine struct {
	n    int
	text []byte
	err  error // set, possibly to io.EOF, on the last one
}

func readLines(ctx context.Context, r io.Reader, out chan<- inputLine) {
	send := func(l inputLine) bool {
		select {
		case out <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		text, err := br.ReadBytes('\n')
		if len(text) > 0 { // the last line may lack its '\n'
			text = bytes.TrimSuffix(bytes.TrimSuffix(text, []byte("\n")), []byte("\r"))
			if !send(inputLine{n: n, text: text}) {
				return
			}
		}
		if err != nil {
			send(inputLine{n: n, err: err})
			return
		}
	}
}

func (p *producer) run(ctx context.Context, in io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan inputLine, 64)
	go readLines(ctx, in, lines)
	var linger <-chan time.Time
	for {
		select {
		case l := <-lines:
			if l.err != nil {
				if err := p.flush(ctx); err != nil {
					return err
				}
				if l.err != io.EOF {
					return fmt.Errorf("reading stdin: %w", l.err)
				}
				return nil
			}
			rec := httpapi.ProduceRecord{Partition: p.partition, Value: l.text}
			if len(p.keySep) > 0 {
				key, value, ok := bytes.Cut(l.text, p.keySep)
				if !ok {
					// What came before is sent; this line and the rest
					// are not.
					return errors.Join(p.flush(ctx), fmt.Errorf("line %d has no key separator %q; nothing from it on was sent", l.n, p.keySep))
				}
				rec.Key, rec.Value = key, value
			}
			if rec.Value == nil {
				rec.Value = []byte{} // an empty line is an empty value, not null
			}
			p.batch = append(p.batch, rec)
			p.lines = append(p.lines, l.n)
			p.size += len(l.text)
			if len(p.batch) == 1 {
				linger = time.After(produceLinger)
			}
			if len(p.batch) >= produceBatchLines || p.size >= produceBatchBytes {
				if err := p.flush(ctx); err != nil {
					return err
				}
				linger = nil
			}
		case <-linger:
			if err := p.flush(ctx); err != nil {
				return err
			}
			linger = nil
		case <-ctx.Done():
			if len(p.batch) == 0 {
				return nil // interrupted with everything read acknowledged
			}
			return fmt.Errorf("interrupted: lines %d to %d were read but not sent", p.lines[0], p.lines[len(p.lines)-1])
		}
	}
}

// flush sends the batch, retrying while the agent says nothing was
// committed, and prints the offsets.
func (p *producer) flush(ctx context.Context) error {
	if len(p.batch) == 0 {
		return nil
	}
	var offs []httpapi.ProduceOffset
	var err error
	for attempt := 1; ; attempt++ {
		offs, err = p.s.Produce(ctx, p.topic, p.batch)
		if !errors.Is(err, commitlog.ErrNotCommitted) || attempt == produceRetries {
			break
		}
		wait := time.Duration(attempt) * 200 * time.Millisecond
		if ae, ok := errors.AsType[*httpapi.Error](err); ok && ae.RetryAfter > 0 {
			wait = ae.RetryAfter
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("interrupted while retrying lines %d to %d: %w", p.lines[0], p.lines[len(p.lines)-1], err)
		}
	}
	first, last := p.lines[0], p.lines[len(p.lines)-1]
	p.batch, p.lines, p.size = p.batch[:0], nil, 0
	if err != nil {
		ae, ok := errors.AsType[*httpapi.Error](err)
		if !ok || len(ae.Offsets) == 0 {
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted: lines %d to %d may or may not have been appended", first, last)
			}
			return fmt.Errorf("lines %d to %d were not acknowledged: %w", first, last, err)
		}
		offs = ae.Offsets // some failed: say which
	}
	failed := 0
	var firstErr string
	for i, o := range offs {
		if o.Error != "" {
			if failed == 0 {
				firstErr = fmt.Sprintf("line %d: %s", first+i, o.Error)
			}
			failed++
			continue
		}
		if p.printOffsets {
			fmt.Fprintf(p.out, "%d %d\n", o.Partition, o.Offset)
		}
	}
	if err := p.out.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of lines %d to %d were not acknowledged (the others were); first, %s", failed, first, last, firstErr)
	}
	return nil
}
