package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func newCandidate(owner, key string) *store.SkillCandidate {
	return &store.SkillCandidate{ID: model.NewID("sc"), Owner: owner, SkillKey: key, SkillType: "code",
		SourceExecutionIDs: []string{"exec-1"}, Status: store.CandidateDraft, CreatedBy: ptr(owner),
		CreatedAt: t0, UpdatedAt: t0}
}

func storeCandidate(t *testing.T, e *env, owner, key string) *store.SkillCandidate {
	t.Helper()
	c := newCandidate(owner, key)
	must(t, "CreateSkillCandidate", e.s.CreateSkillCandidate(e.ctx, c))
	return c
}

func evaluate(t *testing.T, e *env, c *store.SkillCandidate, passed bool, at time.Time) *store.SkillCandidate {
	t.Helper()
	got, err := e.s.EvaluateSkillCandidate(e.ctx, &store.SkillEvaluation{ID: model.NewID("se"), Owner: c.Owner,
		CandidateID: c.ID, Score: ptr(0.5), Passed: passed, CreatedAt: at})
	must(t, "EvaluateSkillCandidate", err)
	return got
}

func promote(e *env, c *store.SkillCandidate, at time.Time) (*store.SkillRelease, error) {
	return e.s.PromoteSkillCandidate(e.ctx, c.Owner, c.ID, model.NewID("sr"),
		store.ReleaseSpec{Stage: store.StageCanary, Mode: store.ReleaseManual, PromotedBy: ptr(c.Owner)}, at)
}

// passedCandidate stores a candidate of key with a passing evaluation.
func passedCandidate(t *testing.T, e *env, owner, key string) *store.SkillCandidate {
	t.Helper()
	c := storeCandidate(t, e, owner, key)
	return evaluate(t, e, c, true, t0)
}

func activeVersions(t *testing.T, e *env, owner, key string) (active []int64, all []int64) {
	t.Helper()
	list, _, err := e.s.ListSkillReleases(e.ctx, store.ReleaseFilter{Owner: owner, SkillKey: key, Limit: 1000})
	must(t, "ListSkillReleases", err)
	for _, r := range list {
		all = append(all, r.Version)
		if r.Active {
			active = append(active, r.Version)
		}
	}
	return active, all
}

func TestSkillCandidates(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		a1 := storeCandidate(t, e, "alice", "csv")
		a2 := storeCandidate(t, e, "alice", "pdf")
		storeCandidate(t, e, "bob", "csv")
		evaluate(t, e, a2, false, t0.Add(time.Second))

		got, err := e.s.GetSkillCandidate(e.ctx, "alice", a1.ID)
		must(t, "get", err)
		mustEqual(t, "round trip", got, a1)

		for _, tc := range []struct {
			name  string
			f     store.CandidateFilter
			want  []string
			total int
		}{
			{"all of alice, newest first", store.CandidateFilter{Owner: "alice", Limit: 10}, []string{a2.ID, a1.ID}, 2},
			{"by skill key", store.CandidateFilter{Owner: "alice", SkillKey: "csv", Limit: 10}, []string{a1.ID}, 1},
			{"by status", store.CandidateFilter{Owner: "alice", Status: store.CandidateRejected, Limit: 10}, []string{a2.ID}, 1},
			{"limit", store.CandidateFilter{Owner: "alice", Limit: 1}, []string{a2.ID}, 2},
			{"offset", store.CandidateFilter{Owner: "alice", Limit: 10, Offset: 1}, []string{a1.ID}, 2},
			{"other owner", store.CandidateFilter{Owner: "carol", Limit: 10}, nil, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				list, total, err := e.s.ListSkillCandidates(e.ctx, tc.f)
				must(t, "list", err)
				var ids []string
				for _, c := range list {
					ids = append(ids, c.ID)
				}
				mustEqual(t, "ids", ids, tc.want)
				mustEqual(t, "total", total, tc.total)
			})
		}

		_, err = e.s.GetSkillCandidate(e.ctx, "bob", a1.ID)
		mustErr(t, "another owner's candidate", err, store.ErrNotFound)

		// Evaluation: rejected when failed, evaluating when passed; latest values kept.
		c := evaluate(t, e, a1, true, t0.Add(2*time.Second))
		mustEqual(t, "status", c.Status, store.CandidateEvaluating)
		mustEqual(t, "latest_pass", c.LatestPass, ptr(true))
		mustEqual(t, "last_evaluated_at", c.LastEvaluatedAt, ptr(t0.Add(2*time.Second)))
		ev, err := e.s.LatestSkillEvaluation(e.ctx, "alice", a1.ID)
		must(t, "latest evaluation", err)
		mustEqual(t, "evaluation passed", ev.Passed, true)
		_, err = e.s.EvaluateSkillCandidate(e.ctx, &store.SkillEvaluation{ID: model.NewID("se"), Owner: "bob",
			CandidateID: a1.ID, Passed: true, CreatedAt: t0})
		mustErr(t, "evaluate another owner's", err, store.ErrNotFound)

		// Soft delete: gone from get and list, row kept with who and why.
		d, err := e.s.DeleteSkillCandidate(e.ctx, "alice", a2.ID, ptr("alice"), ptr("obsolete"), t0.Add(time.Hour))
		must(t, "delete", err)
		mustEqual(t, "deleted", d.Deleted, true)
		mustEqual(t, "deleted_at", d.DeletedAt, ptr(t0.Add(time.Hour)))
		mustEqual(t, "reason", d.DeleteReason, ptr("obsolete"))
		_, err = e.s.GetSkillCandidate(e.ctx, "alice", a2.ID)
		mustErr(t, "get deleted", err, store.ErrNotFound)
		_, err = e.s.DeleteSkillCandidate(e.ctx, "alice", a2.ID, nil, nil, t0)
		mustErr(t, "delete twice", err, store.ErrNotFound)
		_, total, _ := e.s.ListSkillCandidates(e.ctx, store.CandidateFilter{Owner: "alice", Limit: 10})
		mustEqual(t, "total after delete", total, 1)
		_, err = e.s.EvaluateSkillCandidate(e.ctx, &store.SkillEvaluation{ID: model.NewID("se"), Owner: "alice",
			CandidateID: a2.ID, Passed: true, CreatedAt: t0})
		mustErr(t, "evaluate deleted", err, store.ErrNotFound)
	})
}

