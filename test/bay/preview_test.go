package bay_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/shipyard/shipyard/test/baytest"
)

// wsEchoServer is a minimal RFC 6455 echo server (the image has python3 but
// no WebSocket library): handshake, masked client frames, text/binary echo,
// close answered.
const wsEchoServer = `import base64, hashlib, socketserver, struct
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        headers = {}
        while True:
            line = self.rfile.readline().decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        acc = base64.b64encode(hashlib.sha1((headers.get("sec-websocket-key", "") + GUID).encode()).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
        self.wfile.flush()
        while True:
            h = self.rfile.read(2)
            if len(h) < 2:
                return
            op, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytearray(self.rfile.read(n))
            for i in range(n):
                data[i] ^= mask[i % 4]
            if op == 8:
                self.wfile.write(bytes([0x88, min(len(data), 125)]) + bytes(data[:125]))
                self.wfile.flush()
                return
            if op == 9:
                op = 10
            elif op not in (1, 2):
                continue
            hdr = bytes([0x80 | op])
            if n < 126:
                hdr += bytes([n])
            elif n < 65536:
                hdr += bytes([126]) + struct.pack(">H", n)
            else:
                hdr += bytes([127]) + struct.pack(">Q", n)
            self.wfile.write(hdr + bytes(data))
            self.wfile.flush()
class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", 8765), H).serve_forever()
`

// streamServer answers every GET with five lines 400 ms apart (text/plain:
// no special case of server-sent events helps it through).
const streamServer = `import http.server, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        for i in range(5):
            self.wfile.write(b"data: %d\n\n" % i)
            self.wfile.flush()
            time.sleep(0.4)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8001), H).serve_forever()
`

// startPreviewServers starts, in the sandbox, python's http.server on 8000
// (serving /workspace) and the WebSocket echo server on 8765, in their own
// sessions so that they outlive the call.
func startPreviewServers(t *testing.T, b *baytest.Bay, id string) {
	t.Helper()
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files",
		Body: map[string]any{"path": "ws.py", "content": wsEchoServer}})
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files",
		Body: map[string]any{"path": "hello.txt", "content": "hello from the sandbox\n"}})
	b.Must(t, 200, baytest.Req{Method: "PUT", Path: "/v1/sandboxes/" + id + "/filesystem/files",
		Body: map[string]any{"path": "stream.py", "content": streamServer}})
	m := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec", Body: map[string]any{
		"command": "cd /workspace && (setsid nohup python3 -m http.server 8000 --bind 0.0.0.0 >/tmp/http.log 2>&1 </dev/null &) && " +
			"(setsid nohup python3 ws.py >/tmp/ws.log 2>&1 </dev/null &) && " +
			"(setsid nohup python3 stream.py >/tmp/stream.log 2>&1 </dev/null &) && echo started"}})
	if out, _ := m["output"].(string); !strings.Contains(out, "started") {
		t.Fatalf("starting servers: %v", m)
	}
}

func portsOf(t *testing.T, b *baytest.Bay, id string) []int {
	t.Helper()
	m := b.Must(t, 200, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + id + "/ports"})
	list, _ := m["ports"].([]any)
	var ports []int
	for _, p := range list {
		pm, _ := p.(map[string]any)
		n, _ := pm["port"].(float64)
		ports = append(ports, int(n))
		if u, _ := pm["url"].(string); u != fmt.Sprintf("/v1/sandboxes/%s/ports/%d/", id, int(n)) {
			t.Errorf("port %v: url %q", pm, u)
		}
	}
	sort.Ints(ports)
	return ports
}

