package kafka

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/stream"
)

// Topic configs are stream.TopicConfigSpecs: Kafka's names, types and
// defaults; some honoured, the storage-tuning ones accepted and ignored.

// setConfig applies name=value (nil: back to the default) to cfg, or says
// what is wrong, naming the config.
func setConfig(cfg *stream.TopicConfig, name string, value *string) error {
	return cfg.Set(name, value)
}

// describeOpts are what a DescribeConfigs request asks for beyond values.
type describeOpts struct {
	synonyms bool
	docs     bool
}

// describeTopicConfigs lists a topic's configs, all or the names asked for
// (an unknown name is left out, as Kafka does; none asked for means all),
// with Kafka's sources: DYNAMIC_TOPIC_CONFIG for what the topic sets,
// DEFAULT_CONFIG for the rest.
func describeTopicConfigs(ti stream.TopicInfo, names []string, o describeOpts) []kmsg.DescribeConfigsResponseResourceConfig {
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, spec := range stream.TopicConfigSpecs {
		if len(names) > 0 && !contains(names, spec.Name) {
			continue
		}
		value, set := ti.Value(spec.Name)
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.ConfigType = spec.Name, kmsg.ConfigType(spec.Kind)
		c.Value = &value
		c.IsDefault = !set
		c.Source = kmsg.ConfigSourceDefaultConfig
		if set {
			c.Source = kmsg.ConfigSourceDynamicTopicConfig
		}
		if o.synonyms {
			if set {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(spec.Name, value, kmsg.ConfigSourceDynamicTopicConfig))
			}
			if spec.Synonym != "" {
				c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(spec.Synonym, spec.Default, kmsg.ConfigSourceDefaultConfig))
			}
		}
		if o.docs {
			doc := spec.Doc
			c.Documentation = &doc
		}
		out = append(out, c)
	}
	return out
}

func synonym(name, value string, src kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	sy := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	v := value
	sy.Name, sy.Value, sy.Source = name, &v, src
	return sy
}

// brokerConfig is one config a broker resource describes as.
type brokerConfig struct {
	name, value string
	kind        kmsg.ConfigType
	static      bool // set by the agent's configuration, not Kafka's default
	doc         string
}

