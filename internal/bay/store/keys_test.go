package store_test

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

func newKey(owner string, admin bool, label string) *store.APIKey {
	return &store.APIKey{ID: model.NewID("key"), Owner: owner, Admin: admin, Prefix: "sk-bay-" + owner[:1],
		Label: label, Active: true, CreatedAt: t0}
}

func TestTenantAPIKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		alice := newKey("alice", false, "ci")
		root := newKey("root", true, "")
		must(t, "CreateAPIKey alice", e.s.CreateAPIKey(e.ctx, alice, "hash-alice"))
		must(t, "CreateAPIKey root", e.s.CreateAPIKey(e.ctx, root, "hash-root"))
		if err := e.s.CreateAPIKey(e.ctx, newKey("mallory", true, ""), "hash-alice"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CreateAPIKey with a stored hash: %v, want ErrConflict", err)
		}

		lookups := []struct {
			hash    string
			want    *store.APIKey
			wantErr error
		}{
			{"hash-alice", alice, nil},
			{"hash-root", root, nil},
			{"hash-none", nil, store.ErrNotFound},
			{"", nil, store.ErrNotFound},
			{"HASH-ALICE", nil, store.ErrNotFound}, // hashes are compared exactly
		}
		for _, c := range lookups {
			got, stored, err := e.s.LookupAPIKey(e.ctx, c.hash)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("LookupAPIKey(%q): %v, want %v", c.hash, err, c.wantErr)
			}
			if c.want != nil {
				mustEqual(t, "LookupAPIKey "+c.hash, got, c.want)
				mustEqual(t, "stored hash", stored, c.hash)
			}
		}

		// Listing: by owner, all owners, pages, revoked ones only when asked.
		bob1, bob2 := newKey("bob", false, ""), newKey("bob", false, "")
		must(t, "CreateAPIKey bob1", e.s.CreateAPIKey(e.ctx, bob1, "hash-bob1"))
		must(t, "CreateAPIKey bob2", e.s.CreateAPIKey(e.ctx, bob2, "hash-bob2"))
		list := func(f store.KeyFilter) []string {
			t.Helper()
			if f.Limit == 0 {
				f.Limit = 100
			}
			ks, err := e.s.ListAPIKeys(e.ctx, f)
			must(t, "ListAPIKeys", err)
			var ids []string
			for _, k := range ks {
				ids = append(ids, k.ID)
			}
			return ids
		}
		mustEqual(t, "bob's keys", list(store.KeyFilter{Owner: "bob"}), sortedIDs(bob1.ID, bob2.ID))
		mustEqual(t, "all keys", list(store.KeyFilter{}), sortedIDs(alice.ID, root.ID, bob1.ID, bob2.ID))
		first := list(store.KeyFilter{Limit: 1})
		mustEqual(t, "page 1", len(first), 1)
		mustEqual(t, "page 2", list(store.KeyFilter{After: first[0]})[0] != first[0], true)

		// Revoke: refused at once, through another replica too; idempotent.
		other := e.replica(t)
		got, err := e.s.RevokeAPIKey(e.ctx, bob1.ID, t0.Add(time.Minute))
		must(t, "RevokeAPIKey", err)
		if got.Active || got.RevokedAt == nil || !got.RevokedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("revoked key: %s", show(got))
		}
		if _, _, err := other.LookupAPIKey(e.ctx, "hash-bob1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked key looked up on another replica: %v", err)
		}
		again, err := other.RevokeAPIKey(e.ctx, bob1.ID, t0.Add(time.Hour))
		must(t, "RevokeAPIKey again", err)
		mustEqual(t, "revoked twice keeps the first time", again, got)
		if _, err := e.s.RevokeAPIKey(e.ctx, "key-nope", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeAPIKey of an unknown id: %v", err)
		}
		mustEqual(t, "bob's active keys", list(store.KeyFilter{Owner: "bob"}), []string{bob2.ID})
		mustEqual(t, "bob's keys with revoked", list(store.KeyFilter{Owner: "bob", IncludeRevoked: true}), sortedIDs(bob1.ID, bob2.ID))

		// Rotate: the new key inherits owner, admin and label; the old one is revoked.
		next := &store.APIKey{ID: model.NewID("key"), Prefix: "sk-bay-n", Owner: "ignored", Admin: true}
		rot, err := e.s.RotateAPIKey(e.ctx, alice.ID, next, "hash-alice-2", t0.Add(2*time.Minute))
		must(t, "RotateAPIKey", err)
		want := &store.APIKey{ID: next.ID, Owner: "alice", Admin: false, Prefix: "sk-bay-n", Label: "ci", Active: true,
			CreatedAt: t0.Add(2 * time.Minute), RotatedFrom: alice.ID}
		mustEqual(t, "rotated key", rot, want)
		got, _, err = other.LookupAPIKey(e.ctx, "hash-alice-2")
		must(t, "LookupAPIKey rotated", err)
		mustEqual(t, "rotated key as stored", got, want)
		if _, _, err := other.LookupAPIKey(e.ctx, "hash-alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rotated-away key looked up: %v", err)
		}
		for _, id := range []string{alice.ID, "key-nope"} {
			if _, err := e.s.RotateAPIKey(e.ctx, id, &store.APIKey{ID: model.NewID("key")}, "hash-x-"+id, t0); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("RotateAPIKey(%s) of a revoked/unknown key: %v, want ErrNotFound", id, err)
			}
		}

		// Two replicas rotating one key at once: exactly one new key.
		racer := newKey("carol", false, "")
		must(t, "CreateAPIKey carol", e.s.CreateAPIKey(e.ctx, racer, "hash-carol"))
		stores := []*store.Store{e.s, other}
		var won, lost atomic.Int32
		parallel(6, func(i int) {
			_, err := stores[i%2].RotateAPIKey(e.ctx, racer.ID, &store.APIKey{ID: model.NewID("key")}, fmt.Sprintf("hash-carol-%d", i), t0)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, store.ErrNotFound):
				lost.Add(1)
			default:
				t.Errorf("concurrent rotate %d: %v", i, err)
			}
		})
		if won.Load() != 1 || lost.Load() != 5 {
			t.Fatalf("concurrent rotations: %d won, %d lost; want 1 and 5", won.Load(), lost.Load())
		}
		mustEqual(t, "carol's active keys", len(list(store.KeyFilter{Owner: "carol"})), 1)
	})
}

