package functions

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
)

// Client is the functions API over HTTP (docs/HTTP.md, "Functions").
type Client struct {
	base string
	hc   *http.Client
}

// NewClient talks to the agent at base (http://host:port) through hc (nil:
// http.DefaultClient).
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(base, "/"), hc: hc}
}

func fnPath(name string) string { return "/v1/functions/" + url.PathEscape(name) }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) (*http.Response, []byte, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if out != nil {
		if resp.StatusCode >= 300 {
			return resp, data, decodeError(resp, data)
		}
		if err := json.Unmarshal(data, out); err != nil {
			return resp, data, fmt.Errorf("%s %s: unexpected answer (%v): %.200s", method, path, err, data)
		}
	}
	return resp, data, nil
}

func decodeError(resp *http.Response, data []byte) error {
	e := &APIError{}
	if err := json.Unmarshal(data, e); err != nil || e.Code == "" {
		msg := strings.TrimSpace(string(data))
		if msg == "" || len(msg) > 500 {
			msg = resp.Status
		} else {
			msg = resp.Status + ": " + msg
		}
		e = &APIError{Message: msg}
	}
	e.Status = resp.StatusCode
	return e
}

// Deploy deploys a version of function name.
func (c *Client) Deploy(ctx context.Context, name string, body DeployBody) (Info, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Info{}, err
	}
	var out Info
	_, _, err = c.do(ctx, http.MethodPut, fnPath(name), nil, b, &out)
	return out, err
}

// List is the inventory.
func (c *Client) List(ctx context.Context) ([]Info, error) {
	var out struct {
		Functions []Info `json:"functions"`
	}
	_, _, err := c.do(ctx, http.MethodGet, "/v1/functions", nil, nil, &out)
	return out.Functions, err
}

// History lists a function's versions.
func (c *Client) History(ctx context.Context, name string) ([]Info, error) {
	var out struct {
		Versions []Info `json:"versions"`
	}
	_, _, err := c.do(ctx, http.MethodGet, fnPath(name)+"/history", nil, nil, &out)
	return out.Versions, err
}

// Rollback deploys version to again (0: the one before the live one).
func (c *Client) Rollback(ctx context.Context, name string, to int) (Info, error) {
	q := url.Values{}
	if to > 0 {
		q.Set("to", strconv.Itoa(to))
	}
	var out Info
	_, _, err := c.do(ctx, http.MethodPost, fnPath(name)+"/rollback", q, nil, &out)
	return out, err
}

// Delete deletes a function with its actors.
func (c *Client) Delete(ctx context.Context, name string) error {
	resp, data, err := c.do(ctx, http.MethodDelete, fnPath(name), nil, nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp, data)
	}
	return nil
}

// Invoke invokes a function; keyed with key. The answer is the guest's:
// its status, headers and body. An error is the runtime's (the guest
// trapped, the function does not exist).
func (c *Client) Invoke(ctx context.Context, name string, key *string, method string, body []byte) (Response, error) {
	q := url.Values{}
	if key != nil {
		q.Set("key", *key)
	}
	if method != "" {
		q.Set("method", method)
	}
	resp, data, err := c.do(ctx, http.MethodPost, fnPath(name)+"/invoke", q, body, nil)
	if err != nil {
		return Response{}, err
	}
	if resp.Header.Get("Twoway-Error") != "" {
		var e APIError
		if json.Unmarshal(data, &e) == nil && e.Code != "" {
			e.Status = resp.StatusCode
			return Response{}, &e
		}
	}
	out := Response{Status: resp.StatusCode, Body: data}
	for k, vs := range resp.Header {
		for _, v := range vs {
			out.Headers = append(out.Headers, [2]string{k, v})
		}
	}
	return out, nil
}

// Actor reads an actor's committed state.
func (c *Client) Actor(ctx context.Context, name, key string) ([]byte, error) {
	resp, data, err := c.do(ctx, http.MethodGet, fnPath(name)+"/actors/"+url.PathEscape(key), nil, nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp, data)
	}
	return data, nil
}
