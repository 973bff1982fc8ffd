package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// APIKey is a stored API key: never the key itself, only its SHA-256 (in the
// key_hash column, not read back here) and a short prefix to tell keys apart.
type APIKey struct {
	ID     string
	Owner  string
	Admin  bool // may call /v1/admin/*; tenant keys may not
	Prefix string
	Label  string
	// Active is false once revoked (or rotated away).
	Active      bool
	CreatedAt   time.Time
	RevokedAt   *time.Time
	RotatedFrom string // id of the key this one replaced, "" when minted
}

const apiKeyCols = `id, owner, admin, prefix, label, active, created_at, revoked_at, rotated_from`

func scanAPIKey(sc scanner) (*APIKey, error) {
	var (
		k       APIKey
		created int64
		revoked sql.NullInt64
		from    sql.NullString
	)
	if err := sc.Scan(&k.ID, &k.Owner, &k.Admin, &k.Prefix, &k.Label, &k.Active, &created, &revoked, &from); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: scan api key: %w", err)
	}
	k.CreatedAt, k.RevokedAt, k.RotatedFrom = fromUS(created), fromUSPtr(revoked), from.String
	return &k, nil
}

func (s *Store) insertAPIKey(ctx context.Context, q querier, k *APIKey, hash string) error {
	_, err := s.exec(ctx, q, `INSERT INTO api_keys (id, key_hash, owner, admin, prefix, label, active, created_at, revoked_at, rotated_from)
		VALUES (?,?,?,?,?,?,?,?,?,?)`, k.ID, hash, k.Owner, k.Admin, k.Prefix, k.Label, k.Active, us(k.CreatedAt),
		usPtr(k.RevokedAt), nullStr(k.RotatedFrom))
	if err != nil {
		return fmt.Errorf("store: insert api key: %w", err)
	}
	return nil
}

// CreateAPIKey stores a new key (k.Active should be true) under its hash.
// ErrConflict when the hash is already stored.
func (s *Store) CreateAPIKey(ctx context.Context, k *APIKey, hash string) error {
	return s.insertAPIKey(ctx, s.q, k, hash)
}

// EnsureAdminKey stores the configured key (security.api_key) as an admin key
// of owner unless its hash is stored; a stored one of that owner is made an
// admin key. A revoked one stays revoked (the database is the authority: a
// restarting replica must not bring back a key an admin revoked). It returns
// the stored key.
func (s *Store) EnsureAdminKey(ctx context.Context, k *APIKey, hash string) (*APIKey, error) {
	err := s.insertAPIKey(ctx, s.q, k, hash)
	if err != nil && !errors.Is(err, ErrConflict) {
		return nil, err
	}
	if _, err := s.exec(ctx, s.q, `UPDATE api_keys SET admin = ? WHERE key_hash = ? AND owner = ?`, true, hash, k.Owner); err != nil {
		return nil, fmt.Errorf("store: ensure admin key: %w", err)
	}
	return scanAPIKey(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+apiKeyCols+` FROM api_keys WHERE key_hash = ?`), hash))
}

// LookupAPIKey returns the active key with the given hash, else ErrNotFound.
// It reads the database on every call: a key revoked through any replica is
// refused by every other one at its next request.
func (s *Store) LookupAPIKey(ctx context.Context, hash string) (*APIKey, string, error) {
	var stored string
	k, err := scanAPIKey(rowWithHash{s.q.QueryRowContext(ctx, s.rebind(`SELECT `+apiKeyCols+`, key_hash FROM api_keys
		WHERE key_hash = ? AND active = ?`), hash, true), &stored})
	if err != nil {
		return nil, "", err
	}
	return k, stored, nil
}

// rowWithHash scans the key columns plus the trailing key_hash.
type rowWithHash struct {
	row  *sql.Row
	hash *string
}

func (r rowWithHash) Scan(dest ...any) error { return r.row.Scan(append(dest, r.hash)...) }

// GetAPIKey returns a key by id (revoked ones too).
func (s *Store) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	return scanAPIKey(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`), id))
}

// KeyFilter selects keys to list.
type KeyFilter struct {
	Owner          string // "" = every owner
	IncludeRevoked bool
	After          string // id cursor
	Limit          int
}

// ListAPIKeys returns keys ordered by id.
func (s *Store) ListAPIKeys(ctx context.Context, f KeyFilter) ([]*APIKey, error) {
	q := `SELECT ` + apiKeyCols + ` FROM api_keys WHERE id > ?`
	args := []any{f.After}
	if f.Owner != "" {
		q += ` AND owner = ?`
		args = append(args, f.Owner)
	}
	if !f.IncludeRevoked {
		q += ` AND active = ?`
		args = append(args, true)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, f.Limit)
	return queryAll(ctx, s, "api keys", scanAPIKey, q, args...)
}

// RevokeAPIKey revokes the key id; revoking a revoked key changes nothing.
// It returns the key as stored afterwards (ErrNotFound when there is none).
func (s *Store) RevokeAPIKey(ctx context.Context, id string, now time.Time) (*APIKey, error) {
	if _, err := s.exec(ctx, s.q, `UPDATE api_keys SET active = ?, revoked_at = ? WHERE id = ? AND active = ?`,
		false, us(now), id, true); err != nil {
		return nil, fmt.Errorf("store: revoke api key: %w", err)
	}
	return s.GetAPIKey(ctx, id)
}

// RotateAPIKey replaces the active key id with next (stored under hash) in one
// transaction: next gets the old key's owner, admin flag and label, the old key
// is revoked. ErrNotFound when id is not an active key (two concurrent
// rotations of one key: one wins, the other gets ErrNotFound).
func (s *Store) RotateAPIKey(ctx context.Context, id string, next *APIKey, hash string, now time.Time) (*APIKey, error) {
	err := s.Tx(ctx, func(tx *Tx) error {
		n, err := s.exec(ctx, tx.tx, `UPDATE api_keys SET active = ?, revoked_at = ? WHERE id = ? AND active = ?`,
			false, us(now), id, true)
		if err != nil {
			return fmt.Errorf("store: rotate api key: %w", err)
		}
		if n == 0 {
			return ErrNotFound
		}
		old, err := scanAPIKey(tx.tx.QueryRowContext(ctx, s.rebind(`SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`), id))
		if err != nil {
			return err
		}
		next.Owner, next.Admin, next.Label, next.RotatedFrom = old.Owner, old.Admin, old.Label, old.ID
		next.Active, next.CreatedAt, next.RevokedAt = true, now, nil
		return s.insertAPIKey(ctx, tx.tx, next, hash)
	})
	if err != nil {
		return nil, err
	}
	return next, nil
}
