package idempotency_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/idempotency"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

var errCut = errors.New("commit cut")

// TestUncertainWork covers work whose outcome was lost (its commit cut by a
// database going away): the caller answers the error, and the key is then
// completed with the work's answer when it did happen (a retry replays it and
// never runs the work twice), released when it did not (a retry runs it);
// without a key, work found done is undone.
func TestUncertainWork(t *testing.T) {
	for _, tc := range []struct {
		name      string
		key       string
		done      bool
		wantRuns  int32 // runs of the work after a retry with the same key
		wantUndos int32
	}{
		{name: "committed, retried with its key", key: "k1", done: true, wantRuns: 1},
		{name: "not committed, retried with its key", key: "k2", done: false, wantRuns: 2},
		{name: "committed, no key", key: "", done: true, wantRuns: 2, wantUndos: 1},
		{name: "not committed, no key", key: "", done: false, wantRuns: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := storetest.Open(t, store.SQLite)
			g := &idempotency.Guard{Store: st, Enabled: true, TTL: time.Hour, Poll: time.Millisecond, Wait: 5 * time.Second}
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Microsecond)
			var runs, undos, checks atomic.Int32
			committed := idempotency.Response{Status: 201, Body: []byte(`{"id":"made-by-the-first"}`)}
			work := func() (idempotency.Response, error) {
				if runs.Add(1) > 1 {
					return idempotency.Response{Status: 201, Body: []byte(`{"id":"made-by-a-retry"}`)}, nil
				}
				return idempotency.Response{}, idempotency.Uncertain(errCut,
					func(context.Context) (idempotency.Response, bool, error) {
						if checks.Add(1) == 1 {
							return idempotency.Response{}, false, errors.New("database still away") // asked again later
						}
						return committed, tc.done, nil
					},
					func(context.Context) error { undos.Add(1); return nil })
			}
			_, err := g.Do(ctx, "owner", tc.key, "fp", now, work)
			if !errors.Is(err, errCut) {
				t.Fatalf("first call: err = %v, want the work's error", err)
			}
			// The check runs again in the background once its first try failed.
			// A retry with the key waits for its outcome by itself (the key
			// stays pending until then); without one, wait for the undo.
			for deadline := time.Now().Add(5 * time.Second); checks.Load() < 2 || undos.Load() < tc.wantUndos; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the uncertain work was never resolved")
				}
			}
			resp, err := g.Do(ctx, "owner", tc.key, "fp", now, work)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if runs.Load() != tc.wantRuns || undos.Load() != tc.wantUndos {
				t.Errorf("work ran %d times and was undone %d times; want %d and %d", runs.Load(), undos.Load(), tc.wantRuns, tc.wantUndos)
			}
			want := `{"id":"made-by-a-retry"}`
			if tc.wantRuns == 1 {
				want = string(committed.Body)
			}
			if resp.Status != 201 || string(resp.Body) != want {
				t.Errorf("retry answered %d %s, want 201 %s", resp.Status, resp.Body, want)
			}
		})
	}
}
