package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/skills"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Bounds of skills input (upstream has none; issue 8 wants every size bounded).
const (
	maxSkillKeyChars   = 256    // skill_key, scenario_key, kind, stage, benchmark_id, payload_ref, release ids
	maxSkillTextChars  = 65_536 // summary, usage_notes, report, reasons, change_summary
	maxSourceExecution = 1000   // source_execution_ids per candidate
)

// ---- views (field order is upstream's) ----

type skillCandidateJSON struct {
	ID                  string          `json:"id"`
	SkillKey            string          `json:"skill_key"`
	ScenarioKey         *string         `json:"scenario_key"`
	PayloadRef          *string         `json:"payload_ref"`
	SkillType           string          `json:"skill_type"`
	AutoReleaseEligible bool            `json:"auto_release_eligible"`
	AutoReleaseReason   *string         `json:"auto_release_reason"`
	Summary             *string         `json:"summary"`
	UsageNotes          *string         `json:"usage_notes"`
	Preconditions       json.RawMessage `json:"preconditions"`
	Postconditions      json.RawMessage `json:"postconditions"`
	SourceExecutionIDs  []string        `json:"source_execution_ids"`
	Status              string          `json:"status"`
	LatestScore         *pyFloat        `json:"latest_score"`
	LatestPass          *bool           `json:"latest_pass"`
	LastEvaluatedAt     *string         `json:"last_evaluated_at"`
	PromotionReleaseID  *string         `json:"promotion_release_id"`
	CreatedBy           *string         `json:"created_by"`
	CreatedAt           string          `json:"created_at"`
	UpdatedAt           string          `json:"updated_at"`
	IsDeleted           bool            `json:"is_deleted"`
	DeletedAt           *string         `json:"deleted_at"`
	DeletedBy           *string         `json:"deleted_by"`
	DeleteReason        *string         `json:"delete_reason"`
}

// jsonObject returns stored JSON text when it is an object, else null (upstream).
func jsonObject(s *string) json.RawMessage {
	if s == nil {
		return json.RawMessage("null")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(*s), &obj) != nil || obj == nil {
		return json.RawMessage("null")
	}
	return json.RawMessage(*s)
}

func floatPtr(f *float64) *pyFloat {
	if f == nil {
		return nil
	}
	v := pyFloat(*f)
	return &v
}

func skillCandidateView(c *store.SkillCandidate) skillCandidateJSON {
	return skillCandidateJSON{ID: c.ID, SkillKey: c.SkillKey, ScenarioKey: c.ScenarioKey, PayloadRef: c.PayloadRef,
		SkillType: c.SkillType, AutoReleaseEligible: c.AutoReleaseEligible, AutoReleaseReason: c.AutoReleaseReason,
		Summary: c.Summary, UsageNotes: c.UsageNotes, Preconditions: jsonObject(c.Preconditions),
		Postconditions: jsonObject(c.Postconditions), SourceExecutionIDs: c.SourceExecutionIDs, Status: c.Status,
		LatestScore: floatPtr(c.LatestScore), LatestPass: c.LatestPass, LastEvaluatedAt: timePtr(c.LastEvaluatedAt),
		PromotionReleaseID: c.PromotionReleaseID, CreatedBy: c.CreatedBy, CreatedAt: model.FormatTime(c.CreatedAt),
		UpdatedAt: model.FormatTime(c.UpdatedAt), IsDeleted: c.Deleted, DeletedAt: timePtr(c.DeletedAt),
		DeletedBy: c.DeletedBy, DeleteReason: c.DeleteReason}
}

type skillEvaluationJSON struct {
	ID          string   `json:"id"`
	CandidateID string   `json:"candidate_id"`
	BenchmarkID *string  `json:"benchmark_id"`
	Score       *pyFloat `json:"score"`
	Passed      bool     `json:"passed"`
	Report      *string  `json:"report"`
	EvaluatedBy *string  `json:"evaluated_by"`
	CreatedAt   string   `json:"created_at"`
}

