package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

const (
	local  = "127.0.0.1:40000"
	remote = "172.17.0.2:40000" // e.g. a sandbox calling through the bridge gateway
)

// keyStore returns a real store holding the tenant key sk-good of alice, the
// admin key sk-root of DefaultOwner and the revoked key sk-gone of alice.
func keyStore(t testing.TB) *store.Store {
	t.Helper()
	st := storetest.Open(t, store.SQLite)
	now := time.Now().UTC()
	for _, k := range []struct {
		key, owner string
		admin      bool
	}{{"sk-good", "alice", false}, {"sk-root", DefaultOwner, true}, {"sk-gone", "alice", false}} {
		rec := &store.APIKey{ID: model.NewID("key"), Owner: k.owner, Admin: k.admin, Prefix: Prefix(k.key), Active: true, CreatedAt: now}
		if err := st.CreateAPIKey(t.Context(), rec, Hash(k.key)); err != nil {
			t.Fatal(err)
		}
		if k.key == "sk-gone" {
			if _, err := st.RevokeAPIKey(t.Context(), rec.ID, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st
}

func TestOwner(t *testing.T) {
	st := keyStore(t)
	anon := New(st, Policy{AllowAnonymous: true})
	anonRemote := New(st, Policy{AllowAnonymous: true, AllowAnonymousRemote: true})
	strict := New(st, Policy{})
	noKeys := New(storetest.Open(t, store.SQLite), Policy{AllowAnonymous: true})
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
		{"X-Owner of the warm pool", anon, local, http.Header{"X-Owner": {model.WarmOwner}}, "", errs.Validation},
		{"no anonymous", strict, local, nil, "", errs.Unauthorized},
		{"no anonymous, X-Owner", strict, local, http.Header{"X-Owner": {"bob"}}, "", errs.Unauthorized},
		{"revoked key", anon, local, bearer("Bearer sk-gone"), "", errs.Unauthorized},
		{"revoked key, anonymous X-Owner no fallback", anon, local, http.Header{"Authorization": {"Bearer sk-gone"}, "X-Owner": {"alice"}}, "", errs.Unauthorized},
		{"key with a trailing space", anon, local, bearer("Bearer sk-good "), "", errs.Unauthorized},
		{"key prefix only", anon, local, bearer("Bearer sk-goo"), "", errs.Unauthorized},
		{"key hash instead of key", anon, local, bearer("Bearer " + Hash("sk-good")), "", errs.Unauthorized},
		{"admin key", strict, remote, bearer("Bearer sk-root"), DefaultOwner, ""},
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

func TestIdentify(t *testing.T) {
	st := keyStore(t)
	a := New(st, Policy{AllowAnonymous: true})
	cases := []struct {
		name   string
		header http.Header
		want   Identity
	}{
		{"tenant key", http.Header{"Authorization": {"Bearer sk-good"}}, Identity{Owner: "alice"}},
		{"admin key", http.Header{"Authorization": {"Bearer sk-root"}}, Identity{Owner: DefaultOwner, Admin: true}},
		{"anonymous is no admin", http.Header{"X-Owner": {"root"}}, Identity{Owner: "root", Anonymous: true}},
		{"anonymous default owner is no admin", nil, Identity{Owner: DefaultOwner, Anonymous: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/admin/keys", nil)
			r.RemoteAddr = local
			r.Header = c.header
			if r.Header == nil {
				r.Header = http.Header{}
			}
			got, err := a.Identify(r)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Anonymous && got.KeyID == "" {
				t.Fatalf("no key id in %+v", got)
			}
			got.KeyID = ""
			if got != c.want {
				t.Fatalf("%+v, want %+v", got, c.want)
			}
		})
	}
}

// A database that cannot answer is not an invalid key (no 401: the API maps
// the store's error), and no key is accepted.
func TestIdentifyStoreDown(t *testing.T) {
	st := keyStore(t)
	a := New(st, Policy{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/sandboxes", nil)
	r.Header.Set("Authorization", "Bearer sk-good")
	id, err := a.Identify(r)
	if err == nil || errs.Is(err, errs.Unauthorized) || id.Owner != "" {
		t.Fatalf("store closed: %+v, %v", id, err)
	}
}

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		key, hash, prefix, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != len(KeyPrefix)+64 || !strings.HasPrefix(key, KeyPrefix) || hash != Hash(key) ||
			prefix != key[:len(KeyPrefix)+8] || seen[key] {
			t.Fatalf("NewKey: %q %q %q", key, hash, prefix)
		}
		if k, present, err := ParseAuthorization(http.Header{"Authorization": {"Bearer " + key}}); err != nil || !present || k != key {
			t.Fatalf("a minted key does not parse: %q %v", k, err)
		}
		seen[key] = true
	}
	if Prefix("short") != "short" {
		t.Fatal("Prefix of a short key")
	}
}

// FuzzIdentify: whatever the header, a request is either refused with 401
// (or 400 for a bad X-Owner) or acts as the one owner whose key it carries.
func FuzzIdentify(f *testing.F) {
	for _, s := range []string{"Bearer sk-good", "Bearer sk-root", "Bearer sk-gone", "bearer sk-good", "Bearer sk-good\x00",
		"Bearer  sk-root", "Bearer sk-root ", "Basic sk-root", ""} {
		f.Add(s, "")
	}
	f.Add("", "alice")
	st := keyStore(f)
	a := New(st, Policy{AllowAnonymous: true})
	f.Fuzz(func(t *testing.T, authz, owner string) {
		r := httptest.NewRequest("GET", "/v1/sandboxes", nil)
		r.RemoteAddr = local
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		r.Header.Set("X-Owner", owner)
		id, err := a.Identify(r)
		if err != nil {
			if !errs.Is(err, errs.Unauthorized) && !errs.Is(err, errs.Validation) {
				t.Fatalf("%q: %v", authz, err)
			}
			return
		}
		key, present, _ := ParseAuthorization(r.Header)
		switch {
		case !present:
			if !id.Anonymous || id.Admin {
				t.Fatalf("no key → %+v", id)
			}
		case key == "sk-good":
			if id.Owner != "alice" || id.Admin || id.Anonymous {
				t.Fatalf("%q → %+v", authz, id)
			}
		case key == "sk-root":
			if id.Owner != DefaultOwner || !id.Admin || id.Anonymous {
				t.Fatalf("%q → %+v", authz, id)
			}
		default:
			t.Fatalf("%q (key %q) accepted as %+v", authz, key, id)
		}
	})
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
		if v == "" && o != DefaultOwner || v != "" && o != v || !validOwner(o) || o == model.WarmOwner {
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

// Provision keeps upstream's start-up rules; the configured and the generated
// key are admin keys of DefaultOwner; a configured key an admin revoked stays
// revoked across restarts.
func TestProvision(t *testing.T) {
	ctx := t.Context()
	now := time.Now().UTC()
	identify := func(st *store.Store, key string) (Identity, error) {
		r := httptest.NewRequest("GET", "/v1/sandboxes", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		return New(st, Policy{}).Identify(r)
	}

	// Nothing configured, nothing stored: one key is generated into credentials.json (0600).
	st := storetest.Open(t, store.SQLite)
	dir := t.TempDir()
	path, revoked, err := Provision(ctx, st, "", dir, "http://127.0.0.1:8114", now)
	if err != nil || revoked || path == "" {
		t.Fatalf("Provision: %q %v %v", path, revoked, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	var cred struct {
		APIKey string `json:"api_key"`
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &cred); err != nil || !strings.HasPrefix(cred.APIKey, KeyPrefix) {
		t.Fatalf("credentials: %s %v", data, err)
	}
	if id, err := identify(st, cred.APIKey); err != nil || id.Owner != DefaultOwner || !id.Admin {
		t.Fatalf("generated key: %+v %v", id, err)
	}
	// A restart generates nothing more.
	if path, _, err := Provision(ctx, st, "", dir, "", now); err != nil || path != "" {
		t.Fatalf("second Provision: %q %v", path, err)
	}

	// A configured key: stored as the default owner's admin key.
	st = storetest.Open(t, store.SQLite)
	if path, revoked, err := Provision(ctx, st, "sk-configured", t.TempDir(), "", now); err != nil || path != "" || revoked {
		t.Fatalf("Provision configured: %q %v %v", path, revoked, err)
	}
	id, err := identify(st, "sk-configured")
	if err != nil || id.Owner != DefaultOwner || !id.Admin {
		t.Fatalf("configured key: %+v %v", id, err)
	}
	if _, err := st.RevokeAPIKey(ctx, id.KeyID, now); err != nil {
		t.Fatal(err)
	}
	if _, revoked, err := Provision(ctx, st, "sk-configured", t.TempDir(), "", now); err != nil || !revoked {
		t.Fatalf("Provision of a revoked configured key: %v %v", revoked, err)
	}
	if _, err := identify(st, "sk-configured"); !errs.Is(err, errs.Unauthorized) {
		t.Fatalf("revoked configured key after a restart: %v", err)
	}
}

// countingKeys counts the store lookups of an Authenticator.
type countingKeys struct {
	Keys
	n int
}

func (c *countingKeys) LookupAPIKey(ctx context.Context, hash string) (*store.APIKey, string, error) {
	c.n++
	return c.Keys.LookupAPIKey(ctx, hash)
}

// TestKnownKeys: a key found in the store is reused for keyTTL (one read per
// busy client and keyTTL, not per request); after it, a key revoked meanwhile
// is refused; Forget makes the next request read again; unknown keys are
// never remembered.
func TestKnownKeys(t *testing.T) {
	st := keyStore(t)
	keys := &countingKeys{Keys: st}
	a := New(keys, Policy{})
	clock := time.Now()
	a.now = func() time.Time { return clock }
	identify := func(key string) (Identity, error) {
		r := httptest.NewRequest("GET", "/v1/sandboxes", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		return a.Identify(r)
	}
	step := func(what string, key string, wantOwner string, wantReads int) {
		t.Helper()
		id, err := identify(key)
		if wantOwner == "" && !errs.Is(err, errs.Unauthorized) {
			t.Errorf("%s: %+v, %v; want unauthorized", what, id, err)
		}
		if wantOwner != "" && (err != nil || id.Owner != wantOwner) {
			t.Errorf("%s: %+v, %v; want owner %s", what, id, err, wantOwner)
		}
		if keys.n != wantReads {
			t.Errorf("%s: %d store reads so far, want %d", what, keys.n, wantReads)
		}
	}
	step("first use", "sk-good", "alice", 1)
	step("again at once", "sk-good", "alice", 1)
	clock = clock.Add(keyTTL - time.Millisecond)
	step("again within keyTTL", "sk-good", "alice", 1)
	step("an unknown key", "sk-nope", "", 2)
	step("the unknown key again", "sk-nope", "", 3)

	// Revoked through another replica: refused once keyTTL has passed.
	rec, _, err := st.LookupAPIKey(t.Context(), Hash("sk-good"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeAPIKey(t.Context(), rec.ID, clock); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Millisecond)
	step("revoked elsewhere, keyTTL passed", "sk-good", "", 4)

	// Revoked through this replica: Forget, refused at the next request.
	step("admin key", "sk-root", DefaultOwner, 5)
	step("admin key again", "sk-root", DefaultOwner, 5)
	a.Forget()
	step("after Forget", "sk-root", DefaultOwner, 6)
}
