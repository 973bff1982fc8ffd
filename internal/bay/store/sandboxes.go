package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

const sandboxCols = `id, owner, profile_id, cargo_id, current_session_id, created_at, expires_at,
	idle_expires_at, last_active_at, deleted_at, is_warm, warm_state, warm_ready_at, warm_rotate_at`

func scanSandbox(sc scanner) (*model.Sandbox, error) {
	var (
		sb                                            model.Sandbox
		cur, warmState                                sql.NullString
		created, lastActive                           int64
		expires, idle, deleted, warmReady, warmRotate sql.NullInt64
	)
	if err := sc.Scan(&sb.ID, &sb.Owner, &sb.ProfileID, &sb.CargoID, &cur, &created, &expires,
		&idle, &lastActive, &deleted, &sb.Warm, &warmState, &warmReady, &warmRotate); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	sb.CurrentSessionID = cur.String
	sb.WarmState = warmState.String
	sb.CreatedAt = fromUS(created)
	sb.LastActiveAt = fromUS(lastActive)
	sb.ExpiresAt = fromUSPtr(expires)
	sb.IdleExpiresAt = fromUSPtr(idle)
	sb.DeletedAt = fromUSPtr(deleted)
	sb.WarmReadyAt = fromUSPtr(warmReady)
	sb.WarmRotateAt = fromUSPtr(warmRotate)
	return &sb, nil
}

func (s *Store) insertSandbox(ctx context.Context, q querier, sb *model.Sandbox) error {
	_, err := s.exec(ctx, q, `INSERT INTO sandboxes (`+sandboxCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		sb.ID, sb.Owner, sb.ProfileID, sb.CargoID, nullStr(sb.CurrentSessionID), us(sb.CreatedAt),
		usPtr(sb.ExpiresAt), usPtr(sb.IdleExpiresAt), us(sb.LastActiveAt), usPtr(sb.DeletedAt),
		sb.Warm, nullStr(sb.WarmState), usPtr(sb.WarmReadyAt), usPtr(sb.WarmRotateAt))
	if err != nil {
		return fmt.Errorf("store: insert sandbox: %w", err)
	}
	return nil
}

// CreateSandbox inserts a sandbox and, when cargo is not nil, its managed cargo,
// atomically; a *QuotaError when that takes the owner past a quota; an
// *UncertainError (ID sb.ID) when the commit was cut.
func (s *Store) CreateSandbox(ctx context.Context, sb *model.Sandbox, cargo *model.Cargo) error {
	return uncertain(sb.ID, s.Tx(ctx, func(tx *Tx) error {
		add := Limits{Sandboxes: 1}
		if cargo != nil {
			add.CargoMB = int64(cargo.SizeLimitMB)
		}
		if err := s.checkQuota(ctx, tx.tx, sb.Owner, add); err != nil {
			return err
		}
		if cargo != nil {
			if err := s.insertCargo(ctx, tx.tx, cargo); err != nil {
				return err
			}
		}
		return s.insertSandbox(ctx, tx.tx, sb)
	}))
}

// GetSandbox returns a live (not soft-deleted) sandbox of owner.
func (s *Store) GetSandbox(ctx context.Context, owner, id string) (*model.Sandbox, error) {
	return scanSandbox(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+sandboxCols+
		` FROM sandboxes WHERE id = ? AND owner = ? AND deleted_at IS NULL`), id, owner))
}

// GetSandboxAny returns a sandbox of owner including soft-deleted ones.
func (s *Store) GetSandboxAny(ctx context.Context, owner, id string) (*model.Sandbox, error) {
	return scanSandbox(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+sandboxCols+
		` FROM sandboxes WHERE id = ? AND owner = ?`), id, owner))
}

// SandboxByID returns any sandbox by id (internal callers: GC, reconcile).
func (s *Store) SandboxByID(ctx context.Context, id string) (*model.Sandbox, error) {
	return scanSandbox(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+sandboxCols+
		` FROM sandboxes WHERE id = ?`), id))
}

func (s *Store) querySandboxes(ctx context.Context, query string, args ...any) ([]*model.Sandbox, error) {
	return queryAll(ctx, s, "sandboxes", scanSandbox, query, args...)
}

