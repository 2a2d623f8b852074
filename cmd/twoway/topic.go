package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/stream"
)

// topicCommands are the subcommands of "twoway topic".
var topicCommands = []command{
	{name: "create", summary: "create a topic", run: runTopicCreate},
	{name: "list", summary: "list topics", run: runTopicList},
	{name: "describe", summary: "show a topic's settings and its partitions' offsets", run: runTopicDescribe},
	{name: "alter", summary: "change a topic's retention or configs", run: runTopicAlter},
	{name: "add-partitions", summary: "grow a topic's partition count", run: runTopicAddPartitions},
	{name: "delete", summary: "delete a topic and its records", run: runTopicDelete},
}

func runTopic(ctx context.Context, e *env, args []string) error {
	return runGroup(ctx, e, args, "topic", `Manage topics.
`+connectHelp, topicCommands)
}

// withStreams opens the connection, runs f and explains its error.
func withStreams(ctx context.Context, e *env, conn *connection, f func(s streams) error) error {
	s, closeFn, err := conn.open(ctx, e)
	if err != nil {
		return err
	}
	defer closeFn()
	return conn.explain(f(s))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runTopicCreate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("topic create", "twoway topic create NAME [--partitions N] [--retention DURATION] [--retention-bytes SIZE] [--config NAME=VALUE]...", `
Create a topic. Records older than --retention (units s, m, h, d, w, as in
7d or 36h) and, per partition, the oldest records beyond --retention-bytes
(4GiB, 500MB) are removed; by default records are kept forever. --config
sets a Kafka topic config, such as cleanup.policy=compact or
max.message.bytes=10485760 (docs/KAFKA.md lists them).
`+connectHelp)
	partitions := fs.Int("partitions", 1, "number of `partitions`")
	var retention retentionFlag
	var retentionBytes retentionBytesFlag
	fs.Var(&retention, "retention", "how long to keep records: a `duration` such as 7d, 12h, or forever")
	fs.Var(&retentionBytes, "retention-bytes", "most bytes to keep per partition: a `size` such as 1GiB, or unlimited")
	configs := configFlag{}
	fs.Var(configs, "config", "a Kafka topic config, `NAME=VALUE` (repeat for more)")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "topic name")
	if err != nil {
		return err
	}
	if *partitions < 1 || *partitions > stream.MaxPartitions {
		return conn.usageError(e, fmt.Errorf("--partitions %d out of range: use 1 to %d", *partitions, stream.MaxPartitions))
	}
	cfg := stream.TopicConfig{Name: pos[0], Partitions: int32(*partitions)}
	if retention.set {
		cfg.RetentionMs = retention.ms
	}
	if retentionBytes.set {
		cfg.RetentionBytes = retentionBytes.n
	}
	if len(configs) > 0 {
		cfg.Configs = map[string]string{}
		for k, v := range configs {
			cfg.Configs[k] = *v
		}
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		t, err := s.CreateTopic(ctx, cfg)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "created topic %s: %d partitions, retention %s, retention bytes %s\n",
			t.Name, t.Partitions, formatRetention(t.RetentionMs), formatRetentionBytes(t.RetentionBytes))
		return err
	})
}

func runTopicList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("topic list", "twoway topic list [--json]", "List the topics in name order.\n"+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		topics, err := s.Topics(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if topics == nil {
				topics = []httpapi.Topic{}
			}
			return printJSON(e.stdout, topics)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPARTITIONS\tRETENTION\tRETENTION BYTES")
		for _, t := range topics {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", t.Name, t.Partitions, formatRetention(t.RetentionMs), formatRetentionBytes(t.RetentionBytes))
		}
		return tw.Flush()
	})
}

func runTopicDescribe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("topic describe", "twoway topic describe NAME [--json]", `
Show a topic's settings and, per partition, the first offset still kept
(START), the offset the next record will get (END), the number of records
kept and their size. The numbers include every agent's writes so far.
`+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "topic name")
	if err != nil {
		return err
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		t, err := s.Topic(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, t)
		}
		return printTopic(e.stdout, t)
	})
}

