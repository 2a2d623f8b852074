package kafka

import (
	"bytes"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// seedRequests are valid requests of every served API at its oldest and
// newest version, framed as clients send them (without the size prefix).
func seedRequests() [][]byte {
	var out [][]byte
	for key, r := range apis {
		for _, v := range []int16{r.min, r.max} {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			if p, ok := req.(*kmsg.ProduceRequest); ok {
				topic := kmsg.NewProduceRequestTopic()
				topic.Topic = "t"
				topic.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 1, Records: []byte("not a batch")}}
				p.Topics = append(p.Topics, topic)
			}
			if m, ok := req.(*kmsg.MetadataRequest); ok {
				name := "t"
				m.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
			}
			out = append(out, formatter.AppendRequest(nil, req, 7)[4:])
		}
	}
	return out
}

func FuzzParseRequest(f *testing.F) {
	for _, seed := range seedRequests() {
		f.Add(seed)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x0f})
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := parseRequest(frame)
		if err != nil {
			var ue *unsupportedError
			if !errors.Is(err, errMalformed) && !errors.As(err, &ue) {
				t.Fatalf("error of unexpected kind: %v", err)
			}
			if req != nil {
				t.Fatal("a request with an error")
			}
			return
		}
		if req == nil || req.Key() != h.key {
			t.Fatalf("key %d decoded as %v", h.key, req)
		}
		if h.unsupportedVersion {
			if h.key != apiVersionsKey {
				t.Fatalf("unsupported version of key %d admitted", h.key)
			}
			return
		}
		// What decodes re-encodes, and decodes again to the same bytes.
		enc := req.AppendTo(nil)
		again := kmsg.RequestForKey(h.key)
		again.SetVersion(h.version)
		if err := again.ReadFrom(enc); err != nil {
			t.Fatalf("re-decoding %s v%d: %v", kmsg.NameForKey(h.key), h.version, err)
		}
		if !bytes.Equal(again.AppendTo(nil), enc) {
			t.Fatalf("%s v%d does not round trip", kmsg.NameForKey(h.key), h.version)
		}
	})
}

func TestParseRequestSeeds(t *testing.T) {
	for _, seed := range seedRequests() {
		h, req, err := parseRequest(seed)
		if err != nil || req == nil || req.GetVersion() != h.version || h.correlationID != 7 || h.clientID != "protocol-test" {
			t.Fatalf("seed %x: %+v %v", seed[:4], h, err)
		}
	}
}

func TestAppendResponseHeader(t *testing.T) {
	// Flexible responses carry an empty tag section after the correlation
	// id, except ApiVersions whose response header is always v0.
	meta := kmsg.NewPtrMetadataResponse()
	meta.Version = 12
	got := appendResponse(nil, header{key: 3, correlationID: 5}, meta)
	body := meta.AppendTo(nil)
	if want := append([]byte{0, 0, 0, byte(5 + len(body)), 0, 0, 0, 5, 0}, body...); !bytes.Equal(got, want) {
		t.Fatalf("metadata v12 response framed as %x, want %x", got, want)
	}
	av := kmsg.NewPtrApiVersionsResponse()
	av.Version = 3
	got = appendResponse(nil, header{key: apiVersionsKey, correlationID: 5}, av)
	body = av.AppendTo(nil)
	if want := append([]byte{0, 0, 0, byte(4 + len(body)), 0, 0, 0, 5}, body...); !bytes.Equal(got, want) {
		t.Fatalf("ApiVersions v3 response framed as %x, want %x", got, want)
	}
}