func TestPreview(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	startPreviewServers(t, b, id)
	base := "/v1/sandboxes/" + id + "/ports/"

	// Listed: the two servers, not Ship's port or the kernel's channels.
	deadline := time.Now().Add(20 * time.Second)
	var ports []int
	for {
		ports = portsOf(t, b, id)
		if slices.Equal(ports, []int{8000, 8001, 8765}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /ports = %v, want [8000 8001 8765]", ports)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Reached with the Bearer key; a path below the prefix is the app's path.
	r := b.Do(t, baytest.Req{Method: "GET", Path: base + "8000/hello.txt"})
	if r.Status != 200 || string(r.Body) != "hello from the sandbox\n" {
		t.Fatalf("through the preview: %d %q", r.Status, r.Body)
	}
	r = b.Do(t, baytest.Req{Method: "GET", Path: base + "8000/"})
	if r.Status != 200 || !strings.Contains(string(r.Body), "hello.txt") {
		t.Fatalf("directory listing: %d %q", r.Status, r.Body)
	}
	r = b.Do(t, baytest.Req{Method: "HEAD", Path: base + "8000/hello.txt"})
	if r.Status != 200 {
		t.Fatalf("HEAD: %d", r.Status)
	}
	// A streamed response passes through as it is written, not at its end.
	req, _ := http.NewRequest("GET", b.URL+base+"8001/events", nil)
	req.Header.Set("Authorization", "Bearer "+baytest.APIKey)
	start := time.Now()
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Duration(0)
	buf := make([]byte, 256)
	var got strings.Builder
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && first == 0 {
			first = time.Since(start)
		}
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	total := time.Since(start)
	if resp.StatusCode != 200 || !strings.Contains(got.String(), "data: 4") || total-first < 1200*time.Millisecond {
		t.Fatalf("stream: %d %q, first bytes after %v, end after %v: not streamed", resp.StatusCode, got.String(), first, total)
	}

	// No slash: redirected to the prefix, so that relative links resolve.
	r = b.Do(t, baytest.Req{Method: "GET", Path: base + "8000", Headers: map[string]string{}})
	if r.Status != 200 { // the client followed the 308
		t.Fatalf("no slash: %d %s", r.Status, r.Body)
	}

	// Refused: without auth, with a wrong key, Ship's port, bad ports, a
	// closed port, an unknown sandbox.
	expect := func(what string, req baytest.Req, status int, code string) {
		t.Helper()
		r := b.Do(t, req)
		if r.Status != status || r.Code() != code || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s, want %d %s (JSON)", what, r.Status, r.Body, status, code)
		}
	}
	expect("no auth", baytest.Req{Method: "GET", Path: base + "8000/hello.txt", NoAuth: true}, 401, "unauthorized")
	expect("wrong key", baytest.Req{Method: "GET", Path: base + "8000/hello.txt", Key: "sk-bay-wrong"}, 401, "unauthorized")
	expect("Ship's port", baytest.Req{Method: "GET", Path: base + "8123/health"}, 403, "forbidden")
	expect("port 0", baytest.Req{Method: "GET", Path: base + "0/"}, 400, "validation_error")
	expect("port 65536", baytest.Req{Method: "GET", Path: base + "65536/"}, 400, "validation_error")
	expect("port -1", baytest.Req{Method: "GET", Path: base + "-1/"}, 400, "validation_error")
	expect("closed port", baytest.Req{Method: "GET", Path: base + "9999/"}, 502, "ship_error")
	expect("unknown sandbox", baytest.Req{Method: "GET", Path: "/v1/sandboxes/sandbox-000000000000/ports/8000/"}, 404, "not_found")
	expect("token for Ship's port", baytest.Req{Method: "POST", Path: base + "tokens", Body: map[string]any{"port": 8123}}, 403, "forbidden")

	// Signed URL tokens.
	tokenFor := func(port, ttl int) (string, string) {
		t.Helper()
		body := map[string]any{"port": port}
		if ttl > 0 {
			body["ttl"] = ttl
		}
		m := b.Must(t, 201, baytest.Req{Method: "POST", Path: base + "tokens", Body: body})
		tok, _ := m["token"].(string)
		u, _ := m["url"].(string)
		if tok == "" || u != base+fmt.Sprintf("%d/?token=", port)+url.QueryEscape(tok) || m["expires_at"] == nil {
			t.Fatalf("token response %v", m)
		}
		return tok, u
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: base + "tokens", Body: map[string]any{"port": 8000, "ttl": 10 << 20}}); r.Status != 422 {
		t.Errorf("ttl over the bound: %d %s", r.Status, r.Body)
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: base + "tokens", Body: map[string]any{"port": 0}}); r.Status != 422 {
		t.Errorf("port 0: %d %s", r.Status, r.Body)
	}
	tok, u := tokenFor(8000, 0)
	r = b.Do(t, baytest.Req{Method: "GET", Path: u, NoAuth: true})
	if r.Status != 200 || !strings.Contains(string(r.Body), "hello.txt") {
		t.Fatalf("with the token: %d %q", r.Status, r.Body)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "bay_preview_token" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Path != base+"8000/" || !cookie.HttpOnly || cookie.Value != tok {
		t.Fatalf("token cookie: %+v", cookie)
	}
	if rp := r.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("a page opened with ?token= must not leak it as Referer: Referrer-Policy %q", rp)
	}
	// The cookie alone reaches the app's relative links.
	withCookie := func(port string, v string) *baytest.Response {
		return b.Do(t, baytest.Req{Method: "GET", Path: base + port + "/hello.txt", NoAuth: true,
			Headers: map[string]string{"Cookie": "bay_preview_token=" + v}})
	}
	if r := withCookie("8000", tok); r.Status != 200 || string(r.Body) != "hello from the sandbox\n" {
		t.Fatalf("with the cookie: %d %q", r.Status, r.Body)
	}
	expect("token of another port", baytest.Req{Method: "GET", Path: base + "8765/?token=" + url.QueryEscape(tok), NoAuth: true}, 403, "forbidden")
	expect("tampered token", baytest.Req{Method: "GET", Path: base + "8000/?token=" + url.QueryEscape(tok[:len(tok)-3]+"AAA"), NoAuth: true}, 401, "unauthorized")
	expect("empty token", baytest.Req{Method: "GET", Path: base + "8000/?token=", NoAuth: true}, 401, "unauthorized")

	// Revoked: that port's tokens, then all of the sandbox's.
	other, _ := tokenFor(8765, 0)
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: base + "tokens?port=8000"})
	expect("revoked token", baytest.Req{Method: "GET", Path: u, NoAuth: true}, 403, "forbidden")
	if r := withCookie("8000", tok); r.Status != 403 {
		t.Errorf("revoked cookie: %d %s", r.Status, r.Body)
	}
	wsURL := "ws" + strings.TrimPrefix(b.URL, "http") + base + "8765/echo"
	wsEcho(t, wsURL+"?token="+url.QueryEscape(other), nil) // another port's token still works
	_, u2 := tokenFor(8000, 0)
	if r := b.Do(t, baytest.Req{Method: "GET", Path: u2, NoAuth: true}); r.Status != 200 {
		t.Errorf("token issued after the revocation: %d %s", r.Status, r.Body)
	}
	b.Must(t, 204, baytest.Req{Method: "DELETE", Path: base + "tokens"})
	expect("token after revoking all", baytest.Req{Method: "GET", Path: u2, NoAuth: true}, 403, "forbidden")

	// Expired.
	_, short := tokenFor(8000, 1)
	time.Sleep(2100 * time.Millisecond)
	expect("expired token", baytest.Req{Method: "GET", Path: short, NoAuth: true}, 401, "unauthorized")

	expect("token not for this sandbox", baytest.Req{Method: "GET",
		Path: "/v1/sandboxes/sandbox-000000000000/ports/8000/?token=" + url.QueryEscape(tok), NoAuth: true}, 403, "forbidden")

	// WebSocket echo through the proxy (Bearer, then a token).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, wsURL, nil); err == nil {
		t.Fatal("WebSocket without auth was accepted")
	}
	wsTok, _ := tokenFor(8765, 60)
	wsEcho(t, wsURL, http.Header{"Authorization": {"Bearer " + baytest.APIKey}})
	wsEcho(t, wsURL+"?token="+url.QueryEscape(wsTok), nil)
}

