package store_test

import (
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// createWarm stores a warm sandbox of profile in state, ready at readyAt (nil = not yet).
func createWarm(t *testing.T, e *env, profile, state string, readyAt *time.Time) *model.Sandbox {
	t.Helper()
	return createSandbox(t, e, model.WarmOwner, func(sb *model.Sandbox) {
		sb.ProfileID, sb.Warm, sb.WarmState, sb.WarmReadyAt = profile, true, state, readyAt
	})
}

func sandboxIDs(list []*model.Sandbox) []string {
	var out []string
	for _, sb := range list {
		out = append(out, sb.ID)
	}
	return out
}

func TestWarmSandboxes(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		at := func(s int) *time.Time { return ptr(t0.Add(time.Duration(s) * time.Second)) }
		pending := createWarm(t, e, "py", model.WarmPending, nil)
		late := createWarm(t, e, "py", model.WarmAvailable, at(30))
		early := createWarm(t, e, "py", model.WarmAvailable, at(10))
		retiring := createWarm(t, e, "py", model.WarmRetiring, at(5))
		other := createWarm(t, e, "node", model.WarmAvailable, at(1))
		gone := createWarm(t, e, "py", model.WarmAvailable, at(2))
		_, err := e.s.SoftDeleteSandbox(e.ctx, gone.ID, t0)
		must(t, "SoftDeleteSandbox", err)
		createSandbox(t, e, "alice", func(sb *model.Sandbox) { sb.ProfileID = "py" }) // not warm

		cases := []struct {
			name    string
			profile string
			states  []string
			want    []string
		}{
			// Oldest ready first; the not-yet-ready last, on both backends.
			{"profile, any state", "py", nil, sandboxIDs([]*model.Sandbox{retiring, early, late, pending})},
			{"profile, available", "py", []string{model.WarmAvailable}, sandboxIDs([]*model.Sandbox{early, late})},
			{"profile, two states", "py", []string{model.WarmPending, model.WarmRetiring}, sandboxIDs([]*model.Sandbox{retiring, pending})},
			{"every profile", "", []string{model.WarmAvailable}, sandboxIDs([]*model.Sandbox{other, early, late})},
			{"unknown profile", "ruby", nil, nil},
		}
		for _, tc := range cases {
			got, err := e.s.WarmSandboxes(e.ctx, tc.profile, tc.states...)
			must(t, tc.name, err)
			mustEqual(t, tc.name, sandboxIDs(got), tc.want)
		}
	})
}

func TestSetWarmState(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		sb := createWarm(t, e, "py", model.WarmPending, nil)
		ready, rotate := t0.Add(time.Second), t0.Add(time.Hour)
		steps := []struct {
			name           string
			from, to       string
			ready, rotate  *time.Time
			moved          bool
			wantState      string
			wantReady, rot *time.Time
		}{
			{"pending → available", model.WarmPending, model.WarmAvailable, &ready, &rotate, true, model.WarmAvailable, &ready, &rotate},
			{"from the wrong state", model.WarmPending, model.WarmRetiring, nil, nil, false, model.WarmAvailable, &ready, &rotate},
			{"nil times unchanged", model.WarmAvailable, model.WarmRetiring, nil, nil, true, model.WarmRetiring, &ready, &rotate},
		}
		for _, st := range steps {
			moved, err := e.s.SetWarmState(e.ctx, sb.ID, st.from, st.to, st.ready, st.rotate)
			must(t, st.name, err)
			if moved != st.moved {
				t.Fatalf("%s: moved = %v, want %v", st.name, moved, st.moved)
			}
			got, err := e.s.SandboxByID(e.ctx, sb.ID)
			must(t, st.name, err)
			mustEqual(t, st.name+": state", got.WarmState, st.wantState)
			mustEqual(t, st.name+": ready at", got.WarmReadyAt, st.wantReady)
			mustEqual(t, st.name+": rotate at", got.WarmRotateAt, st.rot)
		}
		// Not a warm sandbox: never moves.
		plain := createSandbox(t, e, "alice", func(sb *model.Sandbox) { sb.WarmState = model.WarmClaimed })
		moved, err := e.s.SetWarmState(e.ctx, plain.ID, model.WarmClaimed, model.WarmRetiring, nil, nil)
		must(t, "SetWarmState of a claimed sandbox", err)
		if moved {
			t.Fatal("SetWarmState moved a sandbox that is not warm")
		}
	})
}

