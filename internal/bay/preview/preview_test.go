package preview

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// memStore is the Store of these tests.
type memStore struct {
	mu   sync.Mutex
	gens map[string]int64
}

func (m *memStore) PreviewKey(ctx context.Context, generated string, now time.Time) (string, error) {
	return generated, nil
}

func (m *memStore) PreviewGenerations(ctx context.Context, id string, port int) (int64, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gens[id+"|0"], m.gens[id+"|"+strconv.Itoa(port)], nil
}

func (m *memStore) BumpPreviewGeneration(ctx context.Context, id string, port int) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gens == nil {
		m.gens = map[string]int64{}
	}
	k := id + "|" + strconv.Itoa(port)
	m.gens[k]++
	return m.gens[k], nil
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestTokens(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	s := NewService(st, testKey, nil, time.Hour, 24*time.Hour, 1<<20)
	tok, exp, err := s.Issue(ctx, "sandbox-aaa", 8000, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("expires %v", exp)
	}
	other, _, _ := s.Issue(ctx, "sandbox-aaa", 9000, time.Hour, t0)
	tamper := func(tok string) string { // flip one character of the payload
		b := []byte(tok)
		i := len(tokenPrefix) + 3
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	forged := NewSigner([]byte("another-key-another-key-another-k")).Sign(Claims{SandboxID: "sandbox-aaa", Port: 8000, Expires: exp})
	cases := []struct {
		name    string
		tok, id string
		port    int
		now     time.Time
		want    error
	}{
		{"valid", tok, "sandbox-aaa", 8000, t0, nil},
		{"valid until the last second", tok, "sandbox-aaa", 8000, exp.Add(-time.Nanosecond), nil},
		{"expired", tok, "sandbox-aaa", 8000, exp, ErrExpired},
		{"wrong sandbox", tok, "sandbox-bbb", 8000, t0, ErrWrongTarget},
		{"wrong port", tok, "sandbox-aaa", 8001, t0, ErrWrongTarget},
		{"other port's token", other, "sandbox-aaa", 8000, t0, ErrWrongTarget},
		{"tampered payload", tamper(tok), "sandbox-aaa", 8000, t0, ErrMalformed},
		{"tampered signature", tok[:len(tok)-2] + "AA", "sandbox-aaa", 8000, t0, ErrBadSignature},
		{"other key", forged, "sandbox-aaa", 8000, t0, ErrBadSignature},
		{"empty", "", "sandbox-aaa", 8000, t0, ErrMalformed},
		{"garbage", "pv1.!!!.???", "sandbox-aaa", 8000, t0, ErrMalformed},
		{"too long", tok + strings.Repeat("A", MaxTokenLen), "sandbox-aaa", 8000, t0, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Check(ctx, tc.tok, tc.id, tc.port, tc.now)
			if !errors.Is(err, tc.want) {
				// A flipped payload byte may still decode; then the MAC must catch it.
				if tc.name == "tampered payload" && errors.Is(err, ErrBadSignature) {
					return
				}
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}

	// Revocation: of the port, then of all the sandbox's ports.
	if err := s.Revoke(ctx, "sandbox-aaa", 8000); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, tok, "sandbox-aaa", 8000, t0); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after revoking the port: %v", err)
	}
	if _, err := s.Check(ctx, other, "sandbox-aaa", 9000, t0); err != nil {
		t.Fatalf("another port's token after revoking 8000: %v", err)
	}
	fresh, _, _ := s.Issue(ctx, "sandbox-aaa", 8000, time.Hour, t0)
	if _, err := s.Check(ctx, fresh, "sandbox-aaa", 8000, t0); err != nil {
		t.Fatalf("token issued after the revocation: %v", err)
	}
	if err := s.Revoke(ctx, "sandbox-aaa", 0); err != nil {
		t.Fatal(err)
	}
	for _, tk := range []struct {
		tok  string
		port int
	}{{fresh, 8000}, {other, 9000}} {
		if _, err := s.Check(ctx, tk.tok, "sandbox-aaa", tk.port, t0); !errors.Is(err, ErrRevoked) {
			t.Fatalf("port %d after revoking all: %v", tk.port, err)
		}
	}
}

func TestParseRejectsNonCanonical(t *testing.T) {
	s := NewSigner(testKey)
	tok := s.Sign(Claims{SandboxID: "sandbox-aaa", Port: 8000, Expires: t0})
	c, _, err := Parse(tok)
	if err != nil || c.SandboxID != "sandbox-aaa" || c.Port != 8000 || !c.Expires.Equal(t0) {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	for _, payload := range []string{
		"sandbox-aaa|08000|1|0|0", "sandbox-aaa|8000|01|0|0", "sandbox-aaa|8000|-1|0|0", "sandbox-aaa|0|1|0|0",
		"sandbox-aaa|65536|1|0|0", "sandbox/aaa|8000|1|0|0", "|8000|1|0|0", "sandbox-aaa|8000|1|0", "a|1|1|0|0|0",
		"sandbox-aaa|8000|99999999999999999999|0|0",
	} {
		mac := s.mac(payload)
		if _, _, err := Parse(tokenPrefix + b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(mac)); !errors.Is(err, ErrMalformed) {
			t.Errorf("payload %q: %v", payload, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	s := NewSigner(testKey)
	for _, c := range []Claims{
		{SandboxID: "sandbox-aaa", Port: 8000, Expires: t0},
		{SandboxID: "sandbox-0123456789ab", Port: 1, Expires: t0.Add(time.Hour), GenAll: 3, GenPort: 7},
		{SandboxID: "s", Port: 65535, Expires: time.Unix(0, 0)},
	} {
		f.Add(s.Sign(c))
	}
	f.Add("")
	f.Add("pv1.")
	f.Add("pv1.a.b")
	f.Fuzz(func(t *testing.T, tok string) {
		c, mac, err := Parse(tok)
		if err != nil {
			return
		}
		if c.Port < 1 || c.Port > 65535 || c.SandboxID == "" || len(mac) != macLen {
			t.Fatalf("accepted %q as %+v", tok, c)
		}
		// What parses re-encodes to the same token (one spelling per claims).
		re := tokenPrefix + b64.EncodeToString([]byte(c.payload())) + "." + b64.EncodeToString(mac)
		if re != tok {
			t.Fatalf("%q parsed to %+v but re-encodes to %q", tok, c, re)
		}
		if _, err := s.Verify(tok, c.SandboxID, c.Port, c.Expires.Add(-time.Second)); err != nil &&
			!errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify of a parsed token: %v", err)
		}
	})
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "80": 80, "8000": 8000, "65535": 65535} {
		if got, err := ParsePort(in); err != nil || got != want {
			t.Errorf("ParsePort(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "00", "080", "65536", "99999", "123456", "-1", "+80", "8o", " 80", "80 ", "1e3", "0x50"} {
		if _, err := ParsePort(in); !errors.Is(err, ErrBadPort) {
			t.Errorf("ParsePort(%q) accepted", in)
		}
	}
}

func TestStripOutbound(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer sk-bay-secret")
	h.Set("Proxy-Authorization", "Basic x")
	h.Set("X-Owner", "alice")
	h.Add("Cookie", "app=1; "+CookieName+"=pv1.x.y")
	h.Add("Cookie", "theme=dark")
	h.Set("Accept", "text/html")
	u, _ := url.Parse("http://10.0.0.2:8000/a?token=pv1.x.y&z=2&q=a+b%2F&flag&token=again&%74oken=x&tokens=1")
	StripOutbound(h, u)
	for _, k := range []string{"Authorization", "Proxy-Authorization", "X-Owner"} {
		if v := h.Get(k); v != "" {
			t.Errorf("%s kept: %q", k, v)
		}
	}
	if got := h.Values("Cookie"); len(got) != 1 || got[0] != "app=1; theme=dark" {
		t.Errorf("cookies %q", got)
	}
	if h.Get("Accept") != "text/html" {
		t.Error("the app's headers must pass")
	}
	if u.RawQuery != "z=2&q=a+b%2F&flag&tokens=1" { // order and spelling kept

		t.Errorf("query %q", u.RawQuery)
	}
	only := http.Header{"Cookie": {CookieName + "=pv1.x.y"}}
	StripOutbound(only, nil)
	if _, ok := only["Cookie"]; ok {
		t.Errorf("a Cookie header with only Bay's cookie must go: %q", only)
	}
	resp := http.Header{}
	resp.Add("Set-Cookie", CookieName+"=planted; Path=/")
	resp.Add("Set-Cookie", "session=abc; Path=/")
	StripInbound(resp)
	if got := resp.Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "session=") {
		t.Errorf("Set-Cookie %q", got)
	}
}

func TestRequestToken(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/sandboxes/s/ports/80/?token=abc", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: "fromcookie"})
	if tok, q := RequestToken(r); tok != "abc" || !q {
		t.Errorf("query first: %q %v", tok, q)
	}
	r = httptest.NewRequest("GET", "/v1/sandboxes/s/ports/80/x", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: "fromcookie"})
	if tok, q := RequestToken(r); tok != "fromcookie" || q {
		t.Errorf("cookie: %q %v", tok, q)
	}
	c := TokenCookie("t", "sandbox-a", 8000, t0, true)
	if c.Path != "/v1/sandboxes/sandbox-a/ports/8000/" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v", c)
	}
}

// The proxy against a real upstream: path and query rewritten, Bay's
// credentials stripped, X-Forwarded-* set, responses streamed, upgrades
// passed through, errors answered by OnError.
func TestProxy(t *testing.T) {
	seen := make(chan *http.Request, 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Clone(context.Background())
		switch r.URL.Path {
		case "/stream":
			for i := 0; i < 3; i++ {
				_, _ = io.WriteString(w, "tick\n")
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
		case "/upgrade":
			if r.Header.Get("Upgrade") != "echo" {
				http.Error(w, "no upgrade", 400)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			_, _ = brw.WriteString("echo: " + line)
			_ = brw.Flush()
		default:
			_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI())
		}
	}))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	host, portS, _ := strings.Cut(upURL.Host, ":")
	port, _ := strconv.Atoi(portS)
	p := NewProxy(time.Second, nil)
	defer p.Close()
	var failed error
	released := 0
	var mu sync.Mutex
	bay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp := port
		if strings.Contains(r.URL.Path, "/closed/") {
			tp = 1 // nothing listens
		}
		p.Serve(w, r, &Target{Host: host, Port: tp, Prefix: "/v1/sandboxes/s/ports/" + strconv.Itoa(tp) + "/",
			Release: func() { mu.Lock(); released++; mu.Unlock() },
			OnError: func(w http.ResponseWriter, r *http.Request, err error) {
				mu.Lock()
				failed = err
				mu.Unlock()
				w.WriteHeader(http.StatusBadGateway)
			}})
	}))
	defer bay.Close()
	prefix := bay.URL + "/v1/sandboxes/s/ports/" + portS

	req, _ := http.NewRequest("POST", prefix+"/a/b%2Fc?token=pv1.x&q=1", strings.NewReader("body"))
	req.Header.Set("Authorization", "Bearer sk-bay")
	req.Header.Set("Cookie", CookieName+"=pv1.x; app=1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST /a/b%2Fc?q=1" {
		t.Errorf("upstream saw %q", b)
	}
	got := <-seen
	if got.Header.Get("Authorization") != "" || got.Header.Get("Cookie") != "app=1" {
		t.Errorf("headers reached the app: %q", got.Header)
	}
	if got.Header.Get("X-Forwarded-For") == "" || got.Header.Get("X-Forwarded-Proto") != "http" ||
		got.Header.Get("X-Forwarded-Prefix") != "/v1/sandboxes/s/ports/"+portS || got.Header.Get("X-Forwarded-Host") == "" {
		t.Errorf("X-Forwarded-*: %q", got.Header)
	}

	// The prefix alone is the app's root.
	resp, err = http.Get(prefix + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	<-seen
	if string(b) != "GET /" {
		t.Errorf("root: %q", b)
	}

	// Streaming: the first line arrives before the upstream finished.
	start := time.Now()
	resp, err = http.Get(prefix + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	first := time.Since(start)
	resp.Body.Close()
	<-seen
	if err != nil || line != "tick\n" || first > 90*time.Millisecond {
		t.Errorf("first line %q after %v (%v): responses must stream", line, first, err)
	}

	// An upgrade passes through both ways.
	req, _ = http.NewRequest("GET", prefix+"/upgrade", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-seen
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	rwc := resp.Body.(io.ReadWriteCloser)
	_, _ = io.WriteString(rwc, "hello\n")
	echo, _ := bufio.NewReader(rwc).ReadString('\n')
	rwc.Close()
	if echo != "echo: hello\n" {
		t.Errorf("upgraded echo %q", echo)
	}

	// Nothing listening: OnError answers.
	resp, err = http.Get(bay.URL + "/v1/sandboxes/s/ports/1/closed/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != http.StatusBadGateway || !errors.Is(failed, ErrUpstream) {
		t.Errorf("closed port: %d, %v", resp.StatusCode, failed)
	}
	for i := 0; i < 100 && released < 5; i++ { // the upgraded connection ends a moment after the client closed it
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
	}
	if released != 5 {
		t.Errorf("released %d times, want 5 (once per request)", released)
	}
}
