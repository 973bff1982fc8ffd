// Package skills is the service behind /v1/skills (upstream-contract §1.11):
// payloads, candidates built from executions, evaluations, versioned releases,
// rollback and release health. The store enforces the rules that must hold
// across Bay replicas; this package maps them to client errors and computes health.
package skills

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Health thresholds and window (upstream defaults).
const (
	SuccessDropThreshold         = 0.03
	ErrorRateMultiplierThreshold = 2.0
	DefaultHealthWindow          = 24 * time.Hour
	// noBaselineMultiplier is upstream's sentinel for "errors where there were none".
	noBaselineMultiplier = 1_000_000.0
	// BlobRefPrefix starts every payload_ref.
	BlobRefPrefix = "blob:"
)

// Candidate statuses and release stages a client may name.
var (
	CandidateStatuses = []string{store.CandidateDraft, store.CandidateEvaluating, store.CandidatePromoted,
		"promoted_canary", "promoted_stable", store.CandidateRejected, store.CandidateRolledBack}
	Stages = []string{store.StageCanary, store.StageStable}
)

// Service implements the skills operations; every method takes the request's one `now`.
type Service struct {
	Store *store.Store
}

func notFound(what, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errs.Newf(errs.NotFound, "%s not found: %s", what, id)
	}
	return err
}

// CreatePayload stores a JSON object or array (already encoded) and returns its blob.
func (s *Service) CreatePayload(ctx context.Context, owner, kind string, payload json.RawMessage, now time.Time) (*store.SkillBlob, error) {
	if t := strings.TrimSpace(string(payload)); t == "" || (t[0] != '{' && t[0] != '[') {
		return nil, errs.New(errs.Validation, "payload must be a JSON object or array")
	}
	b := &store.SkillBlob{ID: model.NewID("blob"), Owner: owner, Kind: kind, Payload: string(payload), CreatedAt: now}
	if err := s.Store.CreateSkillBlob(ctx, b); err != nil {
		return nil, err
	}
	return b, nil
}

// BlobRef is the payload_ref of a blob.
func BlobRef(b *store.SkillBlob) string { return BlobRefPrefix + b.ID }

// GetPayload resolves a payload_ref of owner.
func (s *Service) GetPayload(ctx context.Context, owner, ref string) (*store.SkillBlob, error) {
	id, ok := strings.CutPrefix(ref, BlobRefPrefix)
	if !ok {
		return nil, errs.Newf(errs.Validation, "Unsupported payload_ref: %s", ref)
	}
	if id == "" {
		return nil, errs.Newf(errs.Validation, "Invalid payload_ref: %s", ref)
	}
	b, err := s.Store.GetSkillBlob(ctx, owner, id)
	return b, notFound("Artifact blob", id, err)
}

// NewCandidate is what a client sends to create a candidate.
type NewCandidate struct {
	SkillKey                      string
	SourceExecutionIDs            []string
	ScenarioKey, PayloadRef       *string
	Summary, UsageNotes           *string
	Preconditions, Postconditions json.RawMessage // a JSON object, or nil
}

