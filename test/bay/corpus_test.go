package bay_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
	"github.com/shipyard/shipyard/test/baytest"
)

// probe is one request of the malformed-request corpus, written byte for byte
// on its own connection so that nothing (client library, URL cleaning, header
// checks) smooths it over.
type probe struct {
	name   string
	method string
	target string      // request-target, sent as is
	header http.Header // nil: bearer key only; Authorization in it replaces the key
	noAuth bool
	body   []byte
	// raw, when set, is the whole request (request line, headers, body).
	raw []byte
	// netHTTP: net/http itself refuses it before Bay's handler (a malformed
	// request line or header); only "no 5xx" is asserted, its 400 is plain text.
	netHTTP bool
	// allow5xx names the standard that makes net/http answer this probe with
	// a 5xx before Bay sees it ("" for every other probe).
	allow5xx string
	// serial: sent alone, not alongside the others (see corpus).
	serial bool
}

type outcome struct {
	p      probe
	status int
	ctype  string
	rid    string
	body   []byte
	err    error
}

const (
	corpusMaxBody   = 64 << 10 // server.max_body_bytes of the corpus Bay
	corpusMaxUpload = 1 << 20  // server.max_upload_bytes
)

// TestMalformedRequestCorpus sends 1,000+ malformed requests over every route
// (issue 8): no response is a 5xx, every error Bay writes is JSON, and
// goroutines and RSS come back to their baseline.
func TestMalformedRequestCorpus(t *testing.T) {
	baytest.Skip(t)
	runCorpus(t, baytest.Start(t, baytest.Options{Env: corpusEnv}))
}

// TestMalformedRequestCorpusOnPostgres: PostgreSQL refuses what SQLite stores
// (NUL, invalid UTF-8 in text), so the corpus runs on it too.
func TestMalformedRequestCorpusOnPostgres(t *testing.T) {
	baytest.Skip(t)
	if storetest.PostgresDSN() == "" {
		t.Skip("set SHIPYARD_TEST_PG_DSN (make test does, from scripts/pg.sh)")
	}
	runCorpus(t, baytest.Start(t, baytest.Options{Env: corpusEnv, Postgres: storetest.FreshDSN(t, store.Postgres)}))
}

var corpusEnv = map[string]string{
	"BAY_SERVER__MAX_BODY_BYTES":   strconv.Itoa(corpusMaxBody),
	"BAY_SERVER__MAX_UPLOAD_BYTES": strconv.Itoa(corpusMaxUpload),
}

func runCorpus(t *testing.T, b *baytest.Bay) {
	addr := strings.TrimPrefix(b.URL, "http://")

	// A real sandbox with a running session, so that capability routes reach
	// the runtime; a cargo and a history entry for the routes that read them.
	sb := b.CreateSandbox(t, map[string]any{"ttl": 3600})
	b.Python(t, sb, "1+1")
	exec := b.Must(t, 200, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + sb + "/shell/exec",
		Body: map[string]any{"command": "echo hi > f.txt", "tags": "corpus"}})
	eid, _ := exec["execution_id"].(string)
	cargo := b.Must(t, 201, baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{}})
	cid, _ := cargo["id"].(string)

	send := func(p probe) outcome { return sendProbe(addr, p) }
	probes := corpus(sb, cid, eid)
	run := func(every int) []outcome {
		results := make([]outcome, len(probes))
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					results[i] = send(probes[i])
				}
			}()
		}
		for i := 0; i < len(probes); i += every {
			if !probes[i].serial {
				next <- i
			}
		}
		close(next)
		wg.Wait()
		for i := 0; i < len(probes); i += every {
			if probes[i].serial {
				results[i] = send(probes[i])
			}
		}
		return results
	}
	// Warm up every kind of route as concurrently as the corpus (connection
	// pools reach their size), then measure the baseline.
	run(10)
	g0, rss0, heap0 := settle(0)

	start := time.Now()
	results := append(run(1), idempotencyReuse(send)...)
	elapsed := time.Since(start)

	statuses := map[int]int{}
	netHTTP := 0
	for _, o := range results {
		statuses[o.status]++
		if msg := check(o); msg != "" {
			t.Errorf("%s: %s %.120q → %s", o.p.name, o.p.method, o.p.target, msg)
		}
		if o.rid == "" {
			netHTTP++
		}
	}
	n := len(results)
	if n < 1000 {
		t.Errorf("corpus has %d requests, want 1,000+", len(results))
	}

	results = nil
	g1, rss1, heap1 := settle(g0)
	t.Logf("corpus: %d requests in %v (%d answered by net/http before Bay); statuses %v", n,
		elapsed.Round(time.Millisecond), netHTTP, statuses)
	t.Logf("goroutines %d → %d; RSS %d → %d MiB; Go heap in use %d → %d MiB (race detector: %v)",
		g0, g1, rss0>>20, rss1>>20, heap0>>20, heap1>>20, raceEnabled)
	if g1 > g0+20 {
		t.Errorf("goroutines did not come back: %d → %d", g0, g1)
	}
	// The race detector's shadow memory grows with every address touched and
	// is never returned, so under -race RSS gets a wider margin; the Go heap
	// is held to the same bound either way.
	rssSlack := int64(64 << 20)
	if raceEnabled {
		rssSlack = 256 << 20
	}
	if rss1 > rss0+rssSlack {
		t.Errorf("RSS did not come back: %d → %d MiB", rss0>>20, rss1>>20)
	}
	if heap1 > heap0+32<<20 {
		t.Errorf("Go heap did not come back: %d → %d MiB", heap0>>20, heap1>>20)
	}

	// The sandbox survived all of it.
	if r := b.Python(t, sb, "2+2"); r["output"] != "4" {
		t.Errorf("sandbox after the corpus: %v", r)
	}
}

