package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipyard/shipyard/pkg/shipyard"
)

type createPayloadIn struct {
	Payload json.RawMessage `json:"payload" jsonschema:"The payload: a JSON object or array (e.g. {\"commands\": [...]} for a browser skill)."`
	Kind    string          `json:"kind,omitempty" jsonschema:"Payload kind. Defaults to 'generic'."`
}

type getPayloadIn struct {
	PayloadRef string `json:"payload_ref" jsonschema:"Payload reference returned by create_skill_payload (blob:...)."`
}

type createCandidateIn struct {
	SkillKey           string         `json:"skill_key" jsonschema:"Skill identifier."`
	SourceExecutionIDs []string       `json:"source_execution_ids" jsonschema:"Execution IDs used as source evidence."`
	ScenarioKey        string         `json:"scenario_key,omitempty" jsonschema:"Optional scenario key."`
	PayloadRef         string         `json:"payload_ref,omitempty" jsonschema:"Optional payload reference."`
	Summary            string         `json:"summary,omitempty" jsonschema:"Optional summary of what the skill does."`
	UsageNotes         string         `json:"usage_notes,omitempty" jsonschema:"Optional notes on how to use the skill."`
	Preconditions      map[string]any `json:"preconditions,omitempty" jsonschema:"Optional preconditions (JSON object)."`
	Postconditions     map[string]any `json:"postconditions,omitempty" jsonschema:"Optional postconditions (JSON object)."`
}

type evaluateIn struct {
	CandidateID string   `json:"candidate_id" jsonschema:"Skill candidate ID."`
	Passed      *bool    `json:"passed" jsonschema:"Whether evaluation passed."`
	Score       *float64 `json:"score,omitempty" jsonschema:"Optional evaluation score."`
	BenchmarkID string   `json:"benchmark_id,omitempty" jsonschema:"Optional benchmark ID."`
	Report      string   `json:"report,omitempty" jsonschema:"Optional evaluation report."`
}

type promoteIn struct {
	CandidateID        string `json:"candidate_id" jsonschema:"Skill candidate ID."`
	Stage              string `json:"stage,omitempty" jsonschema:"Release stage: canary or stable. Defaults to canary."`
	UpgradeOfReleaseID string `json:"upgrade_of_release_id,omitempty" jsonschema:"Optional release ID this release upgrades."`
	UpgradeReason      string `json:"upgrade_reason,omitempty" jsonschema:"Optional reason for the upgrade."`
	ChangeSummary      string `json:"change_summary,omitempty" jsonschema:"Optional summary of changes."`
}

type listCandidatesIn struct {
	Status   string `json:"status,omitempty" jsonschema:"Optional status filter."`
	SkillKey string `json:"skill_key,omitempty" jsonschema:"Optional skill key filter."`
	Limit    int    `json:"limit,omitempty" jsonschema:"Max items (1-500). Defaults to 50."`
	Offset   int    `json:"offset,omitempty" jsonschema:"Offset. Defaults to 0."`
}

type listReleasesIn struct {
	SkillKey   string `json:"skill_key,omitempty" jsonschema:"Optional skill key filter."`
	ActiveOnly bool   `json:"active_only,omitempty" jsonschema:"Only active releases."`
	Stage      string `json:"stage,omitempty" jsonschema:"Optional stage filter: canary or stable."`
	Limit      int    `json:"limit,omitempty" jsonschema:"Max items (1-500). Defaults to 50."`
	Offset     int    `json:"offset,omitempty" jsonschema:"Offset. Defaults to 0."`
}

type deleteReleaseIn struct {
	ReleaseID string `json:"release_id" jsonschema:"Release ID to delete."`
	Reason    string `json:"reason,omitempty" jsonschema:"Optional delete reason for audit trail."`
}

type deleteCandidateIn struct {
	CandidateID string `json:"candidate_id" jsonschema:"Candidate ID to delete."`
	Reason      string `json:"reason,omitempty" jsonschema:"Optional delete reason for audit trail."`
}

type rollbackIn struct {
	ReleaseID string `json:"release_id" jsonschema:"Release ID to rollback from."`
}

