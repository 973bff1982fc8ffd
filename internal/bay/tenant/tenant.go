// Package tenant manages tenants: their API keys (minted, listed, rotated,
// revoked; stored hashed), their quotas (stored overrides over the
// configured ones) and their request rate limits. The admin API and the
// `bay keys` subcommand are its two front ends.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/auth"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Service is tenant administration over the store.
type Service struct {
	Store *store.Store
	Now   func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now()
}

// MaxLabel bounds a key's label (bytes).
const MaxLabel = 200

// ValidOwner checks an owner named by an admin: what auth.ParseOwner accepts,
// not empty, and not the warm pool's own owner (a key for it would see every
// unclaimed warm sandbox).
func ValidOwner(owner string) error {
	if owner == "" {
		return errs.New(errs.Validation, "owner is required")
	}
	if owner == model.WarmOwner {
		return errs.Newf(errs.Validation, "owner %q is reserved", owner)
	}
	if _, err := auth.ParseOwner(owner); err != nil {
		return errs.New(errs.Validation, "owner must be 1-128 printable characters")
	}
	return nil
}

func validLabel(l string) error {
	if len(l) > MaxLabel || !utf8.ValidString(l) {
		return errs.Newf(errs.Validation, "label must be at most %d bytes of UTF-8", MaxLabel)
	}
	for _, c := range l {
		if !unicode.IsPrint(c) {
			return errs.New(errs.Validation, "label must be printable")
		}
	}
	return nil
}

// Mint makes a new key of owner and returns it with the key itself, which is
// never stored and cannot be shown again.
func (s *Service) Mint(ctx context.Context, owner string, admin bool, label string) (*store.APIKey, string, error) {
	if err := ValidOwner(owner); err != nil {
		return nil, "", err
	}
	if err := validLabel(label); err != nil {
		return nil, "", err
	}
	key, hash, prefix, err := auth.NewKey()
	if err != nil {
		return nil, "", err
	}
	k := &store.APIKey{ID: model.NewID("key"), Owner: owner, Admin: admin, Prefix: prefix, Label: label,
		Active: true, CreatedAt: s.now()}
	if err := s.Store.CreateAPIKey(ctx, k, hash); err != nil {
		return nil, "", fmt.Errorf("tenant: mint: %w", err)
	}
	return k, key, nil
}

// List pages keys (of one owner when owner is not "").
func (s *Service) List(ctx context.Context, owner string, includeRevoked bool, cursor string, limit int) ([]*store.APIKey, *string, error) {
	if owner != "" {
		if err := ValidOwner(owner); err != nil {
			return nil, nil, err
		}
	}
	rows, err := s.Store.ListAPIKeys(ctx, store.KeyFilter{Owner: owner, IncludeRevoked: includeRevoked, After: cursor, Limit: limit + 1})
	if err != nil {
		return nil, nil, err
	}
	rows, next := store.Page(rows, limit, func(k *store.APIKey) string { return k.ID })
	return rows, next, nil
}

func notFound(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errs.Newf(errs.NotFound, "API key not found: %s", id)
	}
	return err
}

// Rotate replaces the active key id with a new one of the same owner, admin
// flag and label, revoking id at once; it returns the new key and its secret.
func (s *Service) Rotate(ctx context.Context, id string) (*store.APIKey, string, error) {
	key, hash, prefix, err := auth.NewKey()
	if err != nil {
		return nil, "", err
	}
	k, err := s.Store.RotateAPIKey(ctx, id, &store.APIKey{ID: model.NewID("key"), Prefix: prefix}, hash, s.now())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, "", errs.Newf(errs.NotFound, "Active API key not found: %s", id)
		}
		return nil, "", err
	}
	return k, key, nil
}

// Revoke revokes key id (again: no change).
func (s *Service) Revoke(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := s.Store.RevokeAPIKey(ctx, id, s.now())
	return k, notFound(id, err)
}

// Quota is an owner's quotas as they apply now.
type Quota struct {
	Owner    string
	Limits   store.Limits   // effective (0 = unlimited)
	Override store.Override // stored through the admin API (nil fields inherit the config)
	Usage    store.Limits
}

// Quota returns owner's limits, stored override and usage.
func (s *Service) Quota(ctx context.Context, owner string) (*Quota, error) {
	if err := ValidOwner(owner); err != nil {
		return nil, err
	}
	q := &Quota{Owner: owner}
	var err error
	if q.Limits, err = s.Store.EffectiveLimits(ctx, owner); err != nil {
		return nil, err
	}
	if q.Override, err = s.Store.OwnerQuota(ctx, owner); err != nil {
		return nil, err
	}
	if q.Usage, err = s.Store.Usage(ctx, owner); err != nil {
		return nil, err
	}
	return q, nil
}

// SetQuota stores owner's override (replacing the stored one); negative limits are refused.
func (s *Service) SetQuota(ctx context.Context, owner string, o store.Override) (*Quota, error) {
	if err := ValidOwner(owner); err != nil {
		return nil, err
	}
	for name, v := range map[string]*int64{store.QuotaSandboxes: o.Sandboxes, store.QuotaRunningSessions: o.RunningSessions,
		store.QuotaCargos: o.Cargos, store.QuotaCargoMB: o.CargoMB} {
		if v != nil && *v < 0 {
			return nil, errs.Newf(errs.Validation, "%s must be >= 0 (0 = unlimited, null = the configured value)", name)
		}
	}
	if err := s.Store.SetOwnerQuota(ctx, owner, o, s.now()); err != nil {
		return nil, err
	}
	return s.Quota(ctx, owner)
}

// ResetQuota drops owner's stored override: the configured limits apply again.
func (s *Service) ResetQuota(ctx context.Context, owner string) (*Quota, error) {
	if err := ValidOwner(owner); err != nil {
		return nil, err
	}
	if err := s.Store.DeleteOwnerQuota(ctx, owner); err != nil {
		return nil, err
	}
	return s.Quota(ctx, owner)
}

// QuotaConfig turns the quotas section into what the store enforces.
func QuotaConfig(c config.QuotasConfig) store.QuotaConfig {
	q := store.QuotaConfig{Defaults: store.Limits{Sandboxes: c.MaxSandboxes, RunningSessions: c.MaxRunningSessions,
		Cargos: c.MaxCargos, CargoMB: c.MaxCargoMB}, Owners: map[string]store.Override{}}
	for owner, o := range c.Owners {
		q.Owners[owner] = store.Override{Sandboxes: o.MaxSandboxes, RunningSessions: o.MaxRunningSessions,
			Cargos: o.MaxCargos, CargoMB: o.MaxCargoMB}
	}
	return q
}
