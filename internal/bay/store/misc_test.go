package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

func idemRec(owner, key, fingerprint string, created time.Time, ttl time.Duration) *model.IdempotencyRecord {
	return &model.IdempotencyRecord{Owner: owner, Key: key, Fingerprint: fingerprint, CreatedAt: created, ExpiresAt: created.Add(ttl)}
}

func TestIdempotencyLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		reserve := func(rec *model.IdempotencyRecord, now time.Time) (bool, *model.IdempotencyRecord) {
			t.Helper()
			ok, existing, err := e.s.ReserveIdempotency(e.ctx, rec, now)
			must(t, "ReserveIdempotency", err)
			if ok != (existing == nil) {
				t.Fatalf("ReserveIdempotency: reserved=%v with existing=%s", ok, show(existing))
			}
			return ok, existing
		}
		first := idemRec("alice", "k1", "f1", t0, time.Hour)
		if ok, _ := reserve(first, t0); !ok {
			t.Fatal("first reservation refused")
		}
		// The second request sees the first one's pending record.
		ok, existing := reserve(idemRec("alice", "k1", "f2", t0.Add(time.Minute), time.Hour), t0.Add(time.Minute))
		if ok {
			t.Fatal("second reservation of one key succeeded")
		}
		pending := *first
		pending.Response = []byte{}
		mustEqual(t, "pending record", existing, &pending)
		// Keys are per owner.
		if ok, _ := reserve(idemRec("bob", "k1", "f1", t0, time.Hour), t0); !ok {
			t.Fatal("another owner's key with the same name was refused")
		}

		// Completed: replayed with status and body.
		body := []byte(`{"id":"sandbox-0123456789ab","status":"idle","note":"ünïcode"}`)
		must(t, "CompleteIdempotency", e.s.CompleteIdempotency(e.ctx, "alice", "k1", 201, body))
		done := pending
		done.Status, done.Response = 201, body
		_, existing = reserve(idemRec("alice", "k1", "f3", t0.Add(2*time.Minute), time.Hour), t0.Add(2*time.Minute))
		mustEqual(t, "completed record", existing, &done)
		got, err := e.s.GetIdempotency(e.ctx, "alice", "k1")
		must(t, "GetIdempotency", err)
		mustEqual(t, "GetIdempotency", got, &done)
		// Release only drops pending reservations.
		must(t, "ReleaseIdempotency of a completed key", e.s.ReleaseIdempotency(e.ctx, idemRec("alice", "k1", "f1", t0, time.Hour)))
		got, err = e.s.GetIdempotency(e.ctx, "alice", "k1")
		must(t, "GetIdempotency after releasing a completed key", err)
		mustEqual(t, "completed record after release", got, &done)

		// A failed request releases its reservation; the retry runs.
		reserve(idemRec("alice", "k2", "f1", t0, time.Hour), t0)
		must(t, "ReleaseIdempotency", e.s.ReleaseIdempotency(e.ctx, idemRec("alice", "k2", "f1", t0, time.Hour)))
		_, err = e.s.GetIdempotency(e.ctx, "alice", "k2")
		mustErr(t, "released key", err, store.ErrNotFound)
		if ok, _ := reserve(idemRec("alice", "k2", "f1", t0, time.Hour), t0); !ok {
			t.Fatal("reservation after release refused")
		}

		// Expiry: valid up to and including expires_at, replaced after it.
		old := idemRec("alice", "k3", "old", t0, time.Minute)
		reserve(old, t0)
		must(t, "CompleteIdempotency", e.s.CompleteIdempotency(e.ctx, "alice", "k3", 200, []byte(`{}`)))
		if ok, _ := reserve(idemRec("alice", "k3", "new", old.ExpiresAt, time.Hour), old.ExpiresAt); ok {
			t.Fatal("record replaced at its expiry instant")
		}
		later := old.ExpiresAt.Add(time.Microsecond)
		fresh := idemRec("alice", "k3", "new", later, time.Hour)
		if ok, _ := reserve(fresh, later); !ok {
			t.Fatal("expired record not replaced")
		}
		got, err = e.s.GetIdempotency(e.ctx, "alice", "k3")
		must(t, "GetIdempotency", err)
		wantFresh := *fresh
		wantFresh.Response = []byte{}
		mustEqual(t, "replacement record", got, &wantFresh)

		// DeleteExpiredIdempotency removes what expired before now.
		reserve(idemRec("alice", "k4", "f", t0, time.Second), t0)
		n, err := e.s.DeleteExpiredIdempotency(e.ctx, t0.Add(30*time.Minute))
		must(t, "DeleteExpiredIdempotency", err)
		if n != 1 {
			t.Fatalf("DeleteExpiredIdempotency removed %d, want 1 (k4)", n)
		}
		_, err = e.s.GetIdempotency(e.ctx, "alice", "k4")
		mustErr(t, "expired key after sweep", err, store.ErrNotFound)
		_, err = e.s.GetIdempotency(e.ctx, "alice", "k1")
		must(t, "unexpired key after sweep", err)
	})
}

