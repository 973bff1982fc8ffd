package store_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func quotaErr(t *testing.T, err error) *store.QuotaError {
	t.Helper()
	qe, ok := errors.AsType[*store.QuotaError](err)
	if !ok {
		t.Fatalf("got %v, want a *store.QuotaError", err)
	}
	return qe
}

func TestEffectiveLimits(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.s.SetQuotas(store.QuotaConfig{
			Defaults: store.Limits{Sandboxes: 10, RunningSessions: 5, Cargos: 3, CargoMB: 4096},
			Owners:   map[string]store.Override{"big": {Sandboxes: ptr[int64](100), CargoMB: ptr[int64](0)}},
		})
		must(t, "SetOwnerQuota big", e.s.SetOwnerQuota(e.ctx, "big", store.Override{Sandboxes: ptr[int64](50), Cargos: ptr[int64](7)}, t0))
		must(t, "SetOwnerQuota small", e.s.SetOwnerQuota(e.ctx, "small", store.Override{RunningSessions: ptr[int64](1)}, t0))
		cases := []struct {
			owner string
			want  store.Limits
		}{
			{"anyone", store.Limits{10, 5, 3, 4096}},
			{"big", store.Limits{50, 5, 7, 0}}, // stored wins over configured owner, which wins over defaults
			{"small", store.Limits{10, 1, 3, 4096}},
		}
		for _, c := range cases {
			got, err := e.s.EffectiveLimits(e.ctx, c.owner)
			must(t, "EffectiveLimits", err)
			mustEqual(t, "limits of "+c.owner, got, c.want)
		}
		// Replacing and deleting an override.
		must(t, "SetOwnerQuota small again", e.s.SetOwnerQuota(e.ctx, "small", store.Override{Cargos: ptr[int64](0)}, t0))
		got, err := e.s.OwnerQuota(e.ctx, "small")
		must(t, "OwnerQuota", err)
		mustEqual(t, "replaced override", got, store.Override{Cargos: ptr[int64](0)})
		must(t, "DeleteOwnerQuota", e.s.DeleteOwnerQuota(e.ctx, "small"))
		lim, err := e.s.EffectiveLimits(e.ctx, "small")
		must(t, "EffectiveLimits", err)
		mustEqual(t, "after delete", lim, store.Limits{10, 5, 3, 4096})
	})
}

func TestQuotaEnforcement(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.s.SetQuotas(store.QuotaConfig{Defaults: store.Limits{Sandboxes: 2, RunningSessions: 1, Cargos: 1, CargoMB: 3000}})
		// Sandboxes: two, then refused; a deleted one frees its place.
		a := createSandbox(t, e, "alice")
		createSandbox(t, e, "alice")
		sb := newSandbox("alice")
		c := newCargo("alice", true, sb.ID)
		sb.CargoID = c.ID
		qe := quotaErr(t, e.s.CreateSandbox(e.ctx, sb, c))
		mustEqual(t, "sandbox quota error", *qe, store.QuotaError{Owner: "alice", Quota: store.QuotaSandboxes, Limit: 2, Used: 2, Requested: 1})
		if _, err := e.s.GetSandbox(e.ctx, "alice", sb.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused sandbox was stored: %v", err)
		}
		if _, err := e.s.CargoByID(e.ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused sandbox's cargo was stored: %v", err)
		}
		createSandbox(t, e, "bob") // per owner
		_, err := e.s.SoftDeleteSandbox(e.ctx, a.ID, t0)
		must(t, "SoftDeleteSandbox", err)
		b := createSandbox(t, e, "alice")

		// Cargo megabytes: alice has two live managed cargos of 1024 MB; the
		// deleted sandbox's cargo no longer counts.
		u, err := e.s.Usage(e.ctx, "alice")
		must(t, "Usage", err)
		mustEqual(t, "usage", u, store.Limits{Sandboxes: 2, RunningSessions: 0, Cargos: 0, CargoMB: 2048})
		big := newCargo("alice", false, "")
		big.SizeLimitMB = 1000
		qe = quotaErr(t, e.s.CreateCargo(e.ctx, big))
		mustEqual(t, "cargo_mb error", *qe, store.QuotaError{Owner: "alice", Quota: store.QuotaCargoMB, Limit: 3000, Used: 2048, Requested: 1000})
		ext := newCargo("alice", false, "")
		ext.SizeLimitMB = 100
		must(t, "CreateCargo within quota", e.s.CreateCargo(e.ctx, ext))
		small := newCargo("alice", false, "")
		small.SizeLimitMB = 1
		qe = quotaErr(t, e.s.CreateCargo(e.ctx, small))
		mustEqual(t, "cargos error", qe.Quota, store.QuotaCargos)

		// Running sessions: one live session; a stopped/failed one does not count.
		must(t, "CreateSession", e.s.CreateSession(e.ctx, newSession(b.ID, model.SessionPending)))
		other := createSandboxWithout(t, e, "carol")
		qe = quotaErr(t, e.s.CreateSession(e.ctx, newSession(mustLive(t, e, "alice", b.ID), model.SessionStarting)))
		mustEqual(t, "sessions error", qe.Quota, store.QuotaRunningSessions)
		must(t, "CreateSession of another owner", e.s.CreateSession(e.ctx, newSession(other.ID, model.SessionPending)))

		// An override through the store lifts a limit at once.
		must(t, "SetOwnerQuota", e.s.SetOwnerQuota(e.ctx, "alice", store.Override{Sandboxes: ptr[int64](0), CargoMB: ptr[int64](0)}, t0))
		createSandbox(t, e, "alice")
	})
}

func createSandboxWithout(t *testing.T, e *env, owner string) *model.Sandbox {
	t.Helper()
	return createSandbox(t, e, owner)
}

func mustLive(t *testing.T, e *env, owner, id string) string {
	t.Helper()
	if _, err := e.s.GetSandbox(e.ctx, owner, id); err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	return id
}

// Creates racing on two replicas of one database never pass a quota.
func TestQuotaAcrossReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		other := e.replica(t)
		cfg := store.QuotaConfig{Defaults: store.Limits{Sandboxes: 3}}
		e.s.SetQuotas(cfg)
		other.SetQuotas(cfg)
		stores := []*store.Store{e.s, other}
		var ok, refused atomic.Int32
		parallel(12, func(i int) {
			sb := newSandbox("alice")
			c := newCargo("alice", true, sb.ID)
			sb.CargoID = c.ID
			err := stores[i%2].CreateSandbox(e.ctx, sb, c)
			if _, over := errors.AsType[*store.QuotaError](err); over {
				refused.Add(1)
			} else if err != nil {
				t.Errorf("CreateSandbox %d: %v", i, err)
			} else {
				ok.Add(1)
			}
		})
		if ok.Load() != 3 || refused.Load() != 9 {
			t.Fatalf("12 racing creates with max_sandboxes 3: %d stored, %d refused", ok.Load(), refused.Load())
		}
		u, err := other.Usage(e.ctx, "alice")
		must(t, "Usage", err)
		mustEqual(t, "sandboxes stored", u.Sandboxes, int64(3))
	})
}

// A warm sandbox is not handed to an owner at its quota (the normal create
// path then answers), and the pool's own owner has none.
func TestClaimWarmRespectsQuota(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.s.SetQuotas(store.QuotaConfig{Defaults: store.Limits{Sandboxes: 1}})
		warm := func() *model.Sandbox {
			return createSandbox(t, e, model.WarmOwner, func(sb *model.Sandbox) {
				sb.Warm, sb.WarmState = true, model.WarmAvailable
			})
		}
		warm()
		warm() // the pool is not limited
		got, err := e.s.ClaimWarm(e.ctx, "python-default", "alice", nil, nil, t0)
		must(t, "ClaimWarm", err)
		if got == nil || got.Owner != "alice" {
			t.Fatalf("first claim: %s", show(got))
		}
		got, err = e.s.ClaimWarm(e.ctx, "python-default", "alice", nil, nil, t0)
		must(t, "ClaimWarm over quota", err)
		if got != nil {
			t.Fatalf("claim past max_sandboxes handed out %s", got.ID)
		}
	})
}

// Regression (found by the PostgreSQL corpus): concurrent sets of one owner's
// override conflicted (delete + insert under READ COMMITTED) and answered 500.
func TestSetOwnerQuotaConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		stores := []*store.Store{e.s, e.replica(t)}
		parallel(16, func(i int) {
			v := int64(i)
			if err := stores[i%2].SetOwnerQuota(e.ctx, "alice", store.Override{Sandboxes: &v}, t0); err != nil {
				t.Errorf("SetOwnerQuota %d: %v", i, err)
			}
		})
		o, err := e.s.OwnerQuota(e.ctx, "alice")
		must(t, "OwnerQuota", err)
		if o.Sandboxes == nil || *o.Sandboxes < 0 || *o.Sandboxes > 15 || o.Cargos != nil {
			t.Fatalf("override after concurrent sets: %s", show(o))
		}
	})
}

// A failed session restarted in place counts like a new one (else an owner
// could hold more containers than max_running_sessions by letting sessions
// fail and restarting them).
func TestRestartInPlaceRespectsQuota(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.s.SetQuotas(store.QuotaConfig{Defaults: store.Limits{RunningSessions: 1}})
		a, b := createSandbox(t, e, "alice"), createSandbox(t, e, "alice")
		failed := newSession(b.ID, model.SessionFailed)
		must(t, "CreateSession failed", e.s.CreateSession(e.ctx, failed)) // not live: not counted
		must(t, "CreateSession live", e.s.CreateSession(e.ctx, newSession(a.ID, model.SessionRunning)))
		restart := *failed
		restart.ObservedState = model.SessionStarting
		qe := quotaErr(t, e.s.ClaimSessionStart(e.ctx, &restart, "r1", t0.Add(time.Minute)))
		mustEqual(t, "restart quota", qe.Quota, store.QuotaRunningSessions)
		got, err := e.s.GetSession(e.ctx, failed.ID)
		must(t, "GetSession", err)
		mustEqual(t, "refused row unchanged", got.ObservedState, model.SessionFailed)
		// A live row moving on (pending → starting) is not counted twice.
		must(t, "lift", e.s.SetOwnerQuota(e.ctx, "alice", store.Override{RunningSessions: ptr[int64](2)}, t0))
		must(t, "restart within quota", e.s.ClaimSessionStart(e.ctx, &restart, "r1", t0.Add(time.Minute)))
		again := restart
		must(t, "claim of a live row at the limit", e.s.ClaimSessionStart(e.ctx, &again, "r1", t0.Add(time.Minute)))
	})
}
