package preview

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Store is what tokens need from persistence (store.Store).
type Store interface {
	PreviewKey(ctx context.Context, generated string, now time.Time) (string, error)
	PreviewGenerations(ctx context.Context, sandboxID string, port int) (all, one int64, err error)
	BumpPreviewGeneration(ctx context.Context, sandboxID string, port int) (int64, error)
}

// Service issues, checks and revokes tokens and holds the proxy.
type Service struct {
	signer *Signer
	store  Store
	Proxy  *Proxy
	// DefaultTTL and MaxTTL bound a token's life; MaxRequestBytes bounds a
	// proxied request body.
	DefaultTTL, MaxTTL time.Duration
	MaxRequestBytes    int64
}

// KeyFor returns the signing key: the configured one, else the database's
// (generated and stored on first use, so every replica signs alike).
func KeyFor(ctx context.Context, st Store, configured string, now time.Time) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	k, err := st.PreviewKey(ctx, hex.EncodeToString(b[:]), now)
	if err != nil {
		return nil, fmt.Errorf("preview: signing key: %w", err)
	}
	if len(k) < 32 {
		return nil, errors.New("preview: stored signing key is too short")
	}
	return []byte(k), nil
}

// NewService returns a service signing with key.
func NewService(st Store, key []byte, proxy *Proxy, defaultTTL, maxTTL time.Duration, maxRequestBytes int64) *Service {
	return &Service{signer: NewSigner(key), store: st, Proxy: proxy, DefaultTTL: defaultTTL, MaxTTL: maxTTL,
		MaxRequestBytes: maxRequestBytes}
}

// Issue signs a token for sandboxID's port valid for ttl from now.
func (s *Service) Issue(ctx context.Context, sandboxID string, port int, ttl time.Duration, now time.Time) (string, time.Time, error) {
	all, one, err := s.store.PreviewGenerations(ctx, sandboxID, port)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(ttl).Truncate(time.Second).UTC()
	return s.signer.Sign(Claims{SandboxID: sandboxID, Port: port, Expires: exp, GenAll: all, GenPort: one}), exp, nil
}

// Check verifies tok for sandboxID's port at now: signature, target, expiry,
// and that neither the port's nor the sandbox's tokens were revoked since.
func (s *Service) Check(ctx context.Context, tok, sandboxID string, port int, now time.Time) (Claims, error) {
	c, err := s.signer.Verify(tok, sandboxID, port, now)
	if err != nil {
		return Claims{}, err
	}
	all, one, err := s.store.PreviewGenerations(ctx, sandboxID, port)
	if err != nil {
		return Claims{}, err
	}
	return c, c.Current(all, one)
}

// Revoke invalidates every token of sandboxID's port (port 0: all its ports).
func (s *Service) Revoke(ctx context.Context, sandboxID string, port int) error {
	_, err := s.store.BumpPreviewGeneration(ctx, sandboxID, port)
	return err
}
