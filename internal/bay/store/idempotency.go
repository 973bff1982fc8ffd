package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

const idemCols = `owner, key, fingerprint, status_code, response, created_at, expires_at, holder`

// ReserveIdempotency inserts a pending record (status 0) for (owner, key),
// held by rec.Holder. When a record already exists it is returned with
// reserved=false; an expired one is replaced, and so is a pending one whose
// holder replica is dead (it was killed mid-request: the key would otherwise
// stay pending until its TTL). The reservation is what makes two simultaneous
// first requests run once, on one Bay or across replicas: the primary key
// (owner, key) admits one row, whichever replica inserts it.
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
		cur, err := scanIdem(tx.tx.QueryRowContext(ctx, s.rebind(`SELECT `+idemCols+`
			FROM idempotency_keys WHERE owner = ? AND key = ?`), rec.Owner, rec.Key))
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
		case cur.Status == 0 && cur.Holder != "" && cur.Holder != rec.Holder:
			// Pending: taken over only when its holder is dead, and only that
			// very reservation (same holder and creation time), so that two
			// replicas taking over at once insert one row between them.
			n, err := s.exec(ctx, tx.tx, `DELETE FROM idempotency_keys WHERE owner = ? AND key = ? AND status_code = 0
				AND holder = ? AND created_at = ? AND NOT EXISTS (
					SELECT 1 FROM replicas r WHERE r.id = idempotency_keys.holder AND r.expires_at >= ?)`,
				rec.Owner, rec.Key, cur.Holder, us(cur.CreatedAt), us(now))
			if err != nil {
				return err
			}
			if n == 0 {
				existing = cur // its holder lives: wait for its answer
				return nil
			}
		default:
			existing = cur
			return nil
		}
		if _, err := s.exec(ctx, tx.tx, `INSERT INTO idempotency_keys (`+idemCols+`) VALUES (?,?,?,?,?,?,?,?)`,
			rec.Owner, rec.Key, rec.Fingerprint, 0, "", us(rec.CreatedAt), us(rec.ExpiresAt), rec.Holder); err != nil {
			return err
		}
		reserved = true
		return nil
	})
	if err != nil {
		return false, nil, uncertain(rec.Key, err)
	}
	return reserved, existing, nil
}

// GetIdempotency returns the record of (owner, key).
func (s *Store) GetIdempotency(ctx context.Context, owner, key string) (*model.IdempotencyRecord, error) {
	return scanIdem(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+idemCols+` FROM idempotency_keys
		WHERE owner = ? AND key = ?`), owner, key))
}

func scanIdem(sc scanner) (*model.IdempotencyRecord, error) {
	var (
		r                model.IdempotencyRecord
		resp             string
		created, expires int64
	)
	if err := sc.Scan(&r.Owner, &r.Key, &r.Fingerprint, &r.Status, &resp, &created, &expires, &r.Holder); err != nil {
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

// ReleaseIdempotency drops the reservation rec made when its request failed
// (failures are not replayed). Only that reservation: still pending, same
// holder and creation time — never one another request made since.
func (s *Store) ReleaseIdempotency(ctx context.Context, rec *model.IdempotencyRecord) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM idempotency_keys WHERE owner = ? AND key = ? AND status_code = 0
		AND holder = ? AND created_at = ?`, rec.Owner, rec.Key, rec.Holder, us(rec.CreatedAt))
	return err
}

// DeleteExpiredIdempotency removes records past their expiry.
func (s *Store) DeleteExpiredIdempotency(ctx context.Context, now time.Time) (int64, error) {
	return s.exec(ctx, s.q, `DELETE FROM idempotency_keys WHERE expires_at < ?`, us(now))
}
