package fn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// request is the *http.Request of an HTTP event, as net/http's server would
// make it: URL.Path is the path after /fn/{name}, the Host header becomes
// Host.
func (ev *event) request() *http.Request {
	u := &url.URL{Path: ev.path, RawQuery: ev.query}
	h := make(http.Header, len(ev.headers))
	for _, f := range ev.headers {
		h[f.name] = append(h[f.name], f.value)
	}
	host := h.Get("Host")
	delete(h, "Host")
	var body io.ReadCloser = http.NoBody
	if len(ev.body) > 0 {
		body = io.NopCloser(bytes.NewReader(ev.body))
	}
	return &http.Request{
		Method:        ev.method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: int64(len(ev.body)),
		Host:          host,
		RequestURI:    u.RequestURI(),
	}
}

// responseWriter is the http.ResponseWriter of an HTTP event: it keeps the
// response, which is encoded when the handler returns.
type responseWriter struct {
	header http.Header
	sent   http.Header // header as of WriteHeader
	status int         // 0 until WriteHeader
	head   bool
	body   bytes.Buffer
}

func newResponseWriter(method string) *responseWriter {
	return &responseWriter{header: http.Header{}, head: method == http.MethodHead}
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader is as net/http's: the first call with a final status wins,
// 1xx are ignored, a code outside 100-999 panics.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	w.sent = w.header.Clone()
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.head {
		return len(p), nil
	}
	return w.body.Write(p)
}

// Flush does nothing: the response is sent when the handler returns.
func (w *responseWriter) Flush() {}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// result is the response; like net/http's server it sniffs a missing
// Content-Type.
func (w *responseWriter) result() (int, http.Header, []byte) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	h, body := w.sent, w.body.Bytes()
	if _, ok := h["Content-Type"]; !ok && len(body) > 0 && h.Get("Content-Encoding") == "" {
		h.Set("Content-Type", http.DetectContentType(body))
	}
	return w.status, h, body
}

// Transport is an http.RoundTripper that sends requests through the host
// (http_fetch): use it in an http.Client inside a function. The deployment
// must grant http:HOST for the request's host. The request is sent at
// once, not when the invocation commits, and its context cannot cancel it
// once sent.
var Transport http.RoundTripper = fetchTransport{}

type fetchTransport struct{}

func (fetchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	if req.URL == nil {
		return nil, errors.New("fn: http fetch: request has no URL")
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	h := req.Header
	if req.Host != "" && req.Host != req.URL.Host {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Host", req.Host)
	}
	u := req.URL.String()
	res, code := current.httpFetch(encodeFetch(method, u, h, body))
	if err := check(code, "http fetch", u); err != nil {
		return nil, err
	}
	status, rh, rbody, err := decodeResponse(res)
	if err != nil {
		return nil, fmt.Errorf("fn: http fetch %q: malformed response: %w", u, err)
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rh,
		Body:          io.NopCloser(bytes.NewReader(rbody)),
		ContentLength: int64(len(rbody)),
		Request:       req,
	}, nil
}
