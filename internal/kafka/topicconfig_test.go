package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

// A valid value other than the default for every topic config.
var nonDefault = map[string]string{
	"cleanup.policy":                          "compact,delete",
	"compression.gzip.level":                  "5",
	"compression.lz4.level":                   "4",
	"compression.type":                        "zstd",
	"compression.zstd.level":                  "7",
	"delete.retention.ms":                     "1000",
	"file.delete.delay.ms":                    "1",
	"flush.messages":                          "10",
	"flush.ms":                                "100",
	"follower.replication.throttled.replicas": "0:1,1:1",
	"index.interval.bytes":                    "100",
	"leader.replication.throttled.replicas":   "0:1",
	"local.retention.bytes":                   "1000",
	"local.retention.ms":                      "1000",
	"max.compaction.lag.ms":                   "60000",
	"max.message.bytes":                       "10485760",
	"message.downconversion.enable":           "false",
	"message.format.version":                  "2.8",
	"message.timestamp.after.max.ms":          "1000",
	"message.timestamp.before.max.ms":         "1000",
	"message.timestamp.difference.max.ms":     "1000",
	"message.timestamp.type":                  "LogAppendTime",
	"min.cleanable.dirty.ratio":               "0.1",
	"min.compaction.lag.ms":                   "1000",
	"min.insync.replicas":                     "2",
	"preallocate":                             "true",
	"remote.log.copy.disable":                 "true",
	"remote.log.delete.on.disable":            "true",
	"remote.storage.enable":                   "true",
	"retention.bytes":                         "1048576",
	"retention.ms":                            "86400000",
	"segment.bytes":                           "1048576",
	"segment.index.bytes":                     "4096",
	"segment.jitter.ms":                       "10",
	"segment.ms":                              "3600000",
	"unclean.leader.election.enable":          "true",
}

func configsOf(t *testing.T, adm *kadm.Client, topic string) map[string]kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v %s", topic, err, rc.Err, rc.ErrMessage)
	}
	out := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		out[c.Key] = c
	}
	return out
}

