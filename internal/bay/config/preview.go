package config

import "time"

// PreviewConfig is port preview (…/sandboxes/{id}/ports/{port}/…): the
// signed URL tokens and the proxy's bounds.
type PreviewConfig struct {
	// Key signs preview URL tokens (HMAC-SHA256). "" (default): a random key
	// generated once and stored in the database, so every replica agrees.
	// BAY_PREVIEW__KEY overrides; changing it invalidates every token.
	Key string `yaml:"key"`
	// DefaultTokenTTLSeconds applies when a token request names no ttl (3600).
	DefaultTokenTTLSeconds int `yaml:"default_token_ttl_seconds"`
	// MaxTokenTTLSeconds bounds a token's ttl (86400).
	MaxTokenTTLSeconds int `yaml:"max_token_ttl_seconds"`
	// MaxRequestBytes bounds a request body sent to a sandbox's port (100 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// ConnectTimeoutMs bounds connecting to a sandbox's port (2000).
	ConnectTimeoutMs int `yaml:"connect_timeout_ms"`
}

func defaultPreview() PreviewConfig {
	return PreviewConfig{DefaultTokenTTLSeconds: 3600, MaxTokenTTLSeconds: 86400,
		MaxRequestBytes: 100 << 20, ConnectTimeoutMs: 2000}
}

// DefaultTokenTTL is the ttl of a token request that names none.
func (p PreviewConfig) DefaultTokenTTL() time.Duration { return seconds(p.DefaultTokenTTLSeconds) }

// MaxTokenTTL bounds a token's ttl.
func (p PreviewConfig) MaxTokenTTL() time.Duration { return seconds(p.MaxTokenTTLSeconds) }

// ConnectTimeout bounds connecting to a sandbox's port.
func (p PreviewConfig) ConnectTimeout() time.Duration { return millis(p.ConnectTimeoutMs) }

func (v *checker) preview(p PreviewConfig) {
	v.positive("preview.max_token_ttl_seconds", p.MaxTokenTTLSeconds)
	v.positive("preview.default_token_ttl_seconds", p.DefaultTokenTTLSeconds)
	if p.DefaultTokenTTLSeconds > p.MaxTokenTTLSeconds {
		v.bad("preview.default_token_ttl_seconds", "must be at most preview.max_token_ttl_seconds (%d > %d)",
			p.DefaultTokenTTLSeconds, p.MaxTokenTTLSeconds)
	}
	if p.MaxRequestBytes <= 0 {
		v.bad("preview.max_request_bytes", "must be > 0 (got %d)", p.MaxRequestBytes)
	}
	v.positive("preview.connect_timeout_ms", p.ConnectTimeoutMs)
	if p.Key != "" && len(p.Key) < 32 {
		v.bad("preview.key", "must be at least 32 characters (or empty: generated and stored in the database)")
	}
}