// check returns what is wrong with an outcome ("" when nothing).
func check(o outcome) string {
	switch {
	case o.err != nil:
		return "no response: " + o.err.Error()
	case o.status >= 500 && !(o.p.allow5xx != "" && o.rid == ""):
		return fmt.Sprintf("status %d: %.300s", o.status, o.body)
	case o.rid == "" && !o.p.netHTTP:
		return fmt.Sprintf("status %d not written by Bay (no X-Request-Id): %.200q", o.status, o.body)
	case o.rid == "":
		return "" // net/http's own 400 for a request it cannot parse
	case o.status >= 400 && !strings.HasPrefix(o.ctype, "application/json"):
		return fmt.Sprintf("status %d with Content-Type %q: %.200q", o.status, o.ctype, o.body)
	case o.status >= 400 && !json.Valid(o.body):
		return fmt.Sprintf("status %d, body is not JSON: %.200q", o.status, o.body)
	}
	return ""
}

// settle collects garbage and waits (up to 10 s) for goroutines to drop to
// want+5, then returns the goroutine count, VmRSS and the Go heap in use.
func settle(wantG int) (int, int64, int64) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		debug.FreeOSMemory()
		g := runtime.NumGoroutine()
		if wantG == 0 || g <= wantG+5 || time.Now().After(deadline) {
			time.Sleep(500 * time.Millisecond)
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return runtime.NumGoroutine(), vmRSS(), int64(ms.HeapInuse)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func vmRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// sendProbe writes p on a fresh connection and reads the response.
func sendProbe(addr string, p probe) outcome {
	o := outcome{p: p}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		o.err = err
		return o
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(90 * time.Second))
	raw := p.raw
	if raw == nil {
		raw = p.bytes(addr)
	}
	// Write while reading: Bay may answer (413-like 400) before a huge body is sent.
	go func() {
		_, _ = conn.Write(raw)
		if tc, ok := conn.(*net.TCPConn); ok && p.raw != nil {
			_ = tc.CloseWrite() // a raw request may be truncated on purpose
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: p.method})
	if err != nil {
		o.err = err
		return o
	}
	defer resp.Body.Close()
	o.status, o.ctype, o.rid = resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Request-Id")
	o.body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return o
}

// bytes renders a structured probe as an HTTP/1.1 request.
func (p probe) bytes(host string) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", p.method, p.target, host)
	h := p.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if _, set := h["Authorization"]; !set && !p.noAuth {
		h.Set("Authorization", "Bearer "+baytest.APIKey)
	}
	if p.body != nil && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&buf, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&buf, "Content-Length: %d\r\n\r\n", len(p.body))
	buf.Write(p.body)
	return buf.Bytes()
}

// route is one entry of api.go's routes(), with the fields its body has.
type route struct {
	method, path string // path with {id}, {eid}, {cid}
	ints, strs   []string
	body         bool
	destructive  bool // never called with the real ids
}

