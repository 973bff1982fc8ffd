package store_test

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func TestSessionRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		sb := createSandbox(t, e, "alice")
		ss := newSession(sb.ID, model.SessionStarting)
		ss.ContainerID, ss.Endpoint, ss.Network = "c0ffee", "http://127.0.0.1:49153", "bay-net-1"
		ss.StartedAt = ptr(t0.Add(time.Second))
		ss.Containers = []model.ContainerInfo{
			{Name: "ship", ContainerID: "c0ffee", Endpoint: "http://127.0.0.1:49153", Status: "running", RuntimeType: "ship", Capabilities: []string{"python", "shell", "filesystem"}},
			{Name: "browser", ContainerID: "beef", Endpoint: "http://127.0.0.1:49154", Status: "running", RuntimeType: "gull", Capabilities: []string{"browser"}},
		}
		must(t, "CreateSession", e.s.CreateSession(e.ctx, ss))
		got, err := e.s.GetSession(e.ctx, ss.ID)
		must(t, "GetSession", err)
		mustEqual(t, "session", got, ss)

		// nil containers are stored as an empty list.
		bare := newSession(sb.ID, model.SessionStopped)
		bare.Containers = nil
		must(t, "CreateSession", e.s.CreateSession(e.ctx, bare))
		got, err = e.s.GetSession(e.ctx, bare.ID)
		must(t, "GetSession", err)
		if len(got.Containers) != 0 || got.StartedAt != nil {
			t.Fatalf("bare session read back as %s", show(got))
		}

		_, err = e.s.GetSession(e.ctx, "sess-000000000000")
		mustErr(t, "GetSession missing", err, store.ErrNotFound)
		mustErr(t, "CreateSession with a taken id", e.s.CreateSession(e.ctx, bare), store.ErrConflict)
	})
}

// House rule 4: one live session per sandbox, whichever replica starts it.
func TestOneLiveSessionPerSandbox(t *testing.T) {
	states := []string{model.SessionPending, model.SessionStarting, model.SessionRunning, model.SessionFailed, model.SessionStopped}
	live := map[string]bool{model.SessionPending: true, model.SessionStarting: true, model.SessionRunning: true}
	eachBackend(t, func(t *testing.T, e *env) {
		for _, existing := range states {
			for _, next := range states {
				sb := createSandbox(t, e, "alice")
				must(t, "first session", e.s.CreateSession(e.ctx, newSession(sb.ID, existing)))
				err := e.s.CreateSession(e.ctx, newSession(sb.ID, next))
				name := fmt.Sprintf("%s then %s", existing, next)
				if live[existing] && live[next] {
					mustErr(t, name, err, store.ErrConflict)
				} else {
					must(t, name, err)
				}
			}
		}

		// Another sandbox is never blocked.
		a, b := createSandbox(t, e, "alice"), createSandbox(t, e, "alice")
		must(t, "a running", e.s.CreateSession(e.ctx, newSession(a.ID, model.SessionRunning)))
		must(t, "b running", e.s.CreateSession(e.ctx, newSession(b.ID, model.SessionRunning)))

		// Reviving a stopped session while another is live is refused too.
		stopped := newSession(a.ID, model.SessionStopped)
		must(t, "stopped", e.s.CreateSession(e.ctx, stopped))
		stopped.ObservedState = model.SessionStarting
		mustErr(t, "revive while another is live", e.s.UpdateSession(e.ctx, stopped), store.ErrConflict)

		// Once the live one stops (or is deleted), a new one may start.
		list, err := e.s.SessionsOf(e.ctx, a.ID)
		must(t, "SessionsOf", err)
		for _, ss := range list {
			if live[ss.ObservedState] {
				must(t, "DeleteSession", e.s.DeleteSession(e.ctx, ss.ID))
			}
		}
		cur, err := e.s.GetSession(e.ctx, stopped.ID)
		must(t, "GetSession", err)
		cur.ObservedState = model.SessionStarting
		must(t, "revive after the live one is gone", e.s.UpdateSession(e.ctx, cur))
	})
}

// Two replicas racing to start a session for the same sandbox: exactly one wins.
func TestConcurrentSessionStart(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		replicas := []*store.Store{e.s, e.replica(t)}
		for round := 0; round < 3; round++ {
			sb := createSandbox(t, e, "alice")
			const n = 16
			errs := make([]error, n)
			parallel(n, func(i int) {
				errs[i] = replicas[i%2].CreateSession(e.ctx, newSession(sb.ID, model.SessionPending))
			})
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, store.ErrConflict):
					t.Fatalf("goroutine %d: %v", i, err)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d sessions started, want 1", round, won)
			}
		}
	})
}

