// Package sandbox is the service behind /v1/sandboxes: create (lazy: no
// compute until the first call), read, list, TTL, keepalive, stop and delete.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// WarmClaimer hands out a ready warm sandbox (nil when the pool has none).
type WarmClaimer interface {
	Claim(ctx context.Context, owner, profileID string, expiresAt *time.Time, now time.Time) (*model.Sandbox, error)
}

// Service implements the sandbox operations.
type Service struct {
	Store    *store.Store
	Sessions *session.Manager
	Driver   driver.Driver
	Config   *config.Config
	Profiles map[string]*session.Profile
	Warm     WarmClaimer // optional
	Log      *slog.Logger

	check *profileCheck // why profiles cannot start (CheckProfiles, SetUnavailable)
}

// CreateRequest is the body of POST /v1/sandboxes.
type CreateRequest struct {
	Profile string
	CargoID *string
	TTL     *int
	// Warm creates a warm-pool member (internal): owned by the pool, hidden, no claim.
	Warm bool
}

// Create makes a sandbox: a warm one when available, else a lazy one with a new
// managed cargo (or the given external cargo).
func (s *Service) Create(ctx context.Context, owner string, req CreateRequest, now time.Time) (*model.Sandbox, error) {
	var expires *time.Time
	if req.TTL != nil && *req.TTL > 0 {
		t := AddSeconds(now, *req.TTL)
		expires = &t
	}
	if req.CargoID == nil && s.Warm != nil && !req.Warm {
		sb, err := s.Warm.Claim(ctx, owner, req.Profile, expires, now)
		if store.Unavailable(err) {
			return nil, err // the normal path needs the database too (and the claim may have committed)
		}
		if err != nil {
			s.Log.WarnContext(ctx, "warm claim failed; creating normally", "err", err)
		} else if sb != nil {
			return sb, nil
		}
	}
	if _, ok := s.Config.Profile(req.Profile); !ok {
		return nil, errs.Newf(errs.Validation, "Invalid profile: %s", req.Profile)
	}
	if err := s.checkAvailable(ctx, req.Profile); err != nil {
		return nil, err
	}
	sb := &model.Sandbox{
		ID: model.NewID("sandbox"), Owner: owner, ProfileID: req.Profile,
		CreatedAt: now, LastActiveAt: now, ExpiresAt: expires,
	}
	if req.Warm {
		sb.Owner, sb.Warm, sb.WarmState = model.WarmOwner, true, model.WarmPending
		owner = model.WarmOwner
	}
	var managed *model.Cargo
	if req.CargoID != nil {
		c, err := s.Store.GetCargo(ctx, owner, *req.CargoID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errs.Newf(errs.NotFound, "Cargo not found: %s", *req.CargoID)
		}
		if err != nil {
			return nil, err
		}
		if c.Managed {
			// A managed cargo lives and dies with its own sandbox: shared, it
			// would be destroyed under the second one when the first goes.
			return nil, errs.Newf(errs.Conflict, "Cargo %s is managed by sandbox %s; only external cargos (POST /v1/cargos) can be attached",
				c.ID, c.ManagedBySandboxID).With(map[string]any{"managed_by_sandbox_id": c.ManagedBySandboxID})
		}
		sb.CargoID = c.ID
	} else {
		managed = NewCargo(owner, s.Config.Cargo.DefaultSizeLimitMB, now)
		managed.Managed = true
		managed.ManagedBySandboxID = sb.ID
		sb.CargoID = managed.ID
		// Record first, then create the volume: a crash in between leaves a record
		// whose volume is missing (harmless: Docker creates it on first mount),
		// never a volume nobody knows about.
	}
	if err := s.Store.CreateSandbox(ctx, sb, managed); err != nil {
		return nil, err
	}
	if managed != nil {
		// Once the record has committed, a client that goes away must not cut
		// the volume's creation (or its rollback) in half.
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), volumeTimeout)
		defer cancel()
		if err := s.Driver.CreateVolume(vctx, managed.DriverRef, CargoLabels(managed, s.Config.GC.InstanceID), managed.SizeLimitMB); err != nil {
			if _, derr := s.Store.SoftDeleteSandbox(vctx, sb.ID, now); derr != nil {
				s.Log.ErrorContext(ctx, "rolling back sandbox", "err", derr)
			}
			RemoveVolume(vctx, s.Driver, s.Store, managed, s.Log)
			return nil, fmt.Errorf("sandbox: create volume: %w", err)
		}
	}
	return sb, nil
}

