package shipyard

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one Bay. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	token    string
	hc       *http.Client
	attempts int           // tries of a retryable request, ≥ 1
	maxWait  time.Duration // longest pause between tries
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (its transport and timeout). The
// default is http.DefaultClient. A Timeout on it also bounds streamed
// executions and followed output: leave it 0 and use contexts for those.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetries sets how many times a request that is safe to repeat is tried
// in all (default 3; 1 turns retries off). Safe to repeat: GET, PUT and
// DELETE, and creates, which carry an Idempotency-Key. Executions, uploads
// and signals are never repeated. maxWait bounds one pause, including one
// asked for by Retry-After (default 5 s).
func WithRetries(attempts int, maxWait time.Duration) Option {
	return func(c *Client) {
		c.attempts = max(attempts, 1)
		if maxWait > 0 {
			c.maxWait = maxWait
		}
	}
}

// New returns a client of the Bay at endpoint (e.g. http://127.0.0.1:8114).
// token is sent as "Authorization: Bearer <token>"; when empty no
// Authorization header is sent (anonymous Bay, or a transport that adds it).
func New(endpoint, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("shipyard: endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("shipyard: endpoint %q: want http(s)://host[:port]", endpoint)
	}
	c := &Client{base: u, token: token, hc: http.DefaultClient, attempts: 3, maxWait: 5 * time.Second}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Endpoint returns the Bay's base URL.
func (c *Client) Endpoint() string { return c.base.String() }

func (c *Client) url(path string, q url.Values) string {
	// path is already escaped (see sandboxPath), so it is appended as text.
	s := c.base.String() + path
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// call is one API request.
type call struct {
	method, path string
	query        url.Values
	in           any       // JSON body (nil: none)
	stream       io.Reader // raw body (never retried); with contentType
	contentType  string
	accept       string
	idemKey      string
	out          any // JSON answer (nil: discarded)
}

func (r *call) retryable() bool {
	if r.stream != nil {
		return false
	}
	switch r.method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.idemKey != ""
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// open performs r (with retries where safe) and returns a 2xx response;
// anything else becomes an *APIError.
func (c *Client) open(ctx context.Context, r call) (*http.Response, error) {
	var body []byte
	if r.in != nil {
		b, err := json.Marshal(r.in)
		if err != nil {
			return nil, fmt.Errorf("shipyard: encode %s %s: %w", r.method, r.path, err)
		}
		body, r.contentType = b, "application/json"
	}
	tries := 1
	if r.retryable() {
		tries = c.attempts
	}
	for i := 1; ; i++ {
		var rd io.Reader
		switch {
		case r.stream != nil:
			rd = r.stream
		case body != nil:
			rd = bytes.NewReader(body)
		}
		resp, err := c.once(ctx, r, rd)
		if err == nil || i >= tries || ctx.Err() != nil {
			return resp, err
		}
		wait, again := c.backoff(i, err)
		if !again {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// backoff says whether err is worth another try, and after how long.
func (c *Client) backoff(try int, err error) (time.Duration, bool) {
	d := time.Duration(100<<min(try-1, 6)) * time.Millisecond
	d += rand.N(d/2 + 1) // jitter
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return 0, false
		}
		if ae.RetryAfter > 0 {
			d = ae.RetryAfter
		}
	}
	return min(d, c.maxWait), true
}

func (c *Client) once(ctx context.Context, r call, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, c.url(r.path, r.query), body)
	if err != nil {
		return nil, fmt.Errorf("shipyard: %s %s: %w", r.method, r.path, err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	if r.idemKey != "" {
		req.Header.Set("Idempotency-Key", r.idemKey)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("shipyard: %s %s: %w", r.method, r.path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// call performs r and decodes the answer into r.out.
func (c *Client) call(ctx context.Context, r call) error {
	resp, err := c.open(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if r.out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(r.out); err != nil {
		return fmt.Errorf("shipyard: decode %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// do sends in (JSON, unless nil) and decodes the answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	return c.call(ctx, call{method: method, path: path, query: q, in: in, out: out})
}

// send performs one request with a raw body and returns the 2xx response.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	return c.open(ctx, call{method: method, path: path, query: q, stream: body, contentType: contentType})
}

func sandboxPath(id, rest string) string { return "/v1/sandboxes/" + url.PathEscape(id) + rest }
