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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		schema := "t_" + randHex(8)
		admin(t, base, `CREATE SCHEMA `+schema)
		t.Cleanup(func() { admin(t, base, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) })
		return WithSearchPath(base, schema)
	default:
		t.Fatalf("storetest: unknown dialect %q", dialect)
		return ""
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

func admin(t testing.TB, dsn, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("storetest: %s: %v", stmt, err)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
