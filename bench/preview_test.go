package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/test/baytest"
)

// previewFigure measures port preview: GET of a small file from python's
// http.server in the sandbox, through Bay's /ports/8000/ route (with the
// Bearer key, and with a signed token's cookie) against the same server
// reached straight from the host on the container's address, interleaved
// round by round in rotating order.
func (r *run) previewFigure(id string) {
	ctx := r.ctx
	st, err := shipOfSandbox(ctx, r.cli, id)
	if err != nil {
		r.t.Fatalf("preview: %v", err)
	}
	u, err := url.Parse(st.IPEndpoint)
	if err != nil || u.Hostname() == "" {
		r.t.Fatalf("preview: no container address (%q)", st.IPEndpoint)
	}
	if err := r.main.shell(ctx, id, "cd /workspace && printf 'hello from the sandbox\\n' > preview.txt && "+
		"(setsid nohup python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 </dev/null &) && echo started", "started"); err != nil {
		r.t.Fatalf("preview: start http.server: %v", err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := r.main.call(ctx, "POST", "/v1/sandboxes/"+id+"/ports/tokens", map[string]any{"port": 8000}, &tok); err != nil {
		r.t.Fatalf("preview: token: %v", err)
	}
	hc := newHTTPClient()
	defer hc.CloseIdleConnections()
	get := func(target string, hdr http.Header) error {
		req, err := http.NewRequestWithContext(ctx, "GET", target, nil)
		if err != nil {
			return err
		}
		req.Header = hdr
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || string(data) != "hello from the sandbox\n" {
			return fmt.Errorf("GET %s: %d %q %v", target, res.StatusCode, data, err)
		}
		return nil
	}
	direct := "http://" + u.Hostname() + ":8000/preview.txt"
	via := r.main.URL + "/v1/sandboxes/" + id + "/ports/8000/preview.txt"
	for deadline := time.Now().Add(20 * time.Second); get(direct, http.Header{}) != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatalf("preview: http.server did not answer: %v", get(direct, http.Header{}))
		}
	}
	ds := &Series{Label: "GET from the host to the container's address", Unit: "ms"}
	bs := &Series{Label: "GET via Bay `/ports/8000/`, Bearer key", Unit: "ms"}
	ts := &Series{Label: "GET via Bay `/ports/8000/`, signed token (cookie)", Unit: "ms"}
	sides := []struct {
		s   *Series
		url string
		hdr http.Header
	}{
		{ds, direct, http.Header{}},
		{bs, via, http.Header{"Authorization": {"Bearer " + baytest.APIKey}}},
		{ts, via, http.Header{"Cookie": {"bay_preview_token=" + tok.Token}}},
	}
	n := r.n(300, 30)
	for i := 0; i < n+10; i++ {
		for j := range sides {
			sd := sides[(i+j)%len(sides)]
			t0 := time.Now()
			if err := get(sd.url, sd.hdr.Clone()); err != nil {
				r.t.Fatalf("%s: %v", sd.s.Label, err)
			}
			if i >= 10 {
				sd.s.AddDuration(time.Since(t0))
			}
		}
	}
	const fig = "8 port preview, same server"
	d := bs.P(0.5) - ds.P(0.5)
	r.add(8, Row{Figure: fig, Subject: bs, Base: ds, Delta: true, Goal: "preview adds < 1 ms p50", Met: metIf(d < 1)})
	r.add(8, Row{Figure: fig, Subject: ts, Base: ds, Delta: true, Goal: "(token: + signature and revocation check)"})
}

var previewMethod = "8: the main Bay and a started sandbox; python's `http.server` (HTTP/1.0: a new connection per request on every path) " +
	"serves a 23-byte file on port 8000 in the sandbox; each round GETs it straight from the host on the container's bridge address, " +
	"through `GET /v1/sandboxes/{id}/ports/8000/preview.txt` with the Bearer key, and with a signed token's cookie, in rotating order; " +
	"10 warm-up rounds not counted."

// TestPreviewFigure measures figure 8 alone on a Bay of its own and prints
// its rows in the report's format (SHIPYARD_BENCH=1 SHIPYARD_BENCH_PREVIEW=1).
func TestPreviewFigure(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" || os.Getenv("SHIPYARD_BENCH_PREVIEW") == "" {
		t.Skip("figure 8 alone: set SHIPYARD_BENCH=1 SHIPYARD_BENCH_PREVIEW=1")
	}
	r, id := soloRun(t)
	load0 := loadAvg()
	r.previewFigure(id)
	rep := &Report{Rows: r.rows[8]}
	fmt.Println(rep.Table())
	fmt.Println(strings.TrimSpace(previewMethod))
	fmt.Printf("load average before / after: %s / %s\n", load0, loadAvg())
	if err := r.main.delete(r.ctx, id); err != nil {
		t.Error(err)
	}
}
