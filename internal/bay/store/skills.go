package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// Skills lifecycle records (upstream-contract §1.11). The rules that must hold
// whichever Bay replica acts — version numbers per owner+skill_key, exactly one
// active release per skill key, no deleting a candidate an active release uses —
// are enforced here, in transactions backed by unique indexes.

// Errors of the skills rules.
var (
	ErrPromotionBlocked   = errors.New("store: candidate has no passing evaluation")
	ErrNoPreviousRelease  = errors.New("store: no previous release")
	ErrCandidateInUse     = errors.New("store: candidate referenced by an active release")
	errRetriesExhausted   = errors.New("store: release activation kept conflicting")
	releaseActivationRuns = 8 // attempts when concurrent promotions of one skill key collide
)

// Candidate statuses, release stages and modes.
const (
	CandidateDraft      = "draft"
	CandidateEvaluating = "evaluating"
	CandidatePromoted   = "promoted"
	CandidateRejected   = "rejected"
	CandidateRolledBack = "rolled_back"
	StageCanary         = "canary"
	StageStable         = "stable"
	ReleaseManual       = "manual"
)

// SkillBlob is a stored payload (JSON text).
type SkillBlob struct {
	ID, Owner, Kind string
	Payload         string
	CreatedAt       time.Time
}

// SkillCandidate is a proposed skill built from executions.
type SkillCandidate struct {
	ID, Owner, SkillKey     string
	ScenarioKey, PayloadRef *string
	SkillType               string
	AutoReleaseEligible     bool
	AutoReleaseReason       *string
	Summary, UsageNotes     *string
	Preconditions           *string // JSON text
	Postconditions          *string // JSON text
	SourceExecutionIDs      []string
	Status                  string
	LatestScore             *float64
	LatestPass              *bool
	LastEvaluatedAt         *time.Time
	PromotionReleaseID      *string
	CreatedBy               *string
	CreatedAt, UpdatedAt    time.Time
	Deleted                 bool
	DeletedAt               *time.Time
	DeletedBy, DeleteReason *string
}

// SkillEvaluation is one evaluation of a candidate.
type SkillEvaluation struct {
	ID, Owner, CandidateID string
	BenchmarkID            *string
	Score                  *float64
	Passed                 bool
	Report, EvaluatedBy    *string
	CreatedAt              time.Time
}

// SkillRelease is a numbered release of a skill key.
type SkillRelease struct {
	ID, Owner, SkillKey, CandidateID string
	Version                          int64
	Stage                            string
	Active                           bool
	Mode                             string
	PromotedBy                       *string
	PromotedAt                       time.Time
	RollbackOf, AutoPromotedFrom     *string
	HealthWindowEndAt                *time.Time
	UpgradeOfReleaseID               *string
	UpgradeReason, ChangeSummary     *string
	Deleted                          bool
	DeletedAt                        *time.Time
	DeletedBy, DeleteReason          *string
}

// ---- blobs ----