func TestSkillPromotion(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		for _, tc := range []struct {
			name   string
			setup  func(t *testing.T) *store.SkillCandidate
			want   error
			active int64 // the one active version of the key afterwards (0: none)
		}{
			{"never evaluated is blocked", func(t *testing.T) *store.SkillCandidate {
				return storeCandidate(t, e, "alice", "k1")
			}, store.ErrPromotionBlocked, 0},
			{"failed evaluation is blocked", func(t *testing.T) *store.SkillCandidate {
				return evaluate(t, e, storeCandidate(t, e, "alice", "k2"), false, t0)
			}, store.ErrPromotionBlocked, 0},
			{"passed then failed is blocked", func(t *testing.T) *store.SkillCandidate {
				c := evaluate(t, e, storeCandidate(t, e, "alice", "k3"), true, t0)
				return evaluate(t, e, c, false, t0.Add(time.Second))
			}, store.ErrPromotionBlocked, 0},
			{"deleted candidate is not found", func(t *testing.T) *store.SkillCandidate {
				c := passedCandidate(t, e, "alice", "k4")
				_, err := e.s.DeleteSkillCandidate(e.ctx, "alice", c.ID, nil, nil, t0)
				must(t, "delete", err)
				return c
			}, store.ErrNotFound, 0},
			{"first passing is version 1", func(t *testing.T) *store.SkillCandidate {
				return passedCandidate(t, e, "alice", "k5")
			}, nil, 1},
			{"second of a key is version 2 and the only active", func(t *testing.T) *store.SkillCandidate {
				_, err := promote(e, passedCandidate(t, e, "alice", "k6"), t0)
				must(t, "first", err)
				return passedCandidate(t, e, "alice", "k6")
			}, nil, 2},
			{"versions count deleted releases", func(t *testing.T) *store.SkillCandidate {
				r, err := promote(e, passedCandidate(t, e, "alice", "k7"), t0)
				must(t, "first", err)
				_, err = e.s.DeleteSkillRelease(e.ctx, "alice", r.ID, nil, nil, t0)
				must(t, "delete", err)
				return passedCandidate(t, e, "alice", "k7")
			}, nil, 2},
			{"versions are per owner", func(t *testing.T) *store.SkillCandidate {
				_, err := promote(e, passedCandidate(t, e, "bob", "k8"), t0)
				must(t, "bob's", err)
				return passedCandidate(t, e, "alice", "k8")
			}, nil, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := tc.setup(t)
				r, err := promote(e, c, t0.Add(time.Minute))
				mustErr(t, "promote", err, tc.want)
				active, _ := activeVersions(t, e, "alice", c.SkillKey)
				if tc.active == 0 {
					mustEqual(t, "active", len(active), 0)
					return
				}
				mustEqual(t, "active", active, []int64{tc.active})
				mustEqual(t, "version", r.Version, tc.active)
				got, err := e.s.GetSkillCandidate(e.ctx, "alice", c.ID)
				must(t, "candidate", err)
				mustEqual(t, "status", got.Status, store.CandidatePromoted)
				mustEqual(t, "promotion_release_id", got.PromotionReleaseID, &r.ID)
			})
		}
	})
}

func TestSkillRollbackAndDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		c1, c2 := passedCandidate(t, e, "alice", "k"), passedCandidate(t, e, "alice", "k")
		r1, err := promote(e, c1, t0)
		must(t, "r1", err)
		_, err = e.s.RollbackSkillRelease(e.ctx, "alice", r1.ID, model.NewID("sr"), nil, t0)
		mustErr(t, "rollback of the first", err, store.ErrNoPreviousRelease)
		_, err = e.s.DeleteSkillCandidate(e.ctx, "alice", c1.ID, nil, nil, t0)
		mustErr(t, "delete a candidate an active release uses", err, store.ErrCandidateInUse)

		r2, err := e.s.PromoteSkillCandidate(e.ctx, "alice", c2.ID, model.NewID("sr"),
			store.ReleaseSpec{Stage: store.StageStable, Mode: store.ReleaseManual}, t0.Add(time.Minute))
		must(t, "r2", err)
		_, err = e.s.RollbackSkillRelease(e.ctx, "bob", r2.ID, model.NewID("sr"), nil, t0)
		mustErr(t, "another owner's release", err, store.ErrNotFound)

		r3, err := e.s.RollbackSkillRelease(e.ctx, "alice", r2.ID, model.NewID("sr"), ptr("alice"), t0.Add(2*time.Minute))
		must(t, "rollback", err)
		mustEqual(t, "rollback release", []any{r3.Version, r3.CandidateID, r3.Stage, r3.RollbackOf, r3.Active},
			[]any{int64(3), c1.ID, store.StageCanary, &r2.ID, true})
		active, all := activeVersions(t, e, "alice", "k")
		mustEqual(t, "active", active, []int64{3})
		mustEqual(t, "newest promotion first", all, []int64{3, 2, 1})
		got, _ := e.s.GetSkillCandidate(e.ctx, "alice", c2.ID)
		mustEqual(t, "rolled back candidate", got.Status, store.CandidateRolledBack)

		// Deleting a release deactivates it and clears pointers to it.
		d, err := e.s.DeleteSkillRelease(e.ctx, "alice", r2.ID, ptr("alice"), ptr("bad"), t0.Add(3*time.Minute))
		must(t, "delete r2", err)
		mustEqual(t, "deleted", []any{d.Deleted, d.Active, d.DeleteReason}, []any{true, false, ptr("bad")})
		got, _ = e.s.GetSkillCandidate(e.ctx, "alice", c2.ID)
		mustEqual(t, "pointer cleared", got.PromotionReleaseID, (*string)(nil))
		_, err = e.s.GetSkillRelease(e.ctx, "alice", r2.ID)
		mustErr(t, "get deleted", err, store.ErrNotFound)
		_, err = e.s.DeleteSkillRelease(e.ctx, "alice", r2.ID, nil, nil, t0)
		mustErr(t, "delete twice", err, store.ErrNotFound)
		_, err = e.s.DeleteSkillRelease(e.ctx, "bob", r3.ID, nil, nil, t0)
		mustErr(t, "delete another owner's", err, store.ErrNotFound)

		// Rollback skips deleted releases: r3's previous alive is r1.
		r4, err := e.s.RollbackSkillRelease(e.ctx, "alice", r3.ID, model.NewID("sr"), nil, t0.Add(4*time.Minute))
		must(t, "rollback over a deleted one", err)
		mustEqual(t, "rolled back to", []any{r4.Version, r4.CandidateID}, []any{int64(4), r1.CandidateID})
		// Baseline lookups (health) do see deleted ones.
		prev, err := e.s.PreviousSkillRelease(e.ctx, r3, true)
		must(t, "previous incl. deleted", err)
		mustEqual(t, "previous", prev.ID, r2.ID)

		// Deleting the active release leaves the key without an active one;
		// then its candidate can be deleted.
		_, err = e.s.DeleteSkillRelease(e.ctx, "alice", r4.ID, nil, nil, t0)
		must(t, "delete r4", err)
		_, err = e.s.DeleteSkillRelease(e.ctx, "alice", r1.ID, nil, nil, t0)
		must(t, "delete r1", err)
		active, _ = activeVersions(t, e, "alice", "k")
		mustEqual(t, "no active", len(active), 0)
		_, err = e.s.DeleteSkillCandidate(e.ctx, "alice", c1.ID, nil, nil, t0)
		must(t, "delete c1 once unused", err)

		list, total, err := e.s.ListSkillReleases(e.ctx, store.ReleaseFilter{Owner: "alice", Stage: store.StageCanary, Limit: 10})
		must(t, "list by stage", err)
		mustEqual(t, "canary releases", []any{len(list), total}, []any{1, 1})
	})
}