// CreateCandidate records a draft candidate from owner's executions.
func (s *Service) CreateCandidate(ctx context.Context, owner string, in NewCandidate, now time.Time) (*store.SkillCandidate, error) {
	key := strings.TrimSpace(in.SkillKey)
	if key == "" {
		return nil, errs.New(errs.Validation, "skill_key must not be empty")
	}
	if len(in.SourceExecutionIDs) == 0 {
		return nil, errs.New(errs.Validation, "source_execution_ids must not be empty")
	}
	missing, err := s.Store.FirstUnownedExecution(ctx, owner, in.SourceExecutionIDs)
	if err != nil {
		return nil, err
	}
	if missing != "" {
		return nil, errs.Newf(errs.Validation, "Execution ID not found or not owned: %s", missing)
	}
	c := &store.SkillCandidate{ID: model.NewID("sc"), Owner: owner, SkillKey: key, ScenarioKey: in.ScenarioKey,
		PayloadRef: in.PayloadRef, SkillType: "code", Summary: in.Summary, UsageNotes: in.UsageNotes,
		Preconditions: rawPtr(in.Preconditions), Postconditions: rawPtr(in.Postconditions),
		SourceExecutionIDs: in.SourceExecutionIDs, Status: store.CandidateDraft, CreatedBy: &owner,
		CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateSkillCandidate(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

func rawPtr(r json.RawMessage) *string {
	if r == nil {
		return nil
	}
	s := string(r)
	return &s
}

// GetCandidate returns a live candidate of owner.
func (s *Service) GetCandidate(ctx context.Context, owner, id string) (*store.SkillCandidate, error) {
	c, err := s.Store.GetSkillCandidate(ctx, owner, id)
	return c, notFound("Skill candidate", id, err)
}

// ListCandidates lists owner's live candidates, newest first.
func (s *Service) ListCandidates(ctx context.Context, f store.CandidateFilter) ([]*store.SkillCandidate, int, error) {
	if f.Status != "" && !oneOf(f.Status, CandidateStatuses) {
		return nil, 0, errs.Newf(errs.Validation, "Invalid candidate status: %s", f.Status)
	}
	return s.Store.ListSkillCandidates(ctx, f)
}

// Evaluation is what a client sends to evaluate a candidate.
type Evaluation struct {
	Passed              bool
	Score               *float64
	BenchmarkID, Report *string
}

// Evaluate records an evaluation by owner.
func (s *Service) Evaluate(ctx context.Context, owner, candidateID string, in Evaluation, now time.Time) (*store.SkillEvaluation, error) {
	e := &store.SkillEvaluation{ID: model.NewID("se"), Owner: owner, CandidateID: candidateID,
		BenchmarkID: in.BenchmarkID, Score: in.Score, Passed: in.Passed, Report: in.Report, EvaluatedBy: &owner,
		CreatedAt: now}
	if _, err := s.Store.EvaluateSkillCandidate(ctx, e); err != nil {
		return nil, notFound("Skill candidate", candidateID, err)
	}
	return e, nil
}

// Promotion is what a client sends to promote a candidate.
type Promotion struct {
	Stage                                            string
	UpgradeOfReleaseID, UpgradeReason, ChangeSummary *string
}

// Promote releases a candidate whose latest evaluation passed: 409 otherwise.
func (s *Service) Promote(ctx context.Context, owner, candidateID string, in Promotion, now time.Time) (*store.SkillRelease, error) {
	if !oneOf(in.Stage, Stages) {
		return nil, errs.Newf(errs.Validation, "Invalid release stage: %s", in.Stage)
	}
	r, err := s.Store.PromoteSkillCandidate(ctx, owner, candidateID, model.NewID("sr"), store.ReleaseSpec{
		Stage: in.Stage, Mode: store.ReleaseManual, PromotedBy: &owner, UpgradeOfReleaseID: in.UpgradeOfReleaseID,
		UpgradeReason: in.UpgradeReason, ChangeSummary: in.ChangeSummary}, now)
	if errors.Is(err, store.ErrPromotionBlocked) {
		return nil, errs.New(errs.Conflict, "Candidate has no passing evaluation; promotion is blocked").
			With(map[string]any{"candidate_id": candidateID})
	}
	return r, notFound("Skill candidate", candidateID, err)
}

// ListReleases lists owner's live releases, newest promotion first.
func (s *Service) ListReleases(ctx context.Context, f store.ReleaseFilter) ([]*store.SkillRelease, int, error) {
	if f.Stage != "" && !oneOf(f.Stage, Stages) {
		return nil, 0, errs.Newf(errs.Validation, "Invalid release stage: %s", f.Stage)
	}
	return s.Store.ListSkillReleases(ctx, f)
}

// Rollback re-releases the previous live version: 409 when there is none.
func (s *Service) Rollback(ctx context.Context, owner, releaseID string, now time.Time) (*store.SkillRelease, error) {
	r, err := s.Store.RollbackSkillRelease(ctx, owner, releaseID, model.NewID("sr"), &owner, now)
	if errors.Is(err, store.ErrNoPreviousRelease) {
		return nil, errs.New(errs.Conflict, "Rollback is unavailable: no previous release exists").
			With(map[string]any{"release_id": releaseID})
	}
	return r, notFound("Skill release", releaseID, err)
}

// DeleteRelease soft-deletes a release (and deactivates it).
func (s *Service) DeleteRelease(ctx context.Context, owner, id string, reason *string, now time.Time) (*store.SkillRelease, error) {
	r, err := s.Store.DeleteSkillRelease(ctx, owner, id, &owner, reason, now)
	return r, notFound("Skill release", id, err)
}

// DeleteCandidate soft-deletes a candidate: 409 while an active release uses it.
func (s *Service) DeleteCandidate(ctx context.Context, owner, id string, reason *string, now time.Time) (*store.SkillCandidate, error) {
	c, err := s.Store.DeleteSkillCandidate(ctx, owner, id, &owner, reason, now)
	if errors.Is(err, store.ErrCandidateInUse) {
		return nil, errs.New(errs.Conflict, "Candidate referenced by active release cannot be deleted").
			With(map[string]any{"candidate_id": id})
	}
	return c, notFound("Skill candidate", id, err)
}

// Metrics are a release's observed (or baseline) numbers.
type Metrics struct {
	Samples       int
	SuccessRate   float64
	ErrorRate     float64
	P95DurationMs int64
}

// Health is the release health report.
type Health struct {
	Release                 *store.SkillRelease
	WindowStart, WindowEnd  time.Time
	WindowComplete          bool
	Observed, Baseline      Metrics
	SuccessDrop             float64
	ErrorRateMultiplier     float64
	Healthy, ShouldRollback bool
	RollbackReasons         []string
}

// ReleaseHealth compares a release's executions (tagged release:<id>, within
// its window) with the previous version's.
func (s *Service) ReleaseHealth(ctx context.Context, owner, releaseID string, now time.Time) (*Health, error) {
	r, err := s.Store.GetSkillRelease(ctx, owner, releaseID)
	if err != nil {
		return nil, notFound("Skill release", releaseID, err)
	}
	end := r.PromotedAt.Add(DefaultHealthWindow)
	if r.HealthWindowEndAt != nil {
		end = *r.HealthWindowEndAt
	}
	h := &Health{Release: r, WindowStart: r.PromotedAt, WindowEnd: end, WindowComplete: !now.Before(end),
		RollbackReasons: []string{}}
	if h.Observed, err = s.metrics(ctx, owner, r.ID, r.PromotedAt, minTime(now, end)); err != nil {
		return nil, err
	}
	if h.Baseline, err = s.baseline(ctx, r); err != nil {
		return nil, err
	}
	h.SuccessDrop = h.Baseline.SuccessRate - h.Observed.SuccessRate
	switch {
	case h.Baseline.ErrorRate > 0:
		h.ErrorRateMultiplier = h.Observed.ErrorRate / h.Baseline.ErrorRate
	case h.Observed.ErrorRate > 0:
		h.ErrorRateMultiplier = noBaselineMultiplier
	default:
		h.ErrorRateMultiplier = 1.0
	}
	if h.Observed.Samples > 0 {
		if h.SuccessDrop > SuccessDropThreshold {
			h.RollbackReasons = append(h.RollbackReasons, "success_rate_drop")
		}
		if h.ErrorRateMultiplier > ErrorRateMultiplierThreshold {
			h.RollbackReasons = append(h.RollbackReasons, "error_rate_regression")
		}
	}
	h.ShouldRollback = h.Observed.Samples > 0 && len(h.RollbackReasons) > 0
	h.Healthy = h.Observed.Samples > 0 && len(h.RollbackReasons) == 0
	return h, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *Service) metrics(ctx context.Context, owner, releaseID string, from, to time.Time) (Metrics, error) {
	m, err := s.Store.SkillReleaseMetrics(ctx, owner, releaseID, from, to)
	if err != nil || m.Samples == 0 {
		return Metrics{}, err
	}
	n := float64(m.Samples)
	return Metrics{Samples: m.Samples, SuccessRate: float64(m.Successes) / n,
		ErrorRate: float64(m.Samples-m.Successes) / n, P95DurationMs: m.P95DurationMs}, nil
}

var noBaseline = Metrics{SuccessRate: 1.0}

// baseline: the previous version's metrics over its own time, else its
// candidate's last evaluation report, else a perfect record with no samples.
func (s *Service) baseline(ctx context.Context, r *store.SkillRelease) (Metrics, error) {
	prev, err := s.Store.PreviousSkillRelease(ctx, r, true)
	if errors.Is(err, store.ErrNotFound) {
		return noBaseline, nil
	}
	if err != nil {
		return Metrics{}, err
	}
	m, err := s.metrics(ctx, r.Owner, prev.ID, prev.PromotedAt, r.PromotedAt)
	if err != nil || m.Samples > 0 {
		return m, err
	}
	ev, err := s.Store.LatestSkillEvaluation(ctx, r.Owner, prev.CandidateID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ev.Report == nil) {
		return noBaseline, nil
	}
	if err != nil {
		return Metrics{}, err
	}
	return BaselineFromReport(*ev.Report), nil
}

// BaselineFromReport reads an evaluation report's JSON object: replay_success,
// error_rate (default 1 - replay_success), samples, p95_duration. Anything
// else (not JSON, not an object, a field of the wrong type) gives no baseline.
func BaselineFromReport(report string) Metrics {
	var obj map[string]any
	if json.Unmarshal([]byte(report), &obj) != nil || obj == nil {
		return noBaseline
	}
	num := func(key string, def float64) (float64, bool) {
		v, ok := obj[key]
		if !ok {
			return def, true
		}
		f, ok := v.(float64)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	success, ok1 := num("replay_success", 1.0)
	errRate, ok2 := num("error_rate", math.Max(0, 1-success))
	samples, ok3 := num("samples", 0)
	p95, ok4 := num("p95_duration", 0)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return noBaseline
	}
	clamp := func(f float64) float64 { return math.Min(math.Max(f, 0), 1) }
	return Metrics{Samples: int(math.Max(0, math.Min(samples, math.MaxInt32))), SuccessRate: clamp(success),
		ErrorRate: clamp(errRate), P95DurationMs: int64(math.Max(0, math.Min(p95, math.MaxInt64/2)))}
}

func oneOf(s string, list []string) bool {
	for _, v := range list {
		if s == v {
			return true
		}
	}
	return false
}
