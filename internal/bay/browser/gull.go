// Package browser is Bay's browser capability (upstream-contract §1.8): the
// client of Gull, the browser runtime that runs beside Ship in a
// multi-container profile (or as one shared service), and the service behind
// the browser routes: single commands and batches with execution history,
// traces stored as payload blobs, and released browser skills run as batches.
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/logctx"
)

// ClientConfig holds the transport settings of the Gull client.
type ClientConfig struct {
	ConnectTimeout time.Duration // default 2s
	MaxIdleConns   int           // default 100
	// MaxResponseBytes caps one answer of Gull (default 16 MiB); a bigger
	// answer is a ship_error saying so, never read whole.
	MaxResponseBytes int64
	// DialContext replaces the TCP dialer (tests).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// WrapTransport, when set, wraps the pooled transport (the driver's
	// routing of some endpoints, e.g. Kubernetes' API server pod proxy).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// DefaultMaxResponseBytes caps one Gull answer.
const DefaultMaxResponseBytes = 16 << 20

// Client talks to Gull runtimes (per-sandbox containers, or the shared
// service) over one pooled transport.
type Client struct {
	http *http.Client
	max  int64
}

// NewClient returns a client with one pooled transport, never proxied.
func NewClient(cfg ClientConfig) *Client {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 2 * time.Second
	}
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = 100
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{Proxy: nil, DialContext: dial, MaxIdleConns: cfg.MaxIdleConns,
		MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	var rt http.RoundTripper = tr
	if cfg.WrapTransport != nil {
		rt = cfg.WrapTransport(tr)
	}
	return &Client{http: &http.Client{Transport: rt}, max: cfg.MaxResponseBytes}
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// ExecRequest is the body of Gull's POST /exec.
type ExecRequest struct {
	Cmd       string `json:"cmd"`
	SandboxID string `json:"sandbox_id,omitempty"`
	CargoID   string `json:"cargo_id,omitempty"`
	Timeout   int    `json:"timeout"`
}

// ExecResult is Gull's answer to /exec.
type ExecResult struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
}

// BatchRequest is the body of Gull's POST /exec_batch.
type BatchRequest struct {
	Commands    []string `json:"commands"`
	Timeout     int      `json:"timeout"`
	StopOnError bool     `json:"stop_on_error"`
	SandboxID   string   `json:"sandbox_id,omitempty"`
	CargoID     string   `json:"cargo_id,omitempty"`
}

// Step is one command of a batch.
type Step struct {
	Cmd        string `json:"cmd"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	ExitCode   int    `json:"exit_code"`
	StepIndex  int    `json:"step_index"`
	DurationMs int64  `json:"duration_ms"`
}

// BatchResult is Gull's answer to /exec_batch.
type BatchResult struct {
	Results        []Step `json:"results"`
	TotalSteps     int    `json:"total_steps"`
	CompletedSteps int    `json:"completed_steps"`
	Success        bool   `json:"success"`
	DurationMs     int64  `json:"duration_ms"`
}

// Exec runs one command line (HTTP deadline: timeout + 5 s, as upstream).
func (c *Client) Exec(ctx context.Context, t runtime.Target, in ExecRequest) (*ExecResult, error) {
	var out struct {
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
		ExitCode *int   `json:"exit_code"`
	}
	if err := c.call(ctx, t, http.MethodPost, "/exec", time.Duration(in.Timeout+5)*time.Second, in, &out); err != nil {
		return nil, err
	}
	r := &ExecResult{Stdout: out.Stdout, Stderr: out.Stderr, ExitCode: -1}
	if out.ExitCode != nil {
		r.ExitCode = *out.ExitCode
	}
	return r, nil
}

// ExecBatch runs commands in order (HTTP deadline: timeout + 10 s). Fields
// Gull leaves out take the values its results imply.
func (c *Client) ExecBatch(ctx context.Context, t runtime.Target, in BatchRequest) (*BatchResult, error) {
	var out struct {
		Results []struct {
			Step
			ExitCode  *int `json:"exit_code"`
			StepIndex *int `json:"step_index"`
		} `json:"results"`
		TotalSteps     *int   `json:"total_steps"`
		CompletedSteps *int   `json:"completed_steps"`
		Success        *bool  `json:"success"`
		DurationMs     *int64 `json:"duration_ms"`
	}
	if err := c.call(ctx, t, http.MethodPost, "/exec_batch", time.Duration(in.Timeout+10)*time.Second, in, &out); err != nil {
		return nil, err
	}
	r := &BatchResult{Results: make([]Step, 0, len(out.Results)), TotalSteps: len(in.Commands)}
	allOK := true
	for i, s := range out.Results {
		st := s.Step
		st.ExitCode, st.StepIndex = -1, i
		if s.ExitCode != nil {
			st.ExitCode = *s.ExitCode
		}
		if s.StepIndex != nil {
			st.StepIndex = *s.StepIndex
		}
		allOK = allOK && st.ExitCode == 0
		r.Results = append(r.Results, st)
	}
	r.CompletedSteps = len(r.Results)
	if out.TotalSteps != nil {
		r.TotalSteps = *out.TotalSteps
	}
	if out.CompletedSteps != nil {
		r.CompletedSteps = *out.CompletedSteps
	}
	r.Success = allOK && r.CompletedSteps == r.TotalSteps
	if out.Success != nil {
		r.Success = *out.Success
	}
	if out.DurationMs != nil {
		r.DurationMs = *out.DurationMs
	}
	return r, nil
}

// DeleteSession ends a sandbox's browser session in the shared service.
func (c *Client) DeleteSession(ctx context.Context, endpoint, sandboxID string) error {
	return c.call(ctx, runtime.Target{Endpoint: endpoint}, http.MethodDelete, "/sessions/"+sandboxID, 10*time.Second, nil, nil)
}

// call sends one JSON request and decodes at most c.max bytes of JSON into
// out. Errors follow upstream's mapping: an HTTP error status is 502 "Gull
// request failed: N"; no answer is 504 (timeout) or 502 (connection), both
// carrying runtime.ErrNoAnswer so the capability layer re-checks the session.
func (c *Client) call(ctx context.Context, t runtime.Target, method, path string, timeout time.Duration, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("browser: encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.Endpoint+path, body)
	if err != nil {
		return errs.New(errs.ShipError, "Gull request error").Wrap(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.Token != "" {
		req.Header.Set("Authorization", "Bearer "+t.Token)
	}
	if id := logctx.RequestID(ctx); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		cause := fmt.Errorf("%w: %w", runtime.ErrNoAnswer, err)
		switch {
		case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			return errs.Newf(errs.Timeout, "Gull request timed out: %s", path).Wrap(cause)
		case errors.Is(err, context.Canceled):
			return err // the caller went away, or the watchdog gave up (see context.Cause)
		}
		return errs.New(errs.ShipError, "Gull request error: connection failed").Wrap(cause)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		detail := readDetail(resp.Body)
		e := errs.Newf(errs.ShipError, "Gull request failed: %d", resp.StatusCode).Wrap(fmt.Errorf("gull answered %d", resp.StatusCode))
		d := map[string]any{"status": resp.StatusCode}
		if detail != "" {
			d["detail"] = detail
		}
		return e.With(d)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(runtime.CapReader(resp.Body, c.max)).Decode(out); err != nil {
		if errors.Is(err, runtime.ErrResponseTooLarge) {
			return errs.Newf(errs.ShipError, "Gull response too large (over %d bytes); print less, e.g. snapshot -i or snapshot -s <css>, or get text of one element", c.max).
				With(map[string]any{"limit_bytes": c.max}).Wrap(err)
		}
		if ctx.Err() != nil {
			return errs.Newf(errs.Timeout, "Gull request timed out: %s", path).Wrap(fmt.Errorf("%w: %w", runtime.ErrNoAnswer, err))
		}
		return errs.New(errs.ShipError, "Gull returned an invalid response").Wrap(err)
	}
	return nil
}

// readDetail returns FastAPI's "detail" of an error body (or its text), capped.
func readDetail(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	var d struct {
		Detail any `json:"detail"`
	}
	s := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &d) == nil && d.Detail != nil {
		if ds, ok := d.Detail.(string); ok {
			s = ds
		} else {
			j, _ := json.Marshal(d.Detail)
			s = string(j)
		}
	}
	return capText(s, 1024)
}

// capText cuts s to at most n bytes on a rune boundary, marking the cut.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
