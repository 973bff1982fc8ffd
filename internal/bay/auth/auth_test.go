package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

const (
	local  = "127.0.0.1:40000"
	remote = "172.17.0.2:40000" // e.g. a sandbox calling through the bridge gateway
)

func TestOwner(t *testing.T) {
	keys := map[string]string{Hash("sk-good"): "alice"}
	anon := &Authenticator{keys: keys, policy: Policy{AllowAnonymous: true}}
	anonRemote := &Authenticator{keys: keys, policy: Policy{AllowAnonymous: true, AllowAnonymousRemote: true}}
	strict := &Authenticator{keys: keys}
	noKeys := &Authenticator{keys: map[string]string{}, policy: Policy{AllowAnonymous: true}}
	bearer := func(v ...string) http.Header { return http.Header{"Authorization": v} }
	cases := []struct {
		name   string
		a      *Authenticator
		peer   string
		header http.Header
		owner  string
		code   errs.Code
	}{
		{"good key", strict, remote, bearer("Bearer sk-good"), "alice", ""},
		{"scheme case-insensitive", strict, remote, bearer("bearer sk-good"), "alice", ""},
		{"scheme upper case", strict, remote, bearer("BEARER sk-good"), "alice", ""},
		{"several spaces (RFC 7235 1*SP)", strict, remote, bearer("Bearer   sk-good"), "alice", ""},
		{"wrong key", anon, local, bearer("Bearer sk-bad"), "", errs.Unauthorized},
		{"key beats X-Owner", anon, local, http.Header{"Authorization": {"Bearer sk-good"}, "X-Owner": {"bob"}}, "alice", ""},
		{"Basic is not anonymous", anon, local, bearer("Basic abc"), "", errs.Unauthorized},
		{"scheme without key", anon, local, bearer("BEARER"), "", errs.Unauthorized},
		{"empty key", anon, local, bearer("Bearer "), "", errs.Unauthorized},
		{"empty header", anon, local, bearer(""), "", errs.Unauthorized},
		{"key then junk", anon, local, bearer("Bearer sk-good extra"), "", errs.Unauthorized},
		{"tab separator", anon, local, bearer("Bearer\tsk-good"), "", errs.Unauthorized},
		{"control char in key", anon, local, bearer("Bearer sk-\x01good"), "", errs.Unauthorized},
		{"non-ASCII key", anon, local, bearer("Bearer sk-gööd"), "", errs.Unauthorized},
		{"huge key", anon, local, bearer("Bearer " + strings.Repeat("k", 5000)), "", errs.Unauthorized},
		{"header twice", anon, local, bearer("Bearer sk-good", "Bearer sk-good"), "", errs.Unauthorized},
		{"no stored keys: a key is still checked", noKeys, local, bearer("Bearer anything"), "", errs.Unauthorized},
		{"anonymous from loopback", anon, local, nil, DefaultOwner, ""},
		{"anonymous from ::1", anon, "[::1]:5", nil, DefaultOwner, ""},
		{"anonymous from mapped loopback", anon, "[::ffff:127.0.0.1]:5", nil, DefaultOwner, ""},
		{"anonymous X-Owner", anon, local, http.Header{"X-Owner": {"bob"}}, "bob", ""},
		{"anonymous remote refused", anon, remote, nil, "", errs.Unauthorized},
		{"anonymous remote: X-Forwarded-For not trusted", anon, remote, http.Header{"X-Forwarded-For": {"127.0.0.1"}}, "", errs.Unauthorized},
		{"anonymous unparsable peer refused", anon, "@", nil, "", errs.Unauthorized},
		{"anonymous remote allowed", anonRemote, remote, http.Header{"X-Owner": {"bob"}}, "bob", ""},
		{"X-Owner too long", anon, local, http.Header{"X-Owner": {strings.Repeat("x", 129)}}, "", errs.Validation},
		{"X-Owner control char", anon, local, http.Header{"X-Owner": {"a\tb"}}, "", errs.Validation},
		{"X-Owner invalid UTF-8", anon, local, http.Header{"X-Owner": {"a\xffb"}}, "", errs.Validation},
		{"no anonymous", strict, local, nil, "", errs.Unauthorized},
		{"no anonymous, X-Owner", strict, local, http.Header{"X-Owner": {"bob"}}, "", errs.Unauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/sandboxes", nil)
			r.RemoteAddr = c.peer
			for k, v := range c.header {
				r.Header[k] = v
			}
			owner, err := c.a.Owner(r)
			if c.code != "" {
				if !errs.Is(err, c.code) {
					t.Fatalf("owner %q, err %v, want %s", owner, err, c.code)
				}
				return
			}
			if err != nil || owner != c.owner {
				t.Fatalf("owner %q, %v; want %q", owner, err, c.owner)
			}
		})
	}
}

// FuzzParseAuthorization: an accepted header is one Bearer credential whose
// key is printable ASCII without spaces, never longer than maxKeyLen.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer sk-bay-0123", "bearer k", "BEARER", "Bearer ", "Basic dXNlcjpwYXNz",
		"Bearer a b", "Bearer \x00", "Bearer   k", "", "Bearerk", "Token k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		key, present, err := ParseAuthorization(http.Header{"Authorization": {v}})
		if !present {
			t.Fatal("a header is present")
		}
		if err != nil {
			if !errs.Is(err, errs.Unauthorized) {
				t.Fatalf("%q: %v", v, err)
			}
			return
		}
		scheme, _, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, "bearer") || key == "" || len(key) > maxKeyLen || !strings.HasSuffix(v, key) {
			t.Fatalf("%q → %q", v, key)
		}
		for _, c := range []byte(key) {
			if c <= ' ' || c >= 0x7f {
				t.Fatalf("%q → %q", v, key)
			}
		}
	})
}

// FuzzParseOwner: an accepted owner is valid UTF-8, printable, at most 128 bytes.
func FuzzParseOwner(f *testing.F) {
	for _, s := range []string{"", "alice", "a b", "a\tb", "\xff", strings.Repeat("x", 129), "ünï"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		o, err := ParseOwner(v)
		if err != nil {
			return
		}
		if v == "" && o != DefaultOwner || v != "" && o != v || !validOwner(o) {
			t.Fatalf("%q → %q", v, o)
		}
	})
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "127.8.9.1:1": true, "[::1]:1": true,
		"[::ffff:127.0.0.1]:1": true, "10.0.0.1:1": false, "[fe80::1]:1": false, "": false, "127.0.0.1": false, "x:1": false} {
		if got := Loopback(addr); got != want {
			t.Errorf("%q: %v", addr, got)
		}
	}
}
