package tenant

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shipyard/shipyard/internal/bay/auth"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func eachStore(t *testing.T, fn func(t *testing.T, s *Service)) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			fn(t, &Service{Store: storetest.Open(t, d), Now: func() time.Time { return time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC) }})
		})
	}
}

// run runs `bay keys args...` and returns exit code, stdout, stderr.
func run(t *testing.T, s *Service, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := s.KeysCommand(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeysCommand(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Service) {
		code, key, msg := run(t, s, "mint", "-owner", "alice", "-label", "ci runner")
		key = strings.TrimSpace(key)
		if code != 0 || !strings.HasPrefix(key, auth.KeyPrefix) || !strings.Contains(msg, "shown only now") {
			t.Fatalf("mint: %d %q %q", code, key, msg)
		}
		k, _, err := s.Store.LookupAPIKey(context.Background(), auth.Hash(key))
		if err != nil || k.Owner != "alice" || k.Admin || k.Label != "ci runner" {
			t.Fatalf("minted key as stored: %+v %v", k, err)
		}
		code, admin, _ := run(t, s, "mint", "-owner", "root", "-admin")
		if code != 0 {
			t.Fatalf("mint -admin: %d", code)
		}
		if k, _, err := s.Store.LookupAPIKey(context.Background(), auth.Hash(strings.TrimSpace(admin))); err != nil || !k.Admin {
			t.Fatalf("admin key as stored: %+v %v", k, err)
		}

		code, out, _ := run(t, s, "list")
		if code != 0 || !strings.Contains(out, k.ID) || !strings.Contains(out, "ci runner") || strings.Contains(out, key) ||
			!strings.Contains(out, auth.Prefix(key)+"…") {
			t.Fatalf("list: %d\n%s", code, out)
		}
		code, out, _ = run(t, s, "list", "-owner", "root")
		if code != 0 || strings.Contains(out, "alice") {
			t.Fatalf("list -owner root: %d\n%s", code, out)
		}

		aliceID := k.ID
		code, next, msg := run(t, s, "rotate", aliceID)
		next = strings.TrimSpace(next)
		if code != 0 || !strings.HasPrefix(next, auth.KeyPrefix) || next == key || !strings.Contains(msg, aliceID+" is revoked") {
			t.Fatalf("rotate: %d %q %q", code, next, msg)
		}
		if _, _, err := s.Store.LookupAPIKey(context.Background(), auth.Hash(key)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("old key after rotate: %v", err)
		}
		n, _, _ := s.Store.LookupAPIKey(context.Background(), auth.Hash(next))
		code, _, msg = run(t, s, "revoke", n.ID)
		if code != 0 || !strings.Contains(msg, "revoked "+n.ID) {
			t.Fatalf("revoke: %d %q", code, msg)
		}
		code, out, _ = run(t, s, "list", "-owner", "alice", "-revoked")
		if code != 0 || strings.Count(out, "\n") != 3 { // header + 2 revoked keys
			t.Fatalf("list -revoked: %d\n%s", code, out)
		}

		// Errors and usage.
		for _, c := range []struct {
			args []string
			code int
			msg  string
		}{
			{nil, 2, "usage"},
			{[]string{"help"}, 0, "usage"},
			{[]string{"bogus"}, 2, "unknown command"},
			{[]string{"mint"}, 1, "owner is required"},
			{[]string{"mint", "-owner", model.WarmOwner}, 1, "reserved"},
			{[]string{"mint", "-owner", "a\x01b"}, 1, "printable"},
			{[]string{"mint", "-owner", "x", "extra"}, 2, "unexpected argument"},
			{[]string{"mint", "-nope"}, 2, "flag provided but not defined"},
			{[]string{"rotate"}, 2, "expected KEY_ID"},
			{[]string{"rotate", "key-000000000000"}, 1, "not found"},
			{[]string{"revoke", "key-000000000000"}, 1, "not found"},
			{[]string{"revoke", "a", "b"}, 2, "expected KEY_ID"},
		} {
			code, out, msg := run(t, s, c.args...)
			if code != c.code || out != "" || !strings.Contains(msg, c.msg) {
				t.Errorf("%q: %d %q %q, want %d and %q", c.args, code, out, msg, c.code, c.msg)
			}
		}
	})
}

