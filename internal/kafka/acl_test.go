package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// aclEnv is an agent with users (each user's password is its name
// followed by "-pw"), consumer groups, SASL required and, if asked, ACLs
// enforced with User:admin as the super user.
type aclEnv struct {
	svc   *stream.Service
	users *auth.Module
	srv   *Server
	addr  string
	logs  *lockedLog
}

func newACLEnv(t *testing.T, enforce bool, names ...string) *aclEnv {
	t.Helper()
	ctx := context.Background()
	users := auth.New()
	gm, err := groups.NewModule(groups.ModuleConfig{Coordinate: true, Coordinator: groups.Config{
		MinSessionTimeout: 500 * time.Millisecond, InitialRebalanceDelay: 100 * time.Millisecond, Logger: quietLogger(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := stream.Open(ctx, testBucket(t), stream.Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond, Logger: quietLogger(), NoJanitor: true,
	}}, users, gm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	for _, n := range names {
		if err := users.SetUser(ctx, n, n+"-pw", nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	coord := gm.Coordinator()
	t.Cleanup(func() { coord.Close() })
	logs := &lockedLog{}
	srv := testServer(t, svc, func(c *Config) {
		c.Auth, c.RequireAuth, c.Groups = users, true, coord
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	host, port := srv.Advertised()
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if err := coord.Start(svc.Log(), addr, svc); err != nil {
		t.Fatal(err)
	}
	if enforce {
		users.SetAuthorization(true, []string{"User:admin"})
	}
	return &aclEnv{svc: svc, users: users, srv: srv, addr: addr, logs: logs}
}

// client is a franz-go client authenticated as user (SCRAM-SHA-256).
func (e *aclEnv) client(t *testing.T, user string, opts ...kgo.Opt) *kgo.Client {
	return testClient(t, e.addr, append([]kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: user + "-pw"}.AsSha256Mechanism())}, opts...)...)
}

// rawConn sends requests at the versions they are set to, on a connection
// authenticated with SASL PLAIN.
type rawConn struct {
	c    net.Conn
	corr int32
}

func (e *aclEnv) conn(t *testing.T, user string) *rawConn {
	t.Helper()
	rc := &rawConn{c: dial(t, e.addr)}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "PLAIN"
	if r := rc.do(t, hs).(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
		t.Fatalf("SASL handshake: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 1, []byte("\x00"+user+"\x00"+user+"-pw")
	if r := rc.do(t, au).(*kmsg.SASLAuthenticateResponse); r.ErrorCode != 0 {
		t.Fatalf("SASL authenticate as %s: %v", user, kerr.ErrorForCode(r.ErrorCode))
	}
	return rc
}

func (rc *rawConn) do(t *testing.T, req kmsg.Request) kmsg.Response {
	t.Helper()
	rc.corr++
	return roundTrip(t, rc.c, rc.corr, req)
}

func (e *aclEnv) grant(t *testing.T, acls ...auth.ACL) {
	t.Helper()
	if err := e.users.CreateACLs(context.Background(), acls); err != nil {
		t.Fatal(err)
	}
}

func allow(principal, res, pattern, name, op string) auth.ACL {
	return auth.ACL{Principal: principal, Resource: res, Pattern: pattern, Name: name, Operation: op, Permission: auth.Allow}
}

func deny(principal, res, pattern, name, op string) auth.ACL {
	a := allow(principal, res, pattern, name, op)
	a.Permission = auth.Deny
	return a
}

func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).Error()
}

func wantCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %s, want %s", what, codeName(got), codeName(want))
	}
}

func aclCreation(res kmsg.ACLResourceType, name string, pattern kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) kmsg.CreateACLsRequestCreation {
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = res, name, pattern
	c.Principal, c.Host, c.Operation, c.PermissionType = principal, "*", op, perm
	return c
}

// describedACLs flattens a DescribeAcls answer.
func describedACLs(t *testing.T, resp *kmsg.DescribeACLsResponse) []string {
	t.Helper()
	if resp.ErrorCode != 0 {
		t.Fatalf("describe ACLs: %s %s", codeName(resp.ErrorCode), str(resp.ErrorMessage))
	}
	var out []string
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			out = append(out, fmt.Sprintf("%s:%s:%s:%s:%s:%s:%s", r.ResourceType, r.ResourceName, r.ResourcePatternType, a.Principal, a.Host, a.Operation, a.PermissionType))
		}
	}
	slices.Sort(out)
	return out
}

func anyACLFilter() *kmsg.DescribeACLsRequest {
	d := kmsg.NewPtrDescribeACLsRequest()
	d.ResourceType, d.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	d.Operation, d.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	return d
}

