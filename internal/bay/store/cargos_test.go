package store_test

import (
	"sort"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func cargoIDs(list []*model.Cargo) []string {
	var out []string
	for _, c := range list {
		out = append(out, c.ID)
	}
	return out
}

func TestListCargosByManagedFlag(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		var managed, external []string
		for i := 0; i < 23; i++ {
			managed = append(managed, createSandbox(t, e, "alice").CargoID)
		}
		for i := 0; i < 17; i++ {
			c := newCargo("alice", false, "")
			must(t, "CreateCargo", e.s.CreateCargo(e.ctx, c))
			external = append(external, c.ID)
		}
		must(t, "CreateCargo bob", e.s.CreateCargo(e.ctx, newCargo("bob", false, "")))
		createSandbox(t, e, "bob")
		sort.Strings(managed)
		sort.Strings(external)

		cases := []struct {
			name    string
			owner   string
			managed bool
			want    []string
		}{
			{"managed", "alice", true, managed},
			{"external", "alice", false, external},
			{"nobody's", "carol", false, nil},
		}
		for _, tc := range cases {
			var got []*model.Cargo
			after := ""
			for {
				page, err := e.s.ListCargos(e.ctx, tc.owner, tc.managed, after, 5)
				must(t, tc.name, err)
				for _, c := range page {
					if c.Managed != tc.managed || c.Owner != tc.owner {
						t.Fatalf("%s: listed %s", tc.name, show(c))
					}
				}
				got = append(got, page...)
				if len(page) < 5 {
					break
				}
				after = page[len(page)-1].ID
			}
			mustEqual(t, tc.name, cargoIDs(got), tc.want)
		}
	})
}

func TestCargoLookupsAndOwnership(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		c := newCargo("alice", false, "")
		must(t, "CreateCargo", e.s.CreateCargo(e.ctx, c))
		mustErr(t, "CreateCargo with a taken id", e.s.CreateCargo(e.ctx, c), store.ErrConflict)

		got, err := e.s.GetCargo(e.ctx, "alice", c.ID)
		must(t, "GetCargo", err)
		mustEqual(t, "cargo", got, c)
		_, err = e.s.GetCargo(e.ctx, "bob", c.ID)
		mustErr(t, "GetCargo of another owner", err, store.ErrNotFound)
		got, err = e.s.CargoByID(e.ctx, c.ID)
		must(t, "CargoByID", err)
		mustEqual(t, "cargo by id", got, c)

		other := newCargo("alice", false, "")
		must(t, "CreateCargo", e.s.CreateCargo(e.ctx, other))
		refs, err := e.s.AllCargoRefs(e.ctx)
		must(t, "AllCargoRefs", err)
		mustEqual(t, "AllCargoRefs", refs, map[string]bool{c.DriverRef: true, other.DriverRef: true})

		must(t, "DeleteCargo", e.s.DeleteCargo(e.ctx, c.ID))
		_, err = e.s.CargoByID(e.ctx, c.ID)
		mustErr(t, "deleted cargo", err, store.ErrNotFound)
		must(t, "DeleteCargo again", e.s.DeleteCargo(e.ctx, c.ID))
		refs, err = e.s.AllCargoRefs(e.ctx)
		must(t, "AllCargoRefs", err)
		mustEqual(t, "AllCargoRefs after delete", refs, map[string]bool{other.DriverRef: true})
	})
}

func TestOrphanCargos(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		createSandbox(t, e, "alice")                                                 // live: its cargo is no orphan
		createSandbox(t, e, "warm-pool", func(sb *model.Sandbox) { sb.Warm = true }) // warm is live too
		deleted := createSandbox(t, e, "alice")
		_, err := e.s.SoftDeleteSandbox(e.ctx, deleted.ID, t0)
		must(t, "SoftDeleteSandbox", err)
		missing := newCargo("alice", true, "sandbox-neverexisted") // its sandbox row is gone
		must(t, "CreateCargo", e.s.CreateCargo(e.ctx, missing))
		must(t, "CreateCargo external", e.s.CreateCargo(e.ctx, newCargo("alice", false, ""))) // external: never an orphan
		// A managed cargo that a second, live sandbox mounts (attachable before
		// that became a 409) is no orphan after its own sandbox goes.
		shared := createSandbox(t, e, "alice")
		borrower := newSandbox("alice")
		borrower.CargoID = shared.CargoID
		must(t, "CreateSandbox borrower", e.s.CreateSandbox(e.ctx, borrower, nil))
		_, err = e.s.SoftDeleteSandbox(e.ctx, shared.ID, t0)
		must(t, "SoftDeleteSandbox", err)

		got, err := e.s.OrphanCargos(e.ctx)
		must(t, "OrphanCargos", err)
		want := []string{deleted.CargoID, missing.ID}
		sort.Strings(want)
		mustEqual(t, "OrphanCargos", cargoIDs(got), want)
	})
}

func TestActiveSandboxesUsingCargo(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ext := newCargo("alice", false, "")
		must(t, "CreateCargo", e.s.CreateCargo(e.ctx, ext))
		var want []string
		for i := 0; i < 3; i++ {
			sb := newSandbox("alice")
			sb.CargoID = ext.ID
			must(t, "CreateSandbox", e.s.CreateSandbox(e.ctx, sb, nil))
			if i == 1 {
				_, err := e.s.SoftDeleteSandbox(e.ctx, sb.ID, t0)
				must(t, "SoftDeleteSandbox", err)
				continue
			}
			want = append(want, sb.ID)
		}
		createSandbox(t, e, "alice") // mounts its own cargo
		sort.Strings(want)

		got, err := e.s.ActiveSandboxesUsingCargo(e.ctx, ext.ID)
		must(t, "ActiveSandboxesUsingCargo", err)
		mustEqual(t, "ActiveSandboxesUsingCargo", got, want)
		got, err = e.s.ActiveSandboxesUsingCargo(e.ctx, "cargo-unused000000")
		must(t, "ActiveSandboxesUsingCargo", err)
		if len(got) != 0 {
			t.Fatalf("unused cargo is used by %v", got)
		}
	})
}