type skillReleaseJSON struct {
	ID                 string  `json:"id"`
	SkillKey           string  `json:"skill_key"`
	CandidateID        string  `json:"candidate_id"`
	Version            int64   `json:"version"`
	Stage              string  `json:"stage"`
	IsActive           bool    `json:"is_active"`
	ReleaseMode        string  `json:"release_mode"`
	PromotedBy         *string `json:"promoted_by"`
	PromotedAt         string  `json:"promoted_at"`
	RollbackOf         *string `json:"rollback_of"`
	AutoPromotedFrom   *string `json:"auto_promoted_from"`
	HealthWindowEndAt  *string `json:"health_window_end_at"`
	UpgradeOfReleaseID *string `json:"upgrade_of_release_id"`
	UpgradeReason      *string `json:"upgrade_reason"`
	ChangeSummary      *string `json:"change_summary"`
	IsDeleted          bool    `json:"is_deleted"`
	DeletedAt          *string `json:"deleted_at"`
	DeletedBy          *string `json:"deleted_by"`
	DeleteReason       *string `json:"delete_reason"`
}

func skillReleaseView(r *store.SkillRelease) skillReleaseJSON {
	return skillReleaseJSON{ID: r.ID, SkillKey: r.SkillKey, CandidateID: r.CandidateID, Version: r.Version,
		Stage: r.Stage, IsActive: r.Active, ReleaseMode: r.Mode, PromotedBy: r.PromotedBy,
		PromotedAt: model.FormatTime(r.PromotedAt), RollbackOf: r.RollbackOf, AutoPromotedFrom: r.AutoPromotedFrom,
		HealthWindowEndAt: timePtr(r.HealthWindowEndAt), UpgradeOfReleaseID: r.UpgradeOfReleaseID,
		UpgradeReason: r.UpgradeReason, ChangeSummary: r.ChangeSummary, IsDeleted: r.Deleted,
		DeletedAt: timePtr(r.DeletedAt), DeletedBy: r.DeletedBy, DeleteReason: r.DeleteReason}
}

type skillDeletedJSON struct {
	ID           string  `json:"id"`
	DeletedAt    *string `json:"deleted_at"`
	DeletedBy    *string `json:"deleted_by"`
	DeleteReason *string `json:"delete_reason"`
}

type skillHealthJSON struct {
	ReleaseID           string              `json:"release_id"`
	SkillKey            string              `json:"skill_key"`
	Stage               string              `json:"stage"`
	WindowStartAt       string              `json:"window_start_at"`
	WindowEndAt         string              `json:"window_end_at"`
	WindowComplete      bool                `json:"window_complete"`
	Samples             int                 `json:"samples"`
	SuccessRate         pyFloat             `json:"success_rate"`
	ErrorRate           pyFloat             `json:"error_rate"`
	P95Duration         int64               `json:"p95_duration"`
	BaselineSuccessRate pyFloat             `json:"baseline_success_rate"`
	BaselineErrorRate   pyFloat             `json:"baseline_error_rate"`
	BaselineSamples     int                 `json:"baseline_samples"`
	SuccessDrop         pyFloat             `json:"success_drop"`
	ErrorRateMultiplier pyFloat             `json:"error_rate_multiplier"`
	Healthy             bool                `json:"healthy"`
	ShouldRollback      bool                `json:"should_rollback"`
	RollbackReasons     []string            `json:"rollback_reasons"`
	Thresholds          skillThresholdsJSON `json:"thresholds"`
}

type skillThresholdsJSON struct {
	SuccessDrop         pyFloat `json:"success_drop"`
	ErrorRateMultiplier pyFloat `json:"error_rate_multiplier"`
}

// ---- input helpers (FastAPI/pydantic-shaped 422s) ----

// boundedText reads a string field without NUL and at most max characters.
func (b *body) boundedText(name string, required bool, max int) *string {
	s := b.text(name, required)
	if s != nil && utf8.RuneCountInString(*s) > max {
		b.fail("string_too_long", name, fmt.Sprintf("String should have at most %d characters", max), *s,
			map[string]any{"max_length": max})
		return nil
	}
	return s
}