func TestUpdateSessionOptimisticLock(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		sb := createSandbox(t, e, "alice")
		ss := newSession(sb.ID, model.SessionPending)
		must(t, "CreateSession", e.s.CreateSession(e.ctx, ss))

		// Every mutable field is written; the version goes up in the row and in the struct.
		ss.ContainerID, ss.Endpoint, ss.Network = "abc", "http://127.0.0.1:1234", "net"
		ss.DesiredState, ss.ObservedState = model.SessionRunning, model.SessionRunning
		ss.Containers = []model.ContainerInfo{{Name: "ship", ContainerID: "abc", Capabilities: []string{"python"}}}
		ss.StartedAt, ss.LastActiveAt = ptr(t0.Add(time.Second)), t0.Add(2*time.Second)
		must(t, "UpdateSession", e.s.UpdateSession(e.ctx, ss))
		if ss.Version != 1 {
			t.Fatalf("version after one update = %d, want 1", ss.Version)
		}
		got, err := e.s.GetSession(e.ctx, ss.ID)
		must(t, "GetSession", err)
		mustEqual(t, "updated session", got, ss)

		// A writer holding the old version loses.
		stale := *got
		stale.Version = 0
		stale.ObservedState = model.SessionFailed
		mustErr(t, "stale update", e.s.UpdateSession(e.ctx, &stale), store.ErrConflict)
		if stale.Version != 0 {
			t.Fatalf("a refused update changed the struct's version to %d", stale.Version)
		}
		got, err = e.s.GetSession(e.ctx, ss.ID)
		must(t, "GetSession", err)
		mustEqual(t, "session after a refused update", got, ss)

		// Immutable fields are not written.
		tampered := *got
		tampered.SandboxID, tampered.Token, tampered.ProfileID, tampered.CreatedAt = "sandbox-other", "other-token", "other", t0.Add(time.Hour)
		must(t, "UpdateSession", e.s.UpdateSession(e.ctx, &tampered))
		got, err = e.s.GetSession(e.ctx, ss.ID)
		must(t, "GetSession", err)
		if got.SandboxID != ss.SandboxID || got.Token != ss.Token || got.ProfileID != ss.ProfileID || !got.CreatedAt.Equal(ss.CreatedAt) {
			t.Fatalf("UpdateSession wrote an immutable field: %s", show(got))
		}

		// Concurrent writers from one version: exactly one wins.
		base, err := e.s.GetSession(e.ctx, ss.ID)
		must(t, "GetSession", err)
		replicas := []*store.Store{e.s, e.replica(t)}
		const n = 10
		errs := make([]error, n)
		parallel(n, func(i int) {
			mine := *base
			mine.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", 2000+i)
			errs[i] = replicas[i%2].UpdateSession(e.ctx, &mine)
		})
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("%d concurrent updates from one version succeeded, want 1", won)
		}
		got, err = e.s.GetSession(e.ctx, ss.ID)
		must(t, "GetSession", err)
		if got.Version != base.Version+1 {
			t.Fatalf("version %d after the race, want %d", got.Version, base.Version+1)
		}

		// A deleted row: ErrNotFound, not ErrConflict.
		must(t, "DeleteSession", e.s.DeleteSession(e.ctx, ss.ID))
		mustErr(t, "update of a deleted session", e.s.UpdateSession(e.ctx, got), store.ErrNotFound)
		must(t, "DeleteSession again", e.s.DeleteSession(e.ctx, ss.ID))
	})
}

func TestSessionsByID(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		sb := createSandbox(t, e, "alice")
		const stored, missing = 700, 150 // 860 ids with the duplicates: two chunks of the 500-id IN lists
		var ids []string
		want := map[string]*model.Session{}
		for i := 0; i < stored; i++ {
			ss := newSession(sb.ID, model.SessionStopped) // not live: many per sandbox
			ss.ID = fmt.Sprintf("sess-%012d", i)
			must(t, "CreateSession", e.s.CreateSession(e.ctx, ss))
			want[ss.ID] = ss
			ids = append(ids, ss.ID)
		}
		for i := 0; i < missing; i++ {
			ids = append(ids, fmt.Sprintf("sess-missing%05d", i))
		}
		ids = append(ids, ids[:10]...) // duplicates are harmless
		got, err := e.s.SessionsByID(e.ctx, ids)
		must(t, "SessionsByID", err)
		if len(got) != stored {
			t.Fatalf("SessionsByID returned %d sessions, want %d", len(got), stored)
		}
		mustEqual(t, "SessionsByID", got, want)

		for _, in := range [][]string{nil, {}, {"sess-nope"}} {
			got, err := e.s.SessionsByID(e.ctx, in)
			must(t, "SessionsByID", err)
			if got == nil || len(got) != 0 {
				t.Fatalf("SessionsByID(%v) = %v, want an empty map", in, got)
			}
		}

	})
}