// Topic creation with each config through franz-go's admin client: every
// config is kept and described with its source (and its broker default as a
// synonym); an unknown one or a bad value is refused naming it; SET,
// DELETE, APPEND and SUBTRACT and the whole-set AlterConfigs work.
func TestTopicConfigsThroughKadm(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc)
	adm := kadm.NewClient(testClient(t, srv.Addr().String()))

	if len(nonDefault) != len(stream.TopicConfigSpecs) {
		t.Fatalf("the test knows %d configs, twoway %d", len(nonDefault), len(stream.TopicConfigSpecs))
	}
	for _, spec := range stream.TopicConfigSpecs {
		v := nonDefault[spec.Name]
		topic := "cfg-" + strings.ReplaceAll(spec.Name, ".", "-")
		resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{spec.Name: &v}, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create with %s=%s: %v %v %s", spec.Name, v, err, resp.Err, resp.ErrMessage)
		}
		cfgs := configsOf(t, adm, topic)
		c := cfgs[spec.Name]
		if c.MaybeValue() != v || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("%s: described as %q from %v, want %q from DYNAMIC_TOPIC_CONFIG", spec.Name, c.MaybeValue(), c.Source, v)
		}
		if len(c.Synonyms) == 0 || c.Synonyms[0].Key != spec.Name || (spec.Synonym != "" && (len(c.Synonyms) != 2 || c.Synonyms[1].Key != spec.Synonym || c.Synonyms[1].Source != kmsg.ConfigSourceDefaultConfig)) {
			t.Errorf("%s: synonyms %+v", spec.Name, c.Synonyms)
		}
		if len(cfgs) != len(stream.TopicConfigSpecs) {
			t.Errorf("%s: %d configs described, want all %d", topic, len(cfgs), len(stream.TopicConfigSpecs))
		}
		for name, other := range cfgs {
			if name != spec.Name && other.Source != kmsg.ConfigSourceDefaultConfig {
				t.Errorf("%s: %s not set, but its source is %v", topic, name, other.Source)
			}
		}
	}
	// All at once, as provisioning tools do.
	all := map[string]*string{}
	for k, v := range nonDefault {
		all[k] = &v
	}
	if resp, err := adm.CreateTopic(ctx, 2, -1, all, "everything"); err != nil || resp.Err != nil {
		t.Fatalf("create with every config: %v %v %s", err, resp.Err, resp.ErrMessage)
	}
	for k, v := range nonDefault {
		if c := configsOf(t, adm, "everything")[k]; c.MaybeValue() != v {
			got := c.MaybeValue()
			t.Errorf("everything: %s = %q, want %q", k, got, v)
		}
	}

	for _, bad := range [][2]string{{"segment.bites", "1"}, {"cleanup.policy", "compacted"}, {"max.message.bytes", "big"}} {
		resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{bad[0]: &bad[1]}, "bad")
		if !errors.Is(err, kerr.InvalidConfig) || !errors.Is(resp.Err, kerr.InvalidConfig) || !strings.Contains(resp.ErrMessage, bad[0]) {
			t.Errorf("create with %s=%s: %v %v %q, want INVALID_CONFIG naming it", bad[0], bad[1], err, resp.Err, resp.ErrMessage)
		}
	}
	if _, err := svc.Topic("bad"); err == nil {
		t.Fatal("a topic with a bad config was created")
	}

	// IncrementalAlterConfigs.
	alter := func(cs ...kadm.AlterConfig) {
		t.Helper()
		rs, err := adm.AlterTopicConfigs(ctx, cs, "cfg-cleanup-policy")
		if err != nil || rs[0].Err != nil {
			t.Fatalf("alter %+v: %v %+v", cs, err, rs)
		}
	}
	val := func(s string) *string { return &s }
	alter(kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: val("delete")})
	if c := configsOf(t, adm, "cfg-cleanup-policy")["cleanup.policy"]; c.MaybeValue() != "compact" {
		got := c.MaybeValue()
		t.Fatalf("after subtracting delete: %q", got)
	}
	alter(kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: val("delete")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "min.insync.replicas", Value: val("3")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: val("5000")})
	cfgs := configsOf(t, adm, "cfg-cleanup-policy")
	value := func(name string) string { c := cfgs[name]; return c.MaybeValue() }
	if value("cleanup.policy") != "compact,delete" || value("min.insync.replicas") != "3" || value("retention.ms") != "5000" {
		t.Fatalf("after append and set: %q %q %q", value("cleanup.policy"), value("min.insync.replicas"), value("retention.ms"))
	}
	alter(kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "cleanup.policy"}, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "retention.ms"})
	cfgs = configsOf(t, adm, "cfg-cleanup-policy")
	if c := cfgs["cleanup.policy"]; c.MaybeValue() != "delete" || c.Source != kmsg.ConfigSourceDefaultConfig || value("retention.ms") != "-1" {
		t.Fatalf("after delete: %+v %q", c, value("retention.ms"))
	}
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "max.message.bytes", Value: val("1")}}, "cfg-cleanup-policy")
	if err != nil || !errors.Is(rs[0].Err, kerr.InvalidConfig) {
		t.Fatalf("append to a config that is not a list: %v %+v", err, rs)
	}
	// AlterConfigs replaces the whole set.
	rs, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: val("1000")}}, "cfg-cleanup-policy")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter configs: %v %+v", err, rs)
	}
	cfgs = configsOf(t, adm, "cfg-cleanup-policy")
	if value("segment.ms") != "1000" || cfgs["min.insync.replicas"].Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("after alter configs: %+v %+v", cfgs["segment.ms"], cfgs["min.insync.replicas"])
	}

	// Broker configs: of an agent, and the cluster defaults.
	for _, brokers := range [][]int32{{srv.NodeID()}, nil} {
		rcs, err := adm.DescribeBrokerConfigs(ctx, brokers...)
		if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
			t.Fatalf("describe broker %v: %v %+v", brokers, err, rcs)
		}
		got := map[string]string{}
		for _, c := range rcs[0].Configs {
			got[c.Key] = c.MaybeValue()
		}
		for k, v := range map[string]string{"message.max.bytes": "1048588", "log.cleanup.policy": "delete", "num.partitions": "1",
			"default.replication.factor": "1", "min.insync.replicas": "1", "log.retention.ms": "-1", "broker.id": fmt.Sprint(srv.NodeID())} {
			if got[k] != v {
				t.Errorf("broker %v: %s = %q, want %q", brokers, k, got[k], v)
			}
		}
	}
	// Documentation, when asked for.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeDocumentation = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, "everything", []string{"segment.bytes", "min.insync.replicas"}
	req.Resources = append(req.Resources, rr)
	dresp, err := req.RequestWith(ctx, testClient(t, srv.Addr().String()))
	if err != nil || len(dresp.Resources) != 1 || len(dresp.Resources[0].Configs) != 2 {
		t.Fatalf("describe with documentation: %v %+v", err, dresp)
	}
	for _, c := range dresp.Resources[0].Configs {
		if doc := str(c.Documentation); (c.Name == "segment.bytes" && !strings.Contains(doc, "ignored")) || (c.Name == "min.insync.replicas" && !strings.Contains(doc, "bucket")) {
			t.Errorf("%s documented as %q", c.Name, doc)
		}
	}
}