// CreateSkillBlob stores a payload.
func (s *Store) CreateSkillBlob(ctx context.Context, b *SkillBlob) error {
	_, err := s.exec(ctx, s.q, `INSERT INTO skill_blobs (id, owner, kind, payload, created_at) VALUES (?,?,?,?,?)`,
		b.ID, b.Owner, b.Kind, b.Payload, us(b.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: insert skill blob: %w", err)
	}
	return nil
}

// GetSkillBlob returns an owned payload.
func (s *Store) GetSkillBlob(ctx context.Context, owner, id string) (*SkillBlob, error) {
	var (
		b       SkillBlob
		created int64
	)
	err := s.q.QueryRowContext(ctx, s.rebind(`SELECT id, owner, kind, payload, created_at FROM skill_blobs
		WHERE owner = ? AND id = ?`), owner, id).Scan(&b.ID, &b.Owner, &b.Kind, &b.Payload, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get skill blob: %w", err)
	}
	b.CreatedAt = fromUS(created)
	return &b, nil
}

// ---- executions seen by skills ----

// FirstUnownedExecution returns the first of ids that is not an execution of
// owner (any sandbox), or "" when all are.
func (s *Store) FirstUnownedExecution(ctx context.Context, owner string, ids []string) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	if err := s.journal.settle(ctx); err != nil {
		return "", err
	}
	args := []any{owner}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := s.q.QueryContext(ctx, s.rebind(`SELECT id FROM executions WHERE owner = ? AND id IN (?`+
		strings.Repeat(",?", len(ids)-1)+`)`), args...)
	if err != nil {
		return "", fmt.Errorf("store: owned executions: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return "", err
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, id := range ids {
		if !found[id] {
			return id, nil
		}
	}
	return "", nil
}

// ReleaseMetrics summarizes owner's executions tagged release:<id> created in [from, to].
type ReleaseMetrics struct {
	Samples, Successes int
	P95DurationMs      int64 // sorted durations[ceil(0.95 n) - 1]
}

// SkillReleaseMetrics aggregates in the database: memory stays bounded however
// many executions carry the tag.
func (s *Store) SkillReleaseMetrics(ctx context.Context, owner, releaseID string, from, to time.Time) (ReleaseMetrics, error) {
	var m ReleaseMetrics
	if err := s.journal.settle(ctx); err != nil {
		return m, err
	}
	where := ` FROM executions WHERE owner = ? AND created_at >= ? AND created_at <= ?
		AND LOWER(COALESCE(tags, '')) LIKE ? ESCAPE '\'`
	args := []any{owner, us(from), us(to), "%" + likeEscaper.Replace(strings.ToLower("release:"+releaseID)) + "%"}
	var succ sql.NullInt64
	if err := s.q.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*), SUM(CASE WHEN success THEN 1 ELSE 0 END)`+where),
		args...).Scan(&m.Samples, &succ); err != nil {
		return m, fmt.Errorf("store: release metrics: %w", err)
	}
	m.Successes = int(succ.Int64)
	if m.Samples == 0 {
		return m, nil
	}
	idx := (95*m.Samples+99)/100 - 1 // ceil(0.95 n) - 1 in integers
	if err := s.q.QueryRowContext(ctx, s.rebind(`SELECT CASE WHEN execution_time_ms < 0 THEN 0 ELSE execution_time_ms END AS d`+
		where+` ORDER BY d LIMIT 1 OFFSET ?`), append(args, max(idx, 0))...).Scan(&m.P95DurationMs); err != nil {
		return m, fmt.Errorf("store: release p95: %w", err)
	}
	return m, nil
}

// ---- candidates ----

const candCols = `id, owner, skill_key, scenario_key, payload_ref, skill_type, auto_release_eligible, auto_release_reason,
	summary, usage_notes, preconditions, postconditions, source_execution_ids, status, latest_score, latest_pass,
	last_evaluated_at, promotion_release_id, created_by, created_at, updated_at, is_deleted, deleted_at, deleted_by,
	delete_reason`

func scanCandidate(sc scanner) (*SkillCandidate, error) {
	var (
		c                                                          SkillCandidate
		scen, pref, arr, sum, notes, pre, post, prom, by, dby, drs sql.NullString
		score                                                      sql.NullFloat64
		pass                                                       sql.NullBool
		evalAt, delAt                                              sql.NullInt64
		ids                                                        string
		created, updated                                           int64
	)
	if err := sc.Scan(&c.ID, &c.Owner, &c.SkillKey, &scen, &pref, &c.SkillType, &c.AutoReleaseEligible, &arr,
		&sum, &notes, &pre, &post, &ids, &c.Status, &score, &pass, &evalAt, &prom, &by, &created, &updated,
		&c.Deleted, &delAt, &dby, &drs); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	c.ScenarioKey, c.PayloadRef, c.AutoReleaseReason = strPtr(scen), strPtr(pref), strPtr(arr)
	c.Summary, c.UsageNotes, c.Preconditions, c.Postconditions = strPtr(sum), strPtr(notes), strPtr(pre), strPtr(post)
	c.PromotionReleaseID, c.CreatedBy, c.DeletedBy, c.DeleteReason = strPtr(prom), strPtr(by), strPtr(dby), strPtr(drs)
	c.SourceExecutionIDs = []string{}
	for _, id := range strings.Split(ids, ",") {
		if id != "" {
			c.SourceExecutionIDs = append(c.SourceExecutionIDs, id)
		}
	}
	if score.Valid {
		c.LatestScore = &score.Float64
	}
	if pass.Valid {
		c.LatestPass = &pass.Bool
	}
	c.LastEvaluatedAt, c.DeletedAt = fromUSPtr(evalAt), fromUSPtr(delAt)
	c.CreatedAt, c.UpdatedAt = fromUS(created), fromUS(updated)
	return &c, nil
}

// CreateSkillCandidate stores a new candidate.
func (s *Store) CreateSkillCandidate(ctx context.Context, c *SkillCandidate) error {
	_, err := s.exec(ctx, s.q, `INSERT INTO skill_candidates (`+candCols+`, seq) VALUES
		(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		c.ID, c.Owner, c.SkillKey, c.ScenarioKey, c.PayloadRef, c.SkillType, c.AutoReleaseEligible,
		c.AutoReleaseReason, c.Summary, c.UsageNotes, c.Preconditions, c.Postconditions,
		strings.Join(c.SourceExecutionIDs, ","), c.Status, c.LatestScore, c.LatestPass, usPtr(c.LastEvaluatedAt),
		c.PromotionReleaseID, c.CreatedBy, us(c.CreatedAt), us(c.UpdatedAt), c.Deleted, usPtr(c.DeletedAt),
		c.DeletedBy, c.DeleteReason, s.nextSeq(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: insert skill candidate: %w", err)
	}
	return nil
}

// GetSkillCandidate returns an owned candidate that is not deleted.
func (s *Store) GetSkillCandidate(ctx context.Context, owner, id string) (*SkillCandidate, error) {
	return s.getCandidate(ctx, s.q, owner, id, "")
}

func (s *Store) getCandidate(ctx context.Context, q querier, owner, id, suffix string) (*SkillCandidate, error) {
	return scanCandidate(q.QueryRowContext(ctx, s.rebind(`SELECT `+candCols+` FROM skill_candidates
		WHERE owner = ? AND id = ? AND NOT is_deleted`+suffix), owner, id))
}

// forUpdate locks the selected row on PostgreSQL; SQLite's IMMEDIATE
// transactions already hold the one write lock.
func (s *Store) forUpdate() string {
	if s.dialect == Postgres {
		return ` FOR UPDATE`
	}
	return ""
}

// CandidateFilter selects candidates of one owner (deleted ones never).
type CandidateFilter struct {
	Owner, Status, SkillKey string // "" = any
	Limit, Offset           int
}

// ListSkillCandidates returns candidates newest first and the total matching.
func (s *Store) ListSkillCandidates(ctx context.Context, f CandidateFilter) ([]*SkillCandidate, int, error) {
	w := ` WHERE owner = ? AND NOT is_deleted`
	args := []any{f.Owner}
	if f.Status != "" {
		w += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.SkillKey != "" {
		w += ` AND skill_key = ?`
		args = append(args, f.SkillKey)
	}
	var total int
	if err := s.q.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM skill_candidates`+w), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count skill candidates: %w", err)
	}
	list, err := queryAll(ctx, s, "skill candidates", scanCandidate, `SELECT `+candCols+` FROM skill_candidates`+w+
		` ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?`, append(args, f.Limit, f.Offset)...)
	return list, total, err
}

// EvaluateSkillCandidate records an evaluation and updates the candidate:
// latest score/pass, status evaluating (rejected when it did not pass).
func (s *Store) EvaluateSkillCandidate(ctx context.Context, e *SkillEvaluation) (*SkillCandidate, error) {
	var c *SkillCandidate
	err := s.Tx(ctx, func(tx *Tx) error {
		status := CandidateEvaluating
		if !e.Passed {
			status = CandidateRejected
		}
		n, err := s.exec(ctx, tx.tx, `UPDATE skill_candidates SET status = ?, latest_score = ?, latest_pass = ?,
			last_evaluated_at = ?, updated_at = ? WHERE owner = ? AND id = ? AND NOT is_deleted`,
			status, e.Score, e.Passed, us(e.CreatedAt), us(e.CreatedAt), e.Owner, e.CandidateID)
		if err != nil {
			return fmt.Errorf("store: evaluate skill candidate: %w", err)
		}
		if n == 0 {
			return ErrNotFound
		}
		if _, err := s.exec(ctx, tx.tx, `INSERT INTO skill_evaluations (id, owner, candidate_id, benchmark_id, score,
			passed, report, evaluated_by, created_at, seq) VALUES (?,?,?,?,?,?,?,?,?,?)`, e.ID, e.Owner, e.CandidateID,
			e.BenchmarkID, e.Score, e.Passed, e.Report, e.EvaluatedBy, us(e.CreatedAt), s.nextSeq(e.CreatedAt)); err != nil {
			return fmt.Errorf("store: insert skill evaluation: %w", err)
		}
		c, err = s.getCandidate(ctx, tx.tx, e.Owner, e.CandidateID, "")
		return err
	})
	return c, err
}

// LatestSkillEvaluation returns the newest evaluation of a candidate (ErrNotFound when none).
func (s *Store) LatestSkillEvaluation(ctx context.Context, owner, candidateID string) (*SkillEvaluation, error) {
	var (
		e                 SkillEvaluation
		bench, report, by sql.NullString
		score             sql.NullFloat64
		created           int64
	)
	err := s.q.QueryRowContext(ctx, s.rebind(`SELECT id, owner, candidate_id, benchmark_id, score, passed, report,
		evaluated_by, created_at FROM skill_evaluations WHERE owner = ? AND candidate_id = ?
		ORDER BY created_at DESC, seq DESC LIMIT 1`), owner, candidateID).Scan(&e.ID, &e.Owner, &e.CandidateID,
		&bench, &score, &e.Passed, &report, &by, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: latest skill evaluation: %w", err)
	}
	e.BenchmarkID, e.Report, e.EvaluatedBy = strPtr(bench), strPtr(report), strPtr(by)
	if score.Valid {
		e.Score = &score.Float64
	}
	e.CreatedAt = fromUS(created)
	return &e, nil
}

// DeleteSkillCandidate soft-deletes a candidate; ErrCandidateInUse while an
// active release uses it.
func (s *Store) DeleteSkillCandidate(ctx context.Context, owner, id string, by, reason *string, now time.Time) (*SkillCandidate, error) {
	var c *SkillCandidate
	err := s.Tx(ctx, func(tx *Tx) error {
		// Lock the row first: a concurrent promotion of it locks it too, so the
		// check below sees that promotion's release (or it sees the deletion).
		if _, err := s.getCandidate(ctx, tx.tx, owner, id, s.forUpdate()); err != nil {
			return err
		}
		var inUse int
		if err := tx.tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM skill_releases WHERE owner = ?
			AND candidate_id = ? AND is_active AND NOT is_deleted`), owner, id).Scan(&inUse); err != nil {
			return fmt.Errorf("store: candidate releases: %w", err)
		}
		if inUse > 0 {
			return ErrCandidateInUse
		}
		if _, err := s.exec(ctx, tx.tx, `UPDATE skill_candidates SET is_deleted = ?, deleted_at = ?, deleted_by = ?,
			delete_reason = ? WHERE owner = ? AND id = ?`, true, us(now), by, reason, owner, id); err != nil {
			return fmt.Errorf("store: delete skill candidate: %w", err)
		}
		var err error
		c, err = scanCandidate(tx.tx.QueryRowContext(ctx, s.rebind(`SELECT `+candCols+` FROM skill_candidates
			WHERE owner = ? AND id = ?`), owner, id))
		return err
	})
	return c, err
}