func (t *tools) registerSkills(srv *sdk.Server) {
	stages := enum("stage", "canary", "stable")
	add(t, srv, "create_skill_payload", "Store a skill payload (JSON object or array) and return a stable payload_ref to use in create_skill_candidate.",
		t.createPayload, anyJSON("payload", "object", "array"))
	add(t, srv, "get_skill_payload", "Get one skill payload by payload_ref.", t.getPayload, nonEmpty("payload_ref"))
	add(t, srv, "create_skill_candidate", "Create a reusable skill candidate from execution IDs.",
		t.createCandidate, nonEmpty("skill_key", "source_execution_ids"))
	add(t, srv, "evaluate_skill_candidate", "Record evaluation result for a skill candidate.", t.evaluateCandidate, nonEmpty("candidate_id"))
	add(t, srv, "promote_skill_candidate", "Promote a passing skill candidate to release.", t.promoteCandidate, nonEmpty("candidate_id"), stages)
	add(t, srv, "list_skill_candidates", "List skill candidates with optional filters.",
		t.listCandidates, bounds("limit", 1, 500, 50), bounds("offset", 0, 0, 0))
	add(t, srv, "list_skill_releases", "List skill releases with optional filters.",
		t.listReleases, stages, bounds("limit", 1, 500, 50), bounds("offset", 0, 0, 0))
	add(t, srv, "delete_skill_release", "Soft-delete one inactive skill release. Active releases must be rolled forward/rolled back first.",
		t.deleteRelease, nonEmpty("release_id"))
	add(t, srv, "delete_skill_candidate", "Soft-delete one skill candidate that no active release uses.", t.deleteCandidate, nonEmpty("candidate_id"))
	add(t, srv, "rollback_skill_release", "Rollback an active release to a previous known-good version.", t.rollbackRelease, nonEmpty("release_id"))
}

// skillsErr explains a Bay without the skills routes (a bare 404 Not Found).
func skillsErr(err error) error {
	var ae *shipyard.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "" {
		explained := *ae
		explained.Message = "this Bay does not serve the skills API (/v1/skills/... answered 404 Not Found)"
		return &explained
	}
	return err
}

func (t *tools) createPayload(ctx context.Context, in createPayloadIn) (*sdk.CallToolResult, error) {
	p := strings.TrimSpace(string(in.Payload))
	if p == "" || (p[0] != '{' && p[0] != '[') {
		return nil, badArg("field 'payload' must be a JSON object or array")
	}
	kind := in.Kind
	if kind == "" {
		kind = "generic"
	}
	res, err := t.bay.CreatePayload(ctx, in.Payload, kind)
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(fmt.Sprintf("Created skill payload %s\nkind: %s", res.PayloadRef, res.Kind)), nil
}

func (t *tools) getPayload(ctx context.Context, in getPayloadIn) (*sdk.CallToolResult, error) {
	if err := required("payload_ref", in.PayloadRef); err != nil {
		return nil, err
	}
	res, err := t.bay.GetPayload(ctx, in.PayloadRef)
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(fmt.Sprintf("payload_ref: %s\nkind: %s\npayload:\n%s", res.PayloadRef, res.Kind, t.cut(string(res.Payload)))), nil
}

func (t *tools) createCandidate(ctx context.Context, in createCandidateIn) (*sdk.CallToolResult, error) {
	if err := required("skill_key", in.SkillKey); err != nil {
		return nil, err
	}
	if len(in.SourceExecutionIDs) == 0 {
		return nil, badArg("field 'source_execution_ids' must be a non-empty array of strings")
	}
	for _, id := range in.SourceExecutionIDs {
		if strings.TrimSpace(id) == "" {
			return nil, badArg("field 'source_execution_ids' must be a non-empty array of strings")
		}
	}
	c, err := t.bay.CreateCandidate(ctx, shipyard.CandidateRequest{SkillKey: in.SkillKey, SourceExecutionIDs: in.SourceExecutionIDs,
		ScenarioKey: optional(in.ScenarioKey), PayloadRef: optional(in.PayloadRef), Summary: optional(in.Summary),
		UsageNotes: optional(in.UsageNotes), Preconditions: in.Preconditions, Postconditions: in.Postconditions})
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(fmt.Sprintf("Created skill candidate %s\nskill_key: %s\nstatus: %s\nsource_execution_ids: %s",
		c.ID, c.SkillKey, c.Status, strings.Join(c.SourceExecutionIDs, ", "))), nil
}

func (t *tools) evaluateCandidate(ctx context.Context, in evaluateIn) (*sdk.CallToolResult, error) {
	if err := required("candidate_id", in.CandidateID); err != nil {
		return nil, err
	}
	if in.Passed == nil {
		return nil, badArg("field 'passed' must be a boolean")
	}
	ev, err := t.bay.EvaluateCandidate(ctx, in.CandidateID, shipyard.EvaluationRequest{Passed: *in.Passed, Score: in.Score,
		BenchmarkID: optional(in.BenchmarkID), Report: optional(in.Report)})
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(fmt.Sprintf("Evaluation recorded: %s\ncandidate_id: %s\npassed: %s\nscore: %s",
		ev.ID, ev.CandidateID, pyBool(ev.Passed), pyStr(ev.Score))), nil
}

func checkStage(s string) error {
	if s != "" && s != "canary" && s != "stable" {
		return badArg("field 'stage' must be one of: canary, stable")
	}
	return nil
}

