package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// header is a request header (v1, or v2 for flexible versions). The
// ControlledShutdown v0 header without a client id is never accepted: that
// API is not served.
type header struct {
	key           int16
	version       int16
	correlationID int32
	clientID      string
	// unsupportedVersion marks an ApiVersions request of a version this
	// server does not speak; it is answered in v0 (see ApiVersions).
	unsupportedVersion bool
}

// errMalformed marks a frame that does not decode. The connection it came
// on is closed: after a framing error nothing that follows can be trusted.
var errMalformed = errors.New("malformed request")

// unsupportedError is a request this server does not serve: an unknown API
// key, or a version outside the range it serves. Kafka closes the connection
// for these, and so does this server, after logging the error.
type unsupportedError struct {
	key, version  int16
	correlationID int32
	known         bool // the key names an API (that is not served)
	min, max      int16
}

func (e *unsupportedError) Error() string {
	if !e.known {
		return fmt.Sprintf("unknown API key %d (version %d)", e.key, e.version)
	}
	name := kmsg.NameForKey(e.key)
	if e.max < 0 {
		return fmt.Sprintf("API %s (key %d) is not supported", name, e.key)
	}
	return fmt.Sprintf("API %s (key %d) version %d is not supported: versions %d to %d are", name, e.key, e.version, e.min, e.max)
}

// minHeaderLen is api key, api version, correlation id and the client id's
// length.
const minHeaderLen = 10

// parseRequest decodes one request frame (the bytes after the size prefix):
// the header, then the body with kmsg at the header's version. It never
// panics and allocates at most in proportion to len(frame).
func parseRequest(frame []byte) (header, kmsg.Request, error) {
	var h header
	if len(frame) < minHeaderLen {
		return h, nil, fmt.Errorf("%w: %d bytes is shorter than a request header", errMalformed, len(frame))
	}
	be := binary.BigEndian
	h.key = int16(be.Uint16(frame[0:]))
	h.version = int16(be.Uint16(frame[2:]))
	h.correlationID = int32(be.Uint32(frame[4:]))
	clientLen := int(int16(be.Uint16(frame[8:])))
	rest := frame[minHeaderLen:]
	switch {
	case clientLen < -1:
		return h, nil, fmt.Errorf("%w: client id length %d", errMalformed, clientLen)
	case clientLen > len(rest):
		return h, nil, fmt.Errorf("%w: client id of %d bytes with %d left", errMalformed, clientLen, len(rest))
	case clientLen > 0:
		h.clientID = string(rest[:clientLen])
		rest = rest[clientLen:]
	}

	api, served := apis[h.key]
	req := kmsg.RequestForKey(h.key)
	if req == nil || !served {
		return h, nil, &unsupportedError{key: h.key, version: h.version, correlationID: h.correlationID, known: req != nil, max: -1}
	}
	if h.version < api.min || h.version > api.max {
		if h.key == apiVersionsKey {
			// Answered in v0 whatever the client sent; the body is not
			// needed, so it is not parsed (its format is unknown anyway).
			h.unsupportedVersion = true
			return h, req, nil
		}
		return h, nil, &unsupportedError{key: h.key, version: h.version, correlationID: h.correlationID, known: true, min: api.min, max: api.max}
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return h, nil, err
		}
	}
	if err := req.ReadFrom(rest); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d body: %v", errMalformed, kmsg.NameForKey(h.key), h.version, err)
	}
	return h, req, nil
}

// skipTags skips the tagged fields of a flexible request header. Nothing is
// defined there that this server uses.
func skipTags(b []byte) ([]byte, error) {
	n, sz := binary.Uvarint(b)
	if sz <= 0 {
		return nil, fmt.Errorf("%w: header tag count", errMalformed)
	}
	b = b[sz:]
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d header tags in %d bytes", errMalformed, n, len(b))
	}
	for range n {
		if _, sz = binary.Uvarint(b); sz <= 0 {
			return nil, fmt.Errorf("%w: header tag", errMalformed)
		}
		b = b[sz:]
		l, sz := binary.Uvarint(b)
		if sz <= 0 || l > uint64(len(b)-sz) {
			return nil, fmt.Errorf("%w: header tag length", errMalformed)
		}
		b = b[sz+int(l):]
	}
	return b, nil
}

// appendResponse appends a framed response: size, correlation id, the
// response header's tagged fields for flexible versions (never for
// ApiVersions, whose response header is always v0), then the body.
func appendResponse(dst []byte, h header, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.correlationID))
	if resp.IsFlexible() && h.key != apiVersionsKey {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
