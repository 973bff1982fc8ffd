// Package idempotency makes the three creating POSTs safe to retry: the first
// request with a key reserves it in the database, runs, and stores its response;
// a repeat replays it; a concurrent repeat waits for the first and replays.
// The reservation is a row keyed by (owner, key), so this holds across Bay
// replicas sharing one database; a reservation whose replica died mid-request
// is taken over by the next repeat instead of blocking the key until its TTL.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"regexp"
	"time"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

var keyRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// Guard runs requests at most once per (owner, key).
type Guard struct {
	Store   *store.Store
	Enabled bool
	TTL     time.Duration
	// Poll is how often a waiting duplicate checks for the first one's result (default 50ms).
	Poll time.Duration
	// Wait bounds how long a duplicate waits (default 5 min).
	Wait time.Duration
	// Holder is this replica's id, recorded with each reservation.
	Holder string
	// Settle bounds how long completing or releasing a reservation is retried
	// while the database is away (default 2 min); Log reports it. Optional.
	Settle time.Duration
	Log    *slog.Logger
}

// settle completes or releases a reservation (or resolves work whose outcome
// was lost). When the database is away (a restart), it keeps trying in the
// background rather than leave the key pending until its TTL, during which
// every repeat would wait for nothing.
func (g *Guard) settle(ctx context.Context, what string, op func(context.Context) error) {
	ctx = context.WithoutCancel(ctx)
	try := func() error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return op(c)
	}
	if try() == nil {
		return
	}
	bound := g.Settle
	if bound <= 0 {
		bound = 2 * time.Minute
	}
	go func() {
		deadline := time.Now().Add(bound)
		delay := 250 * time.Millisecond
		for {
			time.Sleep(delay)
			err := try()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				if g.Log != nil {
					g.Log.ErrorContext(ctx, "idempotency: could not "+what+" a reservation; the key stays pending until its TTL (if any)", "err", err)
				}
				return
			}
			delay = min(2*delay, 5*time.Second)
		}
	}()
}

// Check finds out whether work whose outcome was lost took effect: done with
// the answer it would have given, or not done; err when it cannot tell yet
// (the database is still away), and it is asked again later.
type Check func(ctx context.Context) (resp Response, done bool, err error)

// Uncertain wraps err, the error of work that may or may not have taken
// effect (its commit was cut, see store.UncertainError), with the check that
// tells and the undo that reverses it. The caller still answers err. With a
// key, the reservation is then completed with the work's answer when check
// finds it done, released when not, so a retry with the same key never does
// the work twice; without one, work found done is undone, since its client
// was told it failed and will not know what it made.
func Uncertain(err error, check Check, undo func(context.Context) error) error {
	return &uncertainError{err: err, check: check, undo: undo}
}

type uncertainError struct {
	err   error
	check Check
	undo  func(context.Context) error
}

func (e *uncertainError) Error() string { return e.err.Error() }
func (e *uncertainError) Unwrap() error { return e.err }

// Response is a stored response.
type Response struct {
	Status int
	Body   []byte
}

// Fingerprint is sha256 of "METHOD:path:body" (body = the normalized request).
func Fingerprint(method, path string, body []byte) string {
	h := sha256.Sum256([]byte(method + ":" + path + ":" + string(body)))
	return hex.EncodeToString(h[:])
}

// Do runs fn once for key. key "" or a disabled guard just runs fn.
func (g *Guard) Do(ctx context.Context, owner, key, fingerprint string, now time.Time, fn func() (Response, error)) (Response, error) {
	if !g.Enabled || key == "" {
		resp, err := fn()
		if u, ok := errors.AsType[*uncertainError](err); ok {
			g.settle(ctx, "undo", func(c context.Context) error {
				_, done, err := u.check(c)
				if err != nil || !done {
					return err
				}
				return u.undo(c)
			})
		}
		return resp, err
	}
	if !keyRe.MatchString(key) {
		return Response{}, errs.New(errs.Conflict, "Invalid Idempotency-Key format: must be 1-128 alphanumeric characters, dash, or underscore").
			With(map[string]any{"key": key})
	}
	rec := &model.IdempotencyRecord{Owner: owner, Key: key, Fingerprint: fingerprint, CreatedAt: now,
		ExpiresAt: now.Add(g.TTL), Holder: g.Holder}
	poll, wait := g.Poll, g.Wait
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	begin := time.Now()
	deadline := begin.Add(wait)
	for {
		// The domain clock moves on while a duplicate waits (a holder may die meanwhile).
		reserved, existing, err := g.Store.ReserveIdempotency(ctx, rec, now.Add(time.Since(begin)))
		if _, ok := errors.AsType[*store.UncertainError](err); ok {
			// The reservation may have committed: drop it once the database
			// answers, or every retry would wait for a request that is over.
			g.settle(ctx, "release", func(c context.Context) error { return g.Store.ReleaseIdempotency(c, rec) })
		}
		if err != nil {
			return Response{}, err
		}
		if reserved {
			resp, err := fn()
			if u, ok := errors.AsType[*uncertainError](err); ok {
				g.settle(ctx, "resolve", func(c context.Context) error {
					r, done, err := u.check(c)
					switch {
					case err != nil:
						return err
					case done && r.Status < 300:
						return g.Store.CompleteIdempotency(c, owner, key, r.Status, r.Body)
					default:
						return g.Store.ReleaseIdempotency(c, rec)
					}
				})
				return resp, err
			}
			if err != nil || resp.Status >= 300 {
				g.settle(ctx, "release", func(c context.Context) error { return g.Store.ReleaseIdempotency(c, rec) })
				return resp, err
			}
			// The work is done: answer it even when storing the answer must wait
			// for the database (duplicates wait for the stored answer meanwhile).
			g.settle(ctx, "complete", func(c context.Context) error {
				return g.Store.CompleteIdempotency(c, owner, key, resp.Status, resp.Body)
			})
			return resp, nil
		}
		if existing != nil && existing.Fingerprint != fingerprint {
			return Response{}, errs.New(errs.Conflict, "Idempotency key already used with different request parameters").
				With(map[string]any{"key": key, "hint": "Use a different Idempotency-Key for different request parameters"})
		}
		if existing != nil && existing.Status != 0 {
			return Response{Status: existing.Status, Body: existing.Response}, nil
		}
		// The first request is still running (or released its key): wait and look again.
		if time.Now().After(deadline) {
			return Response{}, errs.New(errs.Conflict, "A request with this Idempotency-Key is still in progress").
				With(map[string]any{"key": key})
		}
		select {
		case <-ctx.Done():
			return Response{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}
