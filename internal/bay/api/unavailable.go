package api

import (
	"errors"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// retryUnavailable is the Retry-After of an answer given while the database or
// the container engine is away (a restart takes seconds).
const retryUnavailable = 2 * time.Second

// unavailable maps "the database / the engine cannot be reached" to a 503 the
// client may retry, or returns nil. The cause (a driver message naming hosts
// and sockets) is logged, never sent.
func unavailable(err error) *errs.Error {
	switch {
	case store.Unavailable(err):
		return &errs.Error{Code: errs.DatabaseUnavailable, Message: "The database is unavailable; retry shortly",
			RetryAfter: retryUnavailable, Err: err,
			Details: map[string]any{"retry_after_ms": retryUnavailable.Milliseconds()}}
	case errors.Is(err, driver.ErrUnavailable):
		return &errs.Error{Code: errs.DriverUnavailable, Message: "The container engine is unavailable; retry shortly",
			RetryAfter: retryUnavailable, Err: err,
			Details: map[string]any{"retry_after_ms": retryUnavailable.Milliseconds()}}
	}
	return nil
}
