package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/twoway/twoway/internal/authz"
)

// offsetForTime is GET /v1/topics/{topic}/partitions/{partition}/offsets?timestamp=MS:
// the first offset whose record's timestamp is at or after MS (Kafka's
// ListOffsets by time), or the partition's end offset when there is none,
// with "found" saying which.
func (a *streamsAPI) offsetForTime(w http.ResponseWriter, r *http.Request) {
	if err := authz.Check(r.Context(), authz.OpDescribe, authz.ResTopic, r.PathValue("topic")); err != nil {
		a.fail(w, r, err, false)
		return
	}
	p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	if err != nil || p < 0 {
		a.fail(w, r, &fieldError{"partition", fmt.Errorf("%q is not a partition number", r.PathValue("partition"))}, false)
		return
	}
	var ts int64 = -1
	for name, vs := range r.URL.Query() {
		v := vs[len(vs)-1]
		switch name {
		case "timestamp":
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil || t < 0 {
				a.fail(w, r, &fieldError{"timestamp", fmt.Errorf("%q is not a timestamp: use milliseconds since the epoch", v)}, false)
				return
			}
			ts = t
		default:
			a.fail(w, r, &fieldError{name, errors.New("unknown query parameter (the parameter is timestamp)")}, false)
			return
		}
	}
	if ts < 0 {
		a.fail(w, r, &fieldError{"timestamp", errors.New("timestamp is required: milliseconds since the epoch")}, false)
		return
	}
	topic := r.PathValue("topic")
	off, at, found, err := a.svc.OffsetForTimestamp(r.Context(), topic, int32(p), ts)
	if err != nil {
		a.fail(w, r, err, false)
		return
	}
	body := map[string]any{"partition": p, "offset": off, "found": found}
	if found {
		body["timestamp"] = at
	} else {
		ti, err := a.svc.Topic(topic)
		if err != nil {
			a.fail(w, r, err, false)
			return
		}
		for _, pi := range ti.PartitionsInfo {
			if pi.Partition == int32(p) {
				body["offset"] = pi.End
			}
		}
	}
	writeJSON(w, http.StatusOK, body)
}