func TestQuotaService(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		ten := int64(10)
		s.Store.SetQuotas(QuotaConfig(config.QuotasConfig{MaxSandboxes: 5, MaxCargoMB: 100,
			Owners: map[string]config.QuotaOverride{"vip": {MaxSandboxes: &ten}}}))
		q, err := s.Quota(ctx, "vip")
		if err != nil || q.Limits != (store.Limits{Sandboxes: 10, CargoMB: 100}) || q.Override.Sandboxes != nil {
			t.Fatalf("vip: %+v %v", q, err)
		}
		zero := int64(0)
		q, err = s.SetQuota(ctx, "vip", store.Override{CargoMB: &zero})
		if err != nil || q.Limits != (store.Limits{Sandboxes: 10}) || q.Override.CargoMB == nil {
			t.Fatalf("vip after SetQuota: %+v %v", q, err)
		}
		q, err = s.ResetQuota(ctx, "vip")
		if err != nil || q.Limits != (store.Limits{Sandboxes: 10, CargoMB: 100}) {
			t.Fatalf("vip after ResetQuota: %+v %v", q, err)
		}
		neg := int64(-1)
		for _, c := range []struct {
			owner string
			o     store.Override
		}{{"", store.Override{}}, {model.WarmOwner, store.Override{}}, {"x", store.Override{Cargos: &neg}}} {
			if _, err := s.SetQuota(ctx, c.owner, c.o); !errs.Is(err, errs.Validation) {
				t.Errorf("SetQuota(%q, %+v): %v", c.owner, c.o, err)
			}
		}
	})
}

func TestLimiter(t *testing.T) {
	if NewLimiter(0, 5) != nil {
		t.Fatal("rate 0 is off")
	}
	var off *Limiter
	if ok, _ := off.Allow("x", time.Now()); !ok {
		t.Fatal("a nil limiter refused")
	}
	t0 := time.Unix(1000, 0)
	l := NewLimiter(2, 2) // 2/s, burst 2
	steps := []struct {
		owner string
		at    time.Duration
		ok    bool
		wait  time.Duration
	}{
		{"a", 0, true, 0},
		{"a", 0, true, 0},
		{"a", 0, false, 500 * time.Millisecond}, // empty: next token in 1/2 s
		{"b", 0, true, 0},                       // per owner
		{"a", 250 * time.Millisecond, false, 250 * time.Millisecond},
		{"a", 500 * time.Millisecond, true, 0},
		{"a", 500 * time.Millisecond, false, 500 * time.Millisecond},
		{"a", 10 * time.Second, true, 0}, // refilled, but never above burst
		{"a", 10 * time.Second, true, 0},
		{"a", 10 * time.Second, false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		ok, wait := l.Allow(s.owner, t0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Fatalf("step %d %+v: ok=%v wait=%v", i, s, ok, wait)
		}
	}
	if b := NewLimiter(2.5, 0); b.burst != 3 {
		t.Fatalf("default burst of 2.5/s: %d", b.burst)
	}

	// Bounded: idle (refilled) buckets are dropped when the map is full, and
	// dropping one changes nothing for its owner.
	l = NewLimiter(1, 1)
	l.max = 3
	for i, o := range []string{"a", "b", "c"} {
		l.Allow(o, t0.Add(time.Duration(i)*time.Millisecond))
	}
	l.Allow("d", t0.Add(2*time.Second)) // a, b, c have refilled: swept
	if l.Len() != 1 {
		t.Fatalf("%d buckets after a sweep, want 1", l.Len())
	}
	for i := range 10 { // all busy: the map still stays bounded
		l.Allow(string(rune('e'+i)), t0.Add(2*time.Second))
	}
	if l.Len() > 3 {
		t.Fatalf("%d buckets, bound 3", l.Len())
	}
}