func (t *tools) promoteCandidate(ctx context.Context, in promoteIn) (*sdk.CallToolResult, error) {
	if err := required("candidate_id", in.CandidateID); err != nil {
		return nil, err
	}
	if err := checkStage(in.Stage); err != nil {
		return nil, err
	}
	stage := in.Stage
	if stage == "" {
		stage = "canary"
	}
	r, err := t.bay.PromoteCandidate(ctx, in.CandidateID, shipyard.PromoteRequest{Stage: stage,
		UpgradeOfReleaseID: optional(in.UpgradeOfReleaseID), UpgradeReason: optional(in.UpgradeReason), ChangeSummary: optional(in.ChangeSummary)})
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(fmt.Sprintf("Candidate promoted: %s\nrelease_id: %s\nskill_key: %s\nversion: %d\nstage: %s\nactive: %s\n"+
		"upgrade_of_release_id: %s\nupgrade_reason: %s",
		in.CandidateID, r.ID, r.SkillKey, r.Version, r.Stage, pyBool(r.IsActive), pyStr(r.UpgradeOfReleaseID), pyStr(r.UpgradeReason))), nil
}

func (t *tools) listCandidates(ctx context.Context, in listCandidatesIn) (*sdk.CallToolResult, error) {
	limit := in.Limit
	if limit == 0 {
		limit = 50
	}
	res, err := t.bay.ListCandidates(ctx, shipyard.ListFilter{Status: in.Status, SkillKey: in.SkillKey, Limit: limit, Offset: in.Offset})
	if err != nil {
		return nil, skillsErr(err)
	}
	if len(res.Items) == 0 {
		return text("No skill candidates found."), nil
	}
	lines := []string{fmt.Sprintf("Total: %d", res.Total)}
	for _, c := range res.Items {
		pass := "None"
		if c.LatestPass != nil {
			pass = pyBool(*c.LatestPass)
		}
		lines = append(lines, fmt.Sprintf("- %s | %s | status=%s | pass=%s", c.ID, c.SkillKey, c.Status, pass))
	}
	return text(t.cut(strings.Join(lines, "\n"))), nil
}

func (t *tools) listReleases(ctx context.Context, in listReleasesIn) (*sdk.CallToolResult, error) {
	if err := checkStage(in.Stage); err != nil {
		return nil, err
	}
	limit := in.Limit
	if limit == 0 {
		limit = 50
	}
	res, err := t.bay.ListReleases(ctx, shipyard.ListFilter{SkillKey: in.SkillKey, ActiveOnly: in.ActiveOnly, Stage: in.Stage,
		Limit: limit, Offset: in.Offset})
	if err != nil {
		return nil, skillsErr(err)
	}
	if len(res.Items) == 0 {
		return text("No skill releases found."), nil
	}
	lines := []string{fmt.Sprintf("Total: %d", res.Total)}
	for _, r := range res.Items {
		lines = append(lines, fmt.Sprintf("- %s | %s v%d | stage=%s | active=%s", r.ID, r.SkillKey, r.Version, r.Stage, pyBool(r.IsActive)))
	}
	return text(t.cut(strings.Join(lines, "\n"))), nil
}

func deletedText(what, id string, d *shipyard.Deleted) string {
	return fmt.Sprintf("Skill %s deleted: %s\ndeleted_at: %s\ndeleted_by: %s\ndelete_reason: %s",
		what, id, pyStr(d.DeletedAt), pyStr(d.DeletedBy), pyStr(d.DeleteReason))
}

func (t *tools) deleteRelease(ctx context.Context, in deleteReleaseIn) (*sdk.CallToolResult, error) {
	if err := required("release_id", in.ReleaseID); err != nil {
		return nil, err
	}
	d, err := t.bay.DeleteRelease(ctx, in.ReleaseID, optional(in.Reason))
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(deletedText("release", in.ReleaseID, d)), nil
}

func (t *tools) deleteCandidate(ctx context.Context, in deleteCandidateIn) (*sdk.CallToolResult, error) {
	if err := required("candidate_id", in.CandidateID); err != nil {
		return nil, err
	}
	d, err := t.bay.DeleteCandidate(ctx, in.CandidateID, optional(in.Reason))
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(deletedText("candidate", in.CandidateID, d)), nil
}

func (t *tools) rollbackRelease(ctx context.Context, in rollbackIn) (*sdk.CallToolResult, error) {
	if err := required("release_id", in.ReleaseID); err != nil {
		return nil, err
	}
	r, err := t.bay.RollbackRelease(ctx, in.ReleaseID)
	if err != nil {
		return nil, skillsErr(err)
	}
	return text(fmt.Sprintf("Rollback completed.\nnew_release_id: %s\nskill_key: %s\nversion: %d\nrollback_of: %s",
		r.ID, r.SkillKey, r.Version, pyStr(r.RollbackOf))), nil
}