// Simultaneous first requests with one key, on two replicas: exactly one runs,
// every other one sees the winner's record.
func TestIdempotencyConcurrentReserve(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		replicas := []*store.Store{e.s, e.replica(t)}
		cases := []struct {
			name    string
			prepare func(key string) // state before the race
		}{
			{"fresh key", func(string) {}},
			{"expired record", func(key string) {
				_, _, err := e.s.ReserveIdempotency(e.ctx, idemRec("alice", key, "stale", t0.Add(-2*time.Hour), time.Hour), t0.Add(-2*time.Hour))
				must(t, "stale reservation", err)
			}},
		}
		for _, tc := range cases {
			for round := 0; round < 3; round++ {
				key := fmt.Sprintf("key-%s-%d", tc.name, round)
				tc.prepare(key)
				const n = 20
				type result struct {
					ok       bool
					existing *model.IdempotencyRecord
					err      error
				}
				res := make([]result, n)
				parallel(n, func(i int) {
					rec := idemRec("alice", key, fmt.Sprintf("fp-%d", i), t0, time.Hour)
					ok, existing, err := replicas[i%2].ReserveIdempotency(e.ctx, rec, t0)
					res[i] = result{ok, existing, err}
				})
				winner := -1
				for i, r := range res {
					if r.err != nil {
						t.Fatalf("%s: goroutine %d: %v", tc.name, i, r.err)
					}
					if r.ok {
						if winner >= 0 {
							t.Fatalf("%s: goroutines %d and %d both reserved", tc.name, winner, i)
						}
						winner = i
					}
				}
				if winner < 0 {
					t.Fatalf("%s: nobody reserved", tc.name)
				}
				for i, r := range res {
					if i != winner && (r.existing == nil || r.existing.Fingerprint != fmt.Sprintf("fp-%d", winner)) {
						t.Fatalf("%s: goroutine %d saw %s, want the winner's (fp-%d)", tc.name, i, show(r.existing), winner)
					}
				}
			}
		}
	})
}

func TestAPIKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		must(t, "EnsureAPIKey", e.s.EnsureAPIKey(e.ctx, "hash-1", "alice", t0))
		must(t, "EnsureAPIKey again", e.s.EnsureAPIKey(e.ctx, "hash-1", "alice", t0.Add(time.Second)))
		must(t, "EnsureAPIKey, same hash, other owner", e.s.EnsureAPIKey(e.ctx, "hash-1", "mallory", t0))
		must(t, "EnsureAPIKey second key", e.s.EnsureAPIKey(e.ctx, "hash-2", "bob", t0))

		// Several replicas starting at once all ensure the configured key.
		replicas := []*store.Store{e.s, e.replica(t)}
		errs := make([]error, 10)
		parallel(len(errs), func(i int) { errs[i] = replicas[i%2].EnsureAPIKey(e.ctx, "hash-3", "carol", t0) })
		for i, err := range errs {
			must(t, fmt.Sprintf("concurrent EnsureAPIKey %d", i), err)
		}

		// An inactive key is not returned.
		db := rawDB(t, e)
		_, err := db.ExecContext(e.ctx, `INSERT INTO api_keys (id, key_hash, owner, active, created_at) VALUES ('key-off', 'hash-off', 'dave', FALSE, 0)`)
		must(t, "insert inactive key", err)

		got, err := e.s.ActiveAPIKeys(e.ctx)
		must(t, "ActiveAPIKeys", err)
		mustEqual(t, "ActiveAPIKeys", got, map[string]string{"hash-1": "alice", "hash-2": "bob", "hash-3": "carol"})
		var rows int
		must(t, "count", db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&rows))
		if rows != 4 {
			t.Fatalf("%d api_keys rows, want 4", rows)
		}
	})
}