// ---- releases ----

const relCols = `id, owner, skill_key, candidate_id, version, stage, is_active, release_mode, promoted_by, promoted_at,
	rollback_of, auto_promoted_from, health_window_end_at, upgrade_of_release_id, upgrade_reason, change_summary,
	is_deleted, deleted_at, deleted_by, delete_reason`

func scanRelease(sc scanner) (*SkillRelease, error) {
	var (
		r                                              SkillRelease
		by, rb, auto, up, ureason, summary, dby, dreas sql.NullString
		window, delAt                                  sql.NullInt64
		promoted                                       int64
	)
	if err := sc.Scan(&r.ID, &r.Owner, &r.SkillKey, &r.CandidateID, &r.Version, &r.Stage, &r.Active, &r.Mode, &by,
		&promoted, &rb, &auto, &window, &up, &ureason, &summary, &r.Deleted, &delAt, &dby, &dreas); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	r.PromotedBy, r.RollbackOf, r.AutoPromotedFrom = strPtr(by), strPtr(rb), strPtr(auto)
	r.UpgradeOfReleaseID, r.UpgradeReason, r.ChangeSummary = strPtr(up), strPtr(ureason), strPtr(summary)
	r.DeletedBy, r.DeleteReason = strPtr(dby), strPtr(dreas)
	r.PromotedAt, r.HealthWindowEndAt, r.DeletedAt = fromUS(promoted), fromUSPtr(window), fromUSPtr(delAt)
	return &r, nil
}

