package kafka

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/groups"
)

const apiVersionsKey = 18

// apiRange is the versions of one API the server decodes and answers.
// Unadvertised APIs are answered (with an error saying they are not
// supported) only because some clients send them without asking.
type apiRange struct {
	min, max  int16
	advertise bool
}

// served are the APIs with the versions this server implements; see
// docs/KAFKA.md. Each maximum is capped at what kmsg encodes (in init).
var served = map[int16]apiRange{
	0:  {3, 13, true}, // Produce: v3+ carries record batches v2
	1:  {4, 18, true}, // Fetch: v4+ carries record batches v2
	2:  {1, 11, true}, // ListOffsets
	3:  {0, 13, true}, // Metadata
	18: {0, 4, true},  // ApiVersions
	19: {0, 7, true},  // CreateTopics
	20: {0, 6, true},  // DeleteTopics
	22: {0, 5, true},  // InitProducerID
	23: {0, 4, true},  // OffsetForLeaderEpoch
	29: {0, 3, true},  // DescribeAcls
	30: {0, 3, true},  // CreateAcls
	31: {0, 3, true},  // DeleteAcls
	32: {0, 4, true},  // DescribeConfigs
	33: {0, 2, true},  // AlterConfigs
	37: {0, 3, true},  // CreatePartitions
	44: {0, 1, true},  // IncrementalAlterConfigs
	60: {0, 2, true},  // DescribeCluster
	17: {0, 1, false}, // SASLHandshake: advertised with a SASL authenticator, else answered "no mechanisms"
	36: {0, 2, false}, // SASLAuthenticate: advertised with a SASL authenticator
	50: {0, 0, false}, // DescribeUserSCRAMCredentials: advertised with users
	51: {0, 0, false}, // AlterUserSCRAMCredentials: advertised with users
	24: {0, 3, true},  // AddPartitionsToTxn: v4+ is the broker-to-broker form
	25: {0, 3, true},  // AddOffsetsToTxn
	26: {0, 3, true},  // EndTxn
	28: {0, 3, true},  // TxnOffsetCommit
	65: {0, 0, true},  // DescribeTransactions
	66: {0, 1, true},  // ListTransactions
}

// groupMaxVersions are the newest versions of the consumer-group APIs (the
// oldest is 0 for each): those the groups package serves. They are
// advertised whether or not a GroupHandler is configured.
var groupMaxVersions = groups.MaxVersions

// apis is served plus the group APIs, capped at kmsg's maxima.
var apis = map[int16]apiRange{}

func init() {
	for k, r := range served {
		apis[k] = r
	}
	for k, max := range groupMaxVersions {
		apis[k] = apiRange{0, max, true}
	}
	for k, r := range apis {
		if req := kmsg.RequestForKey(k); req != nil && r.max > req.MaxVersion() {
			r.max = req.MaxVersion()
			apis[k] = r
		}
	}
}

func isGroupAPI(key int16) bool {
	_, ok := groupMaxVersions[key]
	return ok
}

// advertised lists what ApiVersions reports, by key. The group APIs are
// listed even without a GroupHandler (they then answer
// COORDINATOR_NOT_AVAILABLE), so that the set never depends on wiring.
func (s *Server) advertised() []kmsg.ApiVersionsResponseApiKey {
	var out []kmsg.ApiVersionsResponseApiKey
	for k, r := range apis {
		sasl := (k == 17 || k == 36 || k == 50 || k == 51) && s.cfg.Auth != nil
		if !r.advertise && !sasl {
			continue
		}
		if !s.groupAPIReady(k) {
			continue
		}
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: r.min, MaxVersion: r.max})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}

// groupAPIReady: a group handler may hold an API back until it works
// (groups.Coordinator.Serves: the KIP-848 APIs, until the fleet switches
// them on).
func (s *Server) groupAPIReady(key int16) bool {
	gs, ok := s.cfg.Groups.(interface{ Serves(key int16) bool })
	return !ok || !isGroupAPI(key) || gs.Serves(key)
}

func (s *Server) apiVersions(h header, req *kmsg.ApiVersionsRequest) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ApiKeys = s.advertised()
	if h.unsupportedVersion {
		// Kafka's rule: answer in v0 with UNSUPPORTED_VERSION and the list,
		// and the client retries at the newest version both speak.
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp
	}
	resp.Version = req.Version
	return resp
}
