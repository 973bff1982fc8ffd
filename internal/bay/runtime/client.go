// Package runtime is Bay's client of Ship, the in-sandbox runtime. One pooled
// HTTP client serves every session; each call carries the session's token and
// the caller's request id.
package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/logctx"
)

// Config holds the transport settings (all from Bay's config).
type Config struct {
	ConnectTimeout time.Duration // default 2s: Ship runs on this host or its cluster network
	RequestTimeout time.Duration // default for calls without their own (60s)
	FileTimeout    time.Duration // file operations other than transfers (30s)
	MaxIdleConns   int           // default 100
	// MaxResponseBytes caps one JSON answer of Ship (default 16 MiB, well above
	// Ship's per-output caps); a bigger answer is a ship_error, never read whole.
	MaxResponseBytes int64
	// MaxFileResponseBytes caps read_file and list_dir answers (default 48 MiB;
	// Ship reads at most 32 MiB of a file).
	MaxFileResponseBytes int64
	// DialContext replaces the TCP dialer (tests inject unreachable hosts).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// WrapTransport, when set, wraps the pooled transport: the driver's way to
	// route some endpoints differently (Kubernetes: through the API server's
	// pod proxy, with Bay's kube credentials).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Defaults of Config.
const (
	DefaultConnectTimeout       = 2 * time.Second
	DefaultMaxResponseBytes     = 16 << 20
	DefaultMaxFileResponseBytes = 48 << 20
	maxDetailBytes              = 1024 // of Ship's error message passed to the client
)

// Client talks to Ship instances.
type Client struct {
	http   *http.Client // for the proxies of HTTP() (terminal, ports)
	calls  *http.Client // for Bay's own calls: direct, then the same transport
	direct *direct
	cfg    Config
}

// New returns a client with one pooled transport (and, for Bay's own calls,
// pooled connections read on the caller's goroutine; see direct).
func New(cfg Config) *Client {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.FileTimeout <= 0 {
		cfg.FileTimeout = 30 * time.Second
	}
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = 100
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxFileResponseBytes <= 0 {
		cfg.MaxFileResponseBytes = DefaultMaxFileResponseBytes
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		Proxy:               nil, // never route Bay→Ship through a proxy
		DialContext:         dial,
		MaxIdleConns:        cfg.MaxIdleConns,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
	d := &direct{next: tr, dial: dial, idleTimeout: tr.IdleConnTimeout,
		maxIdlePerHost: tr.MaxIdleConnsPerHost, maxIdle: cfg.MaxIdleConns}
	var rt, calls http.RoundTripper = tr, d
	if cfg.WrapTransport != nil {
		rt, calls = cfg.WrapTransport(tr), cfg.WrapTransport(d)
	}
	return &Client{http: &http.Client{Transport: rt}, calls: &http.Client{Transport: calls}, direct: d, cfg: cfg}
}

// Close drops idle connections; the client pools none after it.
func (c *Client) Close() {
	c.direct.closeIdle(true)
	c.http.CloseIdleConnections()
}

// Unreachable reports whether err means the request never reached Ship (the
// connection could not be made), so repeating it cannot run anything twice.
func Unreachable(err error) bool {
	var op *net.OpError
	return errors.Is(err, ErrNotConnected) || (errors.As(err, &op) && op.Op == "dial")
}

// ErrNotConnected is the cause a caller gives when it abandons a call whose
// connection was never made (see Unreachable).
var ErrNotConnected = errors.New("runtime: connection never made")

// ErrNoAnswer is in the chain of every error where Ship gave no HTTP answer
// (connection failed or reset, timeout): the only failures that say anything
// about the runtime's health. An HTTP error status from Ship never carries it.
var ErrNoAnswer = errors.New("runtime gave no answer")

// NoAnswer reports whether err carries ErrNoAnswer.
func NoAnswer(err error) bool { return errors.Is(err, ErrNoAnswer) }

// errResponseTooLarge is the cause when Ship's answer exceeds the cap.
var errResponseTooLarge = errors.New("response exceeds the cap")

// Target addresses one Ship.
type Target struct {
	Endpoint string // http://host:port
	Token    string
}

func (c *Client) newRequest(ctx context.Context, t Target, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.Endpoint+path, body)
	if err != nil {
		return nil, errs.New(errs.ShipError, "Ship request error").Wrap(err)
	}
	if t.Token != "" {
		req.Header.Set("Authorization", "Bearer "+t.Token)
	}
	if id := logctx.RequestID(ctx); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	return req, nil
}

// do sends the request and returns the response for 2xx; otherwise an *errs.Error.
func (c *Client) do(req *http.Request, path string, fileOp bool) (*http.Response, error) {
	resp, err := c.calls.Do(req)
	if err != nil {
		var ne net.Error
		cause := fmt.Errorf("%w: %w", ErrNoAnswer, err)
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, errs.Newf(errs.Timeout, "Ship request timed out: %s", path).Wrap(cause)
		}
		if errors.Is(err, context.Canceled) {
			return nil, err // the caller went away, or gave up on this call (see context.Cause)
		}
		return nil, errs.New(errs.ShipError, "Ship request error: connection failed").Wrap(cause)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, statusError(resp.StatusCode, readDetail(resp.Body), fileOp)
}

// statusError maps an HTTP error status of Ship. Ship's 4xx are the caller's
// mistakes (a path out of the workspace, a directory read as a file, ...) and
// become the matching 4xx with Ship's message; anything else is a runtime
// failure (502). Ship's messages never hold secrets; they are capped.
func statusError(status int, detail string, fileOp bool) *errs.Error {
	detail = capText(detail, maxDetailBytes)
	msg := func(def string) string {
		if detail != "" {
			return detail
		}
		return def
	}
	cause := fmt.Errorf("ship answered %d", status)
	switch status {
	case http.StatusBadRequest:
		if strings.HasPrefix(detail, "Invalid path") {
			return errs.New(errs.InvalidPath, detail).Wrap(cause)
		}
		return errs.New(errs.Validation, msg("Validation error")).Wrap(cause)
	case http.StatusUnprocessableEntity:
		return errs.New(errs.Validation, "Invalid request to the runtime").
			With(map[string]any{"detail": detail}).Wrap(cause)
	case http.StatusForbidden:
		return errs.New(errs.Forbidden, msg("Permission denied")).Wrap(cause)
	case http.StatusNotFound:
		if fileOp {
			return errs.New(errs.FileNotFound, msg("File not found")).Wrap(cause)
		}
		return errs.New(errs.NotFound, msg("Resource not found")).Wrap(cause)
	case http.StatusConflict:
		return errs.New(errs.Conflict, msg("Conflict")).Wrap(cause)
	case http.StatusTooManyRequests: // a runtime limit, e.g. background processes
		return errs.New(errs.QuotaExceeded, msg("Runtime limit reached")).Wrap(cause)
	case http.StatusRequestEntityTooLarge:
		return errs.New(errs.TooLarge, msg("Too large")).Wrap(cause)
	}
	return errs.Newf(errs.ShipError, "Ship request failed: %d", status).
		With(map[string]any{"status": status, "detail": detail}).Wrap(cause)
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

func readDetail(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10)) // error bodies are small; cap them anyway
	var d struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(b, &d) == nil && d.Detail != nil {
		if s, ok := d.Detail.(string); ok {
			return s
		}
		j, _ := json.Marshal(d.Detail)
		return string(j)
	}
	return strings.TrimSpace(string(b))
}