// GetSkillRelease returns an owned release that is not deleted.
func (s *Store) GetSkillRelease(ctx context.Context, owner, id string) (*SkillRelease, error) {
	return scanRelease(s.q.QueryRowContext(ctx, s.rebind(`SELECT `+relCols+` FROM skill_releases
		WHERE owner = ? AND id = ? AND NOT is_deleted`), owner, id))
}

// PreviousSkillRelease returns the release of the same skill key with the
// highest version below r's (deleted ones too when includeDeleted).
func (s *Store) PreviousSkillRelease(ctx context.Context, r *SkillRelease, includeDeleted bool) (*SkillRelease, error) {
	return s.previousRelease(ctx, s.q, r, includeDeleted)
}

func (s *Store) previousRelease(ctx context.Context, q querier, r *SkillRelease, includeDeleted bool) (*SkillRelease, error) {
	w := ""
	if !includeDeleted {
		w = ` AND NOT is_deleted`
	}
	return scanRelease(q.QueryRowContext(ctx, s.rebind(`SELECT `+relCols+` FROM skill_releases
		WHERE owner = ? AND skill_key = ? AND version < ?`+w+` ORDER BY version DESC LIMIT 1`), r.Owner, r.SkillKey, r.Version))
}

// ReleaseFilter selects releases of one owner (deleted ones never).
type ReleaseFilter struct {
	Owner, SkillKey, Stage string // "" = any
	ActiveOnly             bool
	Limit, Offset          int
}