var routes = []route{
	{method: "GET", path: "/health"},
	{method: "GET", path: "/healthz"},
	{method: "GET", path: "/metrics"},
	{method: "GET", path: "/v1/profiles"},
	{method: "POST", path: "/v1/sandboxes", body: true, ints: []string{"ttl"}, strs: []string{"profile", "cargo_id"}},
	{method: "GET", path: "/v1/sandboxes"},
	{method: "GET", path: "/v1/sandboxes/{id}"},
	{method: "DELETE", path: "/v1/sandboxes/{id}", destructive: true},
	{method: "POST", path: "/v1/sandboxes/{id}/extend_ttl", body: true, ints: []string{"extend_by"}},
	{method: "POST", path: "/v1/sandboxes/{id}/keepalive"},
	{method: "POST", path: "/v1/sandboxes/{id}/stop", destructive: true},
	{method: "POST", path: "/v1/sandboxes/{id}/python/exec", body: true, ints: []string{"timeout"},
		strs: []string{"code", "description", "tags"}},
	{method: "POST", path: "/v1/sandboxes/{id}/shell/exec", body: true, ints: []string{"timeout"},
		strs: []string{"command", "cwd", "description", "tags"}},
	{method: "GET", path: "/v1/sandboxes/{id}/filesystem/files"},
	{method: "PUT", path: "/v1/sandboxes/{id}/filesystem/files", body: true, strs: []string{"path", "content"}},
	{method: "DELETE", path: "/v1/sandboxes/{id}/filesystem/files"},
	{method: "GET", path: "/v1/sandboxes/{id}/filesystem/directories"},
	{method: "POST", path: "/v1/sandboxes/{id}/filesystem/upload"},
	{method: "GET", path: "/v1/sandboxes/{id}/filesystem/download"},
	{method: "POST", path: "/v1/sandboxes/{id}/browser/exec", body: true, ints: []string{"timeout"},
		strs: []string{"cmd", "description", "tags", "learn", "include_trace"}},
	{method: "POST", path: "/v1/sandboxes/{id}/browser/exec_batch", body: true, ints: []string{"timeout"},
		strs: []string{"commands", "description", "tags", "stop_on_error"}},
	{method: "POST", path: "/v1/sandboxes/{id}/browser/skills/k/run", body: true, ints: []string{"timeout"}, strs: []string{"tags"}},
	{method: "GET", path: "/v1/sandboxes/{id}/browser/traces/blob:blob-000000000000"},
	{method: "GET", path: "/v1/sandboxes/{id}/terminal"},
	{method: "GET", path: "/v1/sandboxes/{id}/history"},
	{method: "GET", path: "/v1/sandboxes/{id}/history/last"},
	{method: "GET", path: "/v1/sandboxes/{id}/history/{eid}"},
	{method: "PATCH", path: "/v1/sandboxes/{id}/history/{eid}", body: true, strs: []string{"description", "tags", "notes"}},
	{method: "POST", path: "/v1/cargos", body: true, ints: []string{"size_limit_mb"}},
	{method: "GET", path: "/v1/cargos"},
	{method: "GET", path: "/v1/cargos/{cid}"},
	{method: "DELETE", path: "/v1/cargos/{cid}", destructive: true},
	{method: "POST", path: "/v1/admin/gc/run", body: true, strs: []string{"tasks"}},
	{method: "GET", path: "/v1/admin/gc/status"},
	{method: "POST", path: "/v1/admin/keys", body: true, strs: []string{"owner", "label", "admin"}},
	{method: "GET", path: "/v1/admin/keys"},
	{method: "POST", path: "/v1/admin/keys/{id}/rotate", destructive: true},
	{method: "DELETE", path: "/v1/admin/keys/{id}", destructive: true},
	{method: "GET", path: "/v1/admin/quotas/{id}"},
	{method: "PUT", path: "/v1/admin/quotas/{id}", body: true, ints: []string{"max_sandboxes", "max_cargo_mb"}},
	{method: "DELETE", path: "/v1/admin/quotas/{id}"},
}