// CreateAcls, DescribeAcls and DeleteAcls as admin clients send them:
// literal and prefixed ACLs round trip, filters select as Kafka's do, bad
// creations and filters are refused one by one, only a principal with
// ALTER (DESCRIBE) on the cluster may change (list) ACLs, and ACLs on
// twoway's own resources stay out of sight.
func TestACLAPIs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newACLEnv(t, true, "admin", "bob")
	admin, bob := e.client(t, "admin"), e.client(t, "bob")

	create := kmsg.NewPtrCreateACLsRequest()
	create.Creations = []kmsg.CreateACLsRequestCreation{
		aclCreation(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLResourcePatternTypeLiteral, "User:bob", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
		aclCreation(kmsg.ACLResourceTypeTopic, "logs-", kmsg.ACLResourcePatternTypePrefixed, "User:bob", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow),
		aclCreation(kmsg.ACLResourceTypeGroup, "*", kmsg.ACLResourcePatternTypeLiteral, "User:*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeDeny),
		aclCreation(kmsg.ACLResourceTypeTopic, "x", kmsg.ACLResourcePatternTypeAny, "User:bob", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
		aclCreation(kmsg.ACLResourceTypeCluster, "other", kmsg.ACLResourcePatternTypeLiteral, "User:bob", kmsg.ACLOperationAlter, kmsg.ACLPermissionTypeAllow),
		aclCreation(kmsg.ACLResourceTypeTopic, "y", kmsg.ACLResourcePatternTypeLiteral, "bob", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
		aclCreation(kmsg.ACLResourceTypeTopic, "z", kmsg.ACLResourcePatternTypeLiteral, "User:bob", kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAllow),
	}
	cresp, err := create.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if cresp.Version != 3 {
		t.Fatalf("CreateAcls negotiated at v%d, want 3", cresp.Version)
	}
	inv := kerr.InvalidRequest.Code
	for i, want := range []int16{0, 0, 0, inv, inv, inv, inv} {
		wantCode(t, fmt.Sprintf("creation %d (%s)", i, str(cresp.Results[i].ErrorMessage)), cresp.Results[i].ErrorCode, want)
	}
	if !e.users.Authorize("User:bob", "10.0.0.1", auth.OpWrite, auth.ResTopic, "logs-app") ||
		e.users.Authorize("User:bob", "10.0.0.1", auth.OpWrite, auth.ResTopic, "orders") {
		t.Fatal("the ACLs created through Kafka do not decide as they say")
	}
	// An ACL on a twoway function: never shown or deleted through Kafka.
	e.grant(t, allow("User:bob", auth.ResFunction, auth.PatternLiteral, "f", auth.OpRead))

	all := []string{
		"GROUP:*:LITERAL:User:*:*:READ:DENY",
		"TOPIC:logs-:PREFIXED:User:bob:*:WRITE:ALLOW",
		"TOPIC:orders:LITERAL:User:bob:*:READ:ALLOW",
	}
	describe := func(d *kmsg.DescribeACLsRequest) []string {
		t.Helper()
		resp, err := d.RequestWith(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		return describedACLs(t, resp)
	}
	if got := describe(anyACLFilter()); !slices.Equal(got, all) {
		t.Fatalf("all ACLs: %q, want %q", got, all)
	}
	match := anyACLFilter()
	match.ResourceType, match.ResourcePatternType, match.ResourceName = kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeMatch, kmsg.StringPtr("logs-app")
	if got := describe(match); !slices.Equal(got, all[1:2]) {
		t.Fatalf("ACLs matching topic logs-app: %q", got)
	}
	prefixed := anyACLFilter()
	prefixed.ResourcePatternType = kmsg.ACLResourcePatternTypePrefixed
	if got := describe(prefixed); !slices.Equal(got, all[1:2]) {
		t.Fatalf("prefixed ACLs: %q", got)
	}
	literal := anyACLFilter()
	literal.ResourcePatternType, literal.ResourceName = kmsg.ACLResourcePatternTypeLiteral, kmsg.StringPtr("orders")
	if got := describe(literal); !slices.Equal(got, all[2:]) {
		t.Fatalf("literal ACLs on orders: %q", got)
	}
	nobody := anyACLFilter()
	nobody.Principal = kmsg.StringPtr("User:nobody")
	if got := describe(nobody); len(got) != 0 {
		t.Fatalf("ACLs of User:nobody: %q", got)
	}
	bad := anyACLFilter()
	bad.Operation = kmsg.ACLOperationUnknown
	if resp, err := bad.RequestWith(ctx, admin); err != nil || resp.ErrorCode != inv {
		t.Fatalf("a filter on operation UNKNOWN: %+v %v", resp, err)
	}

	// Bob has no rights on the cluster.
	if resp, err := anyACLFilter().RequestWith(ctx, bob); err != nil || resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("bob describes ACLs: %+v %v", resp, err)
	}
	bc := kmsg.NewPtrCreateACLsRequest()
	bc.Creations = create.Creations[:1]
	if resp, err := bc.RequestWith(ctx, bob); err != nil || resp.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("bob creates an ACL: %+v %v", resp, err)
	}
	anyDelete := kmsg.NewDeleteACLsRequestFilter()
	anyDelete.ResourceType, anyDelete.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	anyDelete.Operation, anyDelete.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	bd := kmsg.NewPtrDeleteACLsRequest()
	bd.Filters = []kmsg.DeleteACLsRequestFilter{anyDelete}
	if resp, err := bd.RequestWith(ctx, bob); err != nil || resp.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("bob deletes ACLs: %+v %v", resp, err)
	}
	if got := describe(anyACLFilter()); !slices.Equal(got, all) {
		t.Fatalf("after bob's attempts: %q", got)
	}

	// Delete the prefixed ACL, with a bad filter alongside.
	del := kmsg.NewPtrDeleteACLsRequest()
	pf := anyDelete
	pf.ResourceType, pf.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed
	badf := anyDelete
	badf.PermissionType = kmsg.ACLPermissionTypeUnknown
	del.Filters = []kmsg.DeleteACLsRequestFilter{pf, badf}
	dresp, err := del.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "prefixed filter", dresp.Results[0].ErrorCode, 0)
	wantCode(t, "filter on permission UNKNOWN", dresp.Results[1].ErrorCode, inv)
	if m := dresp.Results[0].MatchingACLs; len(m) != 1 || m[0].ResourceName != "logs-" || m[0].ResourcePatternType != kmsg.ACLResourcePatternTypePrefixed ||
		m[0].Principal != "User:bob" || m[0].Operation != kmsg.ACLOperationWrite || m[0].PermissionType != kmsg.ACLPermissionTypeAllow {
		t.Fatalf("deleted: %+v", m)
	}
	if got := describe(anyACLFilter()); !slices.Equal(got, []string{all[0], all[2]}) {
		t.Fatalf("after deleting the prefixed ACL: %q", got)
	}
	if e.users.Authorize("User:bob", "", auth.OpWrite, auth.ResTopic, "logs-app") {
		t.Fatal("the deleted ACL still allows")
	}
	// Delete everything Kafka sees: the function's ACL stays.
	del.Filters = []kmsg.DeleteACLsRequestFilter{anyDelete}
	if dresp, err = del.RequestWith(ctx, admin); err != nil || dresp.Results[0].ErrorCode != 0 || len(dresp.Results[0].MatchingACLs) != 2 {
		t.Fatalf("delete all: %+v %v", dresp, err)
	}
	if got := describe(anyACLFilter()); len(got) != 0 {
		t.Fatalf("after deleting all: %q", got)
	}
	if fn := e.users.ACLs(auth.ACLFilter{Resource: auth.ResFunction}); len(fn) != 1 {
		t.Fatalf("function ACLs after Kafka deleted all: %v", fn)
	}
	if !strings.Contains(e.logs.String(), "kafka request not authorized") || !strings.Contains(e.logs.String(), "principal=User:bob") {
		t.Fatalf("bob's refusals were not logged:\n%s", e.logs.String())
	}
}