func printTopic(w io.Writer, t httpapi.Topic) error {
	var records, bytes int64
	for _, p := range t.PartitionInfo {
		records += p.EndOffset - p.StartOffset
		bytes += p.Bytes
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "topic\t%s\n", t.Name)
	fmt.Fprintf(tw, "partitions\t%d\n", t.Partitions)
	fmt.Fprintf(tw, "retention\t%s\n", formatRetention(t.RetentionMs))
	fmt.Fprintf(tw, "retention bytes\t%s\n", formatRetentionBytes(t.RetentionBytes))
	for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
		fmt.Fprintf(tw, "%s\t%s\n", k, t.Configs[k])
	}
	fmt.Fprintf(tw, "created\t%s\n", time.UnixMilli(t.CreatedMs).UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "records\t%d (%s)\n", records, formatByteSize(bytes))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tSTART\tEND\tRECORDS\tBYTES\t")
	for _, p := range t.PartitionInfo {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t\n", p.Partition, p.StartOffset, p.EndOffset, p.EndOffset-p.StartOffset, p.Bytes)
	}
	return tw.Flush()
}

func runTopicAlter(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("topic alter", "twoway topic alter NAME [--retention DURATION] [--retention-bytes SIZE] [--config NAME=VALUE]... [--delete-config NAME]...", `
Change a topic's retention or Kafka topic configs (docs/KAFKA.md lists
them); --delete-config returns a config to its default. A shorter
retention removes older records at the next retention pass.
`+connectHelp)
	var retention retentionFlag
	var retentionBytes retentionBytesFlag
	fs.Var(&retention, "retention", "how long to keep records: a `duration` such as 7d, 12h, or forever")
	fs.Var(&retentionBytes, "retention-bytes", "most bytes to keep per partition: a `size` such as 1GiB, or unlimited")
	configs := configFlag{}
	fs.Var(configs, "config", "set a Kafka topic config, `NAME=VALUE` (repeat for more)")
	fs.Var(deleteConfigFlag(configs), "delete-config", "return a Kafka topic config `NAME` to its default (repeat for more)")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "topic name")
	if err != nil {
		return err
	}
	if !retention.set && !retentionBytes.set && len(configs) == 0 {
		return conn.usageError(e, errors.New("nothing to change: give --retention, --retention-bytes, --config or --delete-config"))
	}
	var ms, bytes *int64
	if retention.set {
		ms = &retention.ms
	}
	if retentionBytes.set {
		bytes = &retentionBytes.n
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		var t httpapi.Topic
		var err error
		if ms != nil || bytes != nil {
			t, err = s.SetRetention(ctx, pos[0], ms, bytes)
		}
		if err == nil && len(configs) > 0 {
			t, err = s.SetConfigs(ctx, pos[0], configs)
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "topic %s: retention %s, retention bytes %s\n", t.Name, formatRetention(t.RetentionMs), formatRetentionBytes(t.RetentionBytes))
		return err
	})
}

func runTopicAddPartitions(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("topic add-partitions", "twoway topic add-partitions NAME --partitions N", `
Grow a topic to N partitions (the count never shrinks). Keys map to
partitions by the count, so some keys move to the new partitions: records of
one key are in order only within each partition.
`+connectHelp)
	partitions := fs.Int("partitions", 0, "the new partition `count` (required)")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "topic name")
	if err != nil {
		return err
	}
	if *partitions < 1 || *partitions > stream.MaxPartitions {
		return conn.usageError(e, fmt.Errorf("--partitions is required: the new count, up to %d", stream.MaxPartitions))
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		t, err := s.AddPartitions(ctx, pos[0], int32(*partitions))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "topic %s: %d partitions\n", t.Name, t.Partitions)
		return err
	})
}

func runTopicDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("topic delete", "twoway topic delete NAME", `
Delete a topic. Its records can no longer be read, and their space is
reclaimed by garbage collection.
`+connectHelp)
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "topic name")
	if err != nil {
		return err
	}
	return withStreams(ctx, e, conn, func(s streams) error {
		if err := s.DeleteTopic(ctx, pos[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "deleted topic %s\n", pos[0])
		return err
	})
}

// configFlag collects --config NAME=VALUE (and, through deleteConfigFlag,
// --delete-config NAME as a nil value).
type configFlag map[string]*string

func (c configFlag) String() string { return "" }

func (c configFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("give a config as NAME=VALUE, such as cleanup.policy=compact, not %q", v)
	}
	c[name] = &value
	return nil
}

type deleteConfigFlag configFlag

func (c deleteConfigFlag) String() string { return "" }

func (c deleteConfigFlag) Set(v string) error {
	if v == "" || strings.Contains(v, "=") {
		return fmt.Errorf("give the config's name only, such as cleanup.policy, not %q", v)
	}
	c[v] = nil
	return nil
}
