package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// Replica is one Bay process of a deployment, as its heartbeats record it.
type Replica struct {
	ID          string
	InstanceID  string
	StartedAt   time.Time
	HeartbeatAt time.Time
	ExpiresAt   time.Time // taken for dead after this
}

// Heartbeat records that replica id lives until `until` (inserting it on its first beat).
func (s *Store) Heartbeat(ctx context.Context, id, instanceID string, started, now, until time.Time) error {
	_, err := s.exec(ctx, s.q, `INSERT INTO replicas (id, instance_id, started_at, heartbeat_at, expires_at) VALUES (?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET instance_id = excluded.instance_id, heartbeat_at = excluded.heartbeat_at,
		expires_at = excluded.expires_at`, id, instanceID, us(started), us(now), us(until))
	if err != nil {
		return fmt.Errorf("store: heartbeat: %w", err)
	}
	return nil
}

// RemoveReplica deletes a replica's row (graceful shutdown: the others need
// not wait for its lease to know it is gone).
func (s *Store) RemoveReplica(ctx context.Context, id string) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM replicas WHERE id = ?`, id)
	return err
}

// LiveReplicas returns the replicas whose heartbeat has not expired at now.
func (s *Store) LiveReplicas(ctx context.Context, now time.Time) ([]*Replica, error) {
	return queryAll(ctx, s, "replicas", func(sc scanner) (*Replica, error) {
		var (
			r                 Replica
			st, beat, expires int64
		)
		if err := sc.Scan(&r.ID, &r.InstanceID, &st, &beat, &expires); err != nil {
			return nil, err
		}
		r.StartedAt, r.HeartbeatAt, r.ExpiresAt = fromUS(st), fromUS(beat), fromUS(expires)
		return &r, nil
	}, `SELECT id, instance_id, started_at, heartbeat_at, expires_at FROM replicas WHERE expires_at >= ? ORDER BY id`, us(now))
}

// DeleteDeadReplicas removes the rows of replicas dead since before `before`.
func (s *Store) DeleteDeadReplicas(ctx context.Context, before time.Time) (int64, error) {
	return s.exec(ctx, s.q, `DELETE FROM replicas WHERE expires_at < ?`, us(before))
}

// Claim says who is starting a session and until when.
type Claim struct {
	Replica      string     // "" = nobody claimed it yet (a row just inserted)
	Until        *time.Time // the start is overdue after this
	CreatedAt    time.Time  // of the session row
	ReplicaAlive bool       // Replica's heartbeat has not expired
}

// Live reports whether the claim still stands at now: its replica lives and
// its start is not overdue. An unclaimed row is given grace after its
// insertion (its inserter claims it next). self's own claims never stand: a
// replica holds the sandbox's lock while it starts one, so a claim of its own
// found under that lock is a leftover (a start that could not record its end,
// or an earlier process with the same replica id).
func (c Claim) Live(now time.Time, self string, grace time.Duration) bool {
	switch {
	case c.Replica == "":
		return now.Sub(c.CreatedAt) < grace
	case c.Replica == self:
		return false
	}
	return c.ReplicaAlive && c.Until != nil && now.Before(*c.Until)
}

// SessionClaim returns the claim on a session.
func (s *Store) SessionClaim(ctx context.Context, id string, now time.Time) (Claim, error) {
	var (
		c       Claim
		until   sql.NullInt64
		created int64
	)
	err := s.q.QueryRowContext(ctx, s.rebind(`SELECT claimed_by, claim_expires_at, created_at,
		EXISTS (SELECT 1 FROM replicas r WHERE r.id = ss.claimed_by AND r.expires_at >= ?)
		FROM sessions ss WHERE ss.id = ?`), us(now), id).Scan(&c.Replica, &until, &created, &c.ReplicaAlive)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("store: session claim: %w", err)
	}
	c.Until, c.CreatedAt = fromUSPtr(until), fromUS(created)
	return c, nil
}

// ClaimSessionStart moves a session to starting for replica (until `until`),
// writing its mutable fields like UpdateSession, if the row still has
// ss.Version. It is the database guard of "one start at a time": of several
// replicas (or requests) claiming one version, one wins and the others get
// ErrConflict (ErrNotFound when the row is gone).
//
// Restarting a failed or stopped row in place counts against the owner's
// max_running_sessions like a new session (*QuotaError, the row unchanged).
func (s *Store) ClaimSessionStart(ctx context.Context, ss *model.Session, replica string, until time.Time) error {
	var n int64
	err := s.Tx(ctx, func(tx *Tx) error {
		if err := s.checkRestartQuota(ctx, tx.tx, ss.ID); err != nil {
			return err
		}
		var err error
		n, err = s.exec(ctx, tx.tx, `UPDATE sessions SET profile_id = ?, container_id = ?, endpoint = ?, network = ?,
			desired_state = ?, observed_state = ?, containers = ?, started_at = ?, last_active_at = ?,
			claimed_by = ?, claim_expires_at = ?, version = version + 1 WHERE id = ? AND version = ?`,
			ss.ProfileID, ss.ContainerID, ss.Endpoint, ss.Network, ss.DesiredState, ss.ObservedState,
			containersJSON(ss.Containers), usPtr(ss.StartedAt), us(ss.LastActiveAt), replica, us(until), ss.ID, ss.Version)
		return err
	})
	if _, over := errors.AsType[*QuotaError](err); over {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: claim session: %w", err)
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

// DeleteSessionIfVersion removes a session row if it still has version: a
// reclaimer that saw the row in some state removes it only if nobody moved it
// on since (another replica starting or replacing it). Reports whether it did.
func (s *Store) DeleteSessionIfVersion(ctx context.Context, id string, version int64) (bool, error) {
	n, err := s.exec(ctx, s.q, `DELETE FROM sessions WHERE id = ? AND version = ?`, id, version)
	return n > 0, err
}

// LapsedStarts returns the sessions left pending or starting whose claim no
// longer stands at now (see Claim.Live): claimed by a dead replica, overdue,
// or never claimed since before unclaimedBefore. Claims of self lapse too
// when self is not "" (a replica's start-up: whatever it claimed before is
// a previous process's).
func (s *Store) LapsedStarts(ctx context.Context, now, unclaimedBefore time.Time, self string) ([]*model.Session, error) {
	return s.querySessions(ctx, `SELECT `+sessionCols+` FROM sessions ss WHERE observed_state IN (?, ?) AND (
		(claimed_by = '' AND created_at < ?) OR (claimed_by <> '' AND (claimed_by = ? OR claim_expires_at IS NULL
		OR claim_expires_at < ? OR NOT EXISTS (
			SELECT 1 FROM replicas r WHERE r.id = ss.claimed_by AND r.expires_at >= ?)))) ORDER BY id`,
		model.SessionPending, model.SessionStarting, us(unclaimedBefore), self, us(now), us(now))
}
