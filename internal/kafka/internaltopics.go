package kafka

// Internal topics, as a Kafka cluster shows them. Regex subscribers and
// admin tools expect __consumer_offsets (and __transaction_state) in Metadata, flagged internal (and
// skip it). twoway keeps consumer offsets as entries of the commit log,
// not as records of a topic, so an internal topic is listed but holds no
// records: it cannot be produced to (INVALID_TOPIC_EXCEPTION, as Kafka
// refuses clients), created, deleted or altered, and fetching it answers
// UNKNOWN_TOPIC_OR_PARTITION.

import (
	"slices"

	"github.com/twoway/twoway/internal/stream"
)

// internalTopics are the topics Metadata lists as internal.
var internalTopics = []string{
	"__consumer_offsets",
	"__transaction_state", // Kafka's transaction log; here transactions are entries of the commit log
}

// internalTopicPartitions is the partition count internal topics are
// listed with: Kafka's offsets.topic.num.partitions default.
const internalTopicPartitions = 50

func isInternalTopic(name string) bool { return slices.Contains(internalTopics, name) }

// internalTopicInfo describes an internal topic for Metadata. Its creation
// time is 0, so its topic id is the same on every agent and never changes.
func internalTopicInfo(name string) stream.TopicInfo {
	return stream.TopicInfo{TopicConfig: stream.TopicConfig{Name: name, Partitions: internalTopicPartitions, RetentionMs: -1, RetentionBytes: -1}}
}

// internalTopicByID finds an internal topic by its id.
func internalTopicByID(id [16]byte) (string, bool) {
	for _, name := range internalTopics {
		if topicID(name, 0) == id {
			return name, true
		}
	}
	return "", false
}
