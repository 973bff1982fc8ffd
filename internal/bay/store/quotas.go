package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
)

// Quota names, as in the config keys and in quota_exceeded errors.
const (
	QuotaSandboxes       = "max_sandboxes"
	QuotaRunningSessions = "max_running_sessions"
	QuotaCargos          = "max_cargos"
	QuotaCargoMB         = "max_cargo_mb"
)

// Limits are an owner's quotas (0 = unlimited), or an amount of use.
type Limits struct {
	Sandboxes       int64 // live sandboxes
	RunningSessions int64 // sessions pending, starting or running
	Cargos          int64 // external cargos (POST /v1/cargos)
	CargoMB         int64 // sum of size_limit_mb of all cargos, managed ones of live sandboxes included
}

// Override changes some of an owner's limits; nil fields inherit.
type Override struct {
	Sandboxes       *int64
	RunningSessions *int64
	Cargos          *int64
	CargoMB         *int64
}

// Apply returns l with o's set fields.
func (o Override) Apply(l Limits) Limits {
	for _, f := range []struct {
		v   *int64
		dst *int64
	}{{o.Sandboxes, &l.Sandboxes}, {o.RunningSessions, &l.RunningSessions}, {o.Cargos, &l.Cargos}, {o.CargoMB, &l.CargoMB}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	return l
}

// QuotaConfig is what the configuration says: defaults and per-owner
// overrides. Overrides stored with SetOwnerQuota win over both.
type QuotaConfig struct {
	Defaults Limits
	Owners   map[string]Override
}

// QuotaError says a create would take owner past a quota. The database
// decides it, under a per-owner lock, so it holds across Bay replicas.
type QuotaError struct {
	Owner     string
	Quota     string // one of the Quota* names
	Limit     int64
	Used      int64
	Requested int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("store: quota %s of %s exceeded: %d used + %d requested > limit %d", e.Quota, e.Owner, e.Used, e.Requested, e.Limit)
}

// SetQuotas installs the configured quotas (call before serving).
func (s *Store) SetQuotas(q QuotaConfig) { s.quotas.Store(&q) }

func (s *Store) quotaConfig() QuotaConfig {
	if q := s.quotas.Load(); q != nil {
		return *q
	}
	return QuotaConfig{}
}

// OwnerQuota returns the override stored for owner (all nil when none).
func (s *Store) OwnerQuota(ctx context.Context, owner string) (Override, error) {
	return s.ownerQuota(ctx, s.q, owner)
}

func (s *Store) ownerQuota(ctx context.Context, q querier, owner string) (Override, error) {
	var (
		o          Override
		a, b, c, d sql.NullInt64
	)
	err := q.QueryRowContext(ctx, s.rebind(`SELECT max_sandboxes, max_running_sessions, max_cargos, max_cargo_mb
		FROM owner_quotas WHERE owner = ?`), owner).Scan(&a, &b, &c, &d)
	if errors.Is(err, sql.ErrNoRows) {
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("store: owner quota: %w", err)
	}
	for _, f := range []struct {
		v   sql.NullInt64
		dst **int64
	}{{a, &o.Sandboxes}, {b, &o.RunningSessions}, {c, &o.Cargos}, {d, &o.CargoMB}} {
		if f.v.Valid {
			v := f.v.Int64
			*f.dst = &v
		}
	}
	return o, nil
}

// SetOwnerQuota stores owner's override (replacing any stored one): one
// upsert, so concurrent sets of one owner never conflict (the last one wins).
func (s *Store) SetOwnerQuota(ctx context.Context, owner string, o Override, now time.Time) error {
	_, err := s.exec(ctx, s.q, `INSERT INTO owner_quotas (owner, max_sandboxes, max_running_sessions, max_cargos,
		max_cargo_mb, updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (owner) DO UPDATE SET
		max_sandboxes = excluded.max_sandboxes, max_running_sessions = excluded.max_running_sessions,
		max_cargos = excluded.max_cargos, max_cargo_mb = excluded.max_cargo_mb, updated_at = excluded.updated_at`,
		owner, o.Sandboxes, o.RunningSessions, o.Cargos, o.CargoMB, us(now))
	if err != nil {
		return fmt.Errorf("store: set owner quota: %w", err)
	}
	return nil
}

// DeleteOwnerQuota drops owner's stored override (the configured limits apply again).
func (s *Store) DeleteOwnerQuota(ctx context.Context, owner string) error {
	_, err := s.exec(ctx, s.q, `DELETE FROM owner_quotas WHERE owner = ?`, owner)
	return err
}

// EffectiveLimits returns owner's limits: stored override, else the
// configured owner's, else the configured defaults, field by field.
func (s *Store) EffectiveLimits(ctx context.Context, owner string) (Limits, error) {
	return s.effectiveLimits(ctx, s.q, owner)
}

func (s *Store) effectiveLimits(ctx context.Context, q querier, owner string) (Limits, error) {
	cfg := s.quotaConfig()
	l := cfg.Owners[owner].Apply(cfg.Defaults)
	o, err := s.ownerQuota(ctx, q, owner)
	if err != nil {
		return l, err
	}
	return o.Apply(l), nil
}

// Usage returns what owner uses of each quota.
func (s *Store) Usage(ctx context.Context, owner string) (Limits, error) {
	return s.usage(ctx, s.q, owner, Limits{1, 1, 1, 1})
}

// usage counts the quotas whose field in which is non-zero.
func (s *Store) usage(ctx context.Context, q querier, owner string, which Limits) (Limits, error) {
	var u Limits
	for _, c := range []struct {
		on    bool
		dst   *int64
		query string
		args  []any
	}{
		{which.Sandboxes != 0, &u.Sandboxes,
			`SELECT COUNT(*) FROM sandboxes WHERE owner = ? AND deleted_at IS NULL`, []any{owner}},
		{which.RunningSessions != 0, &u.RunningSessions,
			`SELECT COUNT(*) FROM sessions se JOIN sandboxes sb ON sb.id = se.sandbox_id
			WHERE sb.owner = ? AND sb.deleted_at IS NULL AND se.observed_state IN (?,?,?)`,
			[]any{owner, model.SessionPending, model.SessionStarting, model.SessionRunning}},
		{which.Cargos != 0, &u.Cargos,
			`SELECT COUNT(*) FROM cargos WHERE owner = ? AND managed = ?`, []any{owner, false}},
		{which.CargoMB != 0, &u.CargoMB,
			`SELECT COALESCE(SUM(c.size_limit_mb), 0) FROM cargos c WHERE c.owner = ? AND (c.managed = ?
			OR EXISTS (SELECT 1 FROM sandboxes sb WHERE sb.id = c.managed_by_sandbox_id AND sb.deleted_at IS NULL))`,
			[]any{owner, false}},
	} {
		if !c.on {
			continue
		}
		if err := q.QueryRowContext(ctx, s.rebind(c.query), c.args...).Scan(c.dst); err != nil {
			return u, fmt.Errorf("store: quota usage: %w", err)
		}
	}
	return u, nil
}

// checkQuota, inside a write transaction, refuses to let owner's use grow by
// add past a limit. On PostgreSQL it first takes a transaction-scoped advisory
// lock of the owner, so concurrent creates of one owner on any replica count
// one after another (each sees what the previous one committed: READ
// COMMITTED takes a new snapshot per statement). On SQLite the transaction
// already holds the database's single write lock (BEGIN IMMEDIATE). The warm
// pool's own owner has no quotas.
func (s *Store) checkQuota(ctx context.Context, tx *sql.Tx, owner string, add Limits) error {
	if owner == model.WarmOwner {
		return nil
	}
	lim, err := s.effectiveLimits(ctx, tx, owner)
	if err != nil {
		return err
	}
	which := Limits{}
	for _, f := range []struct {
		limit, add int64
		on         *int64
	}{{lim.Sandboxes, add.Sandboxes, &which.Sandboxes}, {lim.RunningSessions, add.RunningSessions, &which.RunningSessions},
		{lim.Cargos, add.Cargos, &which.Cargos}, {lim.CargoMB, add.CargoMB, &which.CargoMB}} {
		if f.limit > 0 && f.add > 0 {
			*f.on = 1
		}
	}
	if which == (Limits{}) {
		return nil
	}
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, quotaLockID(owner)); err != nil {
			return fmt.Errorf("store: quota lock: %w", err)
		}
	}
	used, err := s.usage(ctx, tx, owner, which)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name             string
		limit, used, add int64
	}{
		{QuotaSandboxes, lim.Sandboxes, used.Sandboxes, add.Sandboxes},
		{QuotaRunningSessions, lim.RunningSessions, used.RunningSessions, add.RunningSessions},
		{QuotaCargos, lim.Cargos, used.Cargos, add.Cargos},
		{QuotaCargoMB, lim.CargoMB, used.CargoMB, add.CargoMB},
	} {
		if f.limit > 0 && f.add > 0 && f.used+f.add > f.limit {
			return &QuotaError{Owner: owner, Quota: f.name, Limit: f.limit, Used: f.used, Requested: f.add}
		}
	}
	return nil
}