var (
	badJSON = []string{`{`, `}`, `[]`, `[{}]`, `"x"`, `null`, `1`, `true`, `{"a":1}{"b":2}`, `{"a":1} x`, `{'a':1}`,
		`{"a":}`, `{"a":1,}`, `{"a" 1}`, "{\"a\":\"\x00\"}", "{\"a\":\"\xff\xfe\"}", "\xef\xbb\xbf{}",
		strings.Repeat("[", 100000), strings.Repeat(`{"a":`, 5000), `{"a":"\ud800"}`, `{"a":1e400}`, "\x00", "{\x01}"}
	badInts = []string{`1e400`, `-1e400`, `9223372036854775808`, `-9223372036854775809`, `9223372036854775807`,
		`18446744073709551616`, `9300000000`, `315360001`, `-1`, `0`, `1.5`, `1e3`, `"12"`, `"1e400"`, `" 7 "`, `true`,
		`[]`, `{}`, `null`, `"\u0000"`, `-0`, `1E+2`, `0x10`, `NaN`, `Infinity`}
	badStrs = []string{`1`, `true`, `[]`, `{}`, `["a"]`, `""`, `"\u0000"`, `"a\u0000b"`, `"\u0001\u001f\u007f"`,
		"\"\xff\"", `"` + strings.Repeat("x", 5000) + `"`, `"../../etc/passwd"`, `"/etc/passwd"`, `"."`, `".."`,
		`"a/../../b"`, `"\ud83d\ude00"`, `"\\\\"`, `"%2e%2e/x"`, `"x\ny"`, `"$(reboot)"`, `"python-default"`,
		`"ws-000000000000"`, `["idle_session","bogus"]`, `[1,2]`}
	badIDs = []string{"sandbox-000000000000", "..", "%2e%2e", ".", "%2e", "a%2Fb", "%2F", "a%00b", "%00", "%FF",
		"%C3%28", "%E2%80%AE", strings.Repeat("x", 5000), "%27%20OR%201%3D1", "%0d%0a", "a%09b",
		"ws-000000000000", "exec-000000000000", "%25", "~", "a;b", "%F0%9F%98%80"}
	badQueries = []string{"limit=0", "limit=-1", "limit=201", "limit=1e400", "limit=9223372036854775808", "limit=abc",
		"limit=", "limit=1&limit=x", "offset=-1", "offset=2147483648", "offset=99999999999999999999", "cursor=%00",
		"cursor=" + strings.Repeat("c", 5000), "cursor=%FF", "status=bogus", "status=%00", "managed=maybe",
		"detail=2", "exec_type=ruby", "exec_type=%00", "success_only=x", "has_notes=x", "has_description=%FF",
		"tags=" + strings.Repeat("t,", 2000), "tags=" + manyTags(1000), "tags=%00", "tags=%FF%FE",
		"path=", "path=..", "path=../../etc/passwd", "path=/etc/passwd", "path=%00", "path=a%00b", "path=%FF",
		"path=" + strings.Repeat("n", 5000), "path=" + strings.Repeat("d/", 3000), "path=.", "path=a//b/./c",
		"path=%2e%2e%2f%2e%2e", "path=f.txt&path=..", "path=.bay_env.sh", "cols=99999999999&rows=-1", "a=%zz", "%zz"}
	badAuth = []http.Header{
		{"Authorization": {"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}}, {"Authorization": {"BEARER"}},
		{"Authorization": {"Bearer "}}, {"Authorization": {"Bearer"}}, {"Authorization": {"bearer " + baytest.APIKey}},
		{"Authorization": {"Bearer " + baytest.APIKey, "Bearer " + baytest.APIKey}},
		{"Authorization": {"Bearer sk-wrong"}}, {"Authorization": {"Bearer " + baytest.APIKey + " extra"}},
		{"Authorization": {"Token " + baytest.APIKey}}, {"Authorization": {"Bearer " + strings.Repeat("k", 8000)}},
		{"Authorization": {"Bearer \xff\xfe"}}, {"Authorization": {""}},
		{"X-Owner": {"someone"}}, {"X-Owner": {strings.Repeat("o", 500)}}, {"X-Owner": {"\xff"}},
		{"X-Request-Id": {strings.Repeat("r", 5000)}}, {"Idempotency-Key": {"bad key!"}},
		{"Idempotency-Key": {strings.Repeat("k", 500)}}, {"Content-Type": {"text/plain"}},
		{"Content-Type": {"multipart/form-data; boundary="}}, {"Content-Encoding": {"gzip"}},
	}
)

func manyTags(n int) string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("tag%d", i))
	}
	return strings.Join(s, ",")
}

