package stream

// Topic configs, named and typed as Kafka's TopicConfig documents them, so
// that the tools that create topics with configs (Kafka Streams, Connect,
// Debezium, provisioning tools) work unchanged. Some are honoured (see
// Honoured); the storage-tuning ones mean nothing on a bucket and are
// accepted, kept and described, but ignored. retention.ms and
// retention.bytes live in TopicConfig's own fields (they predate the
// others); every other config a topic sets explicitly is in
// TopicConfig.Configs, by name, in its normalized form.

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ConfigKind is a config's type, as Kafka's DescribeConfigs reports it.
type ConfigKind int8

// Kafka's config types (kmsg.ConfigType numbers).
const (
	KindBoolean ConfigKind = 1
	KindString  ConfigKind = 2
	KindInt     ConfigKind = 3
	KindLong    ConfigKind = 5
	KindDouble  ConfigKind = 6
	KindList    ConfigKind = 7
)

// ConfigSpec describes one topic config.
type ConfigSpec struct {
	Name    string
	Kind    ConfigKind
	Default string
	// Synonym is the broker config Kafka takes the default from.
	Synonym string
	// Ignored: accepted and described, with no effect in twoway.
	Ignored bool
	Doc     string
	// check validates a value and returns it normalized.
	check func(string) (string, error)
}

const longMax = "9223372036854775807"

// Kafka's defaults for the honoured configs.
const (
	DefaultMaxMessageBytes   = 1048588
	DefaultDeleteRetentionMs = 86400000
	DefaultDirtyRatio        = 0.5
)

const ignoredDoc = "Accepted and ignored: it tunes a broker's local log, which twoway does not have (records live in the bucket)."

