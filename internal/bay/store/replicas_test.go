package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func TestReplicaHeartbeats(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		must(t, "beat a", e.s.Heartbeat(e.ctx, "a", "dep", at(0), at(0), at(15)))
		must(t, "beat b", e.replica(t).Heartbeat(e.ctx, "b", "dep", at(0), at(0), at(15)))
		must(t, "beat a again", e.s.Heartbeat(e.ctx, "a", "dep", at(0), at(10), at(25)))
		ids := func(now time.Time) []string {
			t.Helper()
			list, err := e.s.LiveReplicas(e.ctx, now)
			must(t, "LiveReplicas", err)
			out := []string{}
			for _, r := range list {
				out = append(out, r.ID)
			}
			return out
		}
		mustEqual(t, "live at 12s", ids(at(12)), []string{"a", "b"})
		mustEqual(t, "live at 20s (b silent since 0s)", ids(at(20)), []string{"a"})
		n, err := e.s.DeleteDeadReplicas(e.ctx, at(20))
		must(t, "DeleteDeadReplicas", err)
		mustEqual(t, "dead rows removed", n, int64(1))
		must(t, "RemoveReplica", e.s.RemoveReplica(e.ctx, "a"))
		mustEqual(t, "live after a left", ids(at(12)), []string{})
	})
}

// Replicas claiming one session version at once: exactly one wins; the claim
// stands while its replica lives and its start is not overdue, and then lapses.
func TestSessionClaims(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		stores := []*store.Store{e.s, e.replica(t), e.replica(t)}
		at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		for i := range stores {
			must(t, "beat", e.s.Heartbeat(e.ctx, fmt.Sprintf("r%d", i), "dep", at(0), at(0), at(15)))
		}
		sb := createSandbox(t, e, "alice")
		ss := newSession(sb.ID, model.SessionPending)
		must(t, "CreateSession", e.s.CreateSession(e.ctx, ss))

		c, err := e.s.SessionClaim(e.ctx, ss.ID, at(1))
		must(t, "SessionClaim", err)
		if !c.Live(at(1), "r0", 15*time.Second) || c.Live(at(20), "r0", 15*time.Second) {
			t.Fatalf("an unclaimed row has grace after its insertion only: %+v", c)
		}

		won := make([]error, 9)
		parallel(len(won), func(i int) {
			mine := *ss
			mine.ObservedState = model.SessionStarting
			won[i] = stores[i%3].ClaimSessionStart(e.ctx, &mine, fmt.Sprintf("r%d", i%3), at(60))
		})
		winner := -1
		for i, err := range won {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("claims %d and %d both won", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("claim %d: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no claim won")
		}
		holder := fmt.Sprintf("r%d", winner%3)
		other := fmt.Sprintf("r%d", (winner+1)%3)
		got, err := e.s.GetSession(e.ctx, ss.ID)
		must(t, "GetSession", err)
		mustEqual(t, "state", got.ObservedState, model.SessionStarting)
		mustEqual(t, "version", got.Version, ss.Version+1)

		c, err = e.s.SessionClaim(e.ctx, ss.ID, at(5))
		must(t, "SessionClaim", err)
		mustEqual(t, "claimed by", c.Replica, holder)
		if !c.Live(at(5), other, time.Second) {
			t.Fatalf("a live replica's claim does not stand: %+v", c)
		}
		if c.Live(at(5), holder, time.Second) {
			t.Fatal("a replica's own claim stands for itself (it can only be a leftover)")
		}
		if c.Live(at(61), other, time.Second) {
			t.Fatal("an overdue claim stands")
		}
		// The holder dies: its claim lapses with its heartbeat.
		c, err = e.s.SessionClaim(e.ctx, ss.ID, at(16))
		must(t, "SessionClaim", err)
		if c.Live(at(16), other, time.Second) {
			t.Fatalf("a dead replica's claim stands: %+v", c)
		}
		lapsed, err := e.s.LapsedStarts(e.ctx, at(5), at(5).Add(-time.Minute), "")
		must(t, "LapsedStarts while alive", err)
		mustEqual(t, "lapsed while its holder lives", len(lapsed), 0)
		lapsed, err = e.s.LapsedStarts(e.ctx, at(5), at(5).Add(-time.Minute), holder)
		must(t, "LapsedStarts of self", err)
		mustEqual(t, "own claims lapse at start-up", len(lapsed), 1)
		lapsed, err = e.s.LapsedStarts(e.ctx, at(16), at(16).Add(-time.Minute), "")
		must(t, "LapsedStarts after death", err)
		if len(lapsed) != 1 || lapsed[0].ID != ss.ID {
			t.Fatalf("lapsed after its holder died: %s", show(lapsed))
		}

		// A reclaimer deletes only the version it saw.
		ok, err := e.s.DeleteSessionIfVersion(e.ctx, ss.ID, ss.Version)
		must(t, "DeleteSessionIfVersion stale", err)
		if ok {
			t.Fatal("deleted a row that moved on")
		}
		ok, err = e.s.DeleteSessionIfVersion(e.ctx, ss.ID, got.Version)
		must(t, "DeleteSessionIfVersion", err)
		if !ok {
			t.Fatal("did not delete the version it saw")
		}
		_, err = e.s.SessionClaim(e.ctx, ss.ID, at(5))
		mustErr(t, "claim of a deleted session", err, store.ErrNotFound)
	})
}

// A key reserved by a replica that died mid-request is taken over by the next
// request (on any replica), once; a live holder's reservation is waited for.
func TestIdempotencyDeadHolderTakeover(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		must(t, "beat a", e.s.Heartbeat(e.ctx, "a", "dep", at(0), at(0), at(15)))
		must(t, "beat b", e.s.Heartbeat(e.ctx, "b", "dep", at(0), at(0), at(60)))
		rec := func(holder, fp string, now time.Time) *model.IdempotencyRecord {
			r := idemRec("alice", "k", fp, now, time.Hour)
			r.Holder = holder
			return r
		}
		ok, _, err := e.s.ReserveIdempotency(e.ctx, rec("a", "fp", at(1)), at(1))
		must(t, "reserve", err)
		if !ok {
			t.Fatal("first reservation refused")
		}
		ok, existing, err := e.s.ReserveIdempotency(e.ctx, rec("b", "fp", at(5)), at(5))
		must(t, "reserve while a lives", err)
		if ok || existing == nil || existing.Holder != "a" {
			t.Fatalf("a live holder's key was taken: ok=%v existing=%s", ok, show(existing))
		}
		// a dies (heartbeat expired at 15s): b and another request race for the key.
		replicas := []*store.Store{e.s, e.replica(t)}
		res := make([]bool, 6)
		parallel(len(res), func(i int) {
			ok, _, err := replicas[i%2].ReserveIdempotency(e.ctx, rec("b", "fp", at(20)), at(20))
			must(t, "reserve after a died", err)
			res[i] = ok
		})
		n := 0
		for _, ok := range res {
			if ok {
				n++
			}
		}
		mustEqual(t, "takeovers", n, 1)
		got, err := e.s.GetIdempotency(e.ctx, "alice", "k")
		must(t, "GetIdempotency", err)
		mustEqual(t, "holder after takeover", got.Holder, "b")
	})
}