// Every version of the ACL APIs round trips, they are advertised, and an
// agent without users answers SECURITY_DISABLED.
func TestACLAPIVersions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, users := withUsers(t, ctx, "admin", "pw")
	s := testServer(t, svc, func(c *Config) { c.Auth = users }) // SASL optional, nothing enforced
	c := dial(t, s.Addr().String())
	av := roundTrip(t, c, 1, kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	for _, key := range []int16{29, 30, 31} {
		i := slices.IndexFunc(av.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == key })
		if i < 0 || av.ApiKeys[i].MinVersion != 0 || av.ApiKeys[i].MaxVersion != 3 {
			t.Fatalf("%s not advertised as v0 to v3: %+v", kmsg.NameForKey(key), av.ApiKeys)
		}
	}
	corr := int32(1)
	do := func(req kmsg.Request) kmsg.Response {
		corr++
		return roundTrip(t, c, corr, req)
	}
	for v := int16(0); v <= 3; v++ {
		name := fmt.Sprintf("t-v%d", v)
		cr := kmsg.NewPtrCreateACLsRequest()
		cr.Version = v
		cr.Creations = []kmsg.CreateACLsRequestCreation{aclCreation(kmsg.ACLResourceTypeTopic, name, kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)}
		if r := do(cr).(*kmsg.CreateACLsResponse); len(r.Results) != 1 || r.Results[0].ErrorCode != 0 {
			t.Fatalf("v%d create: %+v", v, r)
		}
		dr := anyACLFilter()
		dr.Version, dr.ResourceName = v, &name
		if v == 0 {
			dr.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral // what v0 means
		}
		want := []string{"TOPIC:" + name + ":LITERAL:User:alice:*:READ:ALLOW"}
		if got := describedACLs(t, do(dr).(*kmsg.DescribeACLsResponse)); !slices.Equal(got, want) {
			t.Fatalf("v%d describe: %q, want %q", v, got, want)
		}
		del := kmsg.NewPtrDeleteACLsRequest()
		del.Version = v
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourceName, f.Operation, f.PermissionType = kmsg.ACLResourceTypeTopic, &name, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		del.Filters = []kmsg.DeleteACLsRequestFilter{f}
		if r := do(del).(*kmsg.DeleteACLsResponse); len(r.Results) != 1 || r.Results[0].ErrorCode != 0 || len(r.Results[0].MatchingACLs) != 1 {
			t.Fatalf("v%d delete: %+v", v, r)
		}
	}
	if left := users.ACLs(auth.ACLFilter{}); len(left) != 0 {
		t.Fatalf("ACLs left: %v", left)
	}

	plain := dial(t, testServer(t, testService(t, testBucket(t))).Addr().String())
	cr := kmsg.NewPtrCreateACLsRequest()
	cr.Version = 3
	cr.Creations = []kmsg.CreateACLsRequestCreation{aclCreation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)}
	if r := roundTrip(t, plain, 1, cr).(*kmsg.CreateACLsResponse); r.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
		t.Fatalf("create without users: %+v", r)
	}
	dr := anyACLFilter()
	dr.Version = 3
	if r := roundTrip(t, plain, 2, dr).(*kmsg.DescribeACLsResponse); r.ErrorCode != kerr.SecurityDisabled.Code {
		t.Fatalf("describe without users: %+v", r)
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	del.Version, del.Filters = 3, []kmsg.DeleteACLsRequestFilter{kmsg.NewDeleteACLsRequestFilter()}
	if r := roundTrip(t, plain, 3, del).(*kmsg.DeleteACLsResponse); r.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
		t.Fatalf("delete without users: %+v", r)
	}
}