// TopicConfigSpecs lists every topic config twoway accepts, by name.
var TopicConfigSpecs = []ConfigSpec{
	{Name: "cleanup.policy", Kind: KindList, Default: "delete", Synonym: "log.cleanup.policy", check: checkPolicy,
		Doc: "delete: records are removed by retention.ms and retention.bytes. compact: the compaction task keeps the latest record of each key (tombstones until delete.retention.ms). compact,delete: both."},
	{Name: "compression.gzip.level", Kind: KindInt, Default: "-1", Synonym: "compression.gzip.level", Ignored: true, check: intRange(-1, 9), Doc: ignoredDoc},
	{Name: "compression.lz4.level", Kind: KindInt, Default: "9", Synonym: "compression.lz4.level", Ignored: true, check: intRange(1, 17), Doc: ignoredDoc},
	{Name: "compression.type", Kind: KindString, Default: "producer", Synonym: "compression.type", Ignored: true, check: oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
		Doc: "Accepted and ignored: batches are always stored as the producer compressed them (producer)."},
	{Name: "compression.zstd.level", Kind: KindInt, Default: "3", Synonym: "compression.zstd.level", Ignored: true, check: intRange(-131072, 22), Doc: ignoredDoc},
	{Name: "delete.retention.ms", Kind: KindLong, Default: strconv.Itoa(DefaultDeleteRetentionMs), Synonym: "log.cleaner.delete.retention.ms", check: longRange(0, math.MaxInt64),
		Doc: "On a compacted topic, how long a tombstone (a record with a null value) is kept after it was appended, so consumers see the delete."},
	{Name: "file.delete.delay.ms", Kind: KindLong, Default: "60000", Synonym: "log.segment.delete.delay.ms", Ignored: true, check: longRange(0, math.MaxInt64), Doc: ignoredDoc},
	{Name: "flush.messages", Kind: KindLong, Default: longMax, Synonym: "log.flush.interval.messages", Ignored: true, check: longRange(1, math.MaxInt64),
		Doc: "Accepted and ignored: every acknowledged record is durable in the bucket."},
	{Name: "flush.ms", Kind: KindLong, Default: longMax, Synonym: "log.flush.interval.ms", Ignored: true, check: longRange(0, math.MaxInt64),
		Doc: "Accepted and ignored: every acknowledged record is durable in the bucket."},
	{Name: "follower.replication.throttled.replicas", Kind: KindList, Default: "", Ignored: true, check: anyList,
		Doc: "Accepted and ignored: the bucket keeps the only copy; there is no replication to throttle."},
	{Name: "index.interval.bytes", Kind: KindInt, Default: "4096", Synonym: "log.index.interval.bytes", Ignored: true, check: intRange(0, math.MaxInt32), Doc: ignoredDoc},
	{Name: "leader.replication.throttled.replicas", Kind: KindList, Default: "", Ignored: true, check: anyList,
		Doc: "Accepted and ignored: the bucket keeps the only copy; there is no replication to throttle."},
	{Name: "local.retention.bytes", Kind: KindLong, Default: "-2", Synonym: "log.local.retention.bytes", Ignored: true, check: longRange(-2, math.MaxInt64),
		Doc: "Accepted and ignored: there is no local tier; the bucket is the only storage."},
	{Name: "local.retention.ms", Kind: KindLong, Default: "-2", Synonym: "log.local.retention.ms", Ignored: true, check: longRange(-2, math.MaxInt64),
		Doc: "Accepted and ignored: there is no local tier; the bucket is the only storage."},
	{Name: "max.compaction.lag.ms", Kind: KindLong, Default: longMax, Synonym: "log.cleaner.max.compaction.lag.ms", Ignored: true, check: longRange(1, math.MaxInt64),
		Doc: "Accepted and ignored: a compacted partition is compacted at every pass in which min.cleanable.dirty.ratio of it is new."},
	{Name: "max.message.bytes", Kind: KindInt, Default: strconv.Itoa(DefaultMaxMessageBytes), Synonym: "message.max.bytes", check: intRange(0, math.MaxInt32),
		Doc: "The largest record batch a producer may send to this topic (after compression); a larger one is refused with MESSAGE_TOO_LARGE."},
	{Name: "message.downconversion.enable", Kind: KindBoolean, Default: "true", Synonym: "log.message.downconversion.enable", Ignored: true, check: checkBool,
		Doc: "Accepted and ignored: only record batches v2 are served."},
	{Name: "message.format.version", Kind: KindString, Default: "3.0-IV1", Synonym: "log.message.format.version", Ignored: true, check: anyString,
		Doc: "Accepted and ignored: records are stored as record batches v2 (magic 2)."},
	{Name: "message.timestamp.after.max.ms", Kind: KindLong, Default: longMax, Synonym: "log.message.timestamp.after.max.ms", Ignored: true, check: longRange(0, math.MaxInt64),
		Doc: "Accepted and ignored: record timestamps are not checked against the clock."},
	{Name: "message.timestamp.before.max.ms", Kind: KindLong, Default: longMax, Synonym: "log.message.timestamp.before.max.ms", Ignored: true, check: longRange(0, math.MaxInt64),
		Doc: "Accepted and ignored: record timestamps are not checked against the clock."},
	{Name: "message.timestamp.difference.max.ms", Kind: KindLong, Default: longMax, Synonym: "log.message.timestamp.difference.max.ms", Ignored: true, check: longRange(0, math.MaxInt64),
		Doc: "Accepted and ignored: record timestamps are not checked against the clock."},
	{Name: "message.timestamp.type", Kind: KindString, Default: "CreateTime", Synonym: "log.message.timestamp.type", check: oneOf("CreateTime", "LogAppendTime"),
		Doc: "CreateTime: records keep the producer's timestamps. LogAppendTime: every batch is marked with the time the agent appended it, which consumers see as the records' timestamp."},
	{Name: "min.cleanable.dirty.ratio", Kind: KindDouble, Default: "0.5", Synonym: "log.cleaner.min.cleanable.ratio", check: doubleRange(0, 1),
		Doc: "On a compacted topic, a partition is compacted once this share of its compactable bytes was appended since it was last compacted."},
	{Name: "min.compaction.lag.ms", Kind: KindLong, Default: "0", Synonym: "log.cleaner.min.compaction.lag.ms", check: longRange(0, math.MaxInt64),
		Doc: "On a compacted topic, records appended less than this long ago are never compacted away (nor is a partition's newest segment)."},
	{Name: "min.insync.replicas", Kind: KindInt, Default: "1", Synonym: "min.insync.replicas", check: intRange(1, math.MaxInt32),
		Doc: "Accepted: an acknowledged record is durable in the bucket, which is the one in-sync replica (the bucket's own redundancy is what counts), so any value is met."},
	{Name: "preallocate", Kind: KindBoolean, Default: "false", Synonym: "log.preallocate", Ignored: true, check: checkBool, Doc: ignoredDoc},
	{Name: "remote.log.copy.disable", Kind: KindBoolean, Default: "false", Ignored: true, check: checkBool,
		Doc: "Accepted and ignored: there is no tiered storage; the bucket is the only storage."},
	{Name: "remote.log.delete.on.disable", Kind: KindBoolean, Default: "false", Ignored: true, check: checkBool,
		Doc: "Accepted and ignored: there is no tiered storage; the bucket is the only storage."},
	{Name: "remote.storage.enable", Kind: KindBoolean, Default: "false", Ignored: true, check: checkBool,
		Doc: "Accepted and ignored: there is no tiered storage; the bucket is the only storage."},
	{Name: "retention.bytes", Kind: KindLong, Default: "-1", Synonym: "log.retention.bytes", check: checkRetention,
		Doc: "Oldest records are removed while a partition holds more than this many bytes; -1 means no limit (the default)."},
	{Name: "retention.ms", Kind: KindLong, Default: "-1", Synonym: "log.retention.ms", check: checkRetention,
		Doc: "Records appended longer ago than this are removed; -1 keeps them forever (twoway's default; Kafka's is 7 days)."},
	{Name: "segment.bytes", Kind: KindInt, Default: "1073741824", Synonym: "log.segment.bytes", Ignored: true, check: intRange(14, math.MaxInt32), Doc: ignoredDoc},
	{Name: "segment.index.bytes", Kind: KindInt, Default: "10485760", Synonym: "log.index.size.max.bytes", Ignored: true, check: intRange(4, math.MaxInt32), Doc: ignoredDoc},
	{Name: "segment.jitter.ms", Kind: KindLong, Default: "0", Synonym: "log.roll.jitter.ms", Ignored: true, check: longRange(0, math.MaxInt64), Doc: ignoredDoc},
	{Name: "segment.ms", Kind: KindLong, Default: "604800000", Synonym: "log.roll.ms", Ignored: true, check: longRange(1, math.MaxInt64), Doc: ignoredDoc},
	{Name: "unclean.leader.election.enable", Kind: KindBoolean, Default: "false", Synonym: "unclean.leader.election.enable", Ignored: true, check: checkBool,
		Doc: "Accepted and ignored: there are no leaders to elect; every agent serves every partition."},
}