// number reads an optional finite float field.
func (b *body) number(name string) *float64 {
	v, ok := b.value(name)
	if !ok || v == nil {
		return nil
	}
	var (
		f   float64
		err error
	)
	switch x := v.(type) {
	case json.Number:
		f, err = strconv.ParseFloat(x.String(), 64)
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			b.fail("float_parsing", name, "Input should be a valid number, unable to parse string as a number", v, nil)
			return nil
		}
	default:
		b.fail("float_type", name, "Input should be a valid number", v, nil)
		return nil
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		b.fail("finite_number", name, "Input should be a finite number", v, nil)
		return nil
	}
	return &f
}

// requiredBool reads a bool field that must be present.
func (b *body) requiredBool(name string) bool {
	if v, ok := b.value(name); !ok || v == nil {
		b.fail("missing", name, "Field required", b.input, nil)
		return false
	}
	return b.boolean(name, false)
}

// object reads an optional JSON object field, re-encoded.
func (b *body) object(name string) json.RawMessage {
	v, ok := b.value(name)
	if !ok || v == nil {
		return nil
	}
	if _, ok := v.(map[string]any); !ok {
		b.fail("dict_type", name, "Input should be a valid dictionary", v, nil)
		return nil
	}
	return encode(v)
}

// idList reads a required list of ids (each bounded; at most max).
func (b *body) idList(name string, max int) []string {
	if v, ok := b.value(name); !ok || v == nil {
		b.fail("missing", name, "Field required", b.input, nil)
		return nil
	}
	n := len(b.errs)
	list := b.strList(name)
	if len(b.errs) > n {
		return nil
	}
	if len(list) > max {
		b.fail("too_long", name, fmt.Sprintf("List should have at most %d items after validation, not %d", max, len(list)),
			nil, map[string]any{"field_type": "List", "max_length": max, "actual_length": len(list)})
		return nil
	}
	return list
}

// skillQueryText reads an optional filter: printable and bounded, else 422.
func (q *query) skillQueryText(name string) string {
	s := q.v.Get(name)
	if s != "" && (!printable(s) || utf8.RuneCountInString(s) > maxSkillKeyChars) {
		q.errs = append(q.errs, fieldError{Type: "value_error", Loc: []any{"query", name},
			Msg: fmt.Sprintf("Value error, must be at most %d printable characters", maxSkillKeyChars), Input: s})
		return ""
	}
	return s
}

// skillPathID reads a path id; what no id can be is simply not found.
func skillPathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !validID(id) {
		return "", errs.New(errs.NotFound, "Resource not found")
	}
	return id, nil
}

// ---- handlers ----

func (a *API) createSkillPayload(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var payload json.RawMessage
	switch v, ok := b.value("payload"); {
	case !ok:
		b.fail("missing", "payload", "Field required", b.input, nil)
	default:
		switch v.(type) {
		case map[string]any, []any:
			payload = encode(v)
		default:
			b.errs = append(b.errs,
				fieldError{Type: "dict_type", Loc: []any{"body", "payload", "dict[str,any]"}, Msg: "Input should be a valid dictionary", Input: v},
				fieldError{Type: "list_type", Loc: []any{"body", "payload", "list[any]"}, Msg: "Input should be a valid list", Input: v})
		}
	}
	kind := "generic"
	if k := b.boundedText("kind", false, maxSkillKeyChars); k != nil {
		if *k == "" {
			b.fail("string_too_short", "kind", "String should have at least 1 character", *k, map[string]any{"min_length": 1})
		}
		kind = *k
	}
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	blob, err := a.Skills.CreatePayload(r.Context(), owner, kind, payload, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"payload_ref": skills.BlobRef(blob), "kind": blob.Kind})
}

func (a *API) getSkillPayload(w http.ResponseWriter, r *http.Request, owner string) {
	ref := r.PathValue("payload_ref")
	if !printable(ref) || utf8.RuneCountInString(ref) > maxSkillKeyChars {
		a.fail(w, r, errs.New(errs.NotFound, "Resource not found"))
		return
	}
	blob, err := a.Skills.GetPayload(r.Context(), owner, ref)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, skillPayloadJSON{ref, blob.Kind, json.RawMessage(blob.Payload)})
}