func TestClaimWarm(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		at := func(s int) *time.Time { return ptr(t0.Add(time.Duration(s) * time.Second)) }
		late := createWarm(t, e, "py", model.WarmAvailable, at(20))
		early := createWarm(t, e, "py", model.WarmAvailable, at(10))
		createWarm(t, e, "py", model.WarmPending, nil)
		createWarm(t, e, "node", model.WarmAvailable, at(1))

		now := t0.Add(time.Minute)
		exp, idle := now.Add(time.Hour), now.Add(5*time.Minute)
		got, err := e.s.ClaimWarm(e.ctx, "py", "alice", &exp, &idle, now)
		must(t, "ClaimWarm", err)
		if got == nil || got.ID != early.ID {
			t.Fatalf("ClaimWarm took %s, want the oldest ready (%s)", show(got), early.ID)
		}
		want := *early
		want.Owner, want.Warm, want.WarmState = "alice", false, model.WarmClaimed
		want.ExpiresAt, want.IdleExpiresAt, want.LastActiveAt, want.CreatedAt = &exp, &idle, now, now
		mustEqual(t, "claimed sandbox", got, &want)
		// It is alice's now, cargo included, and listed as hers.
		if _, err := e.s.GetSandbox(e.ctx, "alice", early.ID); err != nil {
			t.Fatalf("GetSandbox by the new owner: %v", err)
		}
		c, err := e.s.GetCargo(e.ctx, "alice", early.CargoID)
		must(t, "GetCargo by the new owner", err)
		if c.Owner != "alice" {
			t.Fatalf("cargo owner %q", c.Owner)
		}
		list, err := e.s.ListSandboxes(e.ctx, "alice", "", 10)
		must(t, "ListSandboxes", err)
		mustEqual(t, "alice's sandboxes", sandboxIDs(list), []string{early.ID})

		got, err = e.s.ClaimWarm(e.ctx, "py", "bob", nil, nil, now)
		must(t, "ClaimWarm", err)
		if got == nil || got.ID != late.ID || got.ExpiresAt != nil {
			t.Fatalf("second ClaimWarm: %s, want %s with no TTL", show(got), late.ID)
		}
		got, err = e.s.ClaimWarm(e.ctx, "py", "carol", nil, nil, now)
		must(t, "ClaimWarm of an empty pool", err)
		if got != nil {
			t.Fatalf("ClaimWarm of an empty pool (a pending one only) returned %s", show(got))
		}
	})
}

// Concurrent claims on two replicas: every available sandbox goes to exactly one claimer.
func TestClaimWarmConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		const available, claimers = 5, 8
		pool := map[string]bool{}
		for i := 0; i < available; i++ {
			pool[createWarm(t, e, "py", model.WarmAvailable, ptr(t0.Add(time.Duration(i)*time.Second))).ID] = true
		}
		replicas := []*store.Store{e.s, e.replica(t)}
		got := make([]*model.Sandbox, claimers)
		errs := make([]error, claimers)
		parallel(claimers, func(i int) {
			got[i], errs[i] = replicas[i%2].ClaimWarm(e.ctx, "py", "owner-"+string(rune('a'+i)), nil, nil, t0)
		})
		claimed := map[string]int{}
		for i := range got {
			if errs[i] != nil {
				t.Fatalf("claimer %d: %v", i, errs[i])
			}
			if got[i] == nil {
				continue
			}
			if !pool[got[i].ID] {
				t.Fatalf("claimer %d got %s, not from the pool", i, got[i].ID)
			}
			if prev, dup := claimed[got[i].ID]; dup {
				t.Fatalf("claimers %d and %d both got %s", prev, i, got[i].ID)
			}
			claimed[got[i].ID] = i
			if got[i].Owner != "owner-"+string(rune('a'+i)) {
				t.Fatalf("claimer %d got a sandbox owned by %q", i, got[i].Owner)
			}
		}
		if len(claimed) != available {
			t.Fatalf("%d of %d warm sandboxes claimed by %d claimers", len(claimed), available, claimers)
		}
		left, err := e.s.WarmSandboxes(e.ctx, "py", model.WarmAvailable)
		must(t, "WarmSandboxes", err)
		if len(left) != 0 {
			t.Fatalf("%d still available after the claims", len(left))
		}
	})
}
