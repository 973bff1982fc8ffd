package store_test

import (
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Times are stored as Unix microseconds: what comes back is the instant
// truncated to the microsecond, in UTC, whatever zone it went in with.
func TestTimeRoundTrip(t *testing.T) {
	zone := time.FixedZone("UTC+05:30", 5*3600+30*60)
	times := []struct {
		name string
		in   time.Time
	}{
		{"nanoseconds in another zone", time.Date(2031, 7, 14, 15, 0, 15, 123456789, zone)},
		{"exact microseconds", time.Date(2031, 7, 14, 9, 30, 15, 123456000, time.UTC)},
		{"just below a second", time.Date(2030, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"before 1970", time.Date(1969, 12, 31, 23, 59, 59, 999999999, zone)},
		{"Unix epoch", time.Unix(0, 0)},
		{"far future", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"local with monotonic reading", time.Now()},
	}
	eachBackend(t, func(t *testing.T, e *env) {
		for _, tc := range times {
			want := tc.in.Truncate(time.Microsecond).UTC()
			check := func(field string, got time.Time) {
				t.Helper()
				if !got.Equal(want) || got.Location() != time.UTC || got != want {
					t.Fatalf("%s: %s: got %s (%s), want %s", tc.name, field,
						got.Format(time.RFC3339Nano), got.Location(), want.Format(time.RFC3339Nano))
				}
			}
			checkPtr := func(field string, got *time.Time) {
				t.Helper()
				if got == nil {
					t.Fatalf("%s: %s: nil", tc.name, field)
				}
				check(field, *got)
			}

			sb := newSandbox("alice")
			sb.CreatedAt, sb.LastActiveAt = tc.in, tc.in
			sb.ExpiresAt, sb.IdleExpiresAt, sb.WarmReadyAt, sb.WarmRotateAt = &tc.in, &tc.in, &tc.in, &tc.in
			c := newCargo("alice", true, sb.ID)
			sb.CargoID = c.ID
			c.CreatedAt, c.LastAccessedAt = tc.in, tc.in
			must(t, "CreateSandbox", e.s.CreateSandbox(e.ctx, sb, c))
			_, err := e.s.SoftDeleteSandbox(e.ctx, sb.ID, tc.in)
			must(t, "SoftDeleteSandbox", err)
			gotSb, err := e.s.SandboxByID(e.ctx, sb.ID)
			must(t, "SandboxByID", err)
			check("sandbox.CreatedAt", gotSb.CreatedAt)
			check("sandbox.LastActiveAt", gotSb.LastActiveAt)
			checkPtr("sandbox.ExpiresAt", gotSb.ExpiresAt)
			checkPtr("sandbox.DeletedAt", gotSb.DeletedAt)
			checkPtr("sandbox.WarmReadyAt", gotSb.WarmReadyAt)
			checkPtr("sandbox.WarmRotateAt", gotSb.WarmRotateAt)
			gotC, err := e.s.CargoByID(e.ctx, c.ID)
			must(t, "CargoByID", err)
			check("cargo.CreatedAt", gotC.CreatedAt)
			check("cargo.LastAccessedAt", gotC.LastAccessedAt)

			ss := newSession(sb.ID, model.SessionStopped)
			ss.CreatedAt, ss.LastActiveAt, ss.StartedAt = tc.in, tc.in, &tc.in
			must(t, "CreateSession", e.s.CreateSession(e.ctx, ss))
			gotSs, err := e.s.GetSession(e.ctx, ss.ID)
			must(t, "GetSession", err)
			check("session.CreatedAt", gotSs.CreatedAt)
			check("session.LastActiveAt", gotSs.LastActiveAt)
			checkPtr("session.StartedAt", gotSs.StartedAt)

			x := newExecution(sb.ID, "python", true, tc.in)
			x.LearnProcessedAt = &tc.in
			must(t, "CreateExecution", e.s.CreateExecution(e.ctx, x))
			gotX, err := e.s.GetExecution(e.ctx, sb.ID, x.ID)
			must(t, "GetExecution", err)
			check("execution.CreatedAt", gotX.CreatedAt)
			checkPtr("execution.LearnProcessedAt", gotX.LearnProcessedAt)

			rec := &model.IdempotencyRecord{Owner: "alice", Key: model.NewID("k"), Fingerprint: "f", CreatedAt: tc.in, ExpiresAt: tc.in}
			_, _, err = e.s.ReserveIdempotency(e.ctx, rec, tc.in)
			must(t, "ReserveIdempotency", err)
			gotI, err := e.s.GetIdempotency(e.ctx, "alice", rec.Key)
			must(t, "GetIdempotency", err)
			check("idempotency.CreatedAt", gotI.CreatedAt)
			check("idempotency.ExpiresAt", gotI.ExpiresAt)
		}

		// The zero time survives too (a field nobody set reads back IsZero).
		sb := newSandbox("alice")
		sb.CreatedAt, sb.LastActiveAt = time.Time{}, time.Time{}
		must(t, "CreateSandbox zero times", e.s.CreateSandbox(e.ctx, sb, nil))
		got, err := e.s.SandboxByID(e.ctx, sb.ID)
		must(t, "SandboxByID", err)
		if !got.CreatedAt.IsZero() || !got.LastActiveAt.IsZero() {
			t.Fatalf("zero times read back as %s, %s", got.CreatedAt, got.LastActiveAt)
		}

		// Comparisons in SQL happen at microsecond precision as well: a deadline
		// 1ns after the cut-off is the same microsecond, so not "before" it.
		cut := time.Date(2032, 1, 1, 0, 0, 0, 1000, time.UTC)
		createSandbox(t, e, "alice", func(sb *model.Sandbox) { sb.IdleExpiresAt = ptr(cut.Add(time.Nanosecond)) })
		before := createSandbox(t, e, "alice", func(sb *model.Sandbox) { sb.IdleExpiresAt = ptr(cut.Add(-time.Nanosecond)) })
		list, err := e.s.FindSandboxes(e.ctx, store.SandboxFilter{IdleBefore: &cut})
		must(t, "FindSandboxes", err)
		var ids []string
		for _, sb := range list {
			ids = append(ids, sb.ID)
		}
		mustEqual(t, "idle before the cut-off", ids, []string{before.ID})
	})
}
