package preview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrBadPort: not a TCP port number (1..65535, decimal, no sign or leading zeros).
var ErrBadPort = errors.New("port must be a number from 1 to 65535")

// ParsePort parses a port path segment.
func ParsePort(s string) (int, error) {
	if len(s) == 0 || len(s) > 5 || s[0] == '0' {
		return 0, ErrBadPort
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrBadPort
		}
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, ErrBadPort
	}
	return n, nil
}

// CookieName is the cookie a token given as ?token= is kept in, scoped to
// the port's path so that the app's relative links work.
const CookieName = "bay_preview_token"

// TokenParam is the query parameter a token is given in.
const TokenParam = "token"

// PathPrefix is the route prefix of a sandbox's port (ends in "/").
func PathPrefix(sandboxID string, port int) string {
	return "/v1/sandboxes/" + sandboxID + "/ports/" + strconv.Itoa(port) + "/"
}

// RequestToken returns the token a request carries: ?token= first, then the
// cookie; fromQuery says which.
func RequestToken(r *http.Request) (tok string, fromQuery bool) {
	if q := r.URL.Query(); q.Has(TokenParam) {
		return q.Get(TokenParam), true
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value, false
	}
	return "", false
}

// TokenCookie is the cookie set when a token arrives as ?token=.
func TokenCookie(tok, sandboxID string, port int, expires time.Time, secure bool) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: tok, Path: PathPrefix(sandboxID, port), Expires: expires,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}

// Bay's own request headers, never sent to user code.
var bayHeaders = []string{"Authorization", "Proxy-Authorization", "X-Owner"}

// StripOutbound removes from an outbound request what belongs to Bay: its
// credentials (Authorization, X-Owner), the preview token (query parameter
// and cookie), leaving the app's own cookies and query as they were.
func StripOutbound(h http.Header, u *url.URL) {
	for _, k := range bayHeaders {
		h.Del(k)
	}
	if cs := h.Values("Cookie"); len(cs) > 0 {
		var keep []string
		for _, line := range cs {
			for _, part := range strings.Split(line, ";") {
				name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
				if name == "" || name == CookieName {
					continue
				}
				keep = append(keep, strings.TrimSpace(part))
			}
		}
		h.Del("Cookie")
		if len(keep) > 0 {
			h.Set("Cookie", strings.Join(keep, "; "))
		}
	}
	if u != nil && strings.Contains(u.RawQuery, TokenParam) {
		// Drop only the token's pairs; the app's query stays as it was sent.
		parts := strings.Split(u.RawQuery, "&")
		keep := parts[:0]
		for _, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if uk, err := url.QueryUnescape(k); err == nil && uk == TokenParam {
				continue
			}
			keep = append(keep, p)
		}
		u.RawQuery = strings.Join(keep, "&")
	}
}

// StripInbound removes from a response of user code any cookie it sets under
// the preview token's name: an app must not plant or clear Bay's token.
func StripInbound(h http.Header) {
	sc := h.Values("Set-Cookie")
	if len(sc) == 0 {
		return
	}
	h.Del("Set-Cookie")
	for _, line := range sc {
		name, _, _ := strings.Cut(line, "=")
		if strings.TrimSpace(name) != CookieName {
			h.Add("Set-Cookie", line)
		}
	}
}

// Target is where one proxied request goes.
type Target struct {
	Host   string // container address (no port)
	Port   int
	Prefix string // the Bay path prefix the request came under, e.g. /v1/sandboxes/x/ports/8000/
	// Release is called when the request (or the upgraded connection) ends.
	Release func()
	// OnError answers a request that could not reach the server.
	OnError ErrorFunc
}

type targetKey struct{}

// WithTarget attaches t to a request's context for Proxy.
func WithTarget(ctx context.Context, t *Target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

// Proxy reverse-proxies to a sandbox's port: all methods, responses
// streamed unbuffered, WebSocket (and other) upgrades passed through.
type Proxy struct {
	rp *httputil.ReverseProxy
	tr *http.Transport
}

// ErrorFunc answers a request the proxy could not complete.
type ErrorFunc func(w http.ResponseWriter, r *http.Request, err error)

// ErrUpstream wraps a failure to reach or read the sandbox's server.
var ErrUpstream = errors.New("the server in the sandbox could not be reached")

// NewProxy returns a proxy with one pooled transport.
func NewProxy(connectTimeout time.Duration, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.Default()
	}
	if connectTimeout <= 0 {
		connectTimeout = 2 * time.Second
	}
	tr := &http.Transport{
		Proxy:                  nil, // straight to the container, never via an HTTP proxy
		DialContext:            (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    32,
		IdleConnTimeout:        60 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		DisableCompression:     true, // pass the app's encoding through untouched
	}
	p := &Proxy{tr: tr}
	p.rp = &httputil.ReverseProxy{
		Transport:     tr,
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			t, _ := pr.In.Context().Value(targetKey{}).(*Target)
			if t == nil { // unreachable: the handler always sets it
				pr.Out.URL = &url.URL{Scheme: "http", Host: "invalid.invalid"}
				return
			}
			out := pr.Out
			rest := strings.TrimPrefix(pr.In.URL.Path, strings.TrimSuffix(t.Prefix, "/"))
			rawRest := strings.TrimPrefix(pr.In.URL.EscapedPath(), strings.TrimSuffix(t.Prefix, "/"))
			if rest == "" {
				rest, rawRest = "/", "/"
			}
			out.URL = &url.URL{Scheme: "http", Host: net.JoinHostPort(t.Host, strconv.Itoa(t.Port)),
				Path: rest, RawQuery: pr.In.URL.RawQuery}
			if rawRest != rest {
				out.URL.RawPath = rawRest
			}
			out.Host = out.URL.Host
			StripOutbound(out.Header, out.URL)
			pr.SetXForwarded()
			out.Header.Set("X-Forwarded-Prefix", strings.TrimSuffix(t.Prefix, "/"))
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			err = fmt.Errorf("%w: %w", ErrUpstream, err)
			if t, _ := r.Context().Value(targetKey{}).(*Target); t != nil && t.OnError != nil {
				t.OnError(w, r, err)
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		},
		ModifyResponse: func(resp *http.Response) error {
			StripInbound(resp.Header)
			return nil
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

// Serve proxies r to t.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, t *Target) {
	if t.Release != nil {
		defer t.Release()
	}
	p.rp.ServeHTTP(w, r.WithContext(WithTarget(r.Context(), t)))
}

// Close drops idle connections.
func (p *Proxy) Close() { p.tr.CloseIdleConnections() }