// brokerConfigs are the configs an agent describes as a Kafka broker's:
// the broker-level defaults of the topic configs (their synonyms) and the
// settings clients and tools look at. None can be altered through Kafka.
func (s *Server) brokerConfigs() []brokerConfig {
	out := []brokerConfig{
		{"auto.create.topics.enable", strconv.FormatBool(!s.cfg.NoAutoCreateTopics), kmsg.ConfigTypeBoolean, s.cfg.NoAutoCreateTopics, "Metadata requests create unknown topics (Config.NoAutoCreateTopics turns it off)."},
		{"broker.id", strconv.Itoa(int(s.nodeID)), kmsg.ConfigTypeInt, true, "This agent's node id."},
		{"default.replication.factor", "1", kmsg.ConfigTypeInt, false, "One copy, in the bucket."},
		{"delete.topic.enable", "true", kmsg.ConfigTypeBoolean, false, "Topics can be deleted."},
		{"log.cleaner.enable", "true", kmsg.ConfigTypeBoolean, false, "Compacted topics are compacted by the agent holding the janitor lease."},
		{"node.id", strconv.Itoa(int(s.nodeID)), kmsg.ConfigTypeInt, true, "This agent's node id."},
		{"num.partitions", strconv.Itoa(int(s.cfg.DefaultPartitions)), kmsg.ConfigTypeInt, s.cfg.DefaultPartitions != DefaultPartitions, "Partitions of a topic created without a count."},
		{"offsets.topic.num.partitions", strconv.Itoa(internalTopicPartitions), kmsg.ConfigTypeInt, false, "Partitions __consumer_offsets is listed with (offsets live in the commit log)."},
		{"offsets.topic.replication.factor", "1", kmsg.ConfigTypeShort, false, "One copy, in the bucket."},
		{"socket.request.max.bytes", strconv.Itoa(s.cfg.MaxFrameBytes), kmsg.ConfigTypeInt, s.cfg.MaxFrameBytes != DefaultMaxFrameBytes, "The largest request a client may send (Config.MaxFrameBytes)."},
		{"transaction.state.log.min.isr", "1", kmsg.ConfigTypeInt, false, "One copy, in the bucket."},
		{"transaction.state.log.replication.factor", "1", kmsg.ConfigTypeShort, false, "One copy, in the bucket."},
	}
	for _, spec := range stream.TopicConfigSpecs {
		if spec.Synonym == "" {
			continue
		}
		out = append(out, brokerConfig{spec.Synonym, spec.Default, kmsg.ConfigType(spec.Kind), false, "The default of topic config " + spec.Name + ". " + spec.Doc})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	// Some topic configs have their own name at the broker too
	// (compression.type, min.insync.replicas): one entry each.
	return slices.CompactFunc(out, func(a, b brokerConfig) bool { return a.name == b.name })
}

// describeBrokerConfigs describes broker resource name: this agent's
// configs whatever broker id it names (every agent answers alike), and
// the cluster defaults for an empty name.
func (s *Server) describeBrokerConfigs(name string, names []string, o describeOpts) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	if name != "" {
		if _, err := strconv.ParseInt(name, 10, 32); err != nil {
			return nil, fmt.Errorf("broker resource name %q is not a broker id (or empty, for the cluster defaults)", name)
		}
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, bc := range s.brokerConfigs() {
		if len(names) > 0 && !contains(names, bc.name) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		v := bc.value
		c.Name, c.Value, c.ConfigType, c.ReadOnly = bc.name, &v, bc.kind, true
		c.Source, c.IsDefault = kmsg.ConfigSourceDefaultConfig, true
		if bc.static {
			c.Source, c.IsDefault = kmsg.ConfigSourceStaticBrokerConfig, false
		}
		if o.synonyms {
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(bc.name, bc.value, c.Source))
		}
		if o.docs {
			doc := bc.doc
			c.Documentation = &doc
		}
		out = append(out, c)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// configAuthorized checks op (describe_configs or alter_configs) on a config
// resource, as Kafka does: a topic's own, the cluster's for brokers and
// broker loggers, a group's. It returns the error code and message of a
// refusal, or 0.
func (s *Server) configAuthorized(ctx context.Context, op string, t kmsg.ConfigResourceType, name string) (int16, *string) {
	res := ""
	switch t {
	case kmsg.ConfigResourceTypeTopic:
		res = auth.ResTopic
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		res, name = auth.ResCluster, auth.ClusterName
	case kmsg.ConfigResourceTypeGroupConfig:
		res = auth.ResGroup
	default:
		return 0, nil
	}
	if err := s.authorize(ctx, op, res, name); err != nil {
		return deniedCode(res), errMessage(err)
	}
	return 0, nil
}

// describeConfigs describes the resources the principal may
// DESCRIBE_CONFIGS.
func (s *Server) describeConfigs(ctx context.Context, req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	o := describeOpts{synonyms: req.IncludeSynonyms, docs: req.IncludeDocumentation}
	for _, rr := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = rr.ResourceType, rr.ResourceName
		if out.ErrorCode, out.ErrorMessage = s.configAuthorized(ctx, auth.OpDescribeConfigs, rr.ResourceType, rr.ResourceName); out.ErrorCode != 0 {
			resp.Resources = append(resp.Resources, out)
			continue
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			ti, ok := s.lookupTopic(ctx, rr.ResourceName)
			if isInternalTopic(rr.ResourceName) {
				ti, ok = internalTopicInfo(rr.ResourceName), true
				ti.Configs = map[string]string{"cleanup.policy": "compact"}
			}
			if !ok {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				out.ErrorMessage = errMessage(fmt.Errorf("%w: %s", stream.ErrUnknownTopic, rr.ResourceName))
				break
			}
			out.Configs = describeTopicConfigs(ti, rr.ConfigNames, o)
		case kmsg.ConfigResourceTypeBroker:
			configs, err := s.describeBrokerConfigs(rr.ResourceName, rr.ConfigNames, o)
			if err != nil {
				out.ErrorCode, out.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
				break
			}
			out.Configs = configs
		default:
			out.ErrorCode = kerr.InvalidRequest.Code
			out.ErrorMessage = errMessage(fmt.Errorf("config resource type %d is not supported: twoway has topic configs only", rr.ResourceType))
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

// alterTopicConfig validates a topic's new config set against the topic
// and, unless validateOnly, commits it. It returns a Kafka error code and
// message.
func (s *Server) alterTopicConfig(ctx context.Context, name string, change func(*stream.TopicConfig) error, validateOnly bool) (int16, *string) {
	if isInternalTopic(name) {
		return kerr.InvalidRequest.Code, errMessage(fmt.Errorf("%s is an internal topic: its configs cannot be altered", name))
	}
	ti, ok := s.lookupTopic(ctx, name)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, errMessage(fmt.Errorf("%w: %s", stream.ErrUnknownTopic, name))
	}
	cfg := ti.TopicConfig
	cfg.Configs = maps.Clone(cfg.Configs) // ti's stays as it was, to compare
	if err := change(&cfg); err != nil {
		return kerr.InvalidConfig.Code, errMessage(err)
	}
	if validateOnly || sameConfigs(cfg, ti.TopicConfig) {
		return 0, nil
	}
	if err := s.svc.SetTopicConfigs(ctx, cfg); err != nil {
		return errorCode(err), errMessage(err)
	}
	return 0, nil
}

func sameConfigs(a, b stream.TopicConfig) bool {
	if a.RetentionMs != b.RetentionMs || a.RetentionBytes != b.RetentionBytes || len(a.Configs) != len(b.Configs) {
		return false
	}
	for k, v := range a.Configs {
		if w, ok := b.Configs[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func nonTopicResource(t kmsg.ConfigResourceType) (int16, *string) {
	return kerr.InvalidRequest.Code, errMessage(fmt.Errorf("config resource type %d cannot be altered: twoway has topic configs only (broker configs describe the agent and are read-only)", t))
}

// alterConfigs replaces a topic's config set: what is not given returns to
// its default. It needs ALTER_CONFIGS on the resource.
func (s *Server) alterConfigs(ctx context.Context, req *kmsg.AlterConfigsRequest) *kmsg.AlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		out := kmsg.NewAlterConfigsResponseResource()
		out.ResourceType, out.ResourceName = rr.ResourceType, rr.ResourceName
		if out.ErrorCode, out.ErrorMessage = s.configAuthorized(ctx, auth.OpAlterConfigs, rr.ResourceType, rr.ResourceName); out.ErrorCode != 0 {
			resp.Resources = append(resp.Resources, out)
			continue
		}
		if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
			out.ErrorCode, out.ErrorMessage = nonTopicResource(rr.ResourceType)
			resp.Resources = append(resp.Resources, out)
			continue
		}
		change := func(cfg *stream.TopicConfig) error {
			next := stream.TopicConfig{Name: cfg.Name, Partitions: cfg.Partitions, RetentionMs: -1, RetentionBytes: -1}
			for _, c := range rr.Configs {
				if err := setConfig(&next, c.Name, c.Value); err != nil {
					return err
				}
			}
			*cfg = next
			return nil
		}
		out.ErrorCode, out.ErrorMessage = s.alterTopicConfig(ctx, rr.ResourceName, change, req.ValidateOnly)
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

// incrementalAlterConfigs sets or deletes (returns to default) single
// configs, and appends to or subtracts from list configs (cleanup.policy,
// the throttled replicas). It needs ALTER_CONFIGS on the resource.
func (s *Server) incrementalAlterConfigs(ctx context.Context, req *kmsg.IncrementalAlterConfigsRequest) *kmsg.IncrementalAlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		out := kmsg.NewIncrementalAlterConfigsResponseResource()
		out.ResourceType, out.ResourceName = rr.ResourceType, rr.ResourceName
		if out.ErrorCode, out.ErrorMessage = s.configAuthorized(ctx, auth.OpAlterConfigs, rr.ResourceType, rr.ResourceName); out.ErrorCode != 0 {
			resp.Resources = append(resp.Resources, out)
			continue
		}
		if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
			out.ErrorCode, out.ErrorMessage = nonTopicResource(rr.ResourceType)
			resp.Resources = append(resp.Resources, out)
			continue
		}
		change := func(cfg *stream.TopicConfig) error {
			for _, c := range rr.Configs {
				if err := incrementalChange(cfg, c); err != nil {
					return err
				}
			}
			return nil
		}
		out.ErrorCode, out.ErrorMessage = s.alterTopicConfig(ctx, rr.ResourceName, change, req.ValidateOnly)
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

// incrementalChange applies one IncrementalAlterConfigs operation.
func incrementalChange(cfg *stream.TopicConfig, c kmsg.IncrementalAlterConfigsRequestResourceConfig) error {
	switch c.Op {
	case kmsg.IncrementalAlterConfigOpSet:
		return setConfig(cfg, c.Name, c.Value)
	case kmsg.IncrementalAlterConfigOpDelete:
		return setConfig(cfg, c.Name, nil)
	case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
		spec, ok := stream.LookupConfig(c.Name)
		if !ok {
			return setConfig(cfg, c.Name, c.Value) // names it as unknown
		}
		if spec.Kind != stream.KindList {
			return fmt.Errorf("%w: %s on %s: only list configs take APPEND and SUBTRACT", stream.ErrInvalidConfig, c.Op, c.Name)
		}
		cur, _ := cfg.Value(c.Name)
		items := splitList(cur)
		for _, v := range splitList(strOf(c.Value)) {
			i := slices.Index(items, v)
			switch {
			case c.Op == kmsg.IncrementalAlterConfigOpAppend && i < 0:
				items = append(items, v)
			case c.Op == kmsg.IncrementalAlterConfigOpSubtract && i >= 0:
				items = slices.Delete(items, i, i+1)
			}
		}
		if len(items) == 0 && c.Name == "cleanup.policy" {
			return fmt.Errorf("%w: cleanup.policy cannot be empty", stream.ErrInvalidConfig)
		}
		v := strings.Join(items, ",")
		return setConfig(cfg, c.Name, &v)
	}
	return fmt.Errorf("%w: unknown operation %d on %s", stream.ErrInvalidConfig, c.Op, c.Name)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func strOf(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