// ListSkillReleases returns releases newest promotion first and the total matching.
func (s *Store) ListSkillReleases(ctx context.Context, f ReleaseFilter) ([]*SkillRelease, int, error) {
	w := ` WHERE owner = ? AND NOT is_deleted`
	args := []any{f.Owner}
	if f.SkillKey != "" {
		w += ` AND skill_key = ?`
		args = append(args, f.SkillKey)
	}
	if f.ActiveOnly {
		w += ` AND is_active`
	}
	if f.Stage != "" {
		w += ` AND stage = ?`
		args = append(args, f.Stage)
	}
	var total int
	if err := s.q.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM skill_releases`+w), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count skill releases: %w", err)
	}
	list, err := queryAll(ctx, s, "skill releases", scanRelease, `SELECT `+relCols+` FROM skill_releases`+w+
		` ORDER BY promoted_at DESC, skill_key, version DESC LIMIT ? OFFSET ?`, append(args, f.Limit, f.Offset)...)
	return list, total, err
}

// ReleaseSpec is what a promotion or rollback sets on the new release.
type ReleaseSpec struct {
	Stage, Mode        string
	PromotedBy         *string
	UpgradeOfReleaseID *string
	UpgradeReason      *string
	ChangeSummary      *string
	HealthWindowEndAt  *time.Time
}

// PromoteSkillCandidate releases a candidate with a passing latest evaluation:
// the next version of its skill key becomes the one active release.
func (s *Store) PromoteSkillCandidate(ctx context.Context, owner, candidateID, releaseID string, spec ReleaseSpec, now time.Time) (*SkillRelease, error) {
	var rel *SkillRelease
	err := s.retryActivation(ctx, func(tx *Tx) error {
		c, err := s.getCandidate(ctx, tx.tx, owner, candidateID, "")
		if err != nil {
			return err
		}
		// Key lock first, then the row (re-read under it): every writer of a
		// skill key's releases takes them in this order.
		if err := s.lockSkillKey(ctx, tx, owner, c.SkillKey); err != nil {
			return err
		}
		if c, err = s.getCandidate(ctx, tx.tx, owner, candidateID, s.forUpdate()); err != nil {
			return err
		}
		if c.LatestPass == nil || !*c.LatestPass {
			return ErrPromotionBlocked
		}
		rel = &SkillRelease{ID: releaseID, Owner: owner, SkillKey: c.SkillKey, CandidateID: c.ID, Stage: spec.Stage,
			Active: true, Mode: spec.Mode, PromotedBy: spec.PromotedBy, PromotedAt: now,
			HealthWindowEndAt: spec.HealthWindowEndAt, UpgradeOfReleaseID: spec.UpgradeOfReleaseID,
			UpgradeReason: spec.UpgradeReason, ChangeSummary: spec.ChangeSummary}
		if err := s.activate(ctx, tx, rel); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx.tx, `UPDATE skill_candidates SET status = ?, promotion_release_id = ?, updated_at = ?
			WHERE owner = ? AND id = ?`, CandidatePromoted, rel.ID, us(now), owner, c.ID)
		return err
	})
	return rel, err
}

// RollbackSkillRelease makes a new active release (next version) of the
// release before r (not deleted), with that one's candidate and stage; the
// candidate of r becomes rolled_back.
func (s *Store) RollbackSkillRelease(ctx context.Context, owner, releaseID, newID string, by *string, now time.Time) (*SkillRelease, error) {
	var rel *SkillRelease
	err := s.retryActivation(ctx, func(tx *Tx) error {
		cur, err := s.lockedRelease(ctx, tx, owner, releaseID)
		if err != nil {
			return err
		}
		prev, err := s.previousRelease(ctx, tx.tx, cur, false)
		if errors.Is(err, ErrNotFound) {
			return ErrNoPreviousRelease
		}
		if err != nil {
			return err
		}
		rb := cur.ID
		rel = &SkillRelease{ID: newID, Owner: owner, SkillKey: cur.SkillKey, CandidateID: prev.CandidateID,
			Stage: prev.Stage, Active: true, Mode: ReleaseManual, PromotedBy: by, PromotedAt: now, RollbackOf: &rb}
		if err := s.activate(ctx, tx, rel); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx.tx, `UPDATE skill_candidates SET status = ?, updated_at = ?
			WHERE owner = ? AND id = ? AND NOT is_deleted`, CandidateRolledBack, us(now), owner, cur.CandidateID)
		return err
	})
	return rel, err
}

// lockedRelease reads a live release and takes the lock of its skill key
// (the key never changes), then reads it again under the lock.
func (s *Store) lockedRelease(ctx context.Context, tx *Tx, owner, id string) (*SkillRelease, error) {
	q := `SELECT ` + relCols + ` FROM skill_releases WHERE owner = ? AND id = ? AND NOT is_deleted`
	r, err := scanRelease(tx.tx.QueryRowContext(ctx, s.rebind(q), owner, id))
	if err != nil {
		return nil, err
	}
	if err := s.lockSkillKey(ctx, tx, owner, r.SkillKey); err != nil {
		return nil, err
	}
	return scanRelease(tx.tx.QueryRowContext(ctx, s.rebind(q), owner, id))
}

// lockSkillKey serializes the writers of one owner's skill key until the
// transaction ends. PostgreSQL: a transaction-scoped advisory lock, shared by
// every Bay replica (without it, two promotions deadlock on each other's row
// and index locks). SQLite: IMMEDIATE transactions already serialize writers.
func (s *Store) lockSkillKey(ctx context.Context, tx *Tx, owner, key string) error {
	if s.dialect != Postgres {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("shipyard/bay/skills\x00" + owner + "\x00" + key))
	if _, err := tx.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
		return fmt.Errorf("store: lock skill key: %w", err)
	}
	return nil
}

// retryActivation runs fn in a transaction, again when a uniqueness guard
// (version or one-active) rejected it or the database chose it as a deadlock
// victim: a concurrent writer of the same skill key committed first, and the
// next attempt sees it. The unique indexes stay the guard of last resort.
func (s *Store) retryActivation(ctx context.Context, fn func(tx *Tx) error) error {
	for range releaseActivationRuns {
		err := s.Tx(ctx, fn)
		if !errors.Is(err, ErrConflict) && !isRetryableTx(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errRetriesExhausted
}

// isRetryableTx: PostgreSQL aborted the transaction as a deadlock victim or a
// serialization failure; running it again is safe.
func isRetryableTx(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 40P01") || strings.Contains(msg, "SQLSTATE 40001")
}

// activate deactivates the active release of r's skill key, numbers r and inserts it active.
func (s *Store) activate(ctx context.Context, tx *Tx, r *SkillRelease) error {
	if _, err := s.exec(ctx, tx.tx, `UPDATE skill_releases SET is_active = ? WHERE owner = ? AND skill_key = ? AND is_active`,
		false, r.Owner, r.SkillKey); err != nil {
		return fmt.Errorf("store: deactivate releases: %w", err)
	}
	if err := tx.tx.QueryRowContext(ctx, s.rebind(`SELECT COALESCE(MAX(version), 0) + 1 FROM skill_releases
		WHERE owner = ? AND skill_key = ?`), r.Owner, r.SkillKey).Scan(&r.Version); err != nil {
		return fmt.Errorf("store: next release version: %w", err)
	}
	_, err := s.exec(ctx, tx.tx, `INSERT INTO skill_releases (`+relCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.Owner, r.SkillKey, r.CandidateID, r.Version, r.Stage, r.Active, r.Mode, r.PromotedBy, us(r.PromotedAt),
		r.RollbackOf, r.AutoPromotedFrom, usPtr(r.HealthWindowEndAt), r.UpgradeOfReleaseID, r.UpgradeReason,
		r.ChangeSummary, r.Deleted, usPtr(r.DeletedAt), r.DeletedBy, r.DeleteReason)
	if err != nil {
		return fmt.Errorf("store: insert skill release: %w", err)
	}
	return nil
}

// DeleteSkillRelease soft-deletes (and deactivates) a release and clears the
// promotion pointers of candidates that named it.
func (s *Store) DeleteSkillRelease(ctx context.Context, owner, id string, by, reason *string, now time.Time) (*SkillRelease, error) {
	var r *SkillRelease
	err := s.retryActivation(ctx, func(tx *Tx) error {
		if _, err := s.lockedRelease(ctx, tx, owner, id); err != nil {
			return err
		}
		n, err := s.exec(ctx, tx.tx, `UPDATE skill_releases SET is_active = ?, is_deleted = ?, deleted_at = ?,
			deleted_by = ?, delete_reason = ? WHERE owner = ? AND id = ? AND NOT is_deleted`,
			false, true, us(now), by, reason, owner, id)
		if err != nil {
			return fmt.Errorf("store: delete skill release: %w", err)
		}
		if n == 0 {
			return ErrNotFound
		}
		if _, err := s.exec(ctx, tx.tx, `UPDATE skill_candidates SET promotion_release_id = NULL, updated_at = ?
			WHERE owner = ? AND promotion_release_id = ?`, us(now), owner, id); err != nil {
			return fmt.Errorf("store: clear promotion pointers: %w", err)
		}
		r, err = scanRelease(tx.tx.QueryRowContext(ctx, s.rebind(`SELECT `+relCols+` FROM skill_releases
			WHERE owner = ? AND id = ?`), owner, id))
		return err
	})
	return r, err
}
