package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err says the database could not be reached:
// refused or dropped connections, a server shutting down or not yet accepting
// connections (a restart), too many connections. Such failures pass when the
// database is back, so callers answer "retry later" instead of "internal
// error"; a query or data problem is not one of them, and neither is the
// caller's own context ending.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin/crash shutdown, cannot connect now
			pe.Code == "53300": // too many connections
			return true
		}
		return false
	}
	// pgconn's network-level errors (a connection that broke mid-query, a
	// closed one) say whether a retry is safe; query errors do not have it.
	var net interface{ SafeToRetry() bool }
	if errors.As(err, &net) {
		return true
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone)
}

// connectTimeout bounds a PostgreSQL connection attempt when the DSN does not:
// with a database that does not answer (a partition, a host gone), a request
// fails with database_unavailable after this instead of waiting for the
// operating system's TCP timeout (minutes).
const connectTimeout = "5"

// withConnectTimeout adds connect_timeout to a PostgreSQL DSN (URL or
// keyword/value form) that has none.
func withConnectTimeout(dsn string) string {
	if strings.Contains(dsn, "connect_timeout=") {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "connect_timeout=" + connectTimeout
	}
	return strings.TrimSpace(dsn) + " connect_timeout=" + connectTimeout
}
