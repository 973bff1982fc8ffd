package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// ReserveIdempotency inserts a pending record (status 0) for (owner, key). When a
// record already exists it is returned with reserved=false; an expired one is
// replaced. The reservation is what makes two simultaneous first requests run once.
// reserved=false with existing=nil means a concurrent reservation came and went
// (its request failed and released the key) while this one raced it: look again.
func (s *Store) ReserveIdempotency(ctx context.Context, rec *model.IdempotencyRecord, now time.Time) (reserved bool, existing *model.IdempotencyRecord, err error) {
	for attempt := 0; ; attempt++ {
		reserved, existing, err = s.reserveIdempotency(ctx, rec, now)
		if !errors.Is(err, ErrConflict) {
			return reserved, existing, err
		}
		// Lost an insert race: read the winner's row. When the winner has already
		// released it (its request failed), try again rather than report
		// ErrNotFound; after a few rounds report "not reserved, nothing there"
		// and let the caller poll.
		cur, gerr := s.GetIdempotency(ctx, rec.Owner, rec.Key)
		if !errors.Is(gerr, ErrNotFound) {
			return false, cur, gerr
		}
		if attempt == 2 {
			return false, nil, nil
		}
	}
}

func (s *Store) reserveIdempotency(ctx context.Context, rec *model.IdempotencyRecord, now time.Time) (reserved bool, existing *model.IdempotencyRecord, err error) {
	err = s.Tx(ctx, func(tx *Tx) error {
		cur, err := scanIdem(tx.tx.QueryRowContext(ctx, s.rebind(`SELECT owner, key, fingerprint, status_code, response,
			created_at, expires_at FROM idempotency_keys WHERE owner = ? AND key = ?`), rec.Owner, rec.Key))
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case us(now) > us(cur.ExpiresAt):
			// Delete only while it is still expired: on PostgreSQL (READ COMMITTED)
			// this statement may already see a fresh reservation that a concurrent
			// request put in its place since our SELECT; deleting that one too let
			// two requests reserve. The INSERT below then conflicts instead.
			if _, err := s.exec(ctx, tx.tx, `DELETE FROM idempotency_keys WHERE owner = ? AND key = ? AND expires_at < ?`,
				rec.Owner, rec.Key, us(now)); err != nil {
				return err
			}
		default:
			existing = cur
			return nil
		}
		if _, err := s.exec(ctx, tx.tx, `INSERT INTO idempotency_keys (owner, key, fingerprint, status_code, response,
			created_at, expires_at) VALUES (?,?,?,?,?,?,?)`, rec.Owner, rec.Key, rec.Fingerprint, 0, "",
			us(rec.CreatedAt), us(rec.ExpiresAt)); err != nil {
			return err
		}
		reserved = true
		return nil
	})
	if err != nil {
		return false, nil, err
	}
	return reserved, existing, nil
}

// GetIdempotency returns the record of (owner, key).
func (s *Store) GetIdempotency(ctx context.Context, owner, key string) (*model.IdempotencyRecord, error) {
	return scanIdem(s.q.QueryRowContext(ctx, s.rebind(`SELECT owner, key, fingerprint, status_code, response,
		created_at, expires_at FROM idempotency_keys WHERE owner = ? AND key = ?`), owner, key))
}

func scanIdem(sc scanner) (*model.IdempotencyRecord, error) {
	var (
		r                model.IdempotencyRecord
		resp             string
		created, expires int64
	)
	if err := sc.Scan(&r.Owner, &r.Key, &r.Fingerprint, &r.Status, &resp, &created, &expires); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	r.Response = []byte(resp)
	r.CreatedAt, r.ExpiresAt = fromUS(created), fromUS(expires)
	return &r, nil
}

// CompleteIdempotency stores the response of a reserved key.
func (s *Store) CompleteIdempotency(ctx context.Context, owner, key string, status int, response []byte) error {
	_, err := s.exec(ctx, s.q, `UPDATE idempotency_keys SET status_code = ?, response = ? WHERE owner = ? AND key = ?`,
		status, string(response), owner, key)
	return err
}

// ReleaseIdempotency drops a reservation whose request failed (failures are not replayed).
func (s *Store) ReleaseIdempotency(ctx context.Context, owner, key string) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM idempotency_keys WHERE owner = ? AND key = ? AND status_code = 0`, owner, key)
	return err
}

// DeleteExpiredIdempotency removes records past their expiry.
func (s *Store) DeleteExpiredIdempotency(ctx context.Context, now time.Time) (int64, error) {
	return s.exec(ctx, s.q, `DELETE FROM idempotency_keys WHERE expires_at < ?`, us(now))
}

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