// LookupConfig finds a topic config by name.
func LookupConfig(name string) (ConfigSpec, bool) {
	i := sort.Search(len(TopicConfigSpecs), func(i int) bool { return TopicConfigSpecs[i].Name >= name })
	if i < len(TopicConfigSpecs) && TopicConfigSpecs[i].Name == name {
		return TopicConfigSpecs[i], true
	}
	return ConfigSpec{}, false
}

// NormalizeConfig checks name=value and returns the value as stored.
func NormalizeConfig(name, value string) (string, error) {
	spec, ok := LookupConfig(name)
	if !ok {
		return "", fmt.Errorf("%w: unknown topic config %q (docs/KAFKA.md lists the configs twoway accepts)", ErrInvalidConfig, name)
	}
	v, err := spec.check(strings.TrimSpace(value))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v, not %q", ErrInvalidConfig, name, err, value)
	}
	return v, nil
}

// Set sets config name to value, or returns it to its default when value
// is nil.
func (c *TopicConfig) Set(name string, value *string) error {
	if _, ok := LookupConfig(name); !ok {
		_, err := NormalizeConfig(name, "")
		return err
	}
	if value == nil {
		switch name {
		case "retention.ms":
			c.RetentionMs = -1
		case "retention.bytes":
			c.RetentionBytes = -1
		default:
			delete(c.Configs, name)
		}
		return nil
	}
	v, err := NormalizeConfig(name, *value)
	if err != nil {
		return err
	}
	switch name {
	case "retention.ms":
		c.RetentionMs, _ = strconv.ParseInt(v, 10, 64)
	case "retention.bytes":
		c.RetentionBytes, _ = strconv.ParseInt(v, 10, 64)
	default:
		if c.Configs == nil {
			c.Configs = map[string]string{}
		}
		c.Configs[name] = v
	}
	return nil
}

