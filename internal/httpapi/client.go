package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// Client calls the streams API of a twoway agent. It is safe for concurrent
// use. Failed calls return an *Error when the agent answered; errors.Is
// works with the stream package's sentinels (stream.ErrUnknownTopic...).
type Client struct {
	base string // scheme://host[/prefix], no trailing slash
	hc   *http.Client
}

// NewClient returns a client for the agent at baseURL, such as
// http://127.0.0.1:8080. A nil hc means a client without a timeout: reads
// long-poll, so bound calls with their contexts.
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid server URL %q: want http://host:port", baseURL)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), hc: hc}, nil
}

// NewInProcessClient returns a client that calls h (a Server with the
// streams API) directly in this process, with no network in between. The
// CLI's embedded mode uses it, so that both of its modes behave alike.
func NewInProcessClient(h http.Handler) *Client {
	return &Client{base: "http://in-process", hc: &http.Client{Transport: handlerTransport{h}}}
}

// do sends a request with an optional JSON body (a []byte is sent as is)
// and decodes a JSON answer into out, if not nil.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return responseError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: unexpected answer (%v): %.200s", method, path, err, data)
	}
	return nil
}

func responseError(resp *http.Response, data []byte) *Error {
	e := &Error{}
	if err := json.Unmarshal(data, e); err != nil || e.Code == "" {
		// Not one of ours: a proxy, or a route this agent does not have.
		e = &Error{Message: strings.TrimSpace(string(data))}
		if e.Message == "" || len(e.Message) > 500 {
			e.Message = resp.Status
		} else {
			e.Message = resp.Status + ": " + e.Message
		}
	}
	e.Status = resp.StatusCode
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

func topicPath(name string) string { return "/v1/topics/" + url.PathEscape(name) }

// CreateTopic creates a topic. Zero Partitions means 1; zero retention
// fields mean no limit.
func (c *Client) CreateTopic(ctx context.Context, cfg stream.TopicConfig) (Topic, error) {
	req := createTopicRequest{Name: cfg.Name}
	if cfg.Partitions != 0 {
		req.Partitions = &cfg.Partitions
	}
	if cfg.RetentionMs != 0 {
		req.RetentionMs = &cfg.RetentionMs
	}
	if cfg.RetentionBytes != 0 {
		req.RetentionBytes = &cfg.RetentionBytes
	}
	req.Configs = cfg.Configs
	var t Topic
	err := c.do(ctx, "POST", "/v1/topics", nil, req, &t)
	return t, err
}

// Topics lists the topics, without their partitions.
func (c *Client) Topics(ctx context.Context) ([]Topic, error) {
	var out struct {
		Topics []Topic `json:"topics"`
	}
	err := c.do(ctx, "GET", "/v1/topics", nil, nil, &out)
	return out.Topics, err
}

// Topic describes a topic and its partitions, as of now on every agent.
func (c *Client) Topic(ctx context.Context, name string) (Topic, error) {
	var t Topic
	err := c.do(ctx, "GET", topicPath(name), nil, nil, &t)
	return t, err
}

// DeleteTopic deletes a topic and its records.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", topicPath(name), nil, nil, nil)
}

// AddPartitions grows a topic to n partitions.
func (c *Client) AddPartitions(ctx context.Context, name string, n int32) (Topic, error) {
	var t Topic
	err := c.do(ctx, "POST", topicPath(name)+"/partitions", nil, addPartitionsRequest{Partitions: &n}, &t)
	return t, err
}

// SetRetention changes the retention of a topic; nil leaves a limit as it
// is, -1 removes it.
func (c *Client) SetRetention(ctx context.Context, name string, retentionMs, retentionBytes *int64) (Topic, error) {
	var t Topic
	err := c.do(ctx, "PATCH", topicPath(name), nil, alterTopicRequest{RetentionMs: retentionMs, RetentionBytes: retentionBytes}, &t)
	return t, err
}