func sortedIDs(ids ...string) []string {
	out := append([]string(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestEnsureAdminKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		k := newKey("default", true, "security.api_key")
		got, err := e.s.EnsureAdminKey(e.ctx, k, "hash-conf")
		must(t, "EnsureAdminKey", err)
		mustEqual(t, "ensured key", got, k)
		// A restart (or another replica) finds it: same row.
		again, err := e.e2(t).EnsureAdminKey(e.ctx, newKey("default", true, "security.api_key"), "hash-conf")
		must(t, "EnsureAdminKey again", err)
		mustEqual(t, "ensured again", again, k)
		// An admin revoked it: a restart does not bring it back.
		_, err = e.s.RevokeAPIKey(e.ctx, k.ID, t0.Add(time.Minute))
		must(t, "RevokeAPIKey", err)
		again, err = e.s.EnsureAdminKey(e.ctx, newKey("default", true, "security.api_key"), "hash-conf")
		must(t, "EnsureAdminKey after revoke", err)
		if again.Active || again.ID != k.ID {
			t.Fatalf("EnsureAdminKey after revoke: %s", show(again))
		}
		// A tenant key of the default owner with that hash becomes an admin key.
		tenant := newKey("default", false, "")
		must(t, "CreateAPIKey", e.s.CreateAPIKey(e.ctx, tenant, "hash-t"))
		up, err := e.s.EnsureAdminKey(e.ctx, newKey("default", true, ""), "hash-t")
		must(t, "EnsureAdminKey upgrade", err)
		if !up.Admin || up.ID != tenant.ID {
			t.Fatalf("EnsureAdminKey of a stored tenant key: %s", show(up))
		}
		// Another owner's key with that hash is left alone.
		bob := newKey("bob", false, "")
		must(t, "CreateAPIKey bob", e.s.CreateAPIKey(e.ctx, bob, "hash-b"))
		got, err = e.s.EnsureAdminKey(e.ctx, newKey("default", true, ""), "hash-b")
		must(t, "EnsureAdminKey of bob's hash", err)
		mustEqual(t, "bob's key untouched", got, bob)
	})
}

func (e *env) e2(t *testing.T) *store.Store { return e.replica(t) }

// Keys stored before 00004 (the configured and the generated key of the
// default owner) become admin keys; other owners' keys become tenant keys.
func TestTenantMigrationKeepsDefaultKeysAdmin(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		db := rawDB(t, e)
		// Roll back to 00003 as an older Bay left it, then store its keys.
		gd := goose.DialectSQLite3
		if e.dialect == store.Postgres {
			gd = goose.DialectPostgres
		}
		p, err := goose.NewProvider(gd, db, os.DirFS("migrations"))
		must(t, "goose provider", err)
		_, err = p.DownTo(e.ctx, 3)
		must(t, "migrate down to 3", err)
		_, err = db.ExecContext(e.ctx, `INSERT INTO api_keys (id, key_hash, owner, active, created_at) VALUES
			('key-d', 'hash-d', 'default', TRUE, 1), ('key-o', 'hash-o', 'other', TRUE, 1)`)
		must(t, "insert old keys", err)

		s2, err := store.Open(e.ctx, e.dialect, e.dsn)
		must(t, "reopen (migrates)", err)
		defer s2.Close()
		for hash, admin := range map[string]bool{"hash-d": true, "hash-o": false} {
			k, _, err := s2.LookupAPIKey(e.ctx, hash)
			must(t, "LookupAPIKey "+hash, err)
			if k.Admin != admin || !k.Active {
				t.Errorf("%s after migrating: %s, want admin=%v", hash, show(k), admin)
			}
		}
	})
}

// BenchmarkLookupAPIKey is the per-request cost of authenticating a key (no cache).
func BenchmarkLookupAPIKey(b *testing.B) {
	for _, d := range storetest.Dialects() {
		b.Run(d, func(b *testing.B) {
			s := storetest.Open(b, d)
			for i := range 100 {
				must2(b, s.CreateAPIKey(b.Context(), newKey(fmt.Sprintf("o%d", i), false, ""), fmt.Sprintf("hash-%d", i)))
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, _, err := s.LookupAPIKey(b.Context(), fmt.Sprintf("hash-%d", i%100)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func must2(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}