// Resolve finds out whether a create of owner's at now whose commit was cut
// (a *store.UncertainError naming id) took effect: the sandbox when it did,
// with its managed volume made (the create stopped before making it), nil
// when it did not. A sandbox id that exists names this create's sandbox when
// it is owner's and was created at now: a new id is unique to its create, and
// a warm claim sets the claimed sandbox's owner and creation time.
func (s *Service) Resolve(ctx context.Context, owner, id string, now time.Time) (*model.Sandbox, error) {
	sb, err := s.Store.SandboxByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if sb.Owner != owner || sb.Warm || sb.DeletedAt != nil || sb.CreatedAt.UnixMicro() != now.UnixMicro() {
		return nil, nil
	}
	c, err := s.Store.CargoByID(ctx, sb.CargoID)
	if err != nil {
		return nil, err
	}
	if c.Managed {
		if err := MakeVolume(ctx, s.Driver, c, s.Config.GC.InstanceID); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	return sb, nil
}

// MakeVolume creates c's volume (exists → nil) within volumeTimeout: for a
// create resolved after its commit was cut, which stopped before making it.
func MakeVolume(ctx context.Context, d driver.Driver, c *model.Cargo, instanceID string) error {
	ctx, cancel := context.WithTimeout(ctx, volumeTimeout)
	defer cancel()
	if err := d.CreateVolume(ctx, c.DriverRef, CargoLabels(c, instanceID), c.SizeLimitMB); err != nil {
		return fmt.Errorf("create volume: %w", err)
	}
	return nil
}

// volumeTimeout bounds a volume operation that runs detached from its request.
const volumeTimeout = 30 * time.Second

// RemoveVolume undoes a cargo whose volume creation failed: the engine may
// have made the volume before the failure, so it is removed with the record
// (best effort; GC's orphan pass catches what is left).
func RemoveVolume(ctx context.Context, d driver.Driver, st *store.Store, c *model.Cargo, log *slog.Logger) {
	if err := d.DeleteVolume(ctx, c.DriverRef); err != nil {
		log.WarnContext(ctx, "removing volume of a failed create", "volume", c.DriverRef, "err", err)
		return
	}
	if err := st.DeleteCargo(ctx, c.ID); err != nil {
		log.WarnContext(ctx, "removing cargo record of a failed create", "cargo", c.ID, "err", err)
	}
}

// NewCargo returns a cargo record with its volume name.
func NewCargo(owner string, sizeMB int, now time.Time) *model.Cargo {
	id := model.NewID("ws")
	return &model.Cargo{ID: id, Owner: owner, Backend: "docker_volume", DriverRef: "bay-cargo-" + id,
		SizeLimitMB: sizeMB, CreatedAt: now, LastAccessedAt: now}
}

// CargoLabels are the labels of a cargo's volume; the instance id lets GC find
// volumes of this Bay that have no record.
func CargoLabels(c *model.Cargo, instanceID string) map[string]string {
	m := "false"
	if c.Managed {
		m = "true"
	}
	return map[string]string{driver.LabelManaged: m, driver.LabelOwner: c.Owner, driver.LabelCargoID: c.ID,
		driver.LabelInstanceID: instanceID}
}

// Get returns a visible sandbox and its current session (nil if none).
func (s *Service) Get(ctx context.Context, owner, id string) (*model.Sandbox, *model.Session, error) {
	sb, err := s.Store.GetSandbox(ctx, owner, id)
	if err != nil {
		return nil, nil, notFound(err)
	}
	ss, err := s.Sessions.Current(ctx, sb)
	return sb, ss, err
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errs.New(errs.NotFound, "Resource not found")
	}
	return err
}

