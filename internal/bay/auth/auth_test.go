package auth

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

func TestOwner(t *testing.T) {
	a := &Authenticator{keys: map[string]string{Hash("sk-good"): "alice"}, allowAnonymous: true}
	strict := &Authenticator{keys: map[string]string{Hash("sk-good"): "alice"}}
	cases := []struct {
		name    string
		a       *Authenticator
		headers map[string]string
		owner   string
		code    errs.Code
	}{
		{"good key", a, map[string]string{"Authorization": "Bearer sk-good"}, "alice", ""},
		{"wrong key", a, map[string]string{"Authorization": "Bearer sk-bad"}, "", errs.Unauthorized},
		{"key beats X-Owner", a, map[string]string{"Authorization": "Bearer sk-good", "X-Owner": "bob"}, "alice", ""},
		{"anonymous default", a, nil, DefaultOwner, ""},
		{"anonymous X-Owner", a, map[string]string{"X-Owner": "bob"}, "bob", ""},
		{"not bearer counts as none", a, map[string]string{"Authorization": "Basic abc"}, DefaultOwner, ""},
		{"X-Owner too long", a, map[string]string{"X-Owner": strings.Repeat("x", 129)}, "", errs.Validation},
		{"X-Owner control char", a, map[string]string{"X-Owner": "a\tb"}, "", errs.Validation},
		{"no anonymous", strict, nil, "", errs.Unauthorized},
		{"no anonymous, good key", strict, map[string]string{"Authorization": "Bearer sk-good"}, "alice", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/sandboxes", nil)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			owner, err := c.a.Owner(r)
			if c.code != "" {
				if !errs.Is(err, c.code) {
					t.Fatalf("err %v, want %s", err, c.code)
				}
				return
			}
			if err != nil || owner != c.owner {
				t.Fatalf("owner %q, %v; want %q", owner, err, c.owner)
			}
		})
	}
}