// CapReader reads at most max bytes of r; more is an error matching
// ErrResponseTooLarge, so a runaway answer of any runtime (Ship, Gull) costs
// Bay at most max bytes (plus what decoding builds).
func CapReader(r io.Reader, max int64) io.Reader { return &cappedBody{r: r, left: max} }

// ErrResponseTooLarge is the cause when a runtime's answer exceeds its cap.
var ErrResponseTooLarge = errResponseTooLarge

// cappedBody reads at most max bytes of r; more is errResponseTooLarge, so a
// runaway answer costs Bay at most max bytes (plus what decoding builds).
type cappedBody struct {
	r    io.Reader
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.r.Read(one[:]); n > 0 {
			return 0, errResponseTooLarge
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// decode reads one JSON answer of at most max bytes into out.
func decode(r io.Reader, max int64, out any) error {
	if err := json.NewDecoder(&cappedBody{r: r, left: max}).Decode(out); err != nil {
		if errors.Is(err, errResponseTooLarge) {
			return errs.New(errs.ShipError, "Ship response too large").
				With(map[string]any{"limit_bytes": max}).Wrap(err)
		}
		return errs.New(errs.ShipError, "Ship returned an invalid response").Wrap(err)
	}
	return nil
}

// call POSTs (or GETs when in == nil and method GET) JSON and decodes at most
// max bytes of JSON into out.
func (c *Client) call(ctx context.Context, t Target, method, path string, timeout time.Duration, fileOp bool, max int64, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("runtime: encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, t, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(req, path, fileOp)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	return decode(resp.Body, max, out)
}

// Healthy reports whether GET /health answers 200 within timeout.
func (c *Client) Healthy(ctx context.Context, t Target, timeout time.Duration) bool {
	return c.call(ctx, t, http.MethodGet, "/health", timeout, false, 0, nil, nil) == nil
}

// Meta is Ship's /meta document (only what Bay reads; Raw keeps the rest).
type Meta struct {
	Runtime struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"runtime"`
	Capabilities map[string]json.RawMessage `json:"capabilities"`
}

// Meta fetches /meta.
func (c *Client) Meta(ctx context.Context, t Target) (*Meta, error) {
	var m Meta
	if err := c.call(ctx, t, http.MethodGet, "/meta", 5*time.Second, false, c.cfg.MaxResponseBytes, nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// PythonResult is Ship's /ipython/exec answer; Output is kept raw so additive
// fields (other MIME types) reach the client unchanged.
type PythonResult struct {
	Success         bool            `json:"success"`
	ExecutionCount  *int            `json:"execution_count"`
	Output          json.RawMessage `json:"output"`
	Error           *string         `json:"error"`
	TimedOut        bool            `json:"timed_out,omitempty"`
	KernelRestarted bool            `json:"kernel_restarted,omitempty"`
	Notice          *string         `json:"notice,omitempty"`
	Truncated       bool            `json:"truncated,omitempty"`
}

// Text returns output.text.
func (r *PythonResult) Text() string {
	var o struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(r.Output, &o)
	return o.Text
}

// Python runs code in the kernel.
func (c *Client) Python(ctx context.Context, t Target, code string, timeout int) (*PythonResult, error) {
	var r PythonResult
	in := map[string]any{"code": code, "timeout": timeout, "silent": false}
	if err := c.call(ctx, t, http.MethodPost, "/ipython/exec", time.Duration(timeout+5)*time.Second, false, c.cfg.MaxResponseBytes, in, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ShellResult is Ship's /shell/exec answer.
type ShellResult struct {
	Success    bool    `json:"success"`
	ReturnCode *int    `json:"return_code"`
	Stdout     string  `json:"stdout"`
	Stderr     string  `json:"stderr"`
	Pid        *int    `json:"pid"`
	ProcessID  *string `json:"process_id"`
	Error      *string `json:"error"`
	TimedOut   bool    `json:"timed_out,omitempty"`
	Truncated  bool    `json:"truncated,omitempty"`
	Notice     *string `json:"notice,omitempty"`
}

// Shell runs a command.
func (c *Client) Shell(ctx context.Context, t Target, command string, timeout int, cwd string) (*ShellResult, error) {
	var r ShellResult
	in := map[string]any{"command": command, "timeout": timeout}
	if cwd != "" {
		in["cwd"] = cwd
	}
	if err := c.call(ctx, t, http.MethodPost, "/shell/exec", time.Duration(timeout+5)*time.Second, false, c.cfg.MaxResponseBytes, in, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ReadFile returns a text file's content.
func (c *Client) ReadFile(ctx context.Context, t Target, path string) (string, error) {
	var r struct {
		Content string `json:"content"`
	}
	err := c.call(ctx, t, http.MethodPost, "/fs/read_file", c.cfg.FileTimeout, true, c.cfg.MaxFileResponseBytes, map[string]any{"path": path}, &r)
	return r.Content, err
}

// WriteFile writes (creating parents).
func (c *Client) WriteFile(ctx context.Context, t Target, path, content string) error {
	return c.call(ctx, t, http.MethodPost, "/fs/write_file", c.cfg.FileTimeout, true, 0,
		map[string]any{"path": path, "content": content, "mode": "w"}, nil)
}

// ListDir returns Ship's entries verbatim.
func (c *Client) ListDir(ctx context.Context, t Target, path string) ([]json.RawMessage, error) {
	var r struct {
		Files []json.RawMessage `json:"files"`
	}
	err := c.call(ctx, t, http.MethodPost, "/fs/list_dir", c.cfg.FileTimeout, true, c.cfg.MaxFileResponseBytes,
		map[string]any{"path": path, "show_hidden": false}, &r)
	if r.Files == nil {
		r.Files = []json.RawMessage{}
	}
	return r.Files, err
}

// DeleteFile deletes a file or directory (recursively).
func (c *Client) DeleteFile(ctx context.Context, t Target, path string) error {
	return c.call(ctx, t, http.MethodPost, "/fs/delete_file", c.cfg.FileTimeout, true, 0, map[string]any{"path": path}, nil)
}

// Upload streams r to path as multipart without buffering the whole file.
func (c *Client) Upload(ctx context.Context, t Target, path string, r io.Reader, timeout time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if err := mw.WriteField("file_path", path); err != nil {
				return err
			}
			part, err := mw.CreateFormFile("file", "file")
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, r); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := c.newRequest(ctx, t, http.MethodPost, "/fs/upload", pr)
	if err != nil {
		pr.CloseWithError(err)
		return 0, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.do(req, "/fs/upload", true)
	if err != nil {
		pr.CloseWithError(err)
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Success bool    `json:"success"`
		Size    int64   `json:"size"`
		Error   *string `json:"error"`
	}
	if err := decode(resp.Body, 1<<20, &out); err != nil {
		return 0, err
	}
	if !out.Success {
		msg := "upload failed"
		if out.Error != nil {
			msg = *out.Error
		}
		return 0, errs.New(errs.ShipError, "Ship upload failed").Wrap(errors.New(msg))
	}
	return out.Size, nil
}

// Download opens the file; the caller must close the body. Size is -1 when
// unknown. Ship must start answering within the file timeout (a runtime that
// stopped answering must not hold the caller forever); the body then streams
// for as long as the caller's ctx allows.
func (c *Client) Download(ctx context.Context, t Target, path string) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := c.newRequest(ctx, t, http.MethodGet, "/fs/download?file_path="+url.QueryEscape(path), nil)
	if err != nil {
		cancel(nil)
		return nil, 0, err
	}
	stall := time.AfterFunc(c.cfg.FileTimeout, func() { cancel(context.DeadlineExceeded) })
	resp, err := c.do(req, "/fs/download", true)
	if !stall.Stop() && err != nil && errors.Is(err, context.Canceled) {
		err = errs.New(errs.Timeout, "Ship request timed out: /fs/download").Wrap(fmt.Errorf("%w: %w", ErrNoAnswer, err))
	}
	if err != nil {
		cancel(nil)
		return nil, 0, err
	}
	return cancelingBody{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}, resp.ContentLength, nil
}

type cancelingBody struct {
	io.ReadCloser
	cancel func()
}

func (b cancelingBody) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}

// HTTP returns the pooled client for streaming proxies (terminal).
func (c *Client) HTTP() *http.Client { return c.http }
