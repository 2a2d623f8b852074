package tables

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client is the tables and SQL API over HTTP (docs/HTTP.md, "Tables").
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

func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr http.Header, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &APIError{}
		if err := json.Unmarshal(data, e); err != nil || e.Code == "" {
			msg := strings.TrimSpace(string(data))
			if msg == "" || len(msg) > 500 {
				msg = resp.Status
			}
			e = &APIError{Message: msg}
		}
		e.Status = resp.StatusCode
		return nil, e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer (%v): %.200s", method, path, err, data)
		}
	}
	return data, nil
}

func tablePath(name string) string { return "/v1/tables/" + url.PathEscape(name) }

// Create creates a table.
func (c *Client) Create(ctx context.Context, b CreateBody) (Info, error) {
	data, _ := json.Marshal(b)
	var out Info
	_, err := c.do(ctx, http.MethodPost, "/v1/tables", data, nil, &out)
	return out, err
}

// List lists the tables.
func (c *Client) List(ctx context.Context) ([]Info, error) {
	var out struct {
		Tables []Info `json:"tables"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/tables", nil, nil, &out)
	return out.Tables, err
}

// Describe describes a table.
func (c *Client) Describe(ctx context.Context, name string) (Info, error) {
	var out Info
	_, err := c.do(ctx, http.MethodGet, tablePath(name), nil, nil, &out)
	return out, err
}

// Alter sets a table's schema (optional columns added at the end).
func (c *Client) Alter(ctx context.Context, name string, s *Schema) (Info, error) {
	data, _ := json.Marshal(s)
	var out Info
	_, err := c.do(ctx, http.MethodPut, tablePath(name)+"/schema", data, nil, &out)
	return out, err
}

// Drop drops a table.
func (c *Client) Drop(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, tablePath(name), nil, nil, nil)
	return err
}

// SQL runs a query and returns the answer in the media type asked for
// (MediaJSON, MediaCSV or MediaArrow).
func (c *Client) SQL(ctx context.Context, query, accept string) ([]byte, error) {
	data, _ := json.Marshal(SQLBody{SQL: query})
	return c.do(ctx, http.MethodPost, "/v1/sql", data, http.Header{"Accept": {accept}}, nil)
}