// skillPayloadJSON is GET /v1/skills/payloads/{payload_ref}'s answer.
type skillPayloadJSON struct {
	PayloadRef string          `json:"payload_ref"`
	Kind       string          `json:"kind"`
	Payload    json.RawMessage `json:"payload"`
}

func (a *API) createSkillCandidate(w http.ResponseWriter, r *http.Request, owner string) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in, err := readCandidate(b)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.Skills.CreateCandidate(r.Context(), owner, in, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, skillCandidateView(c))
}

// readCandidate decodes and bounds a create-candidate body.
func readCandidate(b *body) (skills.NewCandidate, error) {
	in := skills.NewCandidate{}
	if k := b.boundedText("skill_key", true, maxSkillKeyChars); k != nil {
		in.SkillKey = *k
	}
	in.SourceExecutionIDs = b.idList("source_execution_ids", maxSourceExecution)
	in.ScenarioKey = b.boundedText("scenario_key", false, maxSkillKeyChars)
	in.PayloadRef = b.boundedText("payload_ref", false, maxSkillKeyChars)
	in.Summary = b.boundedText("summary", false, maxSkillTextChars)
	in.UsageNotes = b.boundedText("usage_notes", false, maxSkillTextChars)
	in.Preconditions = b.object("preconditions")
	in.Postconditions = b.object("postconditions")
	if err := b.err(); err != nil {
		return in, err
	}
	for _, id := range in.SourceExecutionIDs {
		if !validID(id) || strings.Contains(id, ",") {
			// No execution has such an id: the answer upstream gives for a missing one
			// (quoted when it is not printable, so the message stays text).
			shown := id
			if !validID(id) {
				shown = strconv.Quote(id)
			}
			return in, errs.Newf(errs.Validation, "Execution ID not found or not owned: %s", shown)
		}
	}
	return in, nil
}

func (a *API) listSkillCandidates(w http.ResponseWriter, r *http.Request, owner string) {
	q := &query{v: r.URL.Query()}
	f := store.CandidateFilter{Owner: owner, Status: q.skillQueryText("status"), SkillKey: q.skillQueryText("skill_key")}
	f.Limit = int(q.integer("limit", 100, 1, 500))
	f.Offset = int(q.integer("offset", 0, 0, maxOffset))
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	list, total, err := a.Skills.ListCandidates(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	items := make([]skillCandidateJSON, 0, len(list))
	for _, c := range list {
		items = append(items, skillCandidateView(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "total": total})
}

func (a *API) getSkillCandidate(w http.ResponseWriter, r *http.Request, owner string) {
	id, err := skillPathID(r, "candidate_id")
	if err == nil {
		var c *store.SkillCandidate
		if c, err = a.Skills.GetCandidate(r.Context(), owner, id); err == nil {
			writeJSON(w, http.StatusOK, skillCandidateView(c))
			return
		}
	}
	a.fail(w, r, err)
}

// deleteReason reads the optional {"reason"} body of the delete routes.
func (a *API) deleteReason(r *http.Request) (*string, error) {
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, true)
	if err != nil {
		return nil, err
	}
	reason := b.boundedText("reason", false, maxSkillTextChars)
	return reason, b.err()
}

func (a *API) deleteSkillCandidate(w http.ResponseWriter, r *http.Request, owner string) {
	id, err := skillPathID(r, "candidate_id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	reason, err := a.deleteReason(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.Skills.DeleteCandidate(r.Context(), owner, id, reason, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, skillDeletedJSON{ID: c.ID, DeletedAt: timePtr(c.DeletedAt), DeletedBy: c.DeletedBy,
		DeleteReason: c.DeleteReason})
}

func (a *API) evaluateSkillCandidate(w http.ResponseWriter, r *http.Request, owner string) {
	id, err := skillPathID(r, "candidate_id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in := skills.Evaluation{Passed: b.requiredBool("passed"), Score: b.number("score"),
		BenchmarkID: b.boundedText("benchmark_id", false, maxSkillKeyChars),
		Report:      b.boundedText("report", false, maxSkillTextChars)}
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	e, err := a.Skills.Evaluate(r.Context(), owner, id, in, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, skillEvaluationJSON{ID: e.ID, CandidateID: e.CandidateID, BenchmarkID: e.BenchmarkID,
		Score: floatPtr(e.Score), Passed: e.Passed, Report: e.Report, EvaluatedBy: e.EvaluatedBy,
		CreatedAt: model.FormatTime(e.CreatedAt)})
}

