package replica_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shipyard/shipyard/internal/bay/replica"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func now() time.Time { return time.Now().UTC() }

// A held lease is renewed past its ttl while held, refused to others, lost
// (and its context ended) when another holder takes it after it ran out, and
// free once released.
func TestHold(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			st := storetest.Open(t, d)
			ctx := t.Context()
			const ttl = 300 * time.Millisecond
			held, release, ok, err := replica.Hold(ctx, st, "gc", "a", ttl, now, quiet)
			if err != nil || !ok {
				t.Fatalf("Hold: ok=%v err=%v", ok, err)
			}
			if _, _, ok, err := replica.Hold(ctx, st, "gc", "b", ttl, now, quiet); err != nil || ok {
				t.Fatalf("a second holder got a held lease: ok=%v err=%v", ok, err)
			}
			time.Sleep(3 * ttl) // renewed meanwhile
			if ok, err := st.AcquireLease(ctx, "gc", "b", now(), now().Add(ttl)); err != nil || ok {
				t.Fatalf("the lease lapsed while held and renewed: ok=%v err=%v", ok, err)
			}
			if held.Err() != nil {
				t.Fatal("the held context ended while the lease was held")
			}
			// Another holder takes it as if a's renewals had stopped long ago.
			later := now().Add(time.Hour)
			if ok, err := st.AcquireLease(ctx, "gc", "b", later, later.Add(time.Hour)); err != nil || !ok {
				t.Fatalf("take-over: ok=%v err=%v", ok, err)
			}
			select {
			case <-held.Done():
			case <-time.After(5 * ttl):
				t.Fatal("a lost lease did not end the held context")
			}
			release()
			if err := st.ReleaseLease(ctx, "gc", "b"); err != nil {
				t.Fatal(err)
			}
			_, release, ok, err = replica.Hold(ctx, st, "gc", "c", ttl, now, quiet)
			if err != nil || !ok {
				t.Fatalf("a free lease refused: ok=%v err=%v", ok, err)
			}
			release()
			if ok, err := st.AcquireLease(ctx, "gc", "d", now(), now().Add(ttl)); err != nil || !ok {
				t.Fatalf("a released lease is not free: ok=%v err=%v", ok, err)
			}
		})
	}
}

// The heart records the replica while it runs and removes it when it stops.
func TestHeart(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			st := storetest.Open(t, d)
			h := &replica.Heart{Store: st, Identity: replica.Identity{InstanceID: "dep", ReplicaID: "r1"},
				Interval: 20 * time.Millisecond, Lease: time.Second, Now: now, Log: quiet}
			if err := h.Beat(t.Context()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { defer close(done); h.Run(ctx) }()
			time.Sleep(100 * time.Millisecond)
			live, err := st.LiveReplicas(t.Context(), now())
			if err != nil || len(live) != 1 || live[0].ID != "r1" || live[0].InstanceID != "dep" ||
				!live[0].HeartbeatAt.After(live[0].StartedAt) {
				t.Fatalf("live while running: %+v %v", live, err)
			}
			cancel()
			<-done
			if live, err := st.LiveReplicas(t.Context(), now()); err != nil || len(live) != 0 {
				t.Fatalf("live after a graceful stop: %+v %v", live, err)
			}
		})
	}
}
