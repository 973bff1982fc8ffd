// Package store persists Bay's records. One implementation over database/sql
// serves both the embedded SQLite (default) and PostgreSQL (several Bay
// replicas): queries are written once with `?` placeholders and rebound for
// PostgreSQL; times are stored as Unix microseconds. Migrations are versioned
// SQL files embedded in the binary and applied at start-up (goose).
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite" // registers the driver "sqlite"; its *Error codes
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/shipyard/shipyard/internal/bay/model"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound is returned when a row does not exist (or is not visible to the owner).
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a uniqueness guard or an optimistic-lock version rejects a write.
var ErrConflict = errors.New("store: conflict")

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Store is the database handle. Safe for concurrent use.
type Store struct {
	db      *sql.DB
	q       *stmtCache // s.db with prepared statements reused
	dialect string
	seq     atomic.Int64                // last executions.seq handed out (see nextSeq)
	quotas  atomic.Pointer[QuotaConfig] // see SetQuotas
	hist    execBatcher                 // group commit of history rows
	journal *histJournal                // SQLite: history rows off the call's path (nil: hist)
}

// Open connects, applies pending migrations and returns the store.
// dialect is SQLite (dsn = file path, or ":memory:") or Postgres (dsn = URL).
func Open(ctx context.Context, dialect, dsn string) (*Store, error) {
	var (
		db     *sql.DB
		err    error
		gd     goose.Dialect
		memory bool
	)
	switch dialect {
	case SQLite:
		// WAL + busy timeout: concurrent readers with one writer; IMMEDIATE
		// transactions so that read-then-write never deadlocks on upgrade.
		q := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		if dsn == ":memory:" {
			// A private in-memory database per Open, as ":memory:" means in SQLite,
			// shared by the pool's connections: the memdb VFS with a unique name.
			// (Not "file::memory:?cache=shared": that is one database for the whole
			// process, so two stores saw each other's rows, and shared-cache
			// table locks bypass busy_timeout.)
			dsn = "file:/bay-" + model.NewID("mem") + "?vfs=memdb&" + q
			memory = true
		} else if strings.Contains(dsn, "?") {
			dsn = "file:" + dsn + "&" + q
		} else {
			dsn = "file:" + dsn + "?" + q
		}
		db, err = sql.Open("sqlite", dsn)
		gd = goose.DialectSQLite3
		if err == nil {
			db.SetMaxOpenConns(8)
			if memory {
				// The database lives as long as one connection to it: keep them all.
				db.SetMaxIdleConns(8)
			}
		}
	case Postgres:
		var cfg *pgx.ConnConfig
		cfg, err = pgx.ParseConfig(withConnectTimeout(dsn))
		gd = goose.DialectPostgres
		if err == nil {
			cfg.DialFunc = dialContext
			db = stdlib.OpenDB(*cfg)
			db.SetMaxOpenConns(20)
			db.SetMaxIdleConns(10)
		}
	default:
		return nil, fmt.Errorf("store: unknown dialect %q", dialect)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	if err := ping(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", dialect, err)
	}
	if err := migrate(ctx, db, dialect, gd, dsn, memory); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, q: newStmtCache(db), dialect: dialect}
	if dialect == SQLite && !memory {
		if s.journal, err = s.openHistJournal(ctx, sqlitePath(dsn)); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// ping connects, retrying while SQLite answers SQLITE_BUSY. A connection's
// pragmas switch a fresh file to WAL, and of several connections doing that at
// once (replicas starting together, `bay keys` beside a starting Bay) the losers
// can get SQLITE_BUSY without SQLite calling the busy handler first, so the
// busy_timeout does not cover it. ctx bounds the wait.
func ping(ctx context.Context, db *sql.DB) error {
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// sqlitePath is the database file of a SQLite DSN built by Open.
func sqlitePath(dsn string) string {
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return path
}

// migrate applies pending migrations. Several Bay replicas may start at once on
// one empty database: without a lock each one sees no version table and every
// one but the first fails ("relation already exists"). PostgreSQL: a session
// advisory lock keyed by database and schema (only Bays sharing a schema wait
// for each other), held around the whole of goose's Up, including its
// pending-check (which goose's own session locker leaves out: the losers of
// that race sleep a second). SQLite has no advisory locks; one file is used by
// one Bay process, so an in-process lock per file suffices.
func migrate(ctx context.Context, db *sql.DB, dialect string, gd goose.Dialect, dsn string, memory bool) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	switch {
	case dialect == Postgres:
		unlock, err := pgMigrationLock(ctx, db)
		if err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		defer unlock()
	case !memory:
		path := sqlitePath(dsn)
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		h := fnv.New32a()
		h.Write([]byte(path))
		mu := &sqliteMigrateMu[h.Sum32()%uint32(len(sqliteMigrateMu))]
		mu.Lock()
		defer mu.Unlock()
	}
	p, err := goose.NewProvider(gd, db, sub)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// pgMigrationLock takes the migration advisory lock on a connection of its own.
// pg_advisory_lock waits in the server, bounded by ctx, and hands over the
// moment the holder is done; the server drops it if the holder's connection dies.
func pgMigrationLock(ctx context.Context, db *sql.DB) (unlock func(), err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var where string
	if err := conn.QueryRowContext(ctx, `SELECT current_database() || '.' || COALESCE(current_schema(), '')`).Scan(&where); err != nil {
		conn.Close()
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("shipyard/bay/migrations:" + where))
	id := int64(h.Sum64() >> 1)
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, id); err != nil {
		// The lock may have been granted as ctx ended: never pool this session.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
		return nil, err
	}
	return func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, id); err != nil {
			// Closing the session releases the lock; pooling it would keep it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, nil
}

// sqliteMigrateMu serializes migrations of one SQLite file within the process
// (striped by path: bounded, and unrelated files rarely wait for each other).
var sqliteMigrateMu [16]sync.Mutex

// Close closes the database.
func (s *Store) Close() error {
	if s.journal != nil {
		if err := s.journal.close(); err != nil {
			return fmt.Errorf("store: close history journal: %w", err)
		}
	}
	s.q.close()
	return s.db.Close()
}

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Dialect returns SQLite or Postgres.
func (s *Store) Dialect() string { return s.dialect }

// rebind turns `?` placeholders into `$n` for PostgreSQL.
func (s *Store) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *Store) exec(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	res, err := q.ExecContext(ctx, s.rebind(query), args...)
	if err != nil {
		if isUniqueViolation(err) {
			return 0, fmt.Errorf("%w: %v", ErrConflict, err)
		}
		return 0, err
	}
	return res.RowsAffected()
}

// Tx runs fn in one transaction.
func (s *Store) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(&Tx{s: s, tx: sqlTx}); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		if Unavailable(err) {
			return fmt.Errorf("store: commit: %w: %w", errCommitUncertain, err)
		}
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// errCommitUncertain marks a COMMIT whose answer never came: the connection
// broke (the database went away) after it was sent, so the transaction may
// or may not have committed.
var errCommitUncertain = errors.New("outcome unknown")

// UncertainError is a create whose commit was cut (errCommitUncertain): the
// record with ID may or may not exist. Whoever must not repeat the create
// (an idempotent retry) reads it back once the database answers. It wraps the
// database's error, so it is still Unavailable.
type UncertainError struct {
	ID  string // the record the create wrote (or, for a warm claim, took)
	Err error
}

func (e *UncertainError) Error() string { return e.Err.Error() }
func (e *UncertainError) Unwrap() error { return e.Err }

// uncertain wraps err in an *UncertainError for id when err is a cut commit.
func uncertain(id string, err error) error {
	if errors.Is(err, errCommitUncertain) {
		return &UncertainError{ID: id, Err: err}
	}
	return err
}

// Tx is a transaction over the same methods as Store where atomicity matters.
type Tx struct {
	s  *Store
	tx *sql.Tx
}

func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || // SQLite
		strings.Contains(msg, "SQLSTATE 23505") // PostgreSQL
}

// Times are Unix microseconds in the database.

func us(t time.Time) int64 { return t.UnixMicro() }

func usPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromUSPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromUS(v.Int64)
	return &t
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strPtr(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	return &v.String
}

type scanner interface{ Scan(...any) error }

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, s *Store, what string, scan func(scanner) (*T, error), query string, args ...any) ([]*T, error) {
	rows, err := s.q.QueryContext(ctx, s.rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: query %s: %w", what, err)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Page trims rows fetched with limit+1 to limit and returns the cursor of the
// next page (the last id kept), or nil when there is none.
func Page[T any](rows []T, limit int, id func(T) string) ([]T, *string) {
	if len(rows) <= limit {
		return rows, nil
	}
	rows = rows[:limit]
	next := id(rows[limit-1])
	return rows, &next
}
