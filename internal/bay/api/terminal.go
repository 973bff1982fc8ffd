package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// terminal proxies a WebSocket to Ship's /term/ws of the sandbox's session.
func (a *API) terminal(w http.ResponseWriter, r *http.Request, owner string) {
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
		a.fail(w, r, err)
		return
	}
	defer upstream.CloseNow()
	client, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer client.CloseNow()
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	pipe := func(dst, src *websocket.Conn) {
		defer cancel()
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
	go pipe(upstream, client)
	pipe(client, upstream)
	_ = client.Close(websocket.StatusNormalClosure, "")
	_ = upstream.Close(websocket.StatusNormalClosure, "")
}
