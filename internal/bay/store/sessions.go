package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shipyard/shipyard/internal/bay/model"
)

const sessionCols = `id, sandbox_id, profile_id, container_id, endpoint, token, network, desired_state,
	observed_state, containers, created_at, started_at, last_active_at, version`

func scanSession(sc scanner) (*model.Session, error) {
	var (
		ss                  model.Session
		containers          string
		created, lastActive int64
		started             sql.NullInt64
	)
	if err := sc.Scan(&ss.ID, &ss.SandboxID, &ss.ProfileID, &ss.ContainerID, &ss.Endpoint, &ss.Token,
		&ss.Network, &ss.DesiredState, &ss.ObservedState, &containers, &created, &started, &lastActive,
		&ss.Version); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	if err := json.Unmarshal([]byte(containers), &ss.Containers); err != nil {
		return nil, fmt.Errorf("store: session %s containers: %w", ss.ID, err)
	}
	ss.CreatedAt = fromUS(created)
	ss.StartedAt = fromUSPtr(started)
	ss.LastActiveAt = fromUS(lastActive)
	return &ss, nil
}

func containersJSON(c []model.ContainerInfo) string {
	if c == nil {
		c = []model.ContainerInfo{}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// CreateSession inserts a session. ErrConflict when the sandbox already has a
// live session; a *QuotaError when a live one takes the sandbox's owner past
// max_running_sessions.
func (s *Store) CreateSession(ctx context.Context, ss *model.Session) error {
	return s.Tx(ctx, func(tx *Tx) error {
		if live := ss.ObservedState == model.SessionPending || ss.ObservedState == model.SessionStarting ||
			ss.ObservedState == model.SessionRunning; live {
			var owner string
			err := tx.tx.QueryRowContext(ctx, s.rebind(`SELECT owner FROM sandboxes WHERE id = ?`), ss.SandboxID).Scan(&owner)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: session owner: %w", err)
			}
			if err == nil {
				if err := s.checkQuota(ctx, tx.tx, owner, Limits{RunningSessions: 1}); err != nil {
					return err
				}
			}
		}
		_, err := s.exec(ctx, tx.tx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			ss.ID, ss.SandboxID, ss.ProfileID, ss.ContainerID, ss.Endpoint, ss.Token, ss.Network,
			ss.DesiredState, ss.ObservedState, containersJSON(ss.Containers), us(ss.CreatedAt),
			usPtr(ss.StartedAt), us(ss.LastActiveAt), ss.Version)
		if err != nil {
			return fmt.Errorf("store: insert session: %w", err)
		}
		return nil
	})
}

// GetSession returns a session by id.
func (s *Store) GetSession(ctx context.Context, id string) (*model.Session, error) {
	return scanSession(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+sessionCols+` FROM sessions WHERE id = ?`), id))
}

// SessionsOf returns every session row of a sandbox.
func (s *Store) SessionsOf(ctx context.Context, sandboxID string) ([]*model.Session, error) {
	return s.querySessions(ctx, `SELECT `+sessionCols+` FROM sessions WHERE sandbox_id = ? ORDER BY created_at`, sandboxID)
}

// SessionsByID returns the sessions among ids that exist, keyed by id.
func (s *Store) SessionsByID(ctx context.Context, ids []string) (map[string]*model.Session, error) {
	out := make(map[string]*model.Session, len(ids))
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		q := `SELECT ` + sessionCols + ` FROM sessions WHERE id IN (` + placeholders(end-start) + `)`
		args := make([]any, 0, end-start)
		for _, id := range ids[start:end] {
			args = append(args, id)
		}
		list, err := s.querySessions(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		for _, ss := range list {
			out[ss.ID] = ss
		}
	}
	return out, nil
}

func placeholders(n int) string {
	b := make([]byte, 0, 2*n)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}

func (s *Store) querySessions(ctx context.Context, query string, args ...any) ([]*model.Session, error) {
	return queryAll(ctx, s, "sessions", scanSession, query, args...)
}

// UpdateSession writes every mutable field if the row still has ss.Version
// (optimistic lock) and bumps the version. ErrConflict when another writer won,
// ErrNotFound when the row is gone.
func (s *Store) UpdateSession(ctx context.Context, ss *model.Session) error {
	n, err := s.exec(ctx, s.q, `UPDATE sessions SET container_id = ?, endpoint = ?, network = ?,
		desired_state = ?, observed_state = ?, containers = ?, started_at = ?, last_active_at = ?,
		version = version + 1 WHERE id = ? AND version = ?`,
		ss.ContainerID, ss.Endpoint, ss.Network, ss.DesiredState, ss.ObservedState,
		containersJSON(ss.Containers), usPtr(ss.StartedAt), us(ss.LastActiveAt), ss.ID, ss.Version)
	if err != nil {
		return fmt.Errorf("store: update session: %w", err)
	}
	if n == 0 {
		if _, err := s.GetSession(ctx, ss.ID); errors.Is(err, ErrNotFound) {
			return ErrNotFound
		}
		return ErrConflict
	}
	ss.Version++
	return nil
}

// DeleteSession removes a session row.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM sessions WHERE id = ?`, id)
	return err
}

// SessionsOfDeletedSandboxes returns sessions whose sandbox is soft-deleted or
// missing: what a delete cut short left behind.
func (s *Store) SessionsOfDeletedSandboxes(ctx context.Context) ([]*model.Session, error) {
	return s.querySessions(ctx, `SELECT `+sessionCols+` FROM sessions ss WHERE NOT EXISTS (
		SELECT 1 FROM sandboxes sb WHERE sb.id = ss.sandbox_id AND sb.deleted_at IS NULL) ORDER BY ss.id`)
}

// SessionsInState returns sessions whose observed state is state.
func (s *Store) SessionsInState(ctx context.Context, state string) ([]*model.Session, error) {
	return s.querySessions(ctx, `SELECT `+sessionCols+` FROM sessions WHERE observed_state = ? ORDER BY id`, state)
}