func (a *API) promoteSkillCandidate(w http.ResponseWriter, r *http.Request, owner string) {
	id, err := skillPathID(r, "candidate_id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := readBody(r, a.Config.Server.MaxBodyBytes, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in := skills.Promotion{Stage: store.StageCanary,
		UpgradeOfReleaseID: b.boundedText("upgrade_of_release_id", false, maxSkillKeyChars),
		UpgradeReason:      b.boundedText("upgrade_reason", false, maxSkillTextChars),
		ChangeSummary:      b.boundedText("change_summary", false, maxSkillTextChars)}
	if s := b.boundedText("stage", false, maxSkillKeyChars); s != nil {
		in.Stage = *s
	}
	if err := b.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	rel, err := a.Skills.Promote(r.Context(), owner, id, in, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, skillReleaseView(rel))
}

func (a *API) listSkillReleases(w http.ResponseWriter, r *http.Request, owner string) {
	q := &query{v: r.URL.Query()}
	f := store.ReleaseFilter{Owner: owner, SkillKey: q.skillQueryText("skill_key"), Stage: q.skillQueryText("stage")}
	if act := q.boolean("active_only"); act != nil {
		f.ActiveOnly = *act
	}
	f.Limit = int(q.integer("limit", 100, 1, 500))
	f.Offset = int(q.integer("offset", 0, 0, maxOffset))
	if err := q.err(); err != nil {
		a.fail(w, r, err)
		return
	}
	list, total, err := a.Skills.ListReleases(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	items := make([]skillReleaseJSON, 0, len(list))
	for _, rel := range list {
		items = append(items, skillReleaseView(rel))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "total": total})
}

func (a *API) deleteSkillRelease(w http.ResponseWriter, r *http.Request, owner string) {
	id, err := skillPathID(r, "release_id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	reason, err := a.deleteReason(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rel, err := a.Skills.DeleteRelease(r.Context(), owner, id, reason, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, skillDeletedJSON{ID: rel.ID, DeletedAt: timePtr(rel.DeletedAt), DeletedBy: rel.DeletedBy,
		DeleteReason: rel.DeleteReason})
}

func (a *API) skillReleaseHealth(w http.ResponseWriter, r *http.Request, owner string) {
	id, err := skillPathID(r, "release_id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	h, err := a.Skills.ReleaseHealth(r.Context(), owner, id, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, skillHealthJSON{ReleaseID: h.Release.ID, SkillKey: h.Release.SkillKey,
		Stage: h.Release.Stage, WindowStartAt: model.FormatTime(h.WindowStart), WindowEndAt: model.FormatTime(h.WindowEnd),
		WindowComplete: h.WindowComplete, Samples: h.Observed.Samples, SuccessRate: pyFloat(h.Observed.SuccessRate),
		ErrorRate: pyFloat(h.Observed.ErrorRate), P95Duration: h.Observed.P95DurationMs,
		BaselineSuccessRate: pyFloat(h.Baseline.SuccessRate), BaselineErrorRate: pyFloat(h.Baseline.ErrorRate),
		BaselineSamples: h.Baseline.Samples, SuccessDrop: pyFloat(h.SuccessDrop),
		ErrorRateMultiplier: pyFloat(h.ErrorRateMultiplier), Healthy: h.Healthy, ShouldRollback: h.ShouldRollback,
		RollbackReasons: h.RollbackReasons, Thresholds: skillThresholdsJSON{
			SuccessDrop: skills.SuccessDropThreshold, ErrorRateMultiplier: skills.ErrorRateMultiplierThreshold}})
}

func (a *API) rollbackSkillRelease(w http.ResponseWriter, r *http.Request, owner string) {
	id, err := skillPathID(r, "release_id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rel, err := a.Skills.Rollback(r.Context(), owner, id, a.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, skillReleaseView(rel))
}