// corpus generates the requests; the ids are the real sandbox, cargo and execution.
func corpus(sb, cid, eid string) []probe {
	var out []probe
	add := func(name, method, target string, p probe) {
		p.name, p.method, p.target = name, method, target
		out = append(out, p)
	}
	fill := func(path, id, ceid, ccid string) string {
		return strings.NewReplacer("{id}", id, "{eid}", ceid, "{cid}", ccid).Replace(path)
	}
	for _, rt := range routes {
		real := fill(rt.path, sb, eid, cid)
		safe := real
		if rt.destructive {
			safe = fill(rt.path, "sandbox-000000000000", "exec-000000000000", "ws-000000000000")
		}
		// Bad ids in every path position.
		if strings.Contains(rt.path, "{") {
			for _, id := range badIDs {
				add("id "+id, rt.method, fill(rt.path, id, id, id), probe{body: []byte(`{}`)})
			}
			if strings.Contains(rt.path, "{eid}") {
				for _, id := range badIDs[:8] {
					add("eid "+id, rt.method, fill(rt.path, sb, id, id), probe{body: []byte(`{}`)})
				}
			}
		}
		// Path tricks around the route.
		for _, trick := range []string{"/" + safe, strings.Replace(safe, "/v1/", "/v1//", 1),
			strings.Replace(safe, "/v1/", "/v1/./", 1), strings.Replace(safe, "/v1/", "/v1/x/../", 1),
			strings.Replace(safe, "/v1/", "/v1/%2e%2e/v1/", 1), strings.Replace(safe, "/v1/", "/v1%2F", 1),
			safe + "/", safe + "%00", safe + "/..", "http://bay.example" + safe, safe + "?" + strings.Repeat("q=1&", 2000)} {
			add("path trick", rt.method, trick, probe{})
		}
		// Other methods on the route.
		for _, m := range []string{"PUT", "PATCH", "OPTIONS", "TRACE", "FOO"} {
			if m != rt.method {
				add("method "+m, m, safe, probe{})
			}
		}
		// Bad query parameters.
		for _, q := range badQueries {
			add("query "+q[:min(len(q), 30)], rt.method, safe+"?"+q, probe{})
		}
		// Bad credentials and headers.
		for i, h := range badAuth {
			add(fmt.Sprintf("header %d", i), rt.method, safe, probe{header: h})
		}
		add("no auth", rt.method, safe, probe{noAuth: true})
		add("no auth, X-Owner", rt.method, safe, probe{noAuth: true, header: http.Header{"X-Owner": {"bob"}}})
		if !rt.body {
			add("unexpected body", rt.method, safe, probe{body: []byte(`{"x":` + strings.Repeat("1", 100) + `}`)})
			continue
		}
		// Bodies: bad JSON, wrong types, huge numbers, bad strings, too large.
		for _, j := range badJSON {
			add("json "+j[:min(len(j), 20)], rt.method, safe, probe{body: []byte(j)})
		}
		for _, f := range rt.ints {
			for _, v := range badInts {
				add(f+"="+v, rt.method, safe, probe{body: []byte(`{"` + f + `":` + v + `}`)})
			}
		}
		for _, f := range rt.strs {
			vals := badStrs
			if strings.HasSuffix(rt.path, "/exec") && (f == "description" || f == "tags") {
				vals = badStrs[:8] // the rest would only run more code: slow, and nothing new
			}
			for _, v := range vals {
				body := `{"` + f + `":` + v + `}`
				// Required fields present, so the odd one is what is tested.
				switch {
				case strings.HasSuffix(rt.path, "python/exec") && f != "code":
					body = `{"code":"1","` + f + `":` + v + `}`
				case strings.HasSuffix(rt.path, "shell/exec") && f != "command":
					body = `{"command":"true","` + f + `":` + v + `}`
				case strings.HasSuffix(rt.path, "/files") && f == "path":
					body = `{"content":"x","path":` + v + `}`
				case strings.HasSuffix(rt.path, "/files") && f == "content":
					body = `{"path":"corpus.txt","content":` + v + `}`
				}
				add(f+"="+v[:min(len(v), 20)], rt.method, safe, probe{body: []byte(body)})
			}
		}
		add("body too large", rt.method, safe, probe{body: []byte(`{"x":"` + strings.Repeat("x", corpusMaxBody) + `"}`)})
		add("truncated body", rt.method, safe, probe{raw: rawRequest(rt.method, safe, "Content-Length: 100\r\n", `{"a":`)})
		add("bad chunk", rt.method, safe, probe{raw: rawRequest(rt.method, safe, "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n")})
		add("chunk longer than sent", rt.method, safe, probe{raw: rawRequest(rt.method, safe, "Transfer-Encoding: chunked\r\n", "ff\r\n{\"a\":1")})
		add("chunk without end", rt.method, safe, probe{raw: rawRequest(rt.method, safe, "Transfer-Encoding: chunked\r\n", "2\r\n{}\r\n")})
	}
	for i := range out {
		// promhttp refuses a 5th concurrent scrape with a plain-text 503 (load
		// shedding, not bad input; reported): /metrics probes go one at a time.
		out[i].serial = strings.Contains(out[i].target, "/metrics")
	}
	out = append(out, uploadProbes(sb)...)
	out = append(out, terminalProbes(sb)...)
	out = append(out, netHTTPProbes()...)
	return out
}

