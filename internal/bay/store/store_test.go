package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

// rawDB opens the test database without the store (to look at what goose wrote).
func rawDB(t *testing.T, e *env) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", e.dsn
	if e.dialect == store.SQLite {
		driver, dsn = "sqlite", "file:"+e.dsn+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	must(t, "sql.Open", err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		db := rawDB(t, e)
		applied := func() (rows int, maxVersion int64) {
			t.Helper()
			must(t, "goose_db_version", db.QueryRowContext(e.ctx,
				`SELECT COUNT(*), MAX(version_id) FROM goose_db_version WHERE version_id > 0 AND is_applied`).
				Scan(&rows, &maxVersion))
			return
		}
		n, v := applied()
		const last = 6 // the number of the newest file in migrations/
		if n != last || v != last {
			t.Fatalf("fresh database: %d applied migrations up to version %d, want %d up to %d", n, v, last, last)
		}
		for _, table := range []string{"sandboxes", "sessions", "cargos", "executions", "idempotency_keys", "api_keys", "leases",
			"skill_blobs", "skill_candidates", "skill_evaluations", "skill_releases", "preview_keys", "preview_generations", "owner_quotas", "replicas"} {
			var c int
			must(t, "table "+table, db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM `+table).Scan(&c))
		}

		sb := createSandbox(t, e, "alice")
		// Reopening (a Bay restart, or a second replica) applies nothing twice and keeps the data.
		for i := 0; i < 3; i++ {
			s2, err := store.Open(e.ctx, e.dialect, e.dsn)
			must(t, "reopen", err)
			got, err := s2.GetSandbox(e.ctx, "alice", sb.ID)
			must(t, "GetSandbox after reopen", err)
			mustEqual(t, "sandbox after reopen", got, sb)
			must(t, "close", s2.Close())
		}
		if n, v := applied(); n != last || v != last {
			t.Fatalf("after reopening: %d applied migrations up to version %d, want %d up to %d", n, v, last, last)
		}
		if e.s.Dialect() != e.dialect {
			t.Fatalf("Dialect() = %q, want %q", e.s.Dialect(), e.dialect)
		}
		must(t, "Ping", e.s.Ping(e.ctx))
	})
}

// Several Bay replicas may start at once on one empty database: every one of
// them must come up, the schema migrated exactly once.
func TestConcurrentOpenOnFreshDatabase(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.FreshDSN(t, d)
			const replicas = 4
			stores := make([]*store.Store, replicas)
			errs := make([]error, replicas)
			parallel(replicas, func(i int) {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				stores[i], errs[i] = store.Open(ctx, d, dsn)
			})
			for i, err := range errs {
				if err != nil {
					t.Errorf("replica %d: Open: %v", i, err)
					continue
				}
				defer stores[i].Close()
			}
			if t.Failed() {
				return
			}
			// They all see one schema.
			sb := newSandbox("alice")
			c := newCargo("alice", true, sb.ID)
			sb.CargoID = c.ID
			must(t, "CreateSandbox", stores[0].CreateSandbox(t.Context(), sb, c))
			for i, s := range stores {
				if _, err := s.GetSandbox(t.Context(), "alice", sb.ID); err != nil {
					t.Errorf("replica %d: GetSandbox: %v", i, err)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cases := []struct{ name, dialect, dsn string }{
		{"unknown dialect", "mysql", "x"},
		{"sqlite in a missing directory", store.SQLite, filepath.Join(t.TempDir(), "no", "such", "dir", "bay.db")},
		{"postgres nobody listens on", store.Postgres, "postgres://u:p@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := store.Open(ctx, c.dialect, c.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q, %q) succeeded", c.dialect, c.dsn)
			}
			if strings.Contains(err.Error(), "p@") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// ":memory:" is a private in-memory database per Open (as in SQLite), safe for
// concurrent use through the pool.
func TestSQLiteMemory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, err := store.Open(ctx, store.SQLite, ":memory:")
	must(t, "Open a", err)
	defer a.Close()
	b, err := store.Open(ctx, store.SQLite, ":memory:")
	must(t, "Open b", err)
	defer b.Close()

	e := &env{dialect: store.SQLite, s: a, ctx: ctx}
	sb := createSandbox(t, e, "alice")
	if _, err := a.GetSandbox(ctx, "alice", sb.ID); err != nil {
		t.Fatalf("a.GetSandbox: %v", err)
	}
	if _, err := b.GetSandbox(ctx, "alice", sb.ID); err == nil {
		t.Fatalf("a sandbox written through one :memory: store is visible in another")
	}

	// Many writers and readers at once: no "database is locked" / "table is locked".
	errs := make([]error, 32)
	parallel(len(errs), func(i int) {
		ss := newSession(sb.ID, model.SessionStopped)
		if errs[i] = a.CreateSession(ctx, ss); errs[i] != nil {
			return
		}
		if _, errs[i] = a.SessionsOf(ctx, sb.ID); errs[i] != nil {
			return
		}
		rec := &model.IdempotencyRecord{Owner: "alice", Key: model.NewID("k"), Fingerprint: "f", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		_, _, errs[i] = a.ReserveIdempotency(ctx, rec, t0)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	list, err := a.SessionsOf(ctx, sb.ID)
	must(t, "SessionsOf", err)
	if len(list) != len(errs) {
		t.Fatalf("%d sessions, want %d", len(list), len(errs))
	}
}