func plainBatch(n int) []byte {
	recs := make([]records.Record, n)
	for i := range recs {
		recs[i] = records.Record{Timestamp: int64(i + 1), Value: fmt.Appendf(nil, "v%d", i)}
	}
	return records.Encode(recs)
}

func fetchRequest(topics ...string) *kmsg.FetchRequest {
	f := kmsg.NewPtrFetchRequest()
	f.Version, f.ReplicaID, f.MaxBytes, f.SessionEpoch, f.MaxWaitMillis = 11, -1, 1<<20, -1, 100
	for _, topic := range topics {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		f.Topics = append(f.Topics, ft)
	}
	return f
}

func metadataRequest(autoCreate bool, topics ...string) *kmsg.MetadataRequest {
	m := kmsg.NewPtrMetadataRequest()
	m.Version, m.AllowAutoTopicCreation, m.IncludeTopicAuthorizedOperations = 12, autoCreate, true
	if topics != nil {
		m.Topics = []kmsg.MetadataRequestTopic{}
	}
	for _, topic := range topics {
		m.Topics = append(m.Topics, kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr(topic)})
	}
	return m
}

func topicCodes(resp *kmsg.MetadataResponse) map[string]int16 {
	out := map[string]int16{}
	for _, t := range resp.Topics {
		out[str(t.Topic)] = t.ErrorCode
	}
	return out
}

func (e *aclEnv) topicExists(name string) bool {
	e.svc.Sync(context.Background())
	_, err := e.svc.Topic(name)
	return err == nil
}

