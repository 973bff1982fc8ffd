package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"k8s.io/client-go/rest"
)

// shipTokenHeader carries Ship's token through the pod proxy: the API server
// takes Authorization for Bay's own credentials and drops it before
// forwarding (Ship's server.TokenHeader).
const shipTokenHeader = "X-Ship-Token"

// maxStatusBytes bounds what is read of an error answer to tell the API
// server's own Status from Ship's answer.
const maxStatusBytes = 64 << 10

// apiProxy reaches runtimes through the API server's pod proxy
// (.../pods/<pod>:<port>/proxy), for a Bay outside the cluster network.
type apiProxy struct {
	origin string            // scheme://host of the API server
	path   string            // <base path>/api/v1/namespaces/<ns>/pods/
	rt     http.RoundTripper // with Bay's kube credentials
	log    *slog.Logger
}

func newAPIProxy(rc *rest.Config, namespace string, log *slog.Logger) (*apiProxy, error) {
	base, _, err := rest.DefaultServerUrlFor(rc)
	if err != nil {
		return nil, fmt.Errorf("k8s: api server url: %w", err)
	}
	rt, err := rest.TransportFor(rc)
	if err != nil {
		return nil, fmt.Errorf("k8s: api server transport: %w", err)
	}
	return &apiProxy{
		origin: base.Scheme + "://" + base.Host,
		path:   strings.TrimRight(base.Path, "/") + "/api/v1/namespaces/" + namespace + "/pods/",
		rt:     rt,
		log:    log,
	}, nil
}

// endpoint of port of pod through the proxy.
func (p *apiProxy) endpoint(pod, port string) string {
	return p.origin + p.path + pod + ":" + port + "/proxy"
}

// WrapTransport returns the transport Bay's runtime client (and its terminal
// and port proxies) should use: requests to pod proxy endpoints go to the API
// server with Bay's kube credentials, Ship's token moved to X-Ship-Token;
// everything else goes to next. With pod IP endpoints it returns next.
func (d *Driver) WrapTransport(next http.RoundTripper) http.RoundTripper {
	if d.proxy == nil {
		return next
	}
	return &proxyTransport{p: d.proxy, next: next}
}

type proxyTransport struct {
	p    *apiProxy
	next http.RoundTripper
}

func (t *proxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL
	if u.Scheme+"://"+u.Host != t.p.origin || !strings.HasPrefix(u.Path, t.p.path) {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		r.Header.Del("Authorization")
		r.Header.Set(shipTokenHeader, tok)
	}
	resp, err := t.p.rt.RoundTrip(r)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	return t.p.statusError(resp, u.Path)
}

// statusError turns an error answer of the API server itself (a v1 Status:
// the pod is gone, the runtime cannot be dialled, Bay may not proxy) into a
// transport error, so Bay sees what it sees on the pod network: no answer
// from the runtime. Ship's own error answers pass unchanged.
func (p *apiProxy) statusError(resp *http.Response, path string) (*http.Response, error) {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes))
	var st struct {
		Kind, APIVersion, Message, Reason string
	}
	if err != nil || json.Unmarshal(b, &st) != nil || st.Kind != "Status" || st.APIVersion != "v1" {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	e := fmt.Errorf("k8s: pod proxy %s: %d %s: %s", path, resp.StatusCode, st.Reason, st.Message)
	switch {
	case resp.StatusCode == http.StatusNotFound, strings.Contains(st.Message, "dial tcp"):
		// The pod is gone or its runtime does not listen: the call never
		// reached Ship (runtime.Unreachable), so a retry runs nothing twice.
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: e}
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		p.log.Warn("the API server refuses Bay's pod proxy requests: grant pods/proxy (deploy/k8s/rbac.yaml)",
			"status", resp.StatusCode, "message", st.Message)
	}
	return nil, e
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *proxyTransport) CloseIdleConnections() {
	for _, rt := range []http.RoundTripper{t.next, t.p.rt} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}
