package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// TestCommitCutIsUncertain: a create whose COMMIT the database received but
// never answered returns an *UncertainError naming the record (still
// Unavailable: a 503 to the client), and the record is there to be found —
// the idempotency guard resolves such a create by reading it back instead of
// letting a retry make a second one.
func TestCommitCutIsUncertain(t *testing.T) {
	t.Parallel()
	p, dsn := storetest.NewCommitCutter(t, storetest.FreshDSN(t, store.Postgres))
	st := storetest.OpenDSN(t, store.Postgres, dsn)
	ctx := t.Context()

	for _, tc := range []struct {
		name   string
		create func() (id string, err error) // as owner "carol"
		exists func(id string) error
	}{
		{"sandbox", func() (string, error) {
			sb := newSandbox("carol")
			c := newCargo("carol", true, sb.ID)
			sb.CargoID = c.ID
			return sb.ID, st.CreateSandbox(ctx, sb, c)
		}, func(id string) error { _, err := st.GetSandbox(ctx, "carol", id); return err }},
		{"cargo", func() (string, error) {
			c := newCargo("carol", false, "")
			return c.ID, st.CreateCargo(ctx, c)
		}, func(id string) error { _, err := st.GetCargo(ctx, "carol", id); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.Cuts()
			p.Arm("carol")
			id, err := tc.create()
			if p.Cuts() != before+1 {
				t.Fatalf("the proxy cut no COMMIT (err %v)", err)
			}
			ue, ok := errors.AsType[*store.UncertainError](err)
			if !ok || ue.ID != id {
				t.Fatalf("err = %v (%T), want an *UncertainError naming %s", err, err, id)
			}
			if !store.Unavailable(err) {
				t.Errorf("an uncertain commit is not Unavailable: %v", err)
			}
			var found error
			for range 50 { // the pool redials through the proxy
				if found = tc.exists(id); found == nil || !store.Unavailable(found) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if found != nil {
				t.Errorf("the record whose commit was cut is not there: %v", found)
			}
		})
	}
}