// wsEcho sends a text and a 70 kB binary message and expects them back.
func wsEcho(t *testing.T, u string, hdr http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("WebSocket %s: %v", u, err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for i, msg := range []string{"hello", strings.Repeat("x", 70000)} {
		typ := websocket.MessageText
		if i == 1 {
			typ = websocket.MessageBinary
		}
		if err := c.Write(ctx, typ, []byte(msg)); err != nil {
			t.Fatalf("WebSocket write: %v", err)
		}
		gt, data, err := c.Read(ctx)
		if err != nil || gt != typ || string(data) != msg {
			t.Fatalf("WebSocket echo: %v %d bytes, %v", gt, len(data), err)
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// TestPreviewOverhead measures the proxy: GET /hello.txt of python's
// http.server through Bay (Bearer; signed token) vs straight to the
// container's address from the host, interleaved, p50 of each.
func TestPreviewOverhead(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, nil)
	startPreviewServers(t, b, id)
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(portsOf(t, b, id), 8000) {
		if time.Now().After(deadline) {
			t.Fatal("http.server did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cli := baytest.Docker(t)
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", "bay.sandbox_id="+id))})
	if err != nil || len(list) != 1 {
		t.Fatalf("container of %s: %v %d", id, err, len(list))
	}
	var ip string
	for _, n := range list[0].NetworkSettings.Networks {
		if n.IPAddress != "" {
			ip = n.IPAddress
		}
	}
	if ip == "" {
		t.Fatal("no container address")
	}
	m := b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/ports/tokens", Body: map[string]any{"port": 8000}})
	tok, _ := m["token"].(string)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	get := func(u string, hdr map[string]string) time.Duration {
		req, _ := http.NewRequest("GET", u, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 || string(data) != "hello from the sandbox\n" {
			t.Fatalf("GET %s: %d %q", u, resp.StatusCode, data)
		}
		return d
	}
	direct := "http://" + net.JoinHostPort(ip, "8000") + "/hello.txt"
	viaBearer := b.URL + "/v1/sandboxes/" + id + "/ports/8000/hello.txt"
	viaToken := viaBearer
	bearer := map[string]string{"Authorization": "Bearer " + baytest.APIKey}
	cookie := map[string]string{"Cookie": "bay_preview_token=" + tok}
	for i := 0; i < 20; i++ { // warm up connections on every path
		get(direct, nil)
		get(viaBearer, bearer)
		get(viaToken, cookie)
	}
	const n = 400
	var d, vb, vt []time.Duration
	for i := 0; i < n; i++ {
		d = append(d, get(direct, nil))
		vb = append(vb, get(viaBearer, bearer))
		vt = append(vt, get(viaToken, cookie))
	}
	p50 := func(x []time.Duration) time.Duration {
		slices.Sort(x)
		return x[len(x)/2]
	}
	p90 := func(x []time.Duration) time.Duration { return x[len(x)*9/10] }
	pd, pb, pt := p50(d), p50(vb), p50(vt)
	t.Logf("preview overhead, %d interleaved GETs of a 23-byte file from python's http.server:", n)
	t.Logf("  direct to %s:8000  p50 %v  p90 %v", ip, pd, p90(d))
	t.Logf("  via Bay, Bearer     p50 %v  p90 %v  (overhead p50 %v)", pb, p90(vb), pb-pd)
	t.Logf("  via Bay, token      p50 %v  p90 %v  (overhead p50 %v)", pt, p90(vt), pt-pd)

	// Where Bay's share goes: the store reads of each path, and the handler
	// served in-process (no client→Bay hop).
	ctx := context.Background()
	st := b.App.Store
	timeIt := func(fn func() error) time.Duration {
		var x []time.Duration
		for i := 0; i < 200; i++ {
			t0 := time.Now()
			if err := fn(); err != nil {
				t.Fatal(err)
			}
			x = append(x, time.Since(t0))
		}
		return p50(x)
	}
	gs := timeIt(func() error { _, err := st.GetSandbox(ctx, "default", id); return err })
	sbi := timeIt(func() error { _, err := st.SandboxByID(ctx, id); return err })
	gens := timeIt(func() error { _, _, err := st.PreviewGenerations(ctx, id, 8000); return err })
	var inproc []time.Duration
	for i := 0; i < 200; i++ {
		req, _ := http.NewRequest("GET", "/v1/sandboxes/"+id+"/ports/8000/hello.txt", nil)
		req.Header.Set("Authorization", "Bearer "+baytest.APIKey)
		req.RemoteAddr = "127.0.0.1:1"
		rec := &discardWriter{h: http.Header{}}
		t0 := time.Now()
		b.App.Handler.ServeHTTP(rec, req)
		inproc = append(inproc, time.Since(t0))
		if rec.status != 200 {
			t.Fatalf("in-process: %d", rec.status)
		}
	}
	t.Logf("  store reads p50: GetSandbox %v, SandboxByID %v, PreviewGenerations %v", gs, sbi, gens)
	t.Logf("  in-process handler, Bearer p50 %v (vs direct %v: Bay's share without the client→Bay hop %v)",
		p50(inproc), pd, p50(inproc)-pd)
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return len(b), nil
}
func (w *discardWriter) WriteHeader(c int) {
	if w.status == 0 {
		w.status = c
	}
}