// A 5 MiB record goes into a topic with max.message.bytes of 10 MiB and
// reads back whole; a larger batch than the topic allows is refused with
// MESSAGE_TOO_LARGE, as is a 2 MiB one with Kafka's default.
func TestLargeRecordsAndMaxMessageBytes(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	adm := kadm.NewClient(testClient(t, addr))
	ten := "10485760"
	if resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &ten}, "big"); err != nil || resp.Err != nil {
		t.Fatal(err, resp.Err)
	}
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, "default"); err != nil || resp.Err != nil {
		t.Fatal(err, resp.Err)
	}
	cl := testClient(t, addr, kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(2), kgo.ProducerLinger(0))
	value := make([]byte, 5<<20)
	rand.Read(value)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "big", Key: []byte("k"), Value: value}).FirstErr(); err != nil {
		t.Fatalf("5 MiB record: %v", err)
	}
	huge := make([]byte, 10<<20+1000)
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "big", Value: huge}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("a record over max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "default", Value: make([]byte, 2<<20)}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("2 MiB into a topic with the default max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
	got := consumeN(t, addr, "big", 1)
	if !bytes.Equal(got[0].Value, value) || got[0].Offset != 0 {
		t.Fatalf("read back %d bytes at offset %d", len(got[0].Value), got[0].Offset)
	}
}

// message.timestamp.type=LogAppendTime: consumers see the append time, and
// the batch says so.
func TestLogAppendTimeThroughFranzGo(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	adm := kadm.NewClient(testClient(t, addr))
	lat := "LogAppendTime"
	if resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"message.timestamp.type": &lat}, "stamped"); err != nil || resp.Err != nil {
		t.Fatal(err, resp.Err)
	}
	before := time.Now().Add(-time.Second)
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	produceAll(t, testClient(t, addr), []*kgo.Record{{Topic: "stamped", Key: []byte("k"), Value: []byte("v"), Timestamp: old}})
	got := consumeN(t, addr, "stamped", 1)
	if got[0].Timestamp.Before(before) || got[0].Attrs.TimestampType() != 1 {
		t.Fatalf("record timestamp %v (type %d), want the append time (after %v, type 1)", got[0].Timestamp, got[0].Attrs.TimestampType(), before)
	}
}

