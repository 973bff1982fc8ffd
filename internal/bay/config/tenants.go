package config

import "time"

// QuotasConfig (ours) bounds what each owner may hold at once. Every limit is
// 0 = unlimited (the default: nothing changes for existing users). The
// database enforces them across all replicas. Overrides: Owners here, and
// per owner through the admin API (PUT /v1/admin/quotas/{owner}), which wins
// over this file field by field.
type QuotasConfig struct {
	MaxSandboxes       int64 `yaml:"max_sandboxes"`        // live sandboxes
	MaxRunningSessions int64 `yaml:"max_running_sessions"` // sessions pending, starting or running
	MaxCargos          int64 `yaml:"max_cargos"`           // external cargos (POST /v1/cargos)
	MaxCargoMB         int64 `yaml:"max_cargo_mb"`         // sum of size_limit_mb, managed cargos of live sandboxes included
	// RetryAfterSeconds is the Retry-After of a quota_exceeded answer (30):
	// quotas free up when the owner deletes or GC reclaims, not by time.
	RetryAfterSeconds int `yaml:"retry_after_seconds"`
	// Owners overrides the limits above for some owners; an omitted key (or
	// null) inherits, 0 = unlimited.
	Owners map[string]QuotaOverride `yaml:"owners"`
}

// QuotaOverride is one owner's limits; nil fields inherit the defaults.
type QuotaOverride struct {
	MaxSandboxes       *int64 `yaml:"max_sandboxes"`
	MaxRunningSessions *int64 `yaml:"max_running_sessions"`
	MaxCargos          *int64 `yaml:"max_cargos"`
	MaxCargoMB         *int64 `yaml:"max_cargo_mb"`
}

// RetryAfter is RetryAfterSeconds as a duration.
func (q QuotasConfig) RetryAfter() time.Duration { return seconds(q.RetryAfterSeconds) }

// RateLimitConfig (ours) is a per-owner request rate limit: a token bucket
// per owner in each replica's memory (with N replicas an owner may get up to
// N times the rate). 0 = off (the default).
type RateLimitConfig struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"` // 0 = requests_per_second rounded up
}

func defaultQuotas() QuotasConfig {
	return QuotasConfig{RetryAfterSeconds: 30, Owners: map[string]QuotaOverride{}}
}

func (v *checker) tenants(q QuotasConfig, r RateLimitConfig) {
	for key, n := range map[string]int64{"quotas.max_sandboxes": q.MaxSandboxes, "quotas.max_running_sessions": q.MaxRunningSessions,
		"quotas.max_cargos": q.MaxCargos, "quotas.max_cargo_mb": q.MaxCargoMB} {
		if n < 0 {
			v.bad(key, "must be >= 0, 0 = unlimited (got %d)", n)
		}
	}
	for owner, o := range q.Owners {
		if owner == "" || len(owner) > 128 {
			v.bad("quotas.owners", "owner names are 1-128 characters (got %q)", owner)
		}
		for key, p := range map[string]*int64{"max_sandboxes": o.MaxSandboxes, "max_running_sessions": o.MaxRunningSessions,
			"max_cargos": o.MaxCargos, "max_cargo_mb": o.MaxCargoMB} {
			if p != nil && *p < 0 {
				v.bad("quotas.owners."+owner+"."+key, "must be >= 0, 0 = unlimited (got %d)", *p)
			}
		}
	}
	v.positive("quotas.retry_after_seconds", q.RetryAfterSeconds)
	if r.RequestsPerSecond < 0 {
		v.bad("rate_limit.requests_per_second", "must be >= 0, 0 = off (got %v)", r.RequestsPerSecond)
	}
	if r.Burst < 0 {
		v.bad("rate_limit.burst", "must be >= 0 (got %d)", r.Burst)
	}
}
