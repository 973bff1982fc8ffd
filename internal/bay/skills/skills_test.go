package skills_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/skills"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

var t0 = time.Date(2031, 7, 14, 9, 30, 0, 0, time.UTC)

func eachBackend(t *testing.T, fn func(t *testing.T, ctx context.Context, st *store.Store, s *skills.Service)) {
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			st := storetest.Open(t, d)
			fn(t, t.Context(), st, &skills.Service{Store: st})
		})
	}
}

func execution(t *testing.T, ctx context.Context, st *store.Store, owner, tags string, ok bool, ms int64, at time.Time) string {
	t.Helper()
	e := &model.Execution{ID: model.NewID("exec"), SandboxID: "sandbox-1", Owner: owner, SessionID: "sess-1",
		ExecType: "shell", Code: "true", Success: ok, ExecutionTimeMs: ms, CreatedAt: at}
	if tags != "" {
		e.Tags = &tags
	}
	if err := st.CreateExecution(ctx, e); err != nil {
		t.Fatal(err)
	}
	return e.ID
}

func wantCode(t *testing.T, what string, err error, code errs.Code, msg string) {
	t.Helper()
	e, ok := errs.As(err)
	if !ok || e.Code != code || (msg != "" && e.Message != msg) {
		t.Fatalf("%s: err = %v, want %s %q", what, err, code, msg)
	}
}

func TestServiceErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, ctx context.Context, st *store.Store, s *skills.Service) {
		mine := execution(t, ctx, st, "alice", "", true, 1, t0)
		theirs := execution(t, ctx, st, "bob", "", true, 1, t0)
		for _, tc := range []struct {
			name string
			in   skills.NewCandidate
			code errs.Code
			msg  string
		}{
			{"blank key", skills.NewCandidate{SkillKey: "  ", SourceExecutionIDs: []string{mine}}, errs.Validation, "skill_key must not be empty"},
			{"no executions", skills.NewCandidate{SkillKey: "k"}, errs.Validation, "source_execution_ids must not be empty"},
			{"another owner's execution", skills.NewCandidate{SkillKey: "k", SourceExecutionIDs: []string{mine, theirs}},
				errs.Validation, "Execution ID not found or not owned: " + theirs},
			{"unknown execution", skills.NewCandidate{SkillKey: "k", SourceExecutionIDs: []string{"exec-000000000000"}},
				errs.Validation, "Execution ID not found or not owned: exec-000000000000"},
		} {
			_, err := s.CreateCandidate(ctx, "alice", tc.in, t0)
			wantCode(t, tc.name, err, tc.code, tc.msg)
		}

		c, err := s.CreateCandidate(ctx, "alice", skills.NewCandidate{SkillKey: " csv ", SourceExecutionIDs: []string{mine},
			Preconditions: json.RawMessage(`{"a":1}`)}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if c.SkillKey != "csv" || c.Status != "draft" || *c.CreatedBy != "alice" {
			t.Fatalf("candidate: %+v", c)
		}
		_, err = s.GetCandidate(ctx, "bob", c.ID)
		wantCode(t, "another owner's candidate", err, errs.NotFound, "Skill candidate not found: "+c.ID)
		_, _, err = s.ListCandidates(ctx, store.CandidateFilter{Owner: "alice", Status: "bogus", Limit: 1})
		wantCode(t, "bad status", err, errs.Validation, "Invalid candidate status: bogus")
		_, _, err = s.ListReleases(ctx, store.ReleaseFilter{Owner: "alice", Stage: "prod", Limit: 1})
		wantCode(t, "bad stage", err, errs.Validation, "Invalid release stage: prod")

		_, err = s.Promote(ctx, "alice", c.ID, skills.Promotion{Stage: "canary"}, t0)
		wantCode(t, "promotion blocked", err, errs.Conflict, "Candidate has no passing evaluation; promotion is blocked")
		_, err = s.Promote(ctx, "alice", c.ID, skills.Promotion{Stage: "prod"}, t0)
		wantCode(t, "bad stage", err, errs.Validation, "Invalid release stage: prod")
		_, err = s.Evaluate(ctx, "bob", c.ID, skills.Evaluation{Passed: true}, t0)
		wantCode(t, "evaluate another owner's", err, errs.NotFound, "")
		if _, err := s.Evaluate(ctx, "alice", c.ID, skills.Evaluation{Passed: true}, t0); err != nil {
			t.Fatal(err)
		}
		r, err := s.Promote(ctx, "alice", c.ID, skills.Promotion{Stage: "stable"}, t0)
		if err != nil || r.Version != 1 || r.Stage != "stable" || *r.PromotedBy != "alice" {
			t.Fatalf("promote: %+v %v", r, err)
		}
		_, err = s.Rollback(ctx, "alice", r.ID, t0)
		wantCode(t, "no previous", err, errs.Conflict, "Rollback is unavailable: no previous release exists")
		_, err = s.DeleteCandidate(ctx, "alice", c.ID, nil, t0)
		wantCode(t, "candidate in use", err, errs.Conflict, "Candidate referenced by active release cannot be deleted")
		_, err = s.DeleteRelease(ctx, "bob", r.ID, nil, t0)
		wantCode(t, "another owner's release", err, errs.NotFound, "Skill release not found: "+r.ID)
		_, err = s.ReleaseHealth(ctx, "bob", r.ID, t0)
		wantCode(t, "another owner's health", err, errs.NotFound, "")

		b, err := s.CreatePayload(ctx, "alice", "generic", json.RawMessage(`[1,"a"]`), t0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPayload(ctx, "alice", skills.BlobRef(b))
		if err != nil || got.Payload != `[1,"a"]` {
			t.Fatalf("payload: %+v %v", got, err)
		}
		_, err = s.GetPayload(ctx, "alice", b.ID)
		wantCode(t, "no blob: prefix", err, errs.Validation, "Unsupported payload_ref: "+b.ID)
		_, err = s.GetPayload(ctx, "alice", "blob:")
		wantCode(t, "empty blob id", err, errs.Validation, "Invalid payload_ref: blob:")
		_, err = s.GetPayload(ctx, "bob", skills.BlobRef(b))
		wantCode(t, "another owner's payload", err, errs.NotFound, "Artifact blob not found: "+b.ID)
		_, err = s.CreatePayload(ctx, "alice", "generic", json.RawMessage(`3`), t0)
		wantCode(t, "scalar payload", err, errs.Validation, "")
	})
}