// quotaLockID is the advisory lock key of an owner's quota.
func quotaLockID(owner string) int64 {
	h := fnv.New64a()
	h.Write([]byte("shipyard/bay/quota:" + owner))
	return int64(h.Sum64() >> 1)
}

// checkClaimQuota checks what claiming the warm sandbox sb adds to owner's
// use: one sandbox, its managed cargo's size and its live session.
func (s *Store) checkClaimQuota(ctx context.Context, tx *sql.Tx, owner string, sb *model.Sandbox) error {
	add := Limits{Sandboxes: 1}
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COALESCE(SUM(size_limit_mb), 0) FROM cargos WHERE id = ?`),
		sb.CargoID).Scan(&add.CargoMB); err != nil {
		return fmt.Errorf("store: claim quota: %w", err)
	}
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM sessions WHERE sandbox_id = ? AND observed_state IN (?,?,?)`),
		sb.ID, model.SessionPending, model.SessionStarting, model.SessionRunning).Scan(&add.RunningSessions); err != nil {
		return fmt.Errorf("store: claim quota: %w", err)
	}
	return s.checkQuota(ctx, tx, owner, add)
}

// checkRestartQuota: a session row that is not live (failed, stopped) and
// is about to start again counts against its owner's max_running_sessions.
func (s *Store) checkRestartQuota(ctx context.Context, tx *sql.Tx, sessionID string) error {
	var state, owner string
	err := tx.QueryRowContext(ctx, s.rebind(`SELECT se.observed_state, sb.owner FROM sessions se
		JOIN sandboxes sb ON sb.id = se.sandbox_id WHERE se.id = ?`), sessionID).Scan(&state, &owner)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // gone: the caller's conditional update says so
	}
	if err != nil {
		return fmt.Errorf("store: session owner: %w", err)
	}
	if state == model.SessionPending || state == model.SessionStarting || state == model.SessionRunning {
		return nil // already counted
	}
	return s.checkQuota(ctx, tx, owner, Limits{RunningSessions: 1})
}