// rawRequest is a request whose framing is broken on purpose (the connection
// is half-closed after it).
func rawRequest(method, target, header, body string) []byte {
	return []byte(method + " " + target + " HTTP/1.1\r\nHost: bay\r\nConnection: close\r\nAuthorization: Bearer " +
		baytest.APIKey + "\r\nContent-Type: application/json\r\n" + header + "\r\n" + body)
}

func uploadProbes(sb string) []probe {
	target := "/v1/sandboxes/" + sb + "/filesystem/upload"
	part := func(boundary, name, filename, content string) string {
		fn := ""
		if filename != "" {
			fn = `; filename="` + filename + `"`
		}
		return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"" + fn + "\r\n\r\n" + content + "\r\n"
	}
	mp := func(parts ...string) []byte { return []byte(strings.Join(parts, "") + "--B--\r\n") }
	ct := http.Header{"Content-Type": {"multipart/form-data; boundary=B"}}
	var out []probe
	bodies := map[string][]byte{
		"no parts":          []byte("--B--\r\n"),
		"file before path":  mp(part("B", "file", "f", "x"), part("B", "path", "", "up.txt")),
		"path only":         mp(part("B", "path", "", "up.txt")),
		"path escape":       mp(part("B", "path", "", "../../etc/passwd"), part("B", "file", "f", "x")),
		"path absolute":     mp(part("B", "path", "", "/etc/passwd"), part("B", "file", "f", "x")),
		"path NUL":          mp(part("B", "path", "", "a\x00b"), part("B", "file", "f", "x")),
		"path long":         mp(part("B", "path", "", strings.Repeat("n", 5000)), part("B", "file", "f", "x")),
		"path empty":        mp(part("B", "path", "", ""), part("B", "file", "f", "x")),
		"path dot":          mp(part("B", "path", "", "."), part("B", "file", "f", "x")),
		"truncated":         []byte(part("B", "path", "", "up.txt") + "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nabc"),
		"garbage":           []byte("not multipart at all"),
		"no boundary lines": []byte("--C\r\n\r\nx\r\n--C--\r\n"),
		"too large":         mp(part("B", "path", "", "big.bin"), part("B", "file", "f", strings.Repeat("x", corpusMaxUpload+1))),
		"ok":                mp(part("B", "path", "", "up.txt"), part("B", "file", "f", "hello")),
	}
	for name, body := range bodies {
		out = append(out, probe{name: "upload " + name, method: "POST", target: target, header: ct, body: body})
	}
	for _, h := range []string{"", "text/plain", "multipart/form-data", "multipart/form-data; boundary=\"", "multipart/mixed; boundary=B"} {
		out = append(out, probe{name: "upload content-type " + h, method: "POST", target: target,
			header: http.Header{"Content-Type": {h}}, body: mp(part("B", "path", "", "x"), part("B", "file", "f", "x"))})
	}
	out = append(out, probe{name: "upload truncated on the wire", method: "POST", target: target,
		raw: rawRequest("POST", target, "Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 1000\r\n",
			part("B", "path", "", "trunc.txt")+"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nabc")})
	out = append(out, probe{name: "upload bad chunk", method: "POST", target: target,
		raw: rawRequest("POST", target, "Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n",
			"10\r\n"+part("B", "path", "", "chunk.txt")[:16]+"\r\nzz\r\n")})
	return out
}