func TestReleaseHealth(t *testing.T) {
	eachBackend(t, func(t *testing.T, ctx context.Context, st *store.Store, s *skills.Service) {
		src := execution(t, ctx, st, "alice", "", true, 1, t0)
		release := func(at time.Time, report *string) *store.SkillRelease {
			c, err := s.CreateCandidate(ctx, "alice", skills.NewCandidate{SkillKey: "k", SourceExecutionIDs: []string{src}}, at)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Evaluate(ctx, "alice", c.ID, skills.Evaluation{Passed: true, Report: report}, at); err != nil {
				t.Fatal(err)
			}
			r, err := s.Promote(ctx, "alice", c.ID, skills.Promotion{Stage: "canary"}, at)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		report := `{"replay_success": 0.9, "samples": 7, "p95_duration": 12}`
		r1 := release(t0, &report)
		// v1 has no predecessor: baseline is perfect with no samples; no samples yet → neither healthy nor rollback.
		h, err := s.ReleaseHealth(ctx, "alice", r1.ID, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if h.Observed.Samples != 0 || h.Baseline != (skills.Metrics{SuccessRate: 1}) || h.Healthy || h.ShouldRollback ||
			h.WindowComplete || !h.WindowEnd.Equal(t0.Add(24*time.Hour)) || h.ErrorRateMultiplier != 1 {
			t.Fatalf("v1 empty: %+v", h)
		}
		for i := range 10 {
			execution(t, ctx, st, "alice", "release:"+r1.ID, i != 0, int64(100+i), t0.Add(time.Minute))
		}
		h, _ = s.ReleaseHealth(ctx, "alice", r1.ID, t0.Add(time.Hour))
		// 9/10 succeed against a baseline of 1.0: a drop of 0.1 > 0.03; errors where there were none.
		if h.Observed != (skills.Metrics{Samples: 10, SuccessRate: 0.9, ErrorRate: 0.1, P95DurationMs: 109}) ||
			!h.ShouldRollback || h.Healthy || h.ErrorRateMultiplier != 1_000_000.0 ||
			len(h.RollbackReasons) != 2 || h.RollbackReasons[0] != "success_rate_drop" {
			t.Fatalf("v1 with samples: %+v", h)
		}

		// v2: the baseline is v1's executions during v1's time.
		r2 := release(t0.Add(2*time.Hour), nil)
		for i := range 20 {
			execution(t, ctx, st, "alice", "release:"+r2.ID, i >= 2, 50, t0.Add(3*time.Hour))
		}
		execution(t, ctx, st, "alice", "release:"+r2.ID, false, 50, t0.Add(30*time.Hour)) // after its window
		h, _ = s.ReleaseHealth(ctx, "alice", r2.ID, t0.Add(40*time.Hour))
		if h.Observed.Samples != 20 || h.Baseline.Samples != 10 || math.Abs(h.SuccessDrop) > 1e-9 ||
			math.Abs(h.ErrorRateMultiplier-1) > 1e-9 || !h.Healthy || h.ShouldRollback || !h.WindowComplete {
			t.Fatalf("v2: %+v", h)
		}

		// v3 after v2 had no executions in its time → v2's last evaluation report (none → perfect).
		r3 := release(t0.Add(2*time.Hour+time.Second), nil)
		h, _ = s.ReleaseHealth(ctx, "alice", r3.ID, t0.Add(40*time.Hour))
		if h.Baseline != (skills.Metrics{SuccessRate: 1}) {
			t.Fatalf("v3 baseline: %+v", h.Baseline)
		}
	})
}

func TestBaselineFromReport(t *testing.T) {
	perfect := skills.Metrics{SuccessRate: 1}
	for _, tc := range []struct {
		report string
		want   skills.Metrics
	}{
		{`{"replay_success": 0.9, "samples": 7, "p95_duration": 12}`, skills.Metrics{Samples: 7, SuccessRate: 0.9, ErrorRate: 0.09999999999999998, P95DurationMs: 12}}, // as Python: 1.0 - 0.9
		{`{"replay_success": 2, "error_rate": -1}`, skills.Metrics{SuccessRate: 1}},
		{`{"error_rate": 0.25}`, skills.Metrics{SuccessRate: 1, ErrorRate: 0.25}},
		{`{}`, perfect},
		{`not json`, perfect},
		{`[1,2]`, perfect},
		{`null`, perfect},
		{`{"samples": "many"}`, perfect},
		{`{"samples": -3}`, perfect},
	} {
		if got := skills.BaselineFromReport(tc.report); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.report, got, tc.want)
		}
	}
}

func FuzzBaselineFromReport(f *testing.F) {
	for _, s := range []string{`{"replay_success": 0.5}`, `{"samples": 1e308, "p95_duration": -1e308}`, `[]`, `{"error_rate": "x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, report string) {
		m := skills.BaselineFromReport(report)
		if m.Samples < 0 || m.P95DurationMs < 0 || m.SuccessRate < 0 || m.SuccessRate > 1 || m.ErrorRate < 0 || m.ErrorRate > 1 {
			t.Fatalf("%q → out of range %+v", report, m)
		}
	})
}