// Item is a listed sandbox with its current session.
type Item struct {
	Sandbox *model.Sandbox
	Session *model.Session
}

// List pages owner's sandboxes by id; with a status filter it scans in batches
// (bounded, as upstream) and returns the last scanned id as the cursor.
func (s *Service) List(ctx context.Context, owner, cursor string, limit int, status string, now time.Time) ([]Item, *string, error) {
	if status == "" {
		rows, err := s.Store.ListSandboxes(ctx, owner, cursor, limit+1)
		if err != nil {
			return nil, nil, err
		}
		rows, next := store.Page(rows, limit, func(sb *model.Sandbox) string { return sb.ID })
		items, err := s.withSessions(ctx, rows)
		return items, next, err
	}
	batch := min(max(limit*5, 50), 500)
	budget := max(limit*20, 1000)
	var out []Item
	after := cursor
	for scanned := 0; scanned < budget; {
		rows, err := s.Store.ListSandboxes(ctx, owner, after, batch)
		if err != nil {
			return nil, nil, err
		}
		if len(rows) == 0 {
			return out, nil, nil
		}
		items, err := s.withSessions(ctx, rows)
		if err != nil {
			return nil, nil, err
		}
		for i, it := range items {
			scanned++
			after = it.Sandbox.ID
			if it.Sandbox.Status(now, it.Session) != status {
				if scanned >= budget {
					return out, &after, nil
				}
				continue
			}
			out = append(out, it)
			if len(out) == limit {
				// More may follow: a cursor when rows remain in this batch or beyond.
				if i < len(items)-1 || len(rows) == batch {
					return out, &after, nil
				}
				return out, nil, nil
			}
			if scanned >= budget {
				return out, &after, nil
			}
		}
		if len(rows) < batch {
			return out, nil, nil
		}
	}
	return out, &after, nil
}

func (s *Service) withSessions(ctx context.Context, rows []*model.Sandbox) ([]Item, error) {
	ids := make([]string, 0, len(rows))
	for _, sb := range rows {
		if sb.CurrentSessionID != "" {
			ids = append(ids, sb.CurrentSessionID)
		}
	}
	sessions, err := s.Store.SessionsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(rows))
	for i, sb := range rows {
		items[i] = Item{Sandbox: sb, Session: sessions[sb.CurrentSessionID]}
	}
	return items, nil
}

// ExtendTTL pushes expires_at by extendBy seconds (from max(old, now)).
func (s *Service) ExtendTTL(ctx context.Context, owner, id string, extendBy int, now time.Time) (*model.Sandbox, error) {
	if extendBy <= 0 {
		return nil, errs.New(errs.Validation, "extend_by must be a positive integer")
	}
	unlock, err := s.Sessions.Lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sb, err := s.Store.GetSandbox(ctx, owner, id)
	if err != nil {
		return nil, notFound(err)
	}
	if sb.ExpiresAt == nil {
		return nil, errs.New(errs.SandboxTTLInfinite, "sandbox ttl is infinite, cannot extend ttl").
			With(map[string]any{"sandbox_id": id})
	}
	if sb.ExpiresAt.Before(now) {
		return nil, errs.New(errs.SandboxExpired, "sandbox is expired, cannot extend ttl").
			With(map[string]any{"sandbox_id": id, "expires_at": model.FormatTime(*sb.ExpiresAt)})
	}
	t := AddSeconds(*sb.ExpiresAt, extendBy)
	if err := s.Store.SetExpiresAt(ctx, id, &t); err != nil {
		return nil, err
	}
	sb.ExpiresAt = &t
	return sb, nil
}