// SetConfigs sets Kafka topic configs (docs/KAFKA.md) of a topic; a nil
// value returns that config to its default.
func (c *Client) SetConfigs(ctx context.Context, name string, configs map[string]*string) (Topic, error) {
	var t Topic
	err := c.do(ctx, "PATCH", topicPath(name), nil, alterTopicRequest{Configs: configs}, &t)
	return t, err
}

// Produce appends records in one commit and returns their partitions and
// offsets in order, once they are durable. When only some records failed,
// the *Error it returns has the outcome of each in Offsets.
func (c *Client) Produce(ctx context.Context, topic string, recs []ProduceRecord) ([]ProduceOffset, error) {
	body, err := encodeProduceRecords(recs)
	if err != nil {
		return nil, err
	}
	var out produceResponse
	if err := c.do(ctx, "POST", topicPath(topic)+"/records", nil, body, &out); err != nil {
		return nil, err
	}
	if len(out.Offsets) != len(recs) {
		return nil, fmt.Errorf("produce: %d offsets for %d records", len(out.Offsets), len(recs))
	}
	return out.Offsets, nil
}

// ReadResult is what Read returns.
type ReadResult struct {
	Records []records.Record
	// NextOffset is where the next read continues.
	NextOffset    int64
	HighWatermark int64
	// LastStableOffset: below it every transaction has ended; a
	// read_committed reader gets nothing at or above it.
	LastStableOffset int64
	LogStartOffset   int64
}

// Read returns up to max records of a partition from offset (a number,
// OffsetEarliest or OffsetLatest), waiting up to wait for the first one
// when there is none yet. It reads uncommitted, as Kafka consumers do by
// default: records of open and aborted transactions too.
func (c *Client) Read(ctx context.Context, topic string, partition int32, offset int64, max int, wait time.Duration) (ReadResult, error) {
	return c.read(ctx, topic, partition, offset, max, wait, false)
}

// ReadCommitted is Read with isolation=read_committed: only records below
// the last stable offset, without those of aborted transactions.
func (c *Client) ReadCommitted(ctx context.Context, topic string, partition int32, offset int64, max int, wait time.Duration) (ReadResult, error) {
	return c.read(ctx, topic, partition, offset, max, wait, true)
}

func (c *Client) read(ctx context.Context, topic string, partition int32, offset int64, max int, wait time.Duration, committed bool) (ReadResult, error) {
	q := url.Values{}
	if committed {
		q.Set("isolation", "read_committed")
	}
	switch offset {
	case OffsetEarliest:
		q.Set("offset", "earliest")
	case OffsetLatest:
		q.Set("offset", "latest")
	default:
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	if max > 0 {
		q.Set("max", strconv.Itoa(max))
	}
	if wait > 0 {
		q.Set("wait", strconv.FormatInt(wait.Milliseconds(), 10))
	}
	var out readResponse
	path := fmt.Sprintf("%s/partitions/%d/records", topicPath(topic), partition)
	if err := c.do(ctx, "GET", path, q, nil, &out); err != nil {
		return ReadResult{}, err
	}
	res := ReadResult{NextOffset: out.NextOffset, HighWatermark: out.HighWatermark, LastStableOffset: out.LastStableOffset, LogStartOffset: out.LogStartOffset}
	for _, r := range out.Records {
		rec, err := r.Decode()
		if err != nil {
			return res, fmt.Errorf("read %s/%d: record at offset %d: %w", topic, partition, r.Offset, err)
		}
		res.Records = append(res.Records, rec)
	}
	return res, nil
}

// handlerTransport serves requests with a handler in this process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sreq := req.Clone(req.Context())
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "in-process"
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	w := &responseBuffer{header: http.Header{}}
	t.h.ServeHTTP(w, sreq)
	if req.Body != nil {
		req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err // as a network client would: the answer is not awaited
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(&w.body),
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}, nil
}

// responseBuffer is the ResponseWriter of handlerTransport.
type responseBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseBuffer) Header() http.Header { return w.header }

func (w *responseBuffer) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseBuffer) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// InProcessTransport serves requests with h in this process, for clients
// of APIs other than the streams' (the functions API).
func InProcessTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }
