package store_test

import (
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func TestCreateSandboxWithManagedCargo(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		sb := newSandbox("alice")
		sb.ExpiresAt = ptr(t0.Add(time.Hour))
		sb.IdleExpiresAt = ptr(t0.Add(5 * time.Minute))
		sb.CurrentSessionID = "sess-0123456789ab"
		c := newCargo("alice", true, sb.ID)
		sb.CargoID = c.ID
		must(t, "CreateSandbox", e.s.CreateSandbox(e.ctx, sb, c))

		got, err := e.s.GetSandbox(e.ctx, "alice", sb.ID)
		must(t, "GetSandbox", err)
		mustEqual(t, "sandbox", got, sb)
		gotC, err := e.s.GetCargo(e.ctx, "alice", c.ID)
		must(t, "GetCargo", err)
		mustEqual(t, "cargo", gotC, c)

		// A sandbox without a managed cargo (it mounts an external one).
		ext := newCargo("alice", false, "")
		must(t, "CreateCargo", e.s.CreateCargo(e.ctx, ext))
		sb2 := newSandbox("alice")
		sb2.CargoID = ext.ID
		must(t, "CreateSandbox without cargo", e.s.CreateSandbox(e.ctx, sb2, nil))
		got2, err := e.s.GetSandbox(e.ctx, "alice", sb2.ID)
		must(t, "GetSandbox", err)
		mustEqual(t, "sandbox without managed cargo", got2, sb2)

		// Atomic: when one insert fails, neither row exists.
		cases := []struct {
			name  string
			sb    *model.Sandbox
			cargo *model.Cargo
		}{
			{name: "sandbox id taken", sb: func() *model.Sandbox { x := newSandbox("alice"); x.ID = sb.ID; return x }()},
			{name: "cargo id taken", sb: newSandbox("alice"), cargo: func() *model.Cargo { x := newCargo("alice", true, ""); x.ID = c.ID; return x }()},
		}
		for _, tc := range cases {
			if tc.cargo == nil {
				tc.cargo = newCargo("alice", true, tc.sb.ID)
				tc.sb.CargoID = tc.cargo.ID
			}
			err := e.s.CreateSandbox(e.ctx, tc.sb, tc.cargo)
			mustErr(t, tc.name, err, store.ErrConflict)
			if tc.sb.ID != sb.ID {
				if _, err := e.s.SandboxByID(e.ctx, tc.sb.ID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("%s: sandbox row exists after the failed create (err %v)", tc.name, err)
				}
			}
			if tc.cargo.ID != c.ID {
				if _, err := e.s.CargoByID(e.ctx, tc.cargo.ID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("%s: cargo row exists after the failed create (err %v)", tc.name, err)
				}
			}
		}
		// The originals are untouched.
		got, err = e.s.GetSandbox(e.ctx, "alice", sb.ID)
		must(t, "GetSandbox", err)
		mustEqual(t, "sandbox after failed creates", got, sb)
		gotC, err = e.s.CargoByID(e.ctx, c.ID)
		must(t, "CargoByID", err)
		mustEqual(t, "cargo after failed creates", gotC, c)
	})
}

func TestGetSandbox(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		live := createSandbox(t, e, "alice")
		gone := createSandbox(t, e, "alice", func(sb *model.Sandbox) { sb.CurrentSessionID = "sess-x"; sb.IdleExpiresAt = ptr(t0.Add(time.Minute)) })
		deletedAt := t0.Add(time.Minute)
		ok, err := e.s.SoftDeleteSandbox(e.ctx, gone.ID, deletedAt)
		must(t, "SoftDeleteSandbox", err)
		if !ok {
			t.Fatal("SoftDeleteSandbox: false on a live sandbox")
		}
		ok, err = e.s.SoftDeleteSandbox(e.ctx, gone.ID, deletedAt.Add(time.Minute))
		must(t, "SoftDeleteSandbox again", err)
		if ok {
			t.Fatal("SoftDeleteSandbox: true on an already deleted sandbox")
		}
		// Soft delete clears the session pointer and the idle deadline; the first deletion time stays.
		wantGone := *gone
		wantGone.DeletedAt, wantGone.CurrentSessionID, wantGone.IdleExpiresAt = ptr(deletedAt), "", nil

		type get func(owner, id string) (*model.Sandbox, error)
		getLive := func(owner, id string) (*model.Sandbox, error) { return e.s.GetSandbox(e.ctx, owner, id) }
		getAny := func(owner, id string) (*model.Sandbox, error) { return e.s.GetSandboxAny(e.ctx, owner, id) }
		byID := func(_, id string) (*model.Sandbox, error) { return e.s.SandboxByID(e.ctx, id) }
		cases := []struct {
			name      string
			get       get
			owner, id string
			want      *model.Sandbox // nil = ErrNotFound
		}{
			{"live, owner", getLive, "alice", live.ID, live},
			{"live, other owner", getLive, "bob", live.ID, nil},
			{"live, missing", getLive, "alice", "sandbox-000000000000", nil},
			{"live, soft-deleted", getLive, "alice", gone.ID, nil},
			{"any, owner", getAny, "alice", live.ID, live},
			{"any, soft-deleted", getAny, "alice", gone.ID, &wantGone},
			{"any, soft-deleted, other owner", getAny, "bob", gone.ID, nil},
			{"any, missing", getAny, "alice", "sandbox-000000000000", nil},
			{"by id", byID, "", live.ID, live},
			{"by id, soft-deleted", byID, "", gone.ID, &wantGone},
			{"by id, missing", byID, "", "sandbox-000000000000", nil},
		}
		for _, tc := range cases {
			got, err := tc.get(tc.owner, tc.id)
			if tc.want == nil {
				mustErr(t, tc.name, err, store.ErrNotFound)
				if got != nil {
					t.Fatalf("%s: got %v with ErrNotFound", tc.name, got)
				}
				continue
			}
			must(t, tc.name, err)
			mustEqual(t, tc.name, got, tc.want)
		}
	})
}

func TestListSandboxesPaging(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		var want []string
		for i := 0; i < 120; i++ {
			want = append(want, createSandbox(t, e, "alice").ID)
		}
		sort.Strings(want)
		// Noise that must not show up: another owner's, warm and deleted sandboxes.
		createSandbox(t, e, "bob")
		createSandbox(t, e, "alice", func(sb *model.Sandbox) { sb.Warm, sb.WarmState = true, model.WarmAvailable })
		for i := 0; i < 3; i++ {
			d := createSandbox(t, e, "alice")
			_, err := e.s.SoftDeleteSandbox(e.ctx, d.ID, t0)
			must(t, "SoftDeleteSandbox", err)
		}

		for _, limit := range []int{1, 7, 50, 120, 500} {
			var got []string
			after, pages := "", 0
			for {
				page, err := e.s.ListSandboxes(e.ctx, "alice", after, limit)
				must(t, "ListSandboxes", err)
				if len(page) > limit {
					t.Fatalf("limit %d: page of %d", limit, len(page))
				}
				for _, sb := range page {
					if sb.Owner != "alice" || sb.Warm || sb.DeletedAt != nil {
						t.Fatalf("limit %d: listed %s", limit, show(sb))
					}
					got = append(got, sb.ID)
				}
				if len(page) < limit {
					break
				}
				after = page[len(page)-1].ID
				if pages++; pages > 200 {
					t.Fatal("paging does not end")
				}
			}
			mustEqual(t, "ids listed with limit", got, want)
		}
		counts, err := e.s.CountSandboxesByStatus(e.ctx, t0)
		must(t, "CountSandboxesByStatus", err)
		mustEqual(t, "CountSandboxesByStatus", counts, map[string]int{model.StatusIdle: 121}) // alice's 120 + bob's 1
		none, err := e.s.ListSandboxes(e.ctx, "carol", "", 10)
		must(t, "ListSandboxes of nobody", err)
		if len(none) != 0 {
			t.Fatalf("carol has %d sandboxes", len(none))
		}
	})
}

func TestFindSandboxes(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		at := func(d time.Duration) *time.Time { return ptr(t0.Add(d)) }
		mk := func(mod func(*model.Sandbox)) string { return createSandbox(t, e, "alice", mod).ID }
		idleSoon := mk(func(sb *model.Sandbox) { sb.IdleExpiresAt = at(time.Minute) })
		idleLate := mk(func(sb *model.Sandbox) { sb.IdleExpiresAt = at(time.Hour) })
		ttlSoon := mk(func(sb *model.Sandbox) { sb.ExpiresAt = at(time.Minute) })
		ttlLate := mk(func(sb *model.Sandbox) { sb.ExpiresAt = at(time.Hour) })
		both := mk(func(sb *model.Sandbox) { sb.ExpiresAt, sb.IdleExpiresAt = at(time.Minute), at(time.Minute) })
		plain := mk(nil)
		warm := mk(func(sb *model.Sandbox) { sb.Warm, sb.WarmState, sb.WarmReadyAt = true, model.WarmAvailable, at(0) })
		deleted := mk(func(sb *model.Sandbox) { sb.ExpiresAt = at(time.Minute) })
		_, err := e.s.SoftDeleteSandbox(e.ctx, deleted, t0)
		must(t, "SoftDeleteSandbox", err)

		ids := func(xs ...string) []string { slices.Sort(xs); return xs }
		cut := at(10 * time.Minute)
		cases := []struct {
			name string
			f    store.SandboxFilter
			want []string
		}{
			{"everything", store.SandboxFilter{}, ids(idleSoon, idleLate, ttlSoon, ttlLate, both, plain, warm, deleted)},
			{"idle before", store.SandboxFilter{IdleBefore: cut}, ids(idleSoon, both)},
			{"idle before is strict", store.SandboxFilter{IdleBefore: at(time.Minute)}, nil},
			{"expired before", store.SandboxFilter{ExpiredBefore: cut}, ids(ttlSoon, both, deleted)},
			{"expired before, live", store.SandboxFilter{ExpiredBefore: cut, Deleted: ptr(false)}, ids(ttlSoon, both)},
			{"deleted", store.SandboxFilter{Deleted: ptr(true)}, ids(deleted)},
			{"not deleted", store.SandboxFilter{Deleted: ptr(false)}, ids(idleSoon, idleLate, ttlSoon, ttlLate, both, plain, warm)},
			{"warm", store.SandboxFilter{Warm: ptr(true)}, ids(warm)},
			{"not warm, not deleted", store.SandboxFilter{Warm: ptr(false), Deleted: ptr(false)}, ids(idleSoon, idleLate, ttlSoon, ttlLate, both, plain)},
			{"idle and expired", store.SandboxFilter{IdleBefore: cut, ExpiredBefore: cut}, ids(both)},
			{"limit", store.SandboxFilter{Deleted: ptr(false), Limit: 3}, ids(idleSoon, idleLate, ttlSoon, ttlLate, both, plain, warm)[:3]},
		}
		for _, tc := range cases {
			got, err := e.s.FindSandboxes(e.ctx, tc.f)
			must(t, tc.name, err)
			var gotIDs []string
			for _, sb := range got {
				gotIDs = append(gotIDs, sb.ID)
			}
			mustEqual(t, tc.name, gotIDs, tc.want)
		}
	})
}

func TestSandboxUpdates(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		sb := createSandbox(t, e, "alice")
		other := createSandbox(t, e, "alice")
		want := *sb
		check := func(what string) {
			t.Helper()
			got, err := e.s.SandboxByID(e.ctx, sb.ID)
			must(t, what, err)
			mustEqual(t, what, got, &want)
		}
		later := t0.Add(3 * time.Minute)

		must(t, "TouchSandbox", e.s.TouchSandbox(e.ctx, sb.ID, ptr(later.Add(time.Minute)), later))
		want.IdleExpiresAt, want.LastActiveAt = ptr(later.Add(time.Minute)), later
		check("after TouchSandbox")
		must(t, "TouchSandbox nil idle", e.s.TouchSandbox(e.ctx, sb.ID, nil, later))
		want.IdleExpiresAt = nil
		check("after TouchSandbox(nil)")

		must(t, "SetExpiresAt", e.s.SetExpiresAt(e.ctx, sb.ID, ptr(later.Add(time.Hour))))
		want.ExpiresAt = ptr(later.Add(time.Hour))
		check("after SetExpiresAt")
		must(t, "SetExpiresAt nil", e.s.SetExpiresAt(e.ctx, sb.ID, nil))
		want.ExpiresAt = nil
		check("after SetExpiresAt(nil)")

		must(t, "SetCurrentSession", e.s.SetCurrentSession(e.ctx, sb.ID, "sess-aaaaaaaaaaaa", ptr(later)))
		want.CurrentSessionID, want.IdleExpiresAt = "sess-aaaaaaaaaaaa", ptr(later)
		check("after SetCurrentSession")
		must(t, "SetCurrentSession none", e.s.SetCurrentSession(e.ctx, sb.ID, "", nil))
		want.CurrentSessionID, want.IdleExpiresAt = "", nil
		check("after SetCurrentSession(\"\")")

		// Nothing leaked onto the other row.
		got, err := e.s.SandboxByID(e.ctx, other.ID)
		must(t, "SandboxByID other", err)
		mustEqual(t, "untouched sandbox", got, other)
	})
}
