package store

import (
	"context"
	"errors"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// WarmSandboxes returns the warm (unclaimed) sandboxes of a profile ("" = all
// profiles) in the given states (none = all), oldest ready first (not yet
// ready last).
func (s *Store) WarmSandboxes(ctx context.Context, profileID string, states ...string) ([]*model.Sandbox, error) {
	q := `SELECT ` + sandboxCols + ` FROM sandboxes WHERE is_warm = ? AND deleted_at IS NULL`
	args := []any{true}
	if profileID != "" {
		q += ` AND profile_id = ?`
		args = append(args, profileID)
	}
	if len(states) > 0 {
		q += ` AND warm_state IN (` + placeholders(len(states)) + `)`
		for _, st := range states {
			args = append(args, st)
		}
	}
	// NULLs sort first on SQLite and last on PostgreSQL: say where they go.
	q += ` ORDER BY warm_ready_at IS NULL, warm_ready_at, id`
	return s.querySandboxes(ctx, q, args...)
}

// ClaimWarm atomically hands the oldest available warm sandbox of a profile to
// owner: a conditional UPDATE, so two claims can never take one sandbox. It
// returns nil when the pool has none, and an *UncertainError (ID the
// candidate's) when the claim's commit was cut.
func (s *Store) ClaimWarm(ctx context.Context, profileID, owner string, expiresAt, idleExpiresAt *time.Time, now time.Time) (*model.Sandbox, error) {
	for attempt := 0; attempt < 5; attempt++ {
		cands, err := s.querySandboxes(ctx, `SELECT `+sandboxCols+` FROM sandboxes WHERE is_warm = ? AND deleted_at IS NULL
			AND profile_id = ? AND warm_state = ? ORDER BY warm_ready_at IS NULL, warm_ready_at, id LIMIT 3`, true, profileID, model.WarmAvailable)
		if err != nil || len(cands) == 0 {
			return nil, err
		}
		for _, c := range cands {
			var won bool
			err := s.Tx(ctx, func(tx *Tx) error {
				if err := s.checkClaimQuota(ctx, tx.tx, owner, c); err != nil {
					return err
				}
				n, err := s.exec(ctx, tx.tx, `UPDATE sandboxes SET owner = ?, is_warm = ?, warm_state = ?, expires_at = ?,
					idle_expires_at = ?, last_active_at = ?, created_at = ? WHERE id = ? AND is_warm = ? AND warm_state = ? AND deleted_at IS NULL`,
					owner, false, model.WarmClaimed, usPtr(expiresAt), usPtr(idleExpiresAt), us(now), us(now), c.ID, true, model.WarmAvailable)
				if err != nil || n == 0 {
					return err
				}
				if _, err := s.exec(ctx, tx.tx, `UPDATE cargos SET owner = ? WHERE id = ?`, owner, c.CargoID); err != nil {
					return err
				}
				won = true
				return nil
			})
			if _, over := errors.AsType[*QuotaError](err); over {
				return nil, nil // no warm sandbox past a quota: the normal create path decides
			}
			if err != nil {
				return nil, uncertain(c.ID, err)
			}
			if won {
				return s.SandboxByID(ctx, c.ID)
			}
		}
	}
	return nil, nil
}

// SetWarmState moves a warm sandbox from one state to another (conditional);
// readyAt/rotateAt are set when not nil. Reports whether the row moved.
func (s *Store) SetWarmState(ctx context.Context, id, from, to string, readyAt, rotateAt *time.Time) (bool, error) {
	n, err := s.exec(ctx, s.q, `UPDATE sandboxes SET warm_state = ?, warm_ready_at = COALESCE(?, warm_ready_at),
		warm_rotate_at = COALESCE(?, warm_rotate_at) WHERE id = ? AND is_warm = ? AND warm_state = ?`,
		to, usPtr(readyAt), usPtr(rotateAt), id, true, from)
	return n > 0, err
}
