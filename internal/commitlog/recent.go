package commitlog

import "sync"

// recentCommits keeps the bodies of the newest applied commits, so that a
// reader of inline data just committed (a tailing consumer, the usual
// case) slices it from memory instead of reading the commit object again.
type recentCommits struct {
	max   int // bytes kept (Options.RecentBytes)
	mu    sync.Mutex
	size  int
	order []string
	body  map[string][]byte
}

const recentMaxCommits = 256

func (r *recentCommits) add(seq uint64, data []byte) {
	if len(data) > r.max/4 {
		return
	}
	key := LogKey(seq)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.body == nil {
		r.body = map[string][]byte{}
	}
	if _, ok := r.body[key]; ok {
		return
	}
	r.body[key] = data
	r.order = append(r.order, key)
	r.size += len(data)
	for len(r.order) > recentMaxCommits || r.size > r.max {
		old := r.order[0]
		r.order = r.order[1:]
		r.size -= len(r.body[old])
		delete(r.body, old)
	}
}

// RecentBlob returns the bytes ref points to when they are inline in one
// of the newest commits this agent applied, without reading the bucket.
// The caller checks the CRC, as for any read.
func (l *Log) RecentBlob(ref Ref) ([]byte, bool) {
	r := &l.recent
	r.mu.Lock()
	body, ok := r.body[ref.Key]
	r.mu.Unlock()
	if !ok || ref.Off < 0 || ref.Len < 0 || ref.Off+ref.Len > int64(len(body)) {
		return nil, false
	}
	return body[ref.Off : ref.Off+ref.Len], true
}
