// Package replica makes one Bay process a member of a deployment of several
// replicas sharing one database: it records that the replica is alive
// (heartbeats, so the others can tell its claims from a dead one's) and holds
// duties that one replica at a time may do (leases, renewed while held and
// lapsing when their holder dies).
package replica

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Store is the persistence the replica needs.
type Store interface {
	Heartbeat(ctx context.Context, id, instanceID string, started, now, until time.Time) error
	RemoveReplica(ctx context.Context, id string) error
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Identity names a replica: the deployment (labels on what Bay creates) and
// the process (logs, /health, claims, leases).
type Identity struct {
	InstanceID string
	ReplicaID  string
}

// Heart records the replica's heartbeats.
type Heart struct {
	Store    Store
	Identity Identity
	Interval time.Duration // between beats
	Lease    time.Duration // a replica silent this long is dead
	Now      func() time.Time
	Log      *slog.Logger

	started time.Time
}

// Beat records one heartbeat (the first one also the start time).
func (h *Heart) Beat(ctx context.Context) error {
	now := h.Now()
	if h.started.IsZero() {
		h.started = now
	}
	return h.Store.Heartbeat(ctx, h.Identity.ReplicaID, h.Identity.InstanceID, h.started, now, now.Add(h.Lease))
}

// Run beats every interval until ctx ends, then removes the replica's row so
// the others know at once that it left. A failed beat is logged and retried
// at the next tick (the database may be restarting).
func (h *Heart) Run(ctx context.Context) {
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := h.Store.RemoveReplica(cctx, h.Identity.ReplicaID); err != nil {
				h.Log.Warn("replica: removing heartbeat row", "err", err)
			}
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, h.Interval)
		err := h.Beat(bctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			h.Log.Error("replica: heartbeat failed; other replicas will take this one for dead after the lease",
				"err", err, "lease_ms", h.Lease.Milliseconds())
			failing = true
		case err == nil && failing:
			h.Log.Info("replica: heartbeat recorded again")
			failing = false
		}
	}
}

// Hold takes the named lease for holder for ttl and keeps renewing it (every
// ttl/3) until release is called or it is lost. The returned context ends when
// the lease is lost (a renewal that did not succeed before the lease ran out:
// another replica may have it by then), so the duty under it stops. ok=false
// means another holder has it.
func Hold(ctx context.Context, st Store, name, holder string, ttl time.Duration, now func() time.Time, log *slog.Logger) (held context.Context, release func(), ok bool, err error) {
	t := now()
	ok, err = st.AcquireLease(ctx, name, holder, t, t.Add(ttl))
	if err != nil || !ok {
		return nil, nil, ok, err
	}
	held, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		until := t.Add(ttl)
		tick := time.NewTicker(max(ttl/3, time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-tick.C:
			}
			t := now()
			rctx, rcancel := context.WithTimeout(held, ttl/3)
			ok, err := st.AcquireLease(rctx, name, holder, t, t.Add(ttl))
			rcancel()
			switch {
			case err == nil && ok:
				until = t.Add(ttl)
			case err == nil || !t.Before(until):
				// Someone else has it, or it ran out while we could not renew.
				log.Warn("replica: lease lost", "lease", name, "holder", holder, "err", err)
				cancel()
				return
			}
		}
	}()
	var once sync.Once
	release = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer rcancel()
			_ = st.ReleaseLease(rctx, name, holder)
		})
	}
	return held, release, true, nil
}
