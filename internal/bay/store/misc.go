package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// EnsureAPIKey stores a key hash for owner unless it exists.
func (s *Store) EnsureAPIKey(ctx context.Context, hash, owner string, now time.Time) error {
	_, err := s.exec(ctx, s.q, `INSERT INTO api_keys (id, key_hash, owner, active, created_at) VALUES (?,?,?,?,?)`,
		model.NewID("key"), hash, owner, true, us(now))
	if errors.Is(err, ErrConflict) { // key_hash is unique: already stored
		return nil
	}
	return err
}

// ActiveAPIKeys returns hash → owner of every active key.
func (s *Store) ActiveAPIKeys(ctx context.Context) (map[string]string, error) {
	rows, err := s.q.QueryContext(ctx, s.rebind(`SELECT key_hash, owner FROM api_keys WHERE active = ?`), true)
	if err != nil {
		return nil, fmt.Errorf("store: api keys: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var h, o string
		if err := rows.Scan(&h, &o); err != nil {
			return nil, err
		}
		out[h] = o
	}
	return out, rows.Err()
}

// AcquireLease takes or renews the named lease for holder until `until`. It
// succeeds when the lease is free, expired, or already holder's.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	n, err := s.exec(ctx, s.q, `UPDATE leases SET holder = ?, expires_at = ? WHERE name = ? AND (holder = ? OR expires_at < ?)`,
		holder, us(until), name, holder, us(now))
	if err != nil {
		return false, err
	}
	if n > 0 {
		return true, nil
	}
	_, err = s.exec(ctx, s.q, `INSERT INTO leases (name, holder, expires_at) VALUES (?,?,?)`, name, holder, us(until))
	if errors.Is(err, ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// ReleaseLease gives the lease up if holder has it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
	return err
}