// ListSandboxes returns up to limit live, non-warm sandboxes of owner with id > after, by id.
func (s *Store) ListSandboxes(ctx context.Context, owner, after string, limit int) ([]*model.Sandbox, error) {
	return s.querySandboxes(ctx, `SELECT `+sandboxCols+` FROM sandboxes
		WHERE owner = ? AND id > ? AND deleted_at IS NULL AND is_warm = ? ORDER BY id LIMIT ?`,
		owner, after, false, limit)
}

// SandboxFilter selects sandboxes for background duties.
type SandboxFilter struct {
	IdleBefore    *time.Time // idle_expires_at < t
	ExpiredBefore *time.Time // expires_at < t
	Deleted       *bool      // deleted_at set or not
	Warm          *bool
	Limit         int
}

// FindSandboxes returns sandboxes matching every set field of f.
func (s *Store) FindSandboxes(ctx context.Context, f SandboxFilter) ([]*model.Sandbox, error) {
	q := `SELECT ` + sandboxCols + ` FROM sandboxes WHERE 1=1`
	var args []any
	if f.IdleBefore != nil {
		q += ` AND idle_expires_at IS NOT NULL AND idle_expires_at < ?`
		args = append(args, us(*f.IdleBefore))
	}
	if f.ExpiredBefore != nil {
		q += ` AND expires_at IS NOT NULL AND expires_at < ?`
		args = append(args, us(*f.ExpiredBefore))
	}
	if f.Deleted != nil {
		if *f.Deleted {
			q += ` AND deleted_at IS NOT NULL`
		} else {
			q += ` AND deleted_at IS NULL`
		}
	}
	if f.Warm != nil {
		q += ` AND is_warm = ?`
		args = append(args, *f.Warm)
	}
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return s.querySandboxes(ctx, q, args...)
}

// TouchSandbox sets idle_expires_at and last_active_at (keepalive, every capability call).
func (s *Store) TouchSandbox(ctx context.Context, id string, idleExpires *time.Time, now time.Time) error {
	_, err := s.exec(ctx, s.q, `UPDATE sandboxes SET idle_expires_at = ?, last_active_at = ? WHERE id = ?`,
		usPtr(idleExpires), us(now), id)
	return err
}

// SetExpiresAt sets the TTL deadline.
func (s *Store) SetExpiresAt(ctx context.Context, id string, t *time.Time) error {
	_, err := s.exec(ctx, s.q, `UPDATE sandboxes SET expires_at = ? WHERE id = ?`, usPtr(t), id)
	return err
}

// SetCurrentSession points the sandbox at a session ("" = none) and sets idle_expires_at.
func (s *Store) SetCurrentSession(ctx context.Context, sandboxID, sessionID string, idleExpires *time.Time) error {
	_, err := s.exec(ctx, s.q, `UPDATE sandboxes SET current_session_id = ?, idle_expires_at = ? WHERE id = ?`,
		nullStr(sessionID), usPtr(idleExpires), sandboxID)
	return err
}

// SoftDeleteSandbox marks the sandbox deleted (state before side effects). Returns
// false when it was already deleted.
func (s *Store) SoftDeleteSandbox(ctx context.Context, id string, now time.Time) (bool, error) {
	n, err := s.exec(ctx, s.q, `UPDATE sandboxes SET deleted_at = ?, current_session_id = NULL,
		idle_expires_at = NULL WHERE id = ? AND deleted_at IS NULL`, us(now), id)
	return n > 0, err
}

// CountSandboxesByStatus counts live, non-warm sandboxes by client-visible status at now.
func (s *Store) CountSandboxesByStatus(ctx context.Context, now time.Time) (map[string]int, error) {
	rows, err := s.q.QueryContext(ctx, s.rebind(`SELECT CASE
			WHEN sb.expires_at IS NOT NULL AND sb.expires_at < ? THEN 'expired'
			WHEN ss.observed_state = 'running' THEN 'ready'
			WHEN ss.observed_state IN ('pending', 'starting') THEN 'starting'
			WHEN ss.observed_state = 'failed' THEN 'failed'
			ELSE 'idle' END AS st, COUNT(*)
		FROM sandboxes sb LEFT JOIN sessions ss ON ss.id = sb.current_session_id
		WHERE sb.deleted_at IS NULL AND sb.is_warm = ? GROUP BY st`), us(now), false)
	if err != nil {
		return nil, fmt.Errorf("store: count sandboxes: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