// __consumer_offsets is listed, flagged internal, and clients cannot
// produce to it, create, delete or alter it; regex consumers skip it.
func TestInternalTopics(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	cl := testClient(t, addr)
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "user-topic", 1)

	all, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	off, ok := all["__consumer_offsets"]
	if !ok || !off.IsInternal || len(off.Partitions) != internalTopicPartitions || all["user-topic"].IsInternal {
		t.Fatalf("metadata: %+v", all)
	}
	user, err := adm.ListTopics(ctx)
	if err != nil || len(user) != 1 || !user.Has("user-topic") {
		t.Fatalf("topics without internal ones: %v %v", user.Names(), err)
	}
	named, err := adm.ListTopicsWithInternal(ctx, "__consumer_offsets")
	if err != nil || named["__consumer_offsets"].Err != nil || !named["__consumer_offsets"].IsInternal {
		t.Fatalf("metadata naming it: %+v %v", named, err)
	}

	byID := kmsg.NewPtrMetadataRequest()
	byID.Topics = []kmsg.MetadataRequestTopic{{TopicID: off.ID}}
	if resp, err := byID.RequestWith(ctx, cl); err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || str(resp.Topics[0].Topic) != "__consumer_offsets" || !resp.Topics[0].IsInternal {
		t.Fatalf("metadata by topic id: %v %+v", err, resp)
	}

	pcl := testClient(t, addr, kgo.RecordRetries(1))
	err = pcl.ProduceSync(ctx, &kgo.Record{Topic: "__consumer_offsets", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to __consumer_offsets: %v, want INVALID_TOPIC_EXCEPTION", err)
	}
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, "__consumer_offsets"); !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("create __consumer_offsets: %v %v", err, resp.Err)
	}
	if resp, err := adm.DeleteTopic(ctx, "__consumer_offsets"); !errors.Is(resp.Err, kerr.InvalidRequest) {
		t.Fatalf("delete __consumer_offsets: %v %v", err, resp.Err)
	}
	if rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: new(string)}}, "__consumer_offsets"); err != nil || len(rs) != 1 || rs[0].Err == nil {
		t.Fatalf("alter __consumer_offsets: %v %+v", err, rs)
	}
	if c := configsOf(t, adm, "__consumer_offsets")["cleanup.policy"]; c.MaybeValue() != "compact" {
		t.Fatalf("__consumer_offsets cleanup.policy = %q", c.MaybeValue())
	}
	if _, err := svc.Topic("__consumer_offsets"); err == nil {
		t.Fatal("a streams topic named __consumer_offsets was created")
	}

	produceAll(t, cl, []*kgo.Record{{Topic: "user-topic", Value: []byte("hello")}})
	re := testClient(t, addr, kgo.ConsumeRegex(), kgo.ConsumeTopics(".*"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	fs := re.PollFetches(pctx)
	fs.EachError(func(topic string, p int32, err error) { t.Fatalf("regex consumer: %s/%d: %v", topic, p, err) })
	if recs := fs.Records(); len(recs) != 1 || recs[0].Topic != "user-topic" {
		t.Fatalf("regex consumer got %d records", len(recs))
	}
}

// A KTable-style changelog: 100k updates over 1k keys, 100 of them deleted
// at the end, into a compacted topic through franz-go. Key compaction
// leaves one record per key (the tombstones while delete.retention.ms
// lasts, then none), at the offsets they were acknowledged at; a franz-go
// consumer from the beginning rebuilds the same final map, and one whose
// position points into a removed gap reads on from the next record. Also
// after the agent restarts from its checkpoint.
func TestCompactedChangelogFile(t *testing.T) {
	runChangelog(t, testBucket(t))
}

func TestCompactedChangelogS3(t *testing.T) {
	runChangelog(t, s3TestBucket(t))
}

func s3TestBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	raw := os.Getenv("TWOWAY_TEST_S3_URL")
	if raw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TWOWAY_TEST_S3_URL is not set under CI: the S3 tests must run (make test starts MinIO)")
		}
		t.Skip("TWOWAY_TEST_S3_URL not set; `make test` runs this against MinIO")
	}
	q := ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw, q = raw[:i], raw[i:]
	}
	b, err := bucketurl.Open(context.Background(), fmt.Sprintf("%s/%s-%d%s", strings.TrimSuffix(raw, "/"), t.Name(), time.Now().UnixNano(), q))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runChangelog(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	open := func() *stream.Service {
		svc, err := stream.Open(ctx, b, stream.Options{Log: commitlog.Options{
			Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond,
			Logger: quietLogger(), NoJanitor: true,
		}, Compact: stream.CompactOptions{Disabled: true}})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	svc := open()
	srv := testServer(t, svc)
	addr := srv.Addr().String()
	adm := kadm.NewClient(testClient(t, addr))
	configs := map[string]*string{}
	for k, v := range map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000", "min.cleanable.dirty.ratio": "0", "segment.bytes": "1048576"} {
		configs[k] = &v
	}
	if resp, err := adm.CreateTopic(ctx, 1, 3, configs, "changelog"); err != nil || resp.Err != nil {
		t.Fatal(err, resp.Err)
	}

	other := open()
	defer other.Close()

	const keys, updates, deleted = 1000, 100_000, 100
	acked := map[int64][2]string{} // offset → key, value ("" for a tombstone)
	final := map[string]string{}
	produce := func(recs []*kgo.Record) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cl := testClient(t, addr, kgo.DefaultProduceTopic("changelog"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		rs := cl.ProduceSync(pctx, recs...)
		if err := rs.FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range rs {
			acked[r.Record.Offset] = [2]string{string(r.Record.Key), string(r.Record.Value)}
		}
		cl.Close()
	}
	var recs []*kgo.Record
	for i := range updates {
		k := fmt.Sprintf("key-%04d", i%keys)
		v := fmt.Sprintf("value-%d", i)
		recs = append(recs, &kgo.Record{Key: []byte(k), Value: []byte(v)})
		final[k] = v
	}
	for i := range deleted {
		k := fmt.Sprintf("key-%04d", i*7)
		recs = append(recs, &kgo.Record{Key: []byte(k)}) // a tombstone
		delete(final, k)
	}
	produce(recs)
	// The head (the newest segment) is never compacted: end with a record
	// of its own.
	produce([]*kgo.Record{{Key: []byte("marker-1"), Value: []byte("m")}})
	final["marker-1"] = "m"
	if len(acked) != updates+deleted+1 {
		t.Fatalf("%d acknowledged", len(acked))
	}

	if n, err := svc.KeyCompact(ctx); err != nil || n != 1 {
		t.Fatalf("key compaction: %d, %v", n, err)
	}
	check := func(svc *stream.Service, addr string, wantRecords int) {
		t.Helper()
		ti, err := svc.Topic("changelog")
		if err != nil {
			t.Fatal(err)
		}
		end := ti.PartitionsInfo[0].End
		if end != int64(len(acked)) {
			t.Fatalf("end offset %d, want %d: compaction must keep offsets", end, len(acked))
		}
		cl := testClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"changelog": {0: kgo.NewOffset().AtStart()}}), kgo.FetchMaxWait(200*time.Millisecond))
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		got := map[string]string{}
		n, last := 0, int64(-1)
		for last < end-1 {
			fs := cl.PollFetches(cctx)
			if cctx.Err() != nil {
				t.Fatalf("consumed up to offset %d of %d before the deadline", last, end)
			}
			fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
			fs.EachRecord(func(r *kgo.Record) {
				a, ok := acked[r.Offset]
				switch {
				case !ok:
					t.Fatalf("offset %d was never acknowledged", r.Offset)
				case r.Offset <= last:
					t.Fatalf("offset %d after %d", r.Offset, last)
				case a[0] != string(r.Key) || a[1] != string(r.Value):
					t.Fatalf("offset %d holds %s=%s, acknowledged %s=%s", r.Offset, r.Key, r.Value, a[0], a[1])
				}
				last = r.Offset
				n++
				if r.Value == nil {
					delete(got, string(r.Key))
				} else {
					got[string(r.Key)] = string(r.Value)
				}
			})
		}
		cl.Close()
		if n != wantRecords {
			t.Fatalf("%d records after compaction, want %d", n, wantRecords)
		}
		if len(got) != len(final) {
			t.Fatalf("rebuilt %d keys, want %d", len(got), len(final))
		}
		for k, v := range final {
			if got[k] != v {
				t.Fatalf("key %s rebuilt as %q, want %q", k, got[k], v)
			}
		}
		// A position in a removed gap (offset 0 held key-0000's first
		// update) reads on from the next record.
		first := int64(-1)
		for off := range acked {
			a := acked[off]
			if latest, ok := final[a[0]]; (ok && latest == a[1]) || (!ok && a[1] == "") {
				if first < 0 || off < first {
					first = off
				}
			}
		}
		gap := testClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"changelog": {0: kgo.NewOffset().At(1)}}), kgo.FetchMaxWait(200*time.Millisecond))
		fs := gap.PollFetches(cctx)
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch from a gap: %v", err) })
		if rs := fs.Records(); len(rs) == 0 || rs[0].Offset != first {
			t.Fatalf("a consumer at offset 1 (removed) got %d records, first at %v; want the first kept record, %d", len(rs), func() any {
				if len(rs) > 0 {
					return rs[0].Offset
				}
				return nil
			}(), first)
		}
		gap.Close()
	}
	check(svc, addr, keys+1) // 900 values, 100 tombstones, the marker
	// Another agent on the bucket, tailing the log all along, serves the
	// same once it has caught up.
	if err := other.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	check(other, testServer(t, other).Addr().String(), keys+1)

	// Tombstones go once delete.retention.ms has passed: set it to 0 and
	// compact again (with new data, as compaction waits for it).
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "delete.retention.ms", Value: ptr("0")}}, "changelog")
	if err != nil || rs[0].Err != nil {
		t.Fatal(err, rs)
	}
	produce([]*kgo.Record{{Key: []byte("marker-2"), Value: []byte("m")}})
	final["marker-2"] = "m"
	time.Sleep(10 * time.Millisecond)
	if n, err := svc.KeyCompact(ctx); err != nil || n != 1 {
		t.Fatalf("second key compaction: %d, %v", n, err)
	}
	check(svc, addr, keys-deleted+2)

	// Restarted (from the checkpoint a closing agent leaves), the same.
	if err := svc.Log().Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	svc.Close()
	again := open()
	defer again.Close()
	check(again, testServer(t, again).Addr().String(), keys-deleted+2)
}