func TestLeases(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		steps := []struct {
			op        string // "acquire" or "release"
			name      string
			holder    string
			now, till int // seconds after t0
			want      bool
		}{
			{"acquire", "gc", "A", 0, 30, true},
			{"acquire", "gc", "B", 10, 40, false},  // held by A
			{"acquire", "gc", "A", 20, 50, true},   // renewal by the holder
			{"acquire", "gc", "B", 40, 70, false},  // the renewal counts
			{"acquire", "warm", "B", 40, 70, true}, // another lease is independent
			{"acquire", "gc", "B", 51, 81, true},   // A's lease expired at 50
			{"acquire", "gc", "A", 60, 90, false},
			{"release", "gc", "A", 0, 0, false}, // not A's: no effect
			{"acquire", "gc", "A", 61, 91, false},
			{"release", "gc", "B", 0, 0, false},
			{"acquire", "gc", "A", 62, 92, true}, // free again
			{"release", "gc", "A", 0, 0, false},
			{"release", "gc", "A", 0, 0, false}, // releasing a free lease is fine
		}
		for i, st := range steps {
			switch st.op {
			case "acquire":
				got, err := e.s.AcquireLease(e.ctx, st.name, st.holder, at(st.now), at(st.till))
				must(t, fmt.Sprintf("step %d", i), err)
				if got != st.want {
					t.Fatalf("step %d: %s acquires %q at +%ds: %v, want %v", i, st.holder, st.name, st.now, got, st.want)
				}
			case "release":
				must(t, fmt.Sprintf("step %d", i), e.s.ReleaseLease(e.ctx, st.name, st.holder))
			}
		}

		// Replicas racing for a free or an expired lease: exactly one gets it.
		replicas := []*store.Store{e.s, e.replica(t)}
		for _, name := range []string{"free", "warm"} { // "warm" expired at +70
			got := make([]bool, 10)
			errs := make([]error, 10)
			parallel(len(got), func(i int) {
				got[i], errs[i] = replicas[i%2].AcquireLease(e.ctx, name, fmt.Sprintf("bay-%d", i), at(100), at(130))
			})
			won := 0
			for i := range got {
				must(t, fmt.Sprintf("racer %d", i), errs[i])
				if got[i] {
					won++
				}
			}
			if won != 1 {
				t.Fatalf("lease %q: %d holders after the race, want 1", name, won)
			}
		}
	})
}

// Requests that fail release their key at once, while others race for it: a
// reservation never reports an error because the record it lost to is gone.
func TestIdempotencyReserveReleaseChurn(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		replicas := []*store.Store{e.s, e.replica(t)}
		const workers, rounds = 8, 40
		errs := make([]error, workers)
		parallel(workers, func(i int) {
			s := replicas[i%2]
			for r := 0; r < rounds && errs[i] == nil; r++ {
				ok, existing, err := s.ReserveIdempotency(e.ctx, idemRec("alice", "churn", "fp", t0, time.Hour), t0)
				switch {
				case err != nil:
					errs[i] = fmt.Errorf("round %d: %w", r, err)
				case ok:
					errs[i] = s.ReleaseIdempotency(e.ctx, idemRec("alice", "churn", "fp", t0, time.Hour))
				case existing != nil && existing.Fingerprint != "fp":
					errs[i] = fmt.Errorf("round %d: saw %s", r, show(existing))
				}
			}
		})
		for i, err := range errs {
			must(t, fmt.Sprintf("worker %d", i), err)
		}
	})
}
