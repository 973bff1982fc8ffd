package shipyard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// Payload is a stored skill payload.
type Payload struct {
	PayloadRef string          `json:"payload_ref"`
	Kind       string          `json:"kind"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// CreatePayload stores payload (a JSON object or array) and returns its ref.
func (c *Client) CreatePayload(ctx context.Context, payload json.RawMessage, kind string) (*Payload, error) {
	body := struct {
		Payload json.RawMessage `json:"payload"`
		Kind    string          `json:"kind,omitempty"`
	}{payload, kind}
	var out Payload
	return &out, c.do(ctx, http.MethodPost, "/v1/skills/payloads", nil, body, &out)
}

// GetPayload returns a payload by ref (blob:…).
func (c *Client) GetPayload(ctx context.Context, ref string) (*Payload, error) {
	var out Payload
	return &out, c.do(ctx, http.MethodGet, "/v1/skills/payloads/"+url.PathEscape(ref), nil, nil, &out)
}

// Candidate is a skill candidate.
type Candidate struct {
	ID                 string   `json:"id"`
	SkillKey           string   `json:"skill_key"`
	ScenarioKey        *string  `json:"scenario_key"`
	PayloadRef         *string  `json:"payload_ref"`
	SkillType          string   `json:"skill_type"`
	Summary            *string  `json:"summary"`
	UsageNotes         *string  `json:"usage_notes"`
	SourceExecutionIDs []string `json:"source_execution_ids"`
	Status             string   `json:"status"`
	LatestScore        *float64 `json:"latest_score"`
	LatestPass         *bool    `json:"latest_pass"`
	PromotionReleaseID *string  `json:"promotion_release_id"`
	CreatedAt          string   `json:"created_at"`
}

// CandidateRequest is the body of POST /v1/skills/candidates.
type CandidateRequest struct {
	SkillKey           string         `json:"skill_key"`
	SourceExecutionIDs []string       `json:"source_execution_ids"`
	ScenarioKey        *string        `json:"scenario_key,omitempty"`
	PayloadRef         *string        `json:"payload_ref,omitempty"`
	Summary            *string        `json:"summary,omitempty"`
	UsageNotes         *string        `json:"usage_notes,omitempty"`
	Preconditions      map[string]any `json:"preconditions,omitempty"`
	Postconditions     map[string]any `json:"postconditions,omitempty"`
}

// CreateCandidate creates a candidate from executions.
func (c *Client) CreateCandidate(ctx context.Context, r CandidateRequest) (*Candidate, error) {
	var out Candidate
	return &out, c.do(ctx, http.MethodPost, "/v1/skills/candidates", nil, r, &out)
}

// Evaluation is a recorded evaluation.
type Evaluation struct {
	ID          string   `json:"id"`
	CandidateID string   `json:"candidate_id"`
	BenchmarkID *string  `json:"benchmark_id"`
	Score       *float64 `json:"score"`
	Passed      bool     `json:"passed"`
	Report      *string  `json:"report"`
}

// EvaluationRequest is the body of POST …/candidates/{id}/evaluate.
type EvaluationRequest struct {
	Passed      bool     `json:"passed"`
	Score       *float64 `json:"score,omitempty"`
	BenchmarkID *string  `json:"benchmark_id,omitempty"`
	Report      *string  `json:"report,omitempty"`
}

// EvaluateCandidate records an evaluation.
func (c *Client) EvaluateCandidate(ctx context.Context, candidateID string, r EvaluationRequest) (*Evaluation, error) {
	var out Evaluation
	return &out, c.do(ctx, http.MethodPost, "/v1/skills/candidates/"+url.PathEscape(candidateID)+"/evaluate", nil, r, &out)
}

// Release is a skill release.
type Release struct {
	ID                 string  `json:"id"`
	SkillKey           string  `json:"skill_key"`
	CandidateID        string  `json:"candidate_id"`
	Version            int     `json:"version"`
	Stage              string  `json:"stage"`
	IsActive           bool    `json:"is_active"`
	RollbackOf         *string `json:"rollback_of"`
	UpgradeOfReleaseID *string `json:"upgrade_of_release_id"`
	UpgradeReason      *string `json:"upgrade_reason"`
	ChangeSummary      *string `json:"change_summary"`
}

// PromoteRequest is the body of POST …/candidates/{id}/promote.
type PromoteRequest struct {
	Stage              string  `json:"stage,omitempty"`
	UpgradeOfReleaseID *string `json:"upgrade_of_release_id,omitempty"`
	UpgradeReason      *string `json:"upgrade_reason,omitempty"`
	ChangeSummary      *string `json:"change_summary,omitempty"`
}

// PromoteCandidate promotes a passing candidate to a release.
func (c *Client) PromoteCandidate(ctx context.Context, candidateID string, r PromoteRequest) (*Release, error) {
	var out Release
	return &out, c.do(ctx, http.MethodPost, "/v1/skills/candidates/"+url.PathEscape(candidateID)+"/promote", nil, r, &out)
}

// ListFilter filters candidate and release lists; zero values are omitted.
type ListFilter struct {
	Status     string // candidates
	SkillKey   string
	Stage      string // releases
	ActiveOnly bool   // releases
	Limit      int
	Offset     int
}

func (f ListFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "skill_key": f.SkillKey, "stage": f.Stage} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.ActiveOnly {
		q.Set("active_only", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	return q
}

// Candidates is a page of candidates.
type Candidates struct {
	Items []Candidate `json:"items"`
	Total int         `json:"total"`
}

// ListCandidates lists candidates.
func (c *Client) ListCandidates(ctx context.Context, f ListFilter) (*Candidates, error) {
	var out Candidates
	return &out, c.do(ctx, http.MethodGet, "/v1/skills/candidates", f.query(), nil, &out)
}

// Releases is a page of releases.
type Releases struct {
	Items []Release `json:"items"`
	Total int       `json:"total"`
}

// ListReleases lists releases.
func (c *Client) ListReleases(ctx context.Context, f ListFilter) (*Releases, error) {
	var out Releases
	return &out, c.do(ctx, http.MethodGet, "/v1/skills/releases", f.query(), nil, &out)
}

// Deleted is the answer of a soft delete.
type Deleted struct {
	ID           string  `json:"id"`
	DeletedAt    *string `json:"deleted_at"`
	DeletedBy    *string `json:"deleted_by"`
	DeleteReason *string `json:"delete_reason"`
}

type deleteBody struct {
	Reason *string `json:"reason,omitempty"`
}

// DeleteRelease soft-deletes a release.
func (c *Client) DeleteRelease(ctx context.Context, releaseID string, reason *string) (*Deleted, error) {
	var out Deleted
	return &out, c.do(ctx, http.MethodDelete, "/v1/skills/releases/"+url.PathEscape(releaseID), nil, deleteBody{reason}, &out)
}

// DeleteCandidate soft-deletes a candidate.
func (c *Client) DeleteCandidate(ctx context.Context, candidateID string, reason *string) (*Deleted, error) {
	var out Deleted
	return &out, c.do(ctx, http.MethodDelete, "/v1/skills/candidates/"+url.PathEscape(candidateID), nil, deleteBody{reason}, &out)
}

// RollbackRelease rolls an active release back to the previous version.
func (c *Client) RollbackRelease(ctx context.Context, releaseID string) (*Release, error) {
	var out Release
	return &out, c.do(ctx, http.MethodPost, "/v1/skills/releases/"+url.PathEscape(releaseID)+"/rollback", nil, nil, &out)
}
