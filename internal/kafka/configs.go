package kafka

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/stream"
)

// configSpec is a topic config as Kafka names it. Only retention.ms and
// retention.bytes can be set; the others describe how twoway behaves and
// accept only that value.
type configSpec struct {
	name  string
	fixed string // the only value of a read-only config
	typ   kmsg.ConfigType
	doc   string
}

func (c configSpec) readOnly() bool { return c.fixed != "" }

var topicConfigs = []configSpec{
	{"retention.ms", "", kmsg.ConfigTypeLong, "Records older than this (by append time) are removed; -1 keeps them forever (the default)."},
	{"retention.bytes", "", kmsg.ConfigTypeLong, "Oldest records are removed while a partition holds more than this; -1 means no limit (the default)."},
	{"cleanup.policy", "delete", kmsg.ConfigTypeList, "Records are removed by retention; compaction is not supported."},
	{"compression.type", "producer", kmsg.ConfigTypeString, "Batches are stored as the producer compressed them."},
	{"message.timestamp.type", "CreateTime", kmsg.ConfigTypeString, "Records keep the producer's timestamps."},
}

func configFor(name string) (configSpec, bool) {
	for _, c := range topicConfigs {
		if c.name == name {
			return c, true
		}
	}
	return configSpec{}, false
}

// retention is a change to a topic's retention; nil fields stay.
type retention struct{ ms, bytes *int64 }

func (r retention) empty() bool { return r.ms == nil && r.bytes == nil }

var minusOne = int64(-1)

// setConfig applies name=value to r. A nil value means the default.
func setConfig(r *retention, name string, value *string) error {
	spec, ok := configFor(name)
	if !ok {
		return fmt.Errorf("unknown or unsupported topic config %q: twoway topics support retention.ms and retention.bytes (cleanup.policy=delete, compression.type=producer and message.timestamp.type=CreateTime are fixed)", name)
	}
	if spec.readOnly() {
		if value != nil && *value != spec.fixed {
			return fmt.Errorf("topic config %s is fixed at %q in twoway, not %q", name, spec.fixed, *value)
		}
		return nil
	}
	v := minusOne
	if value != nil {
		n, err := strconv.ParseInt(*value, 10, 64)
		if err != nil || (n <= 0 && n != -1) {
			return fmt.Errorf("topic config %s must be a positive integer or -1, not %q", name, *value)
		}
		v = n
	}
	if name == "retention.ms" {
		r.ms = &v
	} else {
		r.bytes = &v
	}
	return nil
}

// describeTopicConfigs lists a topic's configs, all or the names asked for
// (an unknown name is left out, as Kafka does; none asked for means all).
func describeTopicConfigs(ti stream.TopicInfo, names []string, version int16) []kmsg.DescribeConfigsResponseResourceConfig {
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, spec := range topicConfigs {
		if len(names) > 0 && !contains(names, spec.name) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.ReadOnly, c.ConfigType = spec.name, spec.readOnly(), spec.typ
		value, isDefault := spec.fixed, true
		switch spec.name {
		case "retention.ms":
			value, isDefault = strconv.FormatInt(ti.RetentionMs, 10), ti.RetentionMs == -1
		case "retention.bytes":
			value, isDefault = strconv.FormatInt(ti.RetentionBytes, 10), ti.RetentionBytes == -1
		}
		c.Value = &value
		c.IsDefault = isDefault
		c.Source = kmsg.ConfigSourceDynamicTopicConfig
		if isDefault {
			c.Source = kmsg.ConfigSourceDefaultConfig
		}
		if version >= 3 {
			doc := spec.doc
			c.Documentation = &doc
		}
		out = append(out, c)
	}
	return out
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
			if !ok {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				out.ErrorMessage = errMessage(fmt.Errorf("%w: %s", stream.ErrUnknownTopic, rr.ResourceName))
				break
			}
			out.Configs = describeTopicConfigs(ti, rr.ConfigNames, req.Version)
		case kmsg.ConfigResourceTypeBroker:
			// twoway has no broker configs to report; an empty list lets
			// tools that describe brokers carry on.
			out.Configs = []kmsg.DescribeConfigsResponseResourceConfig{}
		default:
			out.ErrorCode = kerr.InvalidRequest.Code
			out.ErrorMessage = errMessage(fmt.Errorf("config resource type %d is not supported: twoway has topic configs only", rr.ResourceType))
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

// alterTopicConfig validates a change against the topic and, unless
// validateOnly, commits it. It returns a Kafka error code and message.
func (s *Server) alterTopicConfig(ctx context.Context, name string, r retention, validateOnly bool) (int16, *string) {
	ti, ok := s.lookupTopic(ctx, name)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, errMessage(fmt.Errorf("%w: %s", stream.ErrUnknownTopic, name))
	}
	if validateOnly || r.empty() {
		return 0, nil
	}
	if r.ms != nil && *r.ms == ti.RetentionMs {
		r.ms = nil
	}
	if r.bytes != nil && *r.bytes == ti.RetentionBytes {
		r.bytes = nil
	}
	if r.empty() {
		return 0, nil
	}
	if err := s.svc.AlterTopic(ctx, name, 0, r.ms, r.bytes); err != nil {
		return errorCode(err), errMessage(err)
	}
	return 0, nil
}

func nonTopicResource(t kmsg.ConfigResourceType) (int16, *string) {
	return kerr.InvalidRequest.Code, errMessage(fmt.Errorf("config resource type %d cannot be altered: twoway has topic configs only (retention.ms, retention.bytes)", t))
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
		r := retention{ms: &minusOne, bytes: &minusOne}
		var bad error
		for _, c := range rr.Configs {
			if err := setConfig(&r, c.Name, c.Value); err != nil && bad == nil {
				bad = err
			}
		}
		if bad != nil {
			out.ErrorCode, out.ErrorMessage = kerr.InvalidConfig.Code, errMessage(bad)
		} else {
			out.ErrorCode, out.ErrorMessage = s.alterTopicConfig(ctx, rr.ResourceName, r, req.ValidateOnly)
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

// incrementalAlterConfigs sets or deletes (returns to default) single
// configs. APPEND and SUBTRACT apply to list configs, which twoway has none
// of that can change. It needs ALTER_CONFIGS on the resource.
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
		var r retention
		var bad error
		for _, c := range rr.Configs {
			var err error
			switch c.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				err = setConfig(&r, c.Name, c.Value)
			case kmsg.IncrementalAlterConfigOpDelete:
				err = setConfig(&r, c.Name, nil)
			default:
				err = fmt.Errorf("operation %s on %s is not supported: twoway topic configs take SET and DELETE", c.Op, c.Name)
			}
			if err != nil && bad == nil {
				bad = err
			}
		}
		if bad != nil {
			out.ErrorCode, out.ErrorMessage = kerr.InvalidConfig.Code, errMessage(bad)
		} else {
			out.ErrorCode, out.ErrorMessage = s.alterTopicConfig(ctx, rr.ResourceName, r, req.ValidateOnly)
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}
