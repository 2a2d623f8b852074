package stream

import (
	"crypto/sha256"
	"strconv"
)

// TopicID is the stable UUID of a topic incarnation, as the Kafka protocol
// names topics: a hash of its name and creation time (both in the commit
// that created it), so every agent derives the same id, and a topic deleted
// and created again gets a new one.
func TopicID(name string, createdMs int64) [16]byte {
	h := sha256.New()
	h.Write([]byte("twoway topic\x00"))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, createdMs, 10))
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x40 // shaped as a v4 UUID, never zero
	id[8] = id[8]&0x3f | 0x80
	return id
}

// ID is the topic's Kafka topic id (TopicID).
func (t TopicInfo) ID() [16]byte { return TopicID(t.Name, t.CreatedMs) }
