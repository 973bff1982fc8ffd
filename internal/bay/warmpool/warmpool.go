// Package warmpool keeps per-profile sandboxes started ahead of demand, so a
// create without a cargo can hand one out at once. Warm sandboxes never run
// user code, are hidden from lists and GC, are rotated after warm_rotate_ttl
// and are drained on graceful shutdown of the deployment's last replica.
//
// With several Bay replicas on one database the pool is the deployment's, not
// a replica's: its size counts the rows in the database, a claim is a
// conditional UPDATE (two replicas never hand out one member), and refilling
// is a duty one replica holds at a time under a lease.
package warmpool

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/replica"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Observer receives pool metrics. Optional.
type Observer interface {
	WarmPoolSize(profile string, available int)
	WarmPoolHit(profile string)
	WarmPoolMiss(profile string)
}

// Pool is the warm pool of every profile with warm_pool_size > 0.
type Pool struct {
	Store     *store.Store
	Sessions  *session.Manager
	Sandboxes *sandbox.Service
	Config    *config.Config
	Profiles  map[string]*session.Profile
	Now       func() time.Time
	Log       *slog.Logger
	Observer  Observer
	Holder    string        // lease holder id: this replica
	Lease     time.Duration // the refill lease lasts this long unrenewed (default 15s)

	kick chan struct{}
}

func (p *Pool) sized() []*config.Profile {
	var out []*config.Profile
	for _, cp := range p.Config.OrderedProfiles() {
		if cp.WarmPoolSize > 0 {
			out = append(out, cp)
		}
	}
	return out
}

// Claim hands out an available warm sandbox of the profile, or nil.
func (p *Pool) Claim(ctx context.Context, owner, profileID string, expiresAt *time.Time, now time.Time) (*model.Sandbox, error) {
	cp, ok := p.Config.Profile(profileID)
	if !ok || cp.WarmPoolSize == 0 {
		return nil, nil
	}
	idle := now.Add(cp.IdleTimeout())
	sb, err := p.Store.ClaimWarm(ctx, profileID, owner, expiresAt, &idle, now)
	if err != nil {
		return nil, err
	}
	if p.Observer != nil {
		if sb != nil {
			p.Observer.WarmPoolHit(profileID)
		} else {
			p.Observer.WarmPoolMiss(profileID)
		}
	}
	p.Kick()
	return sb, nil
}

// Kick asks for a replenish soon (non-blocking).
func (p *Pool) Kick() {
	if p.kick == nil {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run keeps the pools filled until ctx ends, then drains them.
func (p *Pool) Run(ctx context.Context) {
	if !p.Config.WarmPool.Enabled || len(p.sized()) == 0 {
		return
	}
	p.kick = make(chan struct{}, 1)
	t := time.NewTicker(p.Config.WarmPool.Interval())
	defer t.Stop()
	if p.Config.WarmPool.RunOnStartup {
		p.Kick()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
		p.Reconcile(ctx)
	}
}

// Reconcile rotates, replaces dead members and tops every pool up (bounded concurrency).
func (p *Pool) Reconcile(ctx context.Context) {
	now := p.Now()
	lease := p.Lease
	if lease <= 0 {
		lease = 15 * time.Second
	}
	held, release, ok, err := replica.Hold(ctx, p.Store, "warm_pool", p.Holder, lease, p.Now, p.Log)
	if err != nil || !ok {
		return // another replica refills, or the database is away: next tick
	}
	defer release()
	ctx = held
	for _, cp := range p.sized() {
		members, err := p.Store.WarmSandboxes(ctx, cp.ID)
		if err != nil {
			p.Log.ErrorContext(ctx, "warm pool: list", "profile", cp.ID, "err", err)
			continue
		}
		live := 0
		available := 0
		for _, sb := range members {
			switch {
			case sb.WarmState == model.WarmRetiring:
				p.retire(ctx, sb)
			case sb.WarmState == model.WarmAvailable && sb.WarmRotateAt != nil && !now.Before(*sb.WarmRotateAt):
				if moved, _ := p.Store.SetWarmState(ctx, sb.ID, model.WarmAvailable, model.WarmRetiring, nil, nil); moved {
					p.retire(ctx, sb)
				}
			case sb.WarmState == model.WarmPending && sb.CreatedAt.Add(2*p.Config.Session.ReadyTimeout()).Before(now):
				p.retire(ctx, sb) // a warmup that never finished (Bay died mid-way)
			default:
				live++
				if sb.WarmState == model.WarmAvailable {
					available++
				}
			}
		}
		if p.Observer != nil {
			p.Observer.WarmPoolSize(cp.ID, available)
		}
		missing := cp.WarmPoolSize - live
		workers := max(1, p.Config.WarmPool.WarmupQueueWorkers)
		sem := make(chan struct{}, workers)
		var wg sync.WaitGroup
		for i := 0; i < missing && ctx.Err() == nil; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				p.warmOne(ctx, cp.ID)
			}()
		}
		wg.Wait()
	}
}

// warmOne creates a pool member and starts its compute; it becomes available when running.
func (p *Pool) warmOne(ctx context.Context, profileID string) {
	now := p.Now()
	sb, err := p.Sandboxes.Create(ctx, model.WarmOwner, sandbox.CreateRequest{Profile: profileID, Warm: true}, now)
	if err != nil {
		p.Log.ErrorContext(ctx, "warm pool: create", "profile", profileID, "err", err)
		return
	}
	_, release, err := p.Sessions.EnsureRunning(ctx, sb.ID, p.Profiles[profileID], now)
	if err != nil {
		p.Log.WarnContext(ctx, "warm pool: warmup failed", "profile", profileID, "sandbox_id", sb.ID, "err", err)
		p.retire(context.WithoutCancel(ctx), sb)
		return
	}
	release()
	ready := p.Now()
	cp, _ := p.Config.Profile(profileID)
	rotate := ready.Add(cp.WarmRotateTTL())
	if _, err := p.Store.SetWarmState(ctx, sb.ID, model.WarmPending, model.WarmAvailable, &ready, &rotate); err != nil {
		p.Log.ErrorContext(ctx, "warm pool: mark available", "sandbox_id", sb.ID, "err", err)
	}
}

func (p *Pool) retire(ctx context.Context, sb *model.Sandbox) {
	if err := p.Sandboxes.Delete(ctx, model.WarmOwner, sb.ID, p.Now()); err != nil {
		p.Log.WarnContext(ctx, "warm pool: retire", "sandbox_id", sb.ID, "err", err)
	}
}

// Drain deletes every unclaimed warm sandbox (graceful shutdown), unless
// other replicas still live: the pool is theirs too.
func (p *Pool) Drain(ctx context.Context) {
	live, err := p.Store.LiveReplicas(ctx, p.Now())
	if err != nil {
		p.Log.ErrorContext(ctx, "warm pool: drain", "err", err)
		return
	}
	for _, r := range live {
		if r.ID != p.Holder {
			p.Log.InfoContext(ctx, "warm pool: not drained, other replicas use it", "live_replicas", len(live))
			return
		}
	}
	members, err := p.Store.WarmSandboxes(ctx, "")
	if err != nil {
		p.Log.ErrorContext(ctx, "warm pool: drain", "err", err)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, sb := range members {
		if moved, _ := p.Store.SetWarmState(ctx, sb.ID, sb.WarmState, model.WarmRetiring, nil, nil); !moved {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.retire(ctx, sb)
		}()
	}
	wg.Wait()
}
