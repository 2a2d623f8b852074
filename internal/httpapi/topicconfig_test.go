package httpapi_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/stream"
)

// Kafka topic configs through the HTTP API: set on create, shown, changed
// and returned to their defaults with PATCH; a bad one is refused naming it.
func TestTopicConfigsOverHTTP(t *testing.T) {
	srv, svc := newAPI(t, fileBucket(t), httpapi.Config{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, err := httpapi.NewClient(ts.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	created, err := c.CreateTopic(ctx, stream.TopicConfig{Name: "kv", Configs: map[string]string{
		"cleanup.policy": "compact", "max.message.bytes": "10485760", "segment.bytes": "1048576", "retention.ms": "60000"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.RetentionMs != 60000 || created.Configs["cleanup.policy"] != "compact" || created.Configs["max.message.bytes"] != "10485760" || len(created.Configs) != 3 {
		t.Fatalf("created %+v", created)
	}
	if ti, _ := svc.Topic("kv"); !ti.Compacted() || ti.MaxMessageBytes() != 10485760 {
		t.Fatalf("the service's topic: %+v", ti)
	}
	v := "compact,delete"
	altered, err := c.SetConfigs(ctx, "kv", map[string]*string{"cleanup.policy": &v, "segment.bytes": nil})
	if err != nil || altered.Configs["cleanup.policy"] != "compact,delete" || altered.Configs["segment.bytes"] != "" || altered.RetentionMs != 60000 {
		t.Fatalf("altered %+v, %v", altered, err)
	}
	for _, cfg := range []map[string]string{{"segment.bites": "1"}, {"cleanup.policy": "never"}} {
		_, err := c.CreateTopic(ctx, stream.TopicConfig{Name: "bad", Configs: cfg})
		var he *httpapi.Error
		for k := range cfg {
			if !errors.As(err, &he) || he.Status != 400 || !strings.Contains(err.Error(), k) {
				t.Errorf("create with %v: %v, want a 400 naming %s", cfg, err, k)
			}
		}
	}
	bad := "x"
	if _, err := c.SetConfigs(ctx, "kv", map[string]*string{"min.insync.replicas": &bad}); err == nil || !strings.Contains(err.Error(), "min.insync.replicas") {
		t.Errorf("PATCH with a bad value: %v", err)
	}
}