// MaxExpiry is the latest expiry Bay stores: later than any TTL the API
// accepts, early enough for every timestamp form it passes through.
var MaxExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// AddSeconds returns t plus n seconds, saturating at MaxExpiry instead of
// wrapping: time.Duration(n)*time.Second overflows above ~9.2e9 s into the
// past, which would expire a sandbox (and let GC delete its volume). n <= 0
// adds nothing, so the result is never before t.
func AddSeconds(t time.Time, n int) time.Time {
	if n <= 0 || !t.Before(MaxExpiry) {
		return t
	}
	if int64(n) >= MaxExpiry.Unix()-t.Unix() {
		return MaxExpiry
	}
	return time.Unix(t.Unix()+int64(n), int64(t.Nanosecond())).In(t.Location())
}

// Keepalive pushes the idle deadline without starting compute.
func (s *Service) Keepalive(ctx context.Context, owner, id string, now time.Time) error {
	sb, err := s.Store.GetSandbox(ctx, owner, id)
	if err != nil {
		return notFound(err)
	}
	idle := now.Add(s.idleTimeout(sb.ProfileID))
	return s.Store.TouchSandbox(ctx, id, &idle, now)
}

func (s *Service) idleTimeout(profileID string) time.Duration {
	if p, ok := s.Profiles[profileID]; ok {
		return p.IdleTimeout
	}
	return 30 * time.Minute
}

// Stop releases the compute; the cargo stays. Idempotent.
func (s *Service) Stop(ctx context.Context, owner, id string) error {
	if _, err := s.Store.GetSandbox(ctx, owner, id); err != nil {
		return notFound(err)
	}
	unlock, err := s.Sessions.Lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	return s.Sessions.DestroyAll(ctx, id)
}

// Delete soft-deletes the sandbox first (state before side effects), then
// removes its sessions and its managed cargo. A crash midway is finished by GC.
func (s *Service) Delete(ctx context.Context, owner, id string, now time.Time) error {
	sb, err := s.Store.GetSandboxAny(ctx, owner, id)
	if err != nil {
		return notFound(err)
	}
	if sb.DeletedAt != nil {
		return nil
	}
	unlock, err := s.Sessions.Lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.Store.SoftDeleteSandbox(ctx, id, now); err != nil {
		return err
	}
	// The sandbox is gone for the client from here on: a release that fails
	// (the engine busy, a volume still in use) is finished by GC's next pass,
	// not reported as a failed delete of a sandbox that no longer exists.
	if err := s.Release(context.WithoutCancel(ctx), sb); err != nil {
		s.Log.WarnContext(ctx, "sandbox deleted; releasing its resources failed, GC will finish", "err", err)
	}
	return nil
}

// Release frees what a soft-deleted sandbox still holds: sessions, then its
// managed cargo. Safe to repeat (GC calls it for half-finished deletes).
func (s *Service) Release(ctx context.Context, sb *model.Sandbox) error {
	if err := s.Sessions.DestroyAll(ctx, sb.ID); err != nil {
		return err
	}
	if err := s.Store.DeletePreviewGenerations(ctx, sb.ID); err != nil {
		return err
	}
	c, err := s.Store.CargoByID(ctx, sb.CargoID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.Managed || c.ManagedBySandboxID != sb.ID {
		return nil // external cargos outlive their sandboxes
	}
	// Defence in depth: a managed cargo attached elsewhere (possible before
	// attaching one became a 409) is kept while a live sandbox mounts it.
	if users, err := s.Store.ActiveSandboxesUsingCargo(ctx, c.ID); err != nil {
		return err
	} else if len(users) > 0 {
		s.Log.WarnContext(ctx, "managed cargo still mounted by live sandboxes; volume kept", "cargo", c.ID, "sandboxes", users)
		return nil
	}
	if err := s.Driver.DeleteVolume(ctx, c.DriverRef); err != nil {
		return fmt.Errorf("sandbox: delete volume: %w", err)
	}
	return s.Store.DeleteCargo(ctx, c.ID)
}