// The authorization matrix over the Kafka APIs, with enforcement on: each
// principal may do exactly what its ACLs allow, refusals carry Kafka's
// codes for the resource refused and change nothing, deny wins over allow,
// prefixed ACLs cover their prefix only, and the super user needs no ACL.
func TestACLEnforcement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newACLEnv(t, true, "admin", "writer", "reader", "peeker", "nobody", "creator", "denied", "fenced", "idem", "txer")
	admin := e.client(t, "admin")
	createTopic(t, admin, "orders", 2)
	for _, topic := range []string{"secret", "logs-app", "logsx"} {
		createTopic(t, admin, topic, 1)
	}
	lit, pre := auth.PatternLiteral, auth.PatternPrefixed
	e.grant(t,
		allow("User:writer", auth.ResTopic, lit, "orders", auth.OpWrite),
		allow("User:writer", auth.ResTopic, pre, "logs-", auth.OpWrite),
		allow("User:reader", auth.ResTopic, lit, "orders", auth.OpRead),
		allow("User:reader", auth.ResGroup, lit, "readers", auth.OpRead),
		allow("User:peeker", auth.ResTopic, lit, "orders", auth.OpDescribe),
		allow("User:peeker", auth.ResGroup, lit, "readers", auth.OpDescribe),
		allow("User:creator", auth.ResTopic, pre, "team-", auth.OpCreate),
		allow("User:creator", auth.ResTopic, pre, "team-", auth.OpDescribe),
		allow("User:creator", auth.ResTopic, pre, "any-", auth.OpDescribe),
		allow("User:denied", auth.ResTopic, lit, "*", auth.OpRead),
		deny("User:denied", auth.ResTopic, lit, "secret", auth.OpRead),
		allow("User:fenced", auth.ResTopic, pre, "logs-", auth.OpWrite),
		deny("User:fenced", auth.ResTopic, pre, "log", auth.OpWrite),
		allow("User:idem", auth.ResCluster, lit, auth.ClusterName, auth.OpIdempotentWrite),
		allow("User:txer", auth.ResTransactionalID, pre, "tx-", auth.OpWrite),
		allow("User:txer", auth.ResTransactionalID, pre, "tx-", auth.OpDescribe),
		allow("User:txer", auth.ResTopic, lit, "txn-out", auth.OpWrite),
	)
	ends := func(topic string) []int64 { return partitionEnds(t, e.svc, topic) }

	t.Run("produce with WRITE, idempotently", func(t *testing.T) {
		w := e.client(t, "writer", kgo.RecordPartitioner(kgo.ManualPartitioner()))
		produceAll(t, w, append(testRecords("orders", 2, 3), &kgo.Record{Topic: "logs-app", Value: []byte("x")}))
		if got := ends("orders"); got[0] != 3 || got[1] != 3 {
			t.Fatalf("orders ends at %v", got)
		}
	})

	t.Run("produce without WRITE writes nothing", func(t *testing.T) {
		before := ends("orders")
		p := e.client(t, "peeker", kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
		err := p.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("no")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("peeker produced: %v", err)
		}
		// One request: the topic it may write is written, the others not
		// (a prefixed ACL covers its prefix only).
		req := produceRequest("orders", map[int32][]byte{0: plainBatch(2)})
		for _, topic := range []string{"secret", "logsx", "logs-app"} {
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic, rt.Partitions = topic, []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: plainBatch(1)}}
			req.Topics = append(req.Topics, rt)
		}
		secret, logsx := ends("secret"), ends("logsx")
		resp := e.conn(t, "writer").do(t, req).(*kmsg.ProduceResponse)
		tao := kerr.TopicAuthorizationFailed.Code
		for i, want := range []int16{0, tao, tao, 0} {
			wantCode(t, "produce to "+resp.Topics[i].Topic, resp.Topics[i].Partitions[0].ErrorCode, want)
		}
		if got := ends("orders"); got[0] != before[0]+2 || got[1] != before[1] {
			t.Fatalf("orders went from %v to %v", before, got)
		}
		if got := ends("secret"); !slices.Equal(got, secret) {
			t.Fatalf("secret went from %v to %v", secret, got)
		}
		if got := ends("logsx"); !slices.Equal(got, logsx) {
			t.Fatalf("logsx went from %v to %v", logsx, got)
		}
		// A topic it may not even describe is refused the same way.
		nob := produceRequest("orders", map[int32][]byte{0: plainBatch(1)})
		wantCode(t, "nobody produces", e.conn(t, "nobody").do(t, nob).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode, tao)
		if got := ends("orders"); got[0] != before[0]+2 {
			t.Fatalf("orders went from %v to %v", before, got)
		}
	})

	t.Run("idempotent producers", func(t *testing.T) {
		initPID := func(user string) int16 {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.Version, r.ProducerID, r.ProducerEpoch, r.TransactionTimeoutMillis = 4, -1, -1, 60000
			return e.conn(t, user).do(t, r).(*kmsg.InitProducerIDResponse).ErrorCode
		}
		ca := kerr.ClusterAuthorizationFailed.Code
		for user, want := range map[string]int16{
			"writer": 0, // WRITE on a topic (Kafka 3.x)
			"idem":   0, // IDEMPOTENT_WRITE on the cluster
			"admin":  0,
			"peeker": ca,
			"fenced": ca, // its only WRITE is covered by a deny
		} {
			wantCode(t, user+" inits a producer id", initPID(user), want)
		}
		// Refused twice on one connection, logged once.
		nob := e.conn(t, "nobody")
		for range 2 {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.Version, r.ProducerID, r.ProducerEpoch = 4, -1, -1
			wantCode(t, "nobody inits a producer id", nob.do(t, r).(*kmsg.InitProducerIDResponse).ErrorCode, ca)
		}
		n := 0
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, "principal=User:nobody") && strings.Contains(line, "operation=idempotent_write") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("nobody's refusal logged %d times:\n%s", n, e.logs.String())
		}
	})

	t.Run("transactional ids", func(t *testing.T) {
		if err := e.svc.Log().EnableFeatures(ctx); err != nil {
			t.Fatal(err)
		}
		initTxn := func(user, id string) int16 {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.TransactionTimeoutMillis = 4, &id, -1, -1, 60000
			return e.conn(t, user).do(t, r).(*kmsg.InitProducerIDResponse).ErrorCode
		}
		tia := kerr.TransactionalIDAuthorizationFailed.Code
		wantCode(t, "writer inits a transactional producer", initTxn("writer", "tx-1"), tia)
		wantCode(t, "txer inits a transactional id outside its prefix", initTxn("txer", "other"), tia)
		createTopic(t, admin, "txn-out", 2)
		p := e.client(t, "txer", kgo.TransactionalID("tx-1"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		produceTxn(t, p, "txn-out", true, "t1", "t2")
		if got := ends("txn-out"); got[0] != 2 || got[1] != 2 {
			t.Fatalf("txn-out ends at %v: want a record and a marker on each partition", got)
		}
		// A produce naming a transactional id the principal may not write
		// is refused whole.
		pr := produceRequest("orders", map[int32][]byte{0: plainBatch(1)})
		pr.TransactionID = kmsg.StringPtr("tx-1")
		wantCode(t, "writer produces as tx-1", e.conn(t, "writer").do(t, pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode, tia)
		if err := e.svc.DeleteTopic(ctx, "txn-out"); err != nil { // the later subtests list topics
			t.Fatal(err)
		}
	})

	t.Run("fetch needs READ; deny wins", func(t *testing.T) {
		fetch := func(user string, topics ...string) *kmsg.FetchResponse {
			return e.conn(t, user).do(t, fetchRequest(topics...)).(*kmsg.FetchResponse)
		}
		r := fetch("reader", "orders", "secret")
		if p := r.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			t.Fatalf("reader fetches orders: %s, %d bytes", codeName(p.ErrorCode), len(p.RecordBatches))
		}
		wantCode(t, "reader fetches secret", r.Topics[1].Partitions[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		p := fetch("peeker", "orders").Topics[0].Partitions[0]
		wantCode(t, "peeker (DESCRIBE only) fetches orders", p.ErrorCode, kerr.TopicAuthorizationFailed.Code)
		if len(p.RecordBatches) != 0 || p.HighWatermark != -1 {
			t.Fatalf("a refused fetch carries data: %+v", p)
		}
		d := fetch("denied", "orders", "secret")
		wantCode(t, "denied fetches orders (allowed by *)", d.Topics[0].Partitions[0].ErrorCode, 0)
		wantCode(t, "denied fetches secret (denied)", d.Topics[1].Partitions[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		wantCode(t, "admin fetches secret", fetch("admin", "secret").Topics[0].Partitions[0].ErrorCode, 0)

		lo := kmsg.NewPtrListOffsetsRequest()
		lo.Version, lo.ReplicaID = 7, -1
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = "orders"
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = -1
		lt.Partitions = append(lt.Partitions, lp)
		lo.Topics = append(lo.Topics, lt)
		wantCode(t, "nobody lists offsets", e.conn(t, "nobody").do(t, lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		wantCode(t, "peeker lists offsets", e.conn(t, "peeker").do(t, lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode, 0)
		le := kmsg.NewPtrOffsetForLeaderEpochRequest()
		le.Version, le.ReplicaID = 3, -1
		le.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "orders", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1}}}}
		wantCode(t, "nobody asks for an epoch's end", e.conn(t, "nobody").do(t, le).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		if r := e.conn(t, "peeker").do(t, le).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; r.ErrorCode != 0 || r.EndOffset != ends("orders")[0] {
			t.Fatalf("peeker asks for an epoch's end: %+v", r)
		}
	})

	t.Run("metadata lists what the principal may describe", func(t *testing.T) {
		peeker := e.conn(t, "peeker")
		all := peeker.do(t, metadataRequest(false)).(*kmsg.MetadataResponse)
		if codes := topicCodes(all); len(codes) != 1 || codes["orders"] != 0 {
			t.Fatalf("peeker sees %v", codes)
		}
		if ops := all.Topics[0].AuthorizedOperations; ops != 1<<kmsg.ACLOperationDescribe {
			t.Fatalf("peeker's operations on orders: %b", ops)
		}
		named := peeker.do(t, metadataRequest(false, "orders", "secret")).(*kmsg.MetadataResponse)
		if codes := topicCodes(named); codes["orders"] != 0 || codes["secret"] != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("peeker asks for orders and secret: %v", codes)
		}
		if codes := topicCodes(e.conn(t, "admin").do(t, metadataRequest(false)).(*kmsg.MetadataResponse)); len(codes) != 6 || codes["__consumer_offsets"] != 0 || codes["__transaction_state"] != 0 {
			t.Fatalf("admin sees %v", codes)
		}
	})

	t.Run("creating topics needs CREATE", func(t *testing.T) {
		create := func(user, topic string) kmsg.CreateTopicsResponseTopic {
			r := kmsg.NewPtrCreateTopicsRequest()
			r.Version, r.TimeoutMillis = 7, 10000
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, -1
			r.Topics = append(r.Topics, rt)
			return e.conn(t, user).do(t, r).(*kmsg.CreateTopicsResponse).Topics[0]
		}
		wantCode(t, "nobody creates nope", create("nobody", "nope").ErrorCode, kerr.TopicAuthorizationFailed.Code)
		wantCode(t, "creator creates other", create("creator", "other").ErrorCode, kerr.TopicAuthorizationFailed.Code)
		made := create("creator", "team-made")
		wantCode(t, "creator creates team-made", made.ErrorCode, 0)
		if made.ConfigErrorCode != kerr.TopicAuthorizationFailed.Code || len(made.Configs) != 0 {
			t.Fatalf("configs returned without DESCRIBE_CONFIGS: %+v", made)
		}
		if e.topicExists("nope") || e.topicExists("other") || !e.topicExists("team-made") {
			t.Fatal("topics created against the ACLs")
		}
		// On demand through Metadata: CREATE and DESCRIBE needed.
		codes := topicCodes(e.conn(t, "creator").do(t, metadataRequest(true, "team-auto", "any-auto", "zzz-auto")).(*kmsg.MetadataResponse))
		if codes["team-auto"] != 0 || codes["any-auto"] != kerr.TopicAuthorizationFailed.Code || codes["zzz-auto"] != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("auto-creation: %v", codes)
		}
		if !e.topicExists("team-auto") || e.topicExists("any-auto") || e.topicExists("zzz-auto") {
			t.Fatal("auto-creation against the ACLs")
		}
	})

	t.Run("admin APIs", func(t *testing.T) {
		peeker := e.conn(t, "peeker")
		dt := kmsg.NewPtrDeleteTopicsRequest()
		dt.Version, dt.TimeoutMillis = 6, 10000
		dt.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("orders")}}
		wantCode(t, "peeker deletes orders", peeker.do(t, dt).(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		if !e.topicExists("orders") {
			t.Fatal("orders was deleted")
		}
		cp := kmsg.NewPtrCreatePartitionsRequest()
		cp.Version, cp.TimeoutMillis = 3, 10000
		cp.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "orders", Count: 4}}
		wantCode(t, "peeker adds partitions", peeker.do(t, cp).(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		dc := kmsg.NewPtrDescribeConfigsRequest()
		dc.Version = 4
		dc.Resources = []kmsg.DescribeConfigsRequestResource{
			{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "orders"},
			{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1"},
		}
		res := peeker.do(t, dc).(*kmsg.DescribeConfigsResponse).Resources
		wantCode(t, "peeker describes orders' configs", res[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		wantCode(t, "peeker describes a broker's configs", res[1].ErrorCode, kerr.ClusterAuthorizationFailed.Code)
		ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
		ia.Version = 1
		ia.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "orders",
			Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000")}}}}
		wantCode(t, "peeker alters orders' configs", peeker.do(t, ia).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		if ti, _ := e.svc.Topic("orders"); ti.RetentionMs != -1 {
			t.Fatalf("orders' retention changed to %d", ti.RetentionMs)
		}
		us := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		wantCode(t, "peeker describes users", peeker.do(t, us).(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode, kerr.ClusterAuthorizationFailed.Code)
		dcl := kmsg.NewPtrDescribeClusterRequest()
		dcl.IncludeClusterAuthorizedOperations = true
		if r := peeker.do(t, dcl).(*kmsg.DescribeClusterResponse); r.ErrorCode != 0 || r.ClusterAuthorizedOperations != 0 || len(r.Brokers) == 0 {
			t.Fatalf("peeker describes the cluster: %+v", r)
		}
	})

	t.Run("consumer groups", func(t *testing.T) {
		// The positive path: READ on the topic and on the group is all a
		// consumer group member needs.
		r := e.client(t, "reader", kgo.ConsumerGroup("readers"), kgo.ConsumeTopics("orders"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		n, want := 0, int(ends("orders")[0]+ends("orders")[1])
		for n < want {
			fs := r.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("the reader consumed %d of %d records", n, want)
			}
			fs.EachError(func(topic string, p int32, err error) { t.Fatalf("reader fetch %s/%d: %v", topic, p, err) })
			n += len(fs.Records())
		}
		if err := r.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("reader commits: %v", err)
		}
		r.Close()

		find := kmsg.NewPtrFindCoordinatorRequest()
		find.Version, find.CoordinatorKeys = 4, []string{"readers", "others"}
		fr := e.conn(t, "peeker").do(t, find).(*kmsg.FindCoordinatorResponse)
		wantCode(t, "peeker finds readers' coordinator", fr.Coordinators[0].ErrorCode, 0)
		wantCode(t, "peeker finds others' coordinator", fr.Coordinators[1].ErrorCode, kerr.GroupAuthorizationFailed.Code)
		if fr.Coordinators[1].Key != "others" || fr.Coordinators[0].Key != "readers" {
			t.Fatalf("coordinators: %+v", fr.Coordinators)
		}
		find3 := kmsg.NewPtrFindCoordinatorRequest()
		find3.Version, find3.CoordinatorKey = 3, "readers"
		wantCode(t, "nobody finds readers' coordinator", e.conn(t, "nobody").do(t, find3).(*kmsg.FindCoordinatorResponse).ErrorCode, kerr.GroupAuthorizationFailed.Code)
		txn := kmsg.NewPtrFindCoordinatorRequest()
		txn.Version, txn.CoordinatorType, txn.CoordinatorKeys = 4, 1, []string{"tx"}
		wantCode(t, "peeker finds a transaction coordinator", e.conn(t, "peeker").do(t, txn).(*kmsg.FindCoordinatorResponse).Coordinators[0].ErrorCode, kerr.TransactionalIDAuthorizationFailed.Code)

		join := kmsg.NewPtrJoinGroupRequest()
		join.Version, join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = 5, "readers", 10000, 10000, "consumer"
		join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 0, 0, 0}}}
		wantCode(t, "peeker (DESCRIBE only) joins readers", e.conn(t, "peeker").do(t, join).(*kmsg.JoinGroupResponse).ErrorCode, kerr.GroupAuthorizationFailed.Code)
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version, hb.Group, hb.MemberID = 4, "readers", "m"
		wantCode(t, "peeker heartbeats", e.conn(t, "peeker").do(t, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.GroupAuthorizationFailed.Code)

		// Offsets of a topic the reader may not read, and another group's,
		// committed by the super user.
		commit := func(user, group string, topics ...string) *kmsg.OffsetCommitResponse {
			c := kmsg.NewPtrOffsetCommitRequest()
			c.Version, c.Group, c.Generation = 8, group, -1
			for _, topic := range topics {
				ct := kmsg.NewOffsetCommitRequestTopic()
				ct.Topic = topic
				cp := kmsg.NewOffsetCommitRequestTopicPartition()
				cp.Partition, cp.Offset = 0, 1
				ct.Partitions = append(ct.Partitions, cp)
				c.Topics = append(c.Topics, ct)
			}
			return e.conn(t, user).do(t, c).(*kmsg.OffsetCommitResponse)
		}
		af := kmsg.NewPtrFindCoordinatorRequest()
		af.Version, af.CoordinatorKeys = 4, []string{"readers", "hidden"}
		for _, c := range e.conn(t, "admin").do(t, af).(*kmsg.FindCoordinatorResponse).Coordinators {
			wantCode(t, "admin finds "+c.Key+"'s coordinator", c.ErrorCode, 0)
		}
		for _, group := range []string{"readers", "hidden"} {
			if c := commit("admin", group, "secret"); c.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatalf("admin commits for %s: %s", group, codeName(c.Topics[0].Partitions[0].ErrorCode))
			}
		}
		c := commit("reader", "readers", "orders", "secret")
		wantCode(t, "reader commits orders", c.Topics[0].Partitions[0].ErrorCode, 0)
		wantCode(t, "reader commits secret", c.Topics[1].Partitions[0].ErrorCode, kerr.TopicAuthorizationFailed.Code)
		wantCode(t, "peeker commits", commit("peeker", "readers", "orders").Topics[0].Partitions[0].ErrorCode, kerr.GroupAuthorizationFailed.Code)

		fetch := func(user string, topics ...string) *kmsg.OffsetFetchResponse {
			f := kmsg.NewPtrOffsetFetchRequest()
			f.Version = 8
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = "readers"
			for _, topic := range topics {
				g.Topics = append(g.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: topic, Partitions: []int32{0}})
			}
			h := kmsg.NewOffsetFetchRequestGroup()
			h.Group = "hidden"
			f.Groups = []kmsg.OffsetFetchRequestGroup{g, h}
			return e.conn(t, user).do(t, f).(*kmsg.OffsetFetchResponse)
		}
		all := fetch("reader")
		wantCode(t, "reader fetches hidden's offsets", all.Groups[1].ErrorCode, kerr.GroupAuthorizationFailed.Code)
		if g := all.Groups[0]; g.ErrorCode != 0 || len(g.Topics) != 1 || g.Topics[0].Topic != "orders" {
			t.Fatalf("reader fetches all of readers' offsets: %+v", g)
		}
		named := fetch("reader", "orders", "secret").Groups[0]
		if len(named.Topics) != 2 || named.Topics[0].Partitions[0].Offset != 1 || named.Topics[1].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code ||
			named.Topics[1].Partitions[0].Offset != -1 {
			t.Fatalf("reader fetches orders' and secret's offsets: %+v", named)
		}
		if a := fetch("admin"); len(a.Groups[0].Topics) != 2 || a.Groups[1].ErrorCode != 0 {
			t.Fatalf("admin fetches offsets: %+v", a)
		}

		list := func(user string) []string {
			l := kmsg.NewPtrListGroupsRequest()
			l.Version = 4
			var names []string
			for _, g := range e.conn(t, user).do(t, l).(*kmsg.ListGroupsResponse).Groups {
				names = append(names, g.Group)
			}
			slices.Sort(names)
			return names
		}
		if got := list("reader"); !slices.Equal(got, []string{"readers"}) {
			t.Fatalf("reader lists groups %q", got)
		}
		if got := list("admin"); !slices.Equal(got, []string{"hidden", "readers"}) {
			t.Fatalf("admin lists groups %q", got)
		}
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Version, dg.Groups, dg.IncludeAuthorizedOperations = 5, []string{"readers", "hidden"}, true
		d := e.conn(t, "reader").do(t, dg).(*kmsg.DescribeGroupsResponse)
		wantCode(t, "reader describes readers", d.Groups[0].ErrorCode, 0)
		wantCode(t, "reader describes hidden", d.Groups[1].ErrorCode, kerr.GroupAuthorizationFailed.Code)
		if ops := d.Groups[0].AuthorizedOperations; ops != 1<<kmsg.ACLOperationRead|1<<kmsg.ACLOperationDescribe {
			t.Fatalf("reader's operations on readers: %b", ops)
		}
		del := kmsg.NewPtrDeleteGroupsRequest()
		del.Version, del.Groups = 2, []string{"readers"}
		wantCode(t, "reader deletes readers", e.conn(t, "reader").do(t, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.GroupAuthorizationFailed.Code)
		od := kmsg.NewPtrOffsetDeleteRequest()
		od.Group = "readers"
		od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "orders", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
		wantCode(t, "reader deletes offsets", e.conn(t, "reader").do(t, od).(*kmsg.OffsetDeleteResponse).ErrorCode, kerr.GroupAuthorizationFailed.Code)
	})
}
