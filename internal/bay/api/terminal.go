package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/coder/websocket"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

// terminal proxies a WebSocket to Ship's /term/ws of the sandbox's session.
func (a *API) terminal(w http.ResponseWriter, r *http.Request, owner string) {
	// A request that cannot be upgraded is refused before any compute starts,
	// and in JSON (the WebSocket library answers these in plain text).
	if err := upgradeError(r); err != nil {
		a.fail(w, r, err)
		return
	}
	t, err := a.Capabilities.Terminal(r.Context(), owner, r.PathValue("id"), a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	url := "ws" + strings.TrimPrefix(t.Endpoint, "http") + "/term/ws"
	if q := r.URL.RawQuery; q != "" {
		url += "?" + q
	}
	hdr := http.Header{"Authorization": {"Bearer " + t.Token}, "X-Request-Id": {w.Header().Get("X-Request-Id")}}
	upstream, _, err := websocket.Dial(r.Context(), url, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: a.Runtime.HTTP()})
	if err != nil {
		if r.Context().Err() == nil { // the runtime failed, not the client
			err = errs.New(errs.ShipError, "Could not open the sandbox's terminal; retry").Wrap(err)
		}
		a.fail(w, r, err)
		return
	}
	defer upstream.CloseNow()
	aw := &acceptWriter{ResponseWriter: w}
	client, err := websocket.Accept(aw, r, nil)
	if err != nil {
		if aw.failed != 0 { // a case upgradeError did not foresee: still JSON
			for _, h := range []string{"Connection", "Upgrade", "Sec-Websocket-Version", "X-Content-Type-Options"} {
				w.Header().Del(h)
			}
			code := errs.Validation
			switch {
			case aw.failed == http.StatusForbidden:
				code = errs.Forbidden
			case aw.failed >= 500:
				code = errs.Internal
			}
			a.fail(w, r, errs.New(code, "WebSocket handshake failed").Wrap(err))
		}
		return
	}
	defer client.CloseNow()
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	pipe := func(dst, src *websocket.Conn) {
		for {
			typ, data, err := src.Read(ctx)
			if err != nil {
				return
			}
			if err := dst.Write(ctx, typ, data); err != nil {
				return
			}
		}
	}
	// Each side that ends is closed with a close frame on the other; the
	// shared context is not cancelled first, since a cancelled read drops
	// its connection without one (the client then sees a bare EOF).
	keysDone := make(chan struct{})
	go func() {
		defer close(keysDone)
		pipe(upstream, client)
		_ = upstream.Close(websocket.StatusNormalClosure, "")
	}()
	pipe(client, upstream)
	_ = client.Close(websocket.StatusNormalClosure, "")
	_ = upstream.Close(websocket.StatusNormalClosure, "")
	<-keysDone
}

// upgradeError checks what websocket.Accept checks (RFC 6455 §4.2.1 and a
// same-origin rule), as domain errors.
func upgradeError(r *http.Request) error {
	bad := func(msg string) error { return errs.New(errs.Validation, "WebSocket handshake: "+msg) }
	switch {
	case r.Method != http.MethodGet:
		return bad("the method must be GET")
	case !r.ProtoAtLeast(1, 1):
		return bad("HTTP/1.1 or later required")
	case !hasToken(r.Header, "Connection", "upgrade"), !hasToken(r.Header, "Upgrade", "websocket"):
		return bad("send Connection: Upgrade and Upgrade: websocket")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return bad("Sec-WebSocket-Version must be 13")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return bad("exactly one Sec-WebSocket-Key is required")
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return bad("Sec-WebSocket-Key must be 16 bytes in base64")
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if u, err := url.Parse(origin); err != nil || !strings.EqualFold(u.Host, r.Host) {
			return errs.New(errs.Forbidden, "WebSocket handshake: cross-origin requests are not allowed")
		}
	}
	return nil
}

// hasToken: a comma-separated header names token (case-insensitive).
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acceptWriter holds back a failed handshake's plain-text answer (status >= 400)
// so that the handler can answer JSON instead; a 101 passes through.
type acceptWriter struct {
	http.ResponseWriter
	failed int
}

func (w *acceptWriter) WriteHeader(code int) {
	if code >= 400 {
		w.failed = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *acceptWriter) Write(b []byte) (int, error) {
	if w.failed != 0 {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *acceptWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
