package config

import (
	"strings"
	"testing"
)

func TestTenantSettings(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	// Defaults: everything off, nothing changes for existing users.
	c := Default()
	if c.Quotas.MaxSandboxes != 0 || c.Quotas.MaxRunningSessions != 0 || c.Quotas.MaxCargos != 0 || c.Quotas.MaxCargoMB != 0 ||
		c.RateLimit.RequestsPerSecond != 0 || c.Quotas.RetryAfter().Seconds() != 30 {
		t.Fatalf("defaults: %+v %+v", c.Quotas, c.RateLimit)
	}
	c, err := Load(env("BAY_QUOTAS__MAX_SANDBOXES", "5", "BAY_RATE_LIMIT__REQUESTS_PER_SECOND", "2.5", "BAY_RATE_LIMIT__BURST", "4",
		"BAY_QUOTAS", `{"owners":{"vip":{"max_sandboxes":50,"max_cargo_mb":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	vip := c.Quotas.Owners["vip"]
	if c.Quotas.MaxSandboxes != 5 || c.RateLimit.RequestsPerSecond != 2.5 || c.RateLimit.Burst != 4 ||
		vip.MaxSandboxes == nil || *vip.MaxSandboxes != 50 || vip.MaxCargoMB == nil || *vip.MaxCargoMB != 0 || vip.MaxCargos != nil {
		t.Fatalf("loaded: %+v %+v vip=%+v", c.Quotas, c.RateLimit, vip)
	}
	for _, bad := range [][]string{
		{"BAY_QUOTAS__MAX_SANDBOXES", "-1", "quotas.max_sandboxes"},
		{"BAY_QUOTAS__MAX_CARGO_MB", "-5", "quotas.max_cargo_mb"},
		{"BAY_QUOTAS__RETRY_AFTER_SECONDS", "0", "quotas.retry_after_seconds"},
		{"BAY_RATE_LIMIT__REQUESTS_PER_SECOND", "-1", "rate_limit.requests_per_second"},
		{"BAY_RATE_LIMIT__BURST", "-2", "rate_limit.burst"},
		{"BAY_QUOTAS", `{"owners":{"x":{"max_cargos":-1}}}`, "quotas.owners.x.max_cargos"},
		{"BAY_QUOTAS", `{"owners":{"":{"max_cargos":1}}}`, "quotas.owners"},
	} {
		if _, err := Load(env(bad[0], bad[1])); err == nil || !strings.Contains(err.Error(), bad[2]) {
			t.Errorf("%s=%s: %v, want an error naming %s", bad[0], bad[1], err, bad[2])
		}
	}
}