func TestSessionQueries(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		live := createSandbox(t, e, "alice")
		deleted := createSandbox(t, e, "alice")
		var sessions []*model.Session
		for i, st := range []string{model.SessionStopped, model.SessionFailed, model.SessionRunning} {
			ss := newSession(live.ID, st)
			ss.CreatedAt = t0.Add(time.Duration(3-i) * time.Second) // inserted newest first
			must(t, "CreateSession", e.s.CreateSession(e.ctx, ss))
			sessions = append(sessions, ss)
		}
		onDeleted := newSession(deleted.ID, model.SessionRunning)
		must(t, "CreateSession", e.s.CreateSession(e.ctx, onDeleted))
		orphan := newSession("sandbox-gone00000000", model.SessionStopped)
		must(t, "CreateSession", e.s.CreateSession(e.ctx, orphan))
		_, err := e.s.SoftDeleteSandbox(e.ctx, deleted.ID, t0)
		must(t, "SoftDeleteSandbox", err)

		ids := func(list []*model.Session) []string {
			var out []string
			for _, ss := range list {
				out = append(out, ss.ID)
			}
			return out
		}
		sorted := func(xs ...string) []string { sort.Strings(xs); return xs }

		of, err := e.s.SessionsOf(e.ctx, live.ID)
		must(t, "SessionsOf", err)
		mustEqual(t, "SessionsOf (by created_at)", ids(of), []string{sessions[2].ID, sessions[1].ID, sessions[0].ID})

		running, err := e.s.SessionsInState(e.ctx, model.SessionRunning)
		must(t, "SessionsInState", err)
		mustEqual(t, "SessionsInState(running)", ids(running), sorted(sessions[2].ID, onDeleted.ID))

		left, err := e.s.SessionsOfDeletedSandboxes(e.ctx)
		must(t, "SessionsOfDeletedSandboxes", err)
		mustEqual(t, "SessionsOfDeletedSandboxes", ids(left), sorted(onDeleted.ID, orphan.ID))

		must(t, "DeleteSession", e.s.DeleteSession(e.ctx, sessions[0].ID))
		_, err = e.s.GetSession(e.ctx, sessions[0].ID)
		mustErr(t, "deleted session", err, store.ErrNotFound)
	})
}

func TestCountSandboxesByStatus(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		withSession := func(state string, mod func(*model.Sandbox)) {
			sb := createSandbox(t, e, "alice", mod)
			if state == "" {
				return
			}
			ss := newSession(sb.ID, state)
			must(t, "CreateSession", e.s.CreateSession(e.ctx, ss))
			must(t, "SetCurrentSession", e.s.SetCurrentSession(e.ctx, sb.ID, ss.ID, nil))
		}
		withSession("", nil)                                                                                    // idle
		withSession(model.SessionStopped, nil)                                                                  // idle
		withSession(model.SessionRunning, nil)                                                                  // ready
		withSession(model.SessionRunning, nil)                                                                  // ready
		withSession(model.SessionPending, nil)                                                                  // starting
		withSession(model.SessionStarting, nil)                                                                 // starting
		withSession(model.SessionFailed, nil)                                                                   // failed
		withSession(model.SessionRunning, func(sb *model.Sandbox) { sb.ExpiresAt = ptr(t0.Add(-time.Second)) }) // expired
		withSession("", func(sb *model.Sandbox) { sb.ExpiresAt = ptr(t0.Add(time.Second)) })                    // idle, not yet expired
		withSession("", func(sb *model.Sandbox) { sb.Warm = true })                                             // not counted
		gone := createSandbox(t, e, "alice")
		_, err := e.s.SoftDeleteSandbox(e.ctx, gone.ID, t0) // not counted
		must(t, "SoftDeleteSandbox", err)

		got, err := e.s.CountSandboxesByStatus(e.ctx, t0)
		must(t, "CountSandboxesByStatus", err)
		mustEqual(t, "counts", got, map[string]int{
			model.StatusIdle: 3, model.StatusReady: 2, model.StatusStarting: 2, model.StatusFailed: 1, model.StatusExpired: 1,
		})
	})
}