func ptr(s string) *string { return &s }

// kafkajs's admin client creates, describes and alters topic configs
// (test/kafkajs/configs.js). Skipped where Node.js or kafkajs is missing,
// except under CI=true.
func TestKafkajsTopicConfigs(t *testing.T) {
	node, err := exec.LookPath("node")
	dir, _ := filepath.Abs(filepath.Join("..", "..", "test", "kafkajs"))
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "kafkajs", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or kafkajs is missing; CI=true requires them (make tools installs them): %v", err)
		}
		t.Skipf("node or kafkajs is missing (make tools installs them): %v", err)
	}
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "configs.js"), addr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node configs.js: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.HasSuffix(stdout.String(), "configs ok\n") {
		t.Fatalf("node configs.js printed\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	ti, err := svc.Topic("js-configs")
	if err != nil || !ti.Compacted() || !ti.Deletes() || ti.RetentionMs != 3600000 {
		t.Fatalf("the topic kafkajs made: %+v %v", ti, err)
	}
}

// kcat (librdkafka) puts a 5 MiB record into a topic with max.message.bytes
// of 10 MiB and reads it back; one over the limit is refused.
func TestKcatLargeRecord(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed; CI=true requires it (make tools installs it)")
		}
		t.Skip("kcat is not installed (make tools installs it)")
	}
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	adm := kadm.NewClient(testClient(t, addr))
	if resp, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"max.message.bytes": ptr("10485760")}, "kcat-big"); err != nil || resp.Err != nil {
		t.Fatal(err, resp.Err)
	}
	run := func(stdin []byte, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", addr, "-X", "message.max.bytes=16777216", "-X", "receive.message.max.bytes=33554432", "-X", "fetch.message.max.bytes=16777216", "-X", "fetch.max.bytes=16777216"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String() + errb.String(), err
	}
	value := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16)
	if out, err := run(value, "-P", "-t", "kcat-big", "-p", "0", "-z", "none", "-D", "\x01"); err != nil {
		t.Fatalf("kcat produce 5 MiB: %v\n%s", err, out)
	}
	out, err := run(nil, "-C", "-t", "kcat-big", "-p", "0", "-o", "beginning", "-e", "-f", "%o %S\n")
	if err != nil || !strings.HasPrefix(out, fmt.Sprintf("0 %d\n", len(value))) {
		t.Fatalf("kcat consume: %v\n%.300s", err, out)
	}
	over := make([]byte, 11<<20)
	if out, err := run(over, "-P", "-t", "kcat-big", "-p", "0", "-z", "none", "-D", "\x01"); err == nil || !strings.Contains(out, "too large") {
		t.Fatalf("kcat produce 11 MiB: %v, want a refusal\n%.500s", err, out)
	}
	if ti, _ := svc.Topic("kcat-big"); ti.PartitionsInfo[0].End != 1 {
		t.Fatalf("end offset %d after the refused record", ti.PartitionsInfo[0].End)
	}
}
