package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

// brokenBody yields some bytes, then fails like a truncated or badly chunked body.
type brokenBody struct {
	data string
	err  error
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.data == "" {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func request(body io.Reader) *http.Request {
	return httptest.NewRequest("POST", "/v1/sandboxes", body)
}

// errKind classifies an error as the client will see it.
func errKind(err error) string {
	var ve *validationError
	if errors.As(err, &ve) {
		return "422 " + ve.list[0].Type
	}
	if e, ok := errs.As(err); ok {
		return string(e.Code)
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestReadBody(t *testing.T) {
	cases := []struct {
		name string
		body io.Reader
		want string
	}{
		{"object", strings.NewReader(`{"a":1}`), ""},
		{"empty allowed", strings.NewReader("  "), ""},
		{"truncated JSON", strings.NewReader(`{"a":`), "422 json_invalid"},
		{"trailing data", strings.NewReader(`{"a":1} {"b":2}`), "422 json_invalid"},
		{"trailing garbage", strings.NewReader(`{} x`), "422 json_invalid"},
		{"array", strings.NewReader(`[1,2]`), "422 model_attributes_type"},
		{"string", strings.NewReader(`"x"`), "422 model_attributes_type"},
		{"too large", strings.NewReader(`{"a":"` + strings.Repeat("x", 100) + `"}`), string(errs.Validation)},
		{"unexpected EOF", &brokenBody{`{"a":`, io.ErrUnexpectedEOF}, string(errs.Validation)},
		{"chunk error", &brokenBody{`{`, errors.New("invalid byte in chunk length")}, string(errs.Validation)},
		{"deep nesting", strings.NewReader(strings.Repeat("[", 20000)), "422 json_invalid"},
		{"invalid UTF-8 is replaced", strings.NewReader("{\"a\":\"\xff\"}"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit := int64(1 << 20)
			if c.name == "too large" {
				limit = 50
			}
			_, err := readBody(request(c.body), limit, true)
			if got := errKind(err); got != c.want {
				t.Fatalf("got %q (%v), want %q", got, err, c.want)
			}
		})
	}
}

// TestBodyBounds: the numbers of issue 8 finding 3 and their neighbours.
func TestBodyBounds(t *testing.T) {
	cases := []struct {
		json string
		lo   *int64
		hi   *int64
		want string // "" = accepted
	}{
		{`315360000`, &minTTL, &maxTTL, ""},
		{`315360001`, &minTTL, &maxTTL, "less_than_equal"},
		{`9300000000`, &minTTL, &maxTTL, "less_than_equal"},
		{`9223372036854775807`, &minTTL, &maxTTL, "less_than_equal"},
		{`9223372036854775808`, &minTTL, &maxTTL, "int_type"},
		{`1e400`, &minTTL, &maxTTL, "int_type"},
		{`-1e400`, &minTTL, &maxTTL, "int_type"},
		{`1e3`, &minTTL, &maxTTL, ""},
		{`1.5`, &minTTL, &maxTTL, "int_type"},
		{`-1`, &minTTL, &maxTTL, "greater_than_equal"},
		{`"60"`, &minTTL, &maxTTL, ""},
		{`"1e400"`, &minTTL, &maxTTL, "int_parsing"},
		{`true`, &minTTL, &maxTTL, "int_type"},
		{`[1]`, &minTTL, &maxTTL, "int_type"},
		{`{"a":1}`, &minTTL, &maxTTL, "int_type"},
		{`0`, &minTimeout, &maxTimeout, "greater_than_equal"},
		{`301`, &minTimeout, &maxTimeout, "less_than_equal"},
		{`65536`, &minCargoMB, &maxCargoMB, ""},
		{`65537`, &minCargoMB, &maxCargoMB, "less_than_equal"},
		{`-9223372036854775808`, nil, &maxTTL, ""}, // extend_by <= 0: the service's 400
	}
	for _, c := range cases {
		b, err := readBody(request(strings.NewReader(`{"n":`+c.json+`}`)), 1<<20, false)
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		b.integer("n", true, c.lo, c.hi)
		got := ""
		if len(b.errs) > 0 {
			got = b.errs[0].Type
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.json, got, c.want)
		}
	}
}

func TestTextRefusesNUL(t *testing.T) {
	b, _ := readBody(request(strings.NewReader(`{"code":"a\u0000b","ok":"x"}`)), 1<<20, false)
	if b.text("code", true) != nil || b.text("ok", true) == nil || len(b.errs) != 1 {
		t.Fatalf("%+v", b.errs)
	}
}

func TestQueryTagsAndIDs(t *testing.T) {
	many := make([]string, maxTags+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	cases := []struct {
		query string
		tags  []string
		err   bool
	}{
		{"tags=a,b", []string{"a", "b"}, false},
		{"tags=", nil, false},
		{"tags=,%20,", nil, false},
		{"tags=A,a,%20a%20,b", []string{"A", "b"}, false},
		{"tags=" + strings.Join(many[:maxTags], ","), many[:maxTags], false},
		{"tags=" + strings.Join(many, ","), nil, true},
		{"tags=" + strings.Repeat("x,", 5000), []string{"x"}, false},
		{"tags=a%00b", nil, true},
		{"tags=%FF", nil, true},
		{"cursor=sandbox-0123456789ab", nil, false},
		{"cursor=" + strings.Repeat("c", 129), nil, true},
		{"cursor=a%00", nil, true},
		{"cursor=%C3%28", nil, true},
	}
	for _, c := range cases {
		v, _ := url.ParseQuery(c.query)
		q := &query{v: v}
		got := q.tags("tags")
		q.id("cursor")
		if (q.err() != nil) != c.err || !c.err && strings.Join(got, "|") != strings.Join(c.tags, "|") {
			t.Errorf("%.60s: %q, %v", c.query, got, q.err())
		}
	}
}

func TestQueryIntegerBounds(t *testing.T) {
	for in, bad := range map[string]bool{"0": false, "2147483647": false, "2147483648": true, "-1": true,
		"9223372036854775808": true, "1e3": true, "1.0": true, "": true, "%00": true} {
		v, _ := url.ParseQuery("offset=" + in)
		q := &query{v: v}
		q.integer("offset", 0, 0, maxOffset)
		if (q.err() != nil) != bad {
			t.Errorf("offset=%s: %v", in, q.err())
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	for raw, want := range map[string]bool{
		"/v1/sandboxes": true, "/v1/sandboxes/": true, "/": true,
		"//v1/sandboxes": false, "/v1//sandboxes": false, "/v1/./sandboxes": false, "/v1/x/../sandboxes": false,
		"/v1/sandboxes/%2e%2e": true, // the id "..": routed, then not found
		"/v1/sandboxes/a%2Fb":  true,
	} {
		r := httptest.NewRequest("GET", "http://bay"+raw, nil)
		if got := canonicalPath(r); got != want {
			t.Errorf("%s: %v", raw, got)
		}
	}
}

// TestBayWritesJSON: what the router answers by itself (no handler reached) is JSON.
func TestBayWritesJSON(t *testing.T) {
	h := New(Deps{})
	for _, c := range []struct {
		method, target string
		status         int
	}{
		{"GET", "//v1/sandboxes", 404},
		{"GET", "/v1/../v1/sandboxes", 404},
		{"GET", "/v1/./sandboxes", 404},
		{"POST", "/v1/sandboxes/x/../y/stop", 404},
		{"GET", "/nope", 404},
		{"PUT", "/v1/sandboxes", 405},
		{"OPTIONS", "/v1/cargos", 405},
	} {
		r := httptest.NewRequest(c.method, "http://bay/", nil)
		r.URL.Path, r.URL.RawPath, r.RequestURI = c.target, "", c.target
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var v map[string]any
		if w.Code != c.status || w.Header().Get("Content-Type") != "application/json" || json.Unmarshal(w.Body.Bytes(), &v) != nil {
			t.Errorf("%s %s: %d %q %s", c.method, c.target, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
}

func TestUpgradeError(t *testing.T) {
	ok := http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	with := func(k string, v ...string) http.Header {
		h := ok.Clone()
		if v == nil {
			h.Del(k)
		} else {
			h[http.CanonicalHeaderKey(k)] = v
		}
		return h
	}
	cases := []struct {
		name   string
		method string
		h      http.Header
		want   errs.Code
	}{
		{"ok", "GET", ok, ""},
		{"same origin", "GET", with("Origin", "http://bay"), ""},
		{"plain GET", "GET", http.Header{}, errs.Validation},
		{"POST", "POST", ok, errs.Validation},
		{"no Upgrade", "GET", with("Upgrade"), errs.Validation},
		{"version 8", "GET", with("Sec-WebSocket-Version", "8"), errs.Validation},
		{"no key", "GET", with("Sec-WebSocket-Key"), errs.Validation},
		{"two keys", "GET", with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=="), errs.Validation},
		{"bad key", "GET", with("Sec-WebSocket-Key", "x"), errs.Validation},
		{"cross origin", "GET", with("Origin", "http://evil.example"), errs.Forbidden},
		{"opaque origin", "GET", with("Origin", "null"), errs.Forbidden},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://bay/v1/sandboxes/x/terminal", nil)
		r.Header = c.h
		err := upgradeError(r)
		if c.want == "" && err != nil || c.want != "" && !errs.Is(err, c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// FuzzReadBody: any bytes give a body or a client error, never anything else,
// and an accepted body is a JSON object whose fields the readers survive.
func FuzzReadBody(f *testing.F) {
	for _, s := range []string{`{}`, ``, `{"code":"print(1)","timeout":30}`, `{"ttl":3600,"profile":"python-default"}`,
		`{"extend_by":1e400}`, `{"size_limit_mb":9223372036854775808}`, `{"tasks":["idle_session",1]}`,
		`[]`, `{"a":`, `{} {}`, "{\"code\":\"\x00\xff\"}", `{"timeout":"30"}`, `{"include_code":"yes"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := readBody(request(strings.NewReader(string(data))), 1<<16, true)
		if err != nil {
			if k := errKind(err); !strings.HasPrefix(k, "422 ") && k != string(errs.Validation) {
				t.Fatalf("%q: %s", data, k)
			}
			return
		}
		for _, name := range []string{"code", "ttl", "timeout", "include_code", "tasks", "a"} {
			b.str(name, false)
			b.text(name, false)
			if n := b.integer(name, false, &minTTL, &maxTTL); n != nil && (*n < minTTL || *n > maxTTL) {
				t.Fatalf("%q: %s = %d out of bounds", data, name, *n)
			}
			b.boolean(name, false)
			b.strList(name)
		}
		if _, err := json.Marshal(b.errs); err != nil {
			t.Fatalf("422 body does not encode: %v", err)
		}
	})
}

// FuzzQuery: query validation never panics, bounds hold, tags are bounded and clean.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"limit=50", "limit=0", "limit=1e400&offset=-1", "tags=a,b,,c", "tags=%00",
		"cursor=sandbox-0123456789ab", "success_only=yes&has_notes=maybe", "offset=9223372036854775808", "limit=1&limit=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw)
		q := &query{v: v}
		if n := q.integer("limit", 50, 1, 200); n < 1 || n > 200 {
			t.Fatalf("%q: limit %d", raw, n)
		}
		if n := q.integer("offset", 0, 0, maxOffset); n < 0 || n > maxOffset {
			t.Fatalf("%q: offset %d", raw, n)
		}
		q.boolean("success_only")
		if c := q.id("cursor"); c != "" && !validID(c) {
			t.Fatalf("%q: cursor %q", raw, c)
		}
		tags := q.tags("tags")
		if len(tags) > maxTags {
			t.Fatalf("%q: %d tags", raw, len(tags))
		}
		for _, tg := range tags {
			if tg == "" || !utf8.ValidString(tg) || strings.ContainsAny(tg, ",\x00") || strings.TrimSpace(tg) != tg {
				t.Fatalf("%q: tag %q", raw, tg)
			}
		}
	})
}

// FuzzCanonicalPath: a path Bay routes is one ServeMux would not redirect.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/v1/sandboxes", "//v1/sandboxes", "/v1/../x", "/a/./b", "/%2e%2e/", "/v1/sandboxes/a%2Fb", ""} {
		f.Add(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(http.ResponseWriter, *http.Request) {})
	f.Fuzz(func(t *testing.T, p string) {
		u, err := url.Parse("http://bay" + p)
		if err != nil || u.Host != "bay" {
			return
		}
		r := &http.Request{Method: "GET", URL: u, Host: "bay", Header: http.Header{}}
		if !canonicalPath(r) {
			return
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%q: canonical, yet ServeMux answers %d", p, w.Code)
		}
	})
}
