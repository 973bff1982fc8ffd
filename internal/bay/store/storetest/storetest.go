// Package storetest gives tests a fresh, isolated database for every backend
// the machine offers: SQLite always (a file in the test's temp dir) and
// PostgreSQL when SHIPYARD_TEST_PG_DSN is set (a new schema per test, selected
// through the connection's search_path and dropped at cleanup). Tests of other
// packages that need a real store use it too:
//
//	for _, d := range storetest.Dialects() {
//		t.Run(d, func(t *testing.T) { st := storetest.Open(t, d); ... })
//	}
//
// scripts/pg.sh starts a local PostgreSQL and prints a DSN for the variable.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shipyard/shipyard/internal/bay/store"
)

// EnvPostgresDSN names the environment variable holding the DSN of a
// PostgreSQL database the tests may create schemas in.
const EnvPostgresDSN = "SHIPYARD_TEST_PG_DSN"

// Dialects returns store.SQLite and, when EnvPostgresDSN is set, store.Postgres.
func Dialects() []string {
	if PostgresDSN() != "" {
		return []string{store.SQLite, store.Postgres}
	}
	return []string{store.SQLite}
}

// PostgresDSN returns the value of EnvPostgresDSN ("" = PostgreSQL tests are skipped).
func PostgresDSN() string { return strings.TrimSpace(os.Getenv(EnvPostgresDSN)) }

// FreshDSN returns the DSN of an empty database of dialect, removed at cleanup.
// The test is skipped for Postgres when EnvPostgresDSN is unset.
func FreshDSN(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case store.SQLite:
		return filepath.Join(t.TempDir(), "bay.db")
	case store.Postgres:
		base := PostgresDSN()
		if base == "" {
			t.Skipf("%s is not set (scripts/pg.sh prints one)", EnvPostgresDSN)
		}
		sweepOnce.Do(func() { sweepStaleSchemas(t, base) })
		// t_<unix seconds>_<random>: the time lets a later run drop what a
		// crashed run (panic, timeout) could not.
		schema := fmt.Sprintf("t_%d_%s", time.Now().Unix(), randHex(6))
		admin(t, base, `CREATE SCHEMA `+schema)
		t.Cleanup(func() { admin(t, base, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) })
		return WithSearchPath(base, schema)
	default:
		t.Fatalf("storetest: unknown dialect %q", dialect)
		return ""
	}
}

// FreshDatabase creates an empty PostgreSQL database, prefix_<random>, on the
// server of base (a postgres:// URL) and returns base pointing at it; it is
// dropped at cleanup, WITH (FORCE) so that Bays still connected do not keep
// it. For tests that hand the DSN to other processes (bin/bay replicas, Bay in
// a pod) and want a database of their own, where FreshDSN gives a schema.
func FreshDatabase(t testing.TB, base, prefix string) *url.URL {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: %s: %v", EnvPostgresDSN, err)
	}
	name := prefix + "_" + randHex(6)
	admin(t, base, `CREATE DATABASE `+name)
	t.Cleanup(func() { dropDatabase(t, base, name) })
	u.Path = "/" + name
	return u
}

// dropDatabase drops name, connections and all. PostgreSQL refuses the drop
// (42501, "must be a member of the role whose process is being terminated")
// while a backend of no role this one may signal is in the database — an
// autovacuum worker, as is likely right after a test's load — so it is tried
// again until that backend is gone, for up to 30 s.
func dropDatabase(t testing.TB, base, name string) {
	t.Helper()
	stmt := `DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		err := exec(base, stmt)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "42501" || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("storetest: %s: %v", stmt, err)
			}
			return
		}
	}
}

// Open opens (and migrates) a store on a fresh database; it is closed at cleanup.
func Open(t testing.TB, dialect string) *store.Store {
	t.Helper()
	return OpenDSN(t, dialect, FreshDSN(t, dialect))
}

// OpenDSN opens a store on dsn (e.g. a second "replica" on the same database);
// it is closed at cleanup.
func OpenDSN(t testing.TB, dialect, dsn string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, dialect, dsn)
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dialect, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	return s
}

// WithSearchPath returns dsn (URL or keyword/value form) with the session's
// search_path set to schema, so unqualified tables live in that schema.
func WithSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("options", "-csearch_path="+schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " options='-csearch_path=" + schema + "'"
}

var sweepOnce sync.Once

// sweepStaleSchemas drops test schemas older than an hour: no test runs that
// long, so they are leftovers of a run that died before its cleanup.
func sweepStaleSchemas(t testing.TB, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_%\_%'`)
	if err != nil {
		return
	}
	var stale []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			continue
		}
		parts := strings.SplitN(name, "_", 3)
		if len(parts) != 3 {
			continue
		}
		if ts, err := strconv.ParseInt(parts[1], 10, 64); err == nil && time.Since(time.Unix(ts, 0)) > time.Hour {
			stale = append(stale, name)
		}
	}
	rows.Close()
	for _, name := range stale {
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+name+` CASCADE`); err != nil {
			t.Logf("storetest: dropping stale schema %s: %v", name, err)
		}
	}
}

func admin(t testing.TB, dsn, stmt string) {
	t.Helper()
	if err := exec(dsn, stmt); err != nil {
		t.Fatalf("storetest: %s: %v", stmt, err)
	}
}

// exec runs one statement on a connection of its own.
func exec(dsn, stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