// Value returns config name's value and whether the topic sets it (false:
// the default).
func (c TopicConfig) Value(name string) (string, bool) {
	switch name {
	case "retention.ms":
		return strconv.FormatInt(c.RetentionMs, 10), c.RetentionMs != -1 && c.RetentionMs != 0
	case "retention.bytes":
		return strconv.FormatInt(c.RetentionBytes, 10), c.RetentionBytes != -1 && c.RetentionBytes != 0
	}
	if v, ok := c.Configs[name]; ok {
		return v, true
	}
	spec, _ := LookupConfig(name)
	return spec.Default, false
}

func (c TopicConfig) long(name string) int64 {
	v, _ := c.Value(name)
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// Compacted reports whether cleanup.policy includes compact.
func (c TopicConfig) Compacted() bool {
	v, _ := c.Value("cleanup.policy")
	return policyHas(v, "compact")
}

// Deletes reports whether cleanup.policy includes delete (retention applies).
func (c TopicConfig) Deletes() bool {
	v, _ := c.Value("cleanup.policy")
	return policyHas(v, "delete")
}

func policyHas(v, p string) bool {
	for _, s := range strings.Split(v, ",") {
		if s == p {
			return true
		}
	}
	return false
}

// MaxMessageBytes is the largest batch a producer may send.
func (c TopicConfig) MaxMessageBytes() int64 { return c.long("max.message.bytes") }

// LogAppendTime reports whether message.timestamp.type is LogAppendTime.
func (c TopicConfig) LogAppendTime() bool {
	v, _ := c.Value("message.timestamp.type")
	return v == "LogAppendTime"
}

// MinCompactionLagMs, DeleteRetentionMs and DirtyRatio tune compaction.
func (c TopicConfig) MinCompactionLagMs() int64 { return c.long("min.compaction.lag.ms") }
func (c TopicConfig) DeleteRetentionMs() int64  { return c.long("delete.retention.ms") }
func (c TopicConfig) DirtyRatio() float64 {
	v, _ := c.Value("min.cleanable.dirty.ratio")
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

// validateConfigs checks every explicitly set config (apply calls it, so
// it must stay deterministic).
func (c TopicConfig) validateConfigs() error {
	for name, v := range c.Configs {
		if name == "retention.ms" || name == "retention.bytes" {
			return fmt.Errorf("%w: %s belongs in its own field", ErrInvalidConfig, name)
		}
		n, err := NormalizeConfig(name, v)
		if err != nil {
			return err
		}
		if n != v {
			return fmt.Errorf("%w: %s: %q is not normalized", ErrInvalidConfig, name, v)
		}
	}
	return nil
}

func cloneConfigs(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func checkPolicy(v string) (string, error) {
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p != "delete" && p != "compact" {
			return "", fmt.Errorf("a list of delete and compact")
		}
		if !policyHas(strings.Join(out, ","), p) {
			out = append(out, p)
		}
	}
	return strings.Join(out, ","), nil
}

func checkRetention(v string) (string, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || (n <= 0 && n != -1) {
		return "", fmt.Errorf("must be a positive integer or -1")
	}
	return strconv.FormatInt(n, 10), nil
}

func longRange(lo, hi int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return "", fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func intRange(lo, hi int64) func(string) (string, error) { return longRange(lo, hi) }

func doubleRange(lo, hi float64) func(string) (string, error) {
	return func(v string) (string, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < lo || f > hi || math.IsNaN(f) {
			return "", fmt.Errorf("must be a number from %g to %g", lo, hi)
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	}
}

func oneOf(vals ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		for _, ok := range vals {
			if strings.EqualFold(v, ok) {
				return ok, nil
			}
		}
		return "", fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
}

func checkBool(v string) (string, error) {
	switch strings.ToLower(v) {
	case "true", "false":
		return strings.ToLower(v), nil
	}
	return "", fmt.Errorf("must be true or false")
}

func anyString(v string) (string, error) { return v, nil }

func anyList(v string) (string, error) {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, ","), nil
}