func terminalProbes(sb string) []probe {
	target := "/v1/sandboxes/" + sb + "/terminal"
	ok := func() http.Header {
		return http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	}
	var out []probe
	for name, edit := range map[string]func(http.Header){
		"no upgrade":       func(h http.Header) { h.Del("Upgrade"); h.Del("Connection") },
		"version 8":        func(h http.Header) { h.Set("Sec-Websocket-Version", "8") },
		"no key":           func(h http.Header) { h.Del("Sec-Websocket-Key") },
		"bad key":          func(h http.Header) { h.Set("Sec-Websocket-Key", "short") },
		"two keys":         func(h http.Header) { h.Add("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") },
		"cross origin":     func(h http.Header) { h.Set("Origin", "http://evil.example") },
		"bad origin":       func(h http.Header) { h.Set("Origin", "::nope") },
		"upgrade to h2c":   func(h http.Header) { h.Set("Upgrade", "h2c") },
		"wrong key, valid": func(h http.Header) { h.Set("Authorization", "Bearer sk-wrong") },
	} {
		h := ok()
		edit(h)
		out = append(out, probe{name: "terminal " + name, method: "GET", target: target, header: h})
		out = append(out, probe{name: "terminal " + name + " (missing sandbox)", method: "GET",
			target: "/v1/sandboxes/sandbox-000000000000/terminal", header: h})
	}
	return out
}

// netHTTPProbes are refused by net/http before Bay sees them (plain-text 400;
// left as is: they never reach a handler). Only "no 5xx" is asserted.
func netHTTPProbes() []probe {
	var out []probe
	for name, raw := range map[string]string{
		"NUL in request line":     "GET /v1/sandboxes\x00 HTTP/1.1\r\nHost: bay\r\n\r\n",
		"space in target":         "GET /v1/sand boxes HTTP/1.1\r\nHost: bay\r\n\r\n",
		"control char in header":  "GET /v1/sandboxes HTTP/1.1\r\nHost: bay\r\nAuthorization: Bearer a\x01b\r\n\r\n",
		"bad header name":         "GET /v1/sandboxes HTTP/1.1\r\nHost: bay\r\nBad Header: x\r\n\r\n",
		"two Content-Length":      "POST /v1/cargos HTTP/1.1\r\nHost: bay\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"negative Content-Length": "POST /v1/cargos HTTP/1.1\r\nHost: bay\r\nContent-Length: -1\r\n\r\n{}",
		"no Host":                 "GET /v1/sandboxes HTTP/1.1\r\n\r\n",
		"bad version":             "GET /v1/sandboxes HTTP/1.1.1\r\nHost: bay\r\n\r\n",
		"garbage":                 "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
	} {
		out = append(out, probe{name: "net/http " + name, method: "GET", raw: []byte(raw), netHTTP: true})
	}
	out = append(out, probe{name: "net/http unknown transfer coding", method: "POST", netHTTP: true,
		allow5xx: "RFC 9112 §6.1: a transfer coding the server does not understand is a 501",
		raw:      []byte("POST /v1/cargos HTTP/1.1\r\nHost: bay\r\nTransfer-Encoding: zip\r\n\r\n{}")})
	return out
}

// idempotencyReuse: one Idempotency-Key with different bodies is a 409 (and
// an identical replay is the same 201).
func idempotencyReuse(send func(probe) outcome) []outcome {
	var out []outcome
	for i, c := range []struct{ path, first, second string }{
		{"/v1/sandboxes", `{"ttl":60}`, `{"ttl":61}`},
		{"/v1/cargos", `{"size_limit_mb":5}`, `{"size_limit_mb":6}`},
		{"/v1/cargos", `{}`, `{"size_limit_mb":1e400}`},
		{"/v1/sandboxes", `{"ttl":60}`, `{"ttl":60,"profile":"nope"}`},
	} {
		key := http.Header{"Idempotency-Key": {fmt.Sprintf("corpus-%d-%d", i, time.Now().UnixNano())}}
		for _, body := range []string{c.first, c.first, c.second} {
			out = append(out, send(probe{name: "idempotency " + c.path, method: "POST", target: c.path, header: key, body: []byte(body)}))
		}
	}
	return out
}

// raceEnabled: the test binary was built with -race.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && slices.ContainsFunc(bi.Settings, func(s debug.BuildSetting) bool { return s.Key == "-race" && s.Value == "true" })
}()
