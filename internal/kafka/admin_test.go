package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func describeTopicConfig(t *testing.T, cl *kgo.Client, topic string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("describe configs of %s: error %d (%s)", topic, code, str(resp.Resources[0].ErrorMessage))
	}
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = c
	}
	return out
}

func TestAdmin(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc)
	cl := testClient(t, srv.Addr().String())

	// CreateTopics: default partition count, configs, validate-only, and
	// errors per topic.
	create := kmsg.NewPtrCreateTopicsRequest()
	topic := func(name string, partitions int32, configs ...string) kmsg.CreateTopicsRequestTopic {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 3
		for i := 0; i+1 < len(configs); i += 2 {
			v := configs[i+1]
			rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: configs[i], Value: &v})
		}
		return rt
	}
	create.Topics = []kmsg.CreateTopicsRequestTopic{
		topic("a", -1),
		topic("b", 3, "retention.ms", "60000", "retention.bytes", "1000000", "cleanup.policy", "delete"),
		topic("bad name!", 1),
		topic("c", 1, "cleanup.policy", "compacted"),
		topic("d", 1, "segment.bites", "1024"),
		topic("e", 0),
		topic("f", 1, "retention.ms", "soon"),
	}
	resp, err := create.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := []int16{0, 0, kerr.InvalidTopicException.Code, kerr.InvalidConfig.Code, kerr.InvalidConfig.Code, kerr.InvalidPartitions.Code, kerr.InvalidConfig.Code}
	for i, rt := range resp.Topics {
		if rt.ErrorCode != want[i] {
			t.Errorf("create %s: error %d (%s), want %d", rt.Topic, rt.ErrorCode, str(rt.ErrorMessage), want[i])
		}
		if rt.ErrorCode != 0 && (rt.ErrorMessage == nil || *rt.ErrorMessage == "") {
			t.Errorf("create %s: error without a message", rt.Topic)
		}
	}
	if resp.Topics[0].NumPartitions != DefaultPartitions || resp.Topics[0].TopicID == [16]byte{} {
		t.Errorf("topic a: %d partitions, id %x", resp.Topics[0].NumPartitions, resp.Topics[0].TopicID)
	}
	if m := str(resp.Topics[4].ErrorMessage); !strings.Contains(m, "segment.bites") || !strings.Contains(m, "docs/KAFKA.md") {
		t.Errorf("unknown config message does not name it and say where the supported ones are: %s", m)
	}
	if m := str(resp.Topics[3].ErrorMessage); !strings.Contains(m, "cleanup.policy") || !strings.Contains(m, "compacted") {
		t.Errorf("bad value message does not name the config and value: %s", m)
	}
	// Exists now; validate-only creates nothing.
	create.Topics = []kmsg.CreateTopicsRequestTopic{topic("a", 1), topic("g", 2)}
	create.ValidateOnly = true
	resp, err = create.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Topics[0].ErrorCode != kerr.TopicAlreadyExists.Code || resp.Topics[1].ErrorCode != 0 || resp.Topics[1].NumPartitions != 2 {
		t.Fatalf("validate only: %+v", resp.Topics)
	}
	if _, err := svc.Topic("g"); err == nil {
		t.Fatal("validate-only created a topic")
	}

	// DescribeConfigs.
	cfg := describeTopicConfig(t, cl, "b")
	if v := str(cfg["retention.ms"].Value); v != "60000" || cfg["retention.ms"].ReadOnly || cfg["retention.ms"].IsDefault {
		t.Errorf("retention.ms = %s %+v", v, cfg["retention.ms"])
	}
	if c := cfg["cleanup.policy"]; str(c.Value) != "delete" || c.ReadOnly || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("cleanup.policy = %s, read only %v, source %v", str(c.Value), c.ReadOnly, c.Source)
	}
	if c := cfg["segment.bytes"]; str(c.Value) != "1073741824" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("segment.bytes = %s, default %v, source %v", str(c.Value), c.IsDefault, c.Source)
	}

	// IncrementalAlterConfigs: set one, delete the other, reject the rest.
	inc := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "b"
	v := "120000"
	res.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{
		{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: &v},
		{Name: "retention.bytes", Op: kmsg.IncrementalAlterConfigOpDelete},
	}
	inc.Resources = append(inc.Resources, res)
	bad := res
	bad.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "min.insync.replica", Op: kmsg.IncrementalAlterConfigOpSet, Value: &v}}
	inc.Resources = append(inc.Resources, bad)
	incResp, err := inc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if c := incResp.Resources[0].ErrorCode; c != 0 {
		t.Fatalf("incremental alter: error %d (%s)", c, str(incResp.Resources[0].ErrorMessage))
	}
	if c := incResp.Resources[1].ErrorCode; c != kerr.InvalidConfig.Code {
		t.Fatalf("incremental alter of an unsupported config: error %d", c)
	}
	ti, _ := svc.Topic("b")
	if ti.RetentionMs != 120000 || ti.RetentionBytes != -1 {
		t.Fatalf("after incremental alter: retention %d ms, %d bytes", ti.RetentionMs, ti.RetentionBytes)
	}

	// AlterConfigs replaces the set: retention.ms returns to its default.
	alt := kmsg.NewPtrAlterConfigsRequest()
	ar := kmsg.NewAlterConfigsRequestResource()
	ar.ResourceType, ar.ResourceName = kmsg.ConfigResourceTypeTopic, "b"
	rb := "5000"
	ar.Configs = []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.bytes", Value: &rb}}
	alt.Resources = append(alt.Resources, ar)
	if r, err := alt.RequestWith(ctx, cl); err != nil || r.Resources[0].ErrorCode != 0 {
		t.Fatalf("alter configs: %v %+v", err, r)
	}
	ti, _ = svc.Topic("b")
	if ti.RetentionMs != -1 || ti.RetentionBytes != 5000 {
		t.Fatalf("after alter: retention %d ms, %d bytes", ti.RetentionMs, ti.RetentionBytes)
	}

	// CreatePartitions: grow, refuse to shrink.
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cp.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "b", Count: 5}, {Topic: "a", Count: 1}, {Topic: "zz", Count: 2}}
	cpResp, err := cp.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int16{0, kerr.InvalidPartitions.Code, kerr.UnknownTopicOrPartition.Code} {
		if got := cpResp.Topics[i].ErrorCode; got != want {
			t.Errorf("create partitions %s: error %d, want %d", cpResp.Topics[i].Topic, got, want)
		}
	}
	if n, _ := svc.Partitions("b"); n != 5 {
		t.Fatalf("b has %d partitions after growing to 5", n)
	}

	// Metadata reports topic ids that DeleteTopics accepts.
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string][16]byte{}
	for _, mt := range meta.Topics {
		ids[str(mt.Topic)] = mt.TopicID
		if str(mt.Topic) == "b" && len(mt.Partitions) != 5 {
			t.Fatalf("metadata: b has %d partitions", len(mt.Partitions))
		}
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	name := "a"
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: &name}, {TopicID: ids["b"]}, {TopicID: [16]byte{1}}}
	delResp, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int16{0, 0, kerr.UnknownTopicID.Code} {
		if got := delResp.Topics[i].ErrorCode; got != want {
			t.Errorf("delete %d: error %d, want %d", i, got, want)
		}
	}
	if len(svc.Topics()) != 0 {
		t.Fatalf("topics left after delete: %v", svc.Topics())
	}

	// DescribeCluster names this agent.
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if dc.ClusterID != DefaultClusterID || len(dc.Brokers) != 1 || dc.Brokers[0].NodeID != srv.NodeID() || dc.ControllerID != srv.NodeID() {
		t.Fatalf("describe cluster: %+v", dc)
	}
}

// Clients of older Kafka generations (non-flexible versions, topic names
// instead of ids) produce and consume too.
func TestOlderProtocolVersions(t *testing.T) {
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	for _, v := range []struct {
		name string
		v    *kversion.Versions
	}{
		{"1.0", kversion.V1_0_0()},
		{"2.4", kversion.V2_4_0()},
		{"3.0", kversion.V3_0_0()},
	} {
		t.Run(v.name, func(t *testing.T) {
			topic := "old-" + v.name
			cl := testClient(t, addr, kgo.MaxVersions(v.v), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerBatchCompression(kgo.SnappyCompression()))
			createTopic(t, cl, topic, 2)
			want := testRecords(topic, 2, 20)
			produceAll(t, cl, want)
			checkSame(t, want, consumeN(t, addr, topic, len(want), kgo.MaxVersions(v.v)))
		})
	}
}