// TestSkillConcurrentPromotions: promotions of one skill key from several
// goroutines and two store replicas at once leave exactly one active release
// and distinct versions (the database guard, not a lock in this process).
func TestSkillConcurrentPromotions(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		replica := e.replica(t)
		const n = 12
		cands := make([]*store.SkillCandidate, n)
		for i := range cands {
			cands[i] = passedCandidate(t, e, "alice", "race")
		}
		var failed atomic.Int32
		parallel(n, func(i int) {
			s := e.s
			if i%2 == 1 {
				s = replica
			}
			if _, err := s.PromoteSkillCandidate(e.ctx, "alice", cands[i].ID, model.NewID("sr"),
				store.ReleaseSpec{Stage: store.StageCanary, Mode: store.ReleaseManual}, t0); err != nil {
				t.Errorf("promote %d: %v", i, err)
				failed.Add(1)
			}
		})
		active, all := activeVersions(t, e, "alice", "race")
		mustEqual(t, "active releases", len(active), 1)
		seen := map[int64]bool{}
		for _, v := range all {
			if seen[v] {
				t.Fatalf("version %d twice: %v", v, all)
			}
			seen[v] = true
		}
		mustEqual(t, "releases", len(all), n-int(failed.Load()))
	})
}

func TestSkillReleaseMetrics(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		sb := createSandbox(t, e, "alice")
		other := createSandbox(t, e, "bob")
		add := func(sb *model.Sandbox, tags string, ok bool, ms int64, at time.Time) string {
			x := &model.Execution{ID: model.NewID("exec"), SandboxID: sb.ID, Owner: sb.Owner, SessionID: "sess-1",
				ExecType: "python", Code: "1", Success: ok, ExecutionTimeMs: ms, CreatedAt: at}
			if tags != "" {
				x.Tags = &tags
			}
			must(t, "CreateExecution", e.s.CreateExecution(e.ctx, x))
			return x.ID
		}
		rel := "sr-0123456789ab"
		for i := range 20 {
			add(sb, "csv,release:"+rel, i%5 != 0, int64(i*10), t0.Add(time.Duration(i)*time.Second)) // 16 of 20 succeed
		}
		add(sb, "RELEASE:"+rel, true, 5, t0)                   // case-insensitive match
		add(sb, "release:sr-other", true, 1, t0)               // another release
		add(sb, "release:"+rel, true, 1, t0.Add(-time.Second)) // before the window
		add(sb, "release:"+rel, true, 1, t0.Add(time.Hour))    // after the window
		add(other, "release:"+rel, true, 1, t0)                // another owner
		for _, tc := range []struct {
			name     string
			from, to time.Time
			want     store.ReleaseMetrics
		}{
			{"window", t0, t0.Add(time.Minute), store.ReleaseMetrics{Samples: 21, Successes: 17, P95DurationMs: 180}},
			{"first second", t0, t0, store.ReleaseMetrics{Samples: 2, Successes: 1, P95DurationMs: 5}},
			{"empty", t0.Add(2 * time.Hour), t0.Add(3 * time.Hour), store.ReleaseMetrics{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m, err := e.s.SkillReleaseMetrics(e.ctx, "alice", rel, tc.from, tc.to)
				must(t, "metrics", err)
				mustEqual(t, "metrics", m, tc.want)
			})
		}

		mine, theirs := add(sb, "", true, 1, t0), add(other, "", true, 1, t0)
		for _, tc := range []struct {
			ids  []string
			want string
		}{
			{[]string{mine}, ""},
			{[]string{mine, theirs}, theirs},
			{[]string{"exec-nope", mine}, "exec-nope"},
			{nil, ""},
		} {
			got, err := e.s.FirstUnownedExecution(e.ctx, "alice", tc.ids)
			must(t, "FirstUnownedExecution", err)
			mustEqual(t, fmt.Sprint(tc.ids), got, tc.want)
		}

		b := &store.SkillBlob{ID: model.NewID("blob"), Owner: "alice", Kind: "generic", Payload: `{"a":1}`, CreatedAt: t0}
		must(t, "blob", e.s.CreateSkillBlob(e.ctx, b))
		got, err := e.s.GetSkillBlob(e.ctx, "alice", b.ID)
		must(t, "get blob", err)
		mustEqual(t, "blob", got, b)
		_, err = e.s.GetSkillBlob(e.ctx, "bob", b.ID)
		mustErr(t, "another owner's blob", err, store.ErrNotFound)
	})
}
