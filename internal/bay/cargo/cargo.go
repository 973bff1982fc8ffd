// Package cargo is the service behind /v1/cargos: external volumes that outlive sandboxes.
package cargo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Service implements the cargo operations.
type Service struct {
	Store      *store.Store
	Driver     driver.Driver
	InstanceID string
	Log        *slog.Logger // nil = slog.Default()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Create records an external cargo and creates its volume.
func (s *Service) Create(ctx context.Context, owner string, sizeMB int, now time.Time) (*model.Cargo, error) {
	c := sandbox.NewCargo(owner, sizeMB, now)
	if err := s.Store.CreateCargo(ctx, c); err != nil {
		return nil, err
	}
	// Past the commit, a client that goes away must not leave a volume behind.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.Driver.CreateVolume(vctx, c.DriverRef, sandbox.CargoLabels(c, s.InstanceID), c.SizeLimitMB); err != nil {
		sandbox.RemoveVolume(vctx, s.Driver, s.Store, c, s.log())
		return nil, fmt.Errorf("cargo: create volume: %w", err)
	}
	return c, nil
}

// Resolve finds out whether a create of owner's whose commit was cut (a
// *store.UncertainError naming id) took effect: the cargo, with its volume
// made, when it did; nil when it did not.
func (s *Service) Resolve(ctx context.Context, owner, id string) (*model.Cargo, error) {
	c, err := s.Store.GetCargo(ctx, owner, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := sandbox.MakeVolume(ctx, s.Driver, c, s.InstanceID); err != nil {
		return nil, fmt.Errorf("cargo: %w", err)
	}
	return c, nil
}

// Get returns an owned cargo.
func (s *Service) Get(ctx context.Context, owner, id string) (*model.Cargo, error) {
	c, err := s.Store.GetCargo(ctx, owner, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.Newf(errs.NotFound, "Cargo not found: %s", id)
	}
	return c, err
}

// List pages owner's cargos (external unless managed).
func (s *Service) List(ctx context.Context, owner string, managed bool, cursor string, limit int) ([]*model.Cargo, *string, error) {
	rows, err := s.Store.ListCargos(ctx, owner, managed, cursor, limit+1)
	if err != nil {
		return nil, nil, err
	}
	rows, next := store.Page(rows, limit, func(c *model.Cargo) string { return c.ID })
	return rows, next, nil
}

// Delete removes a cargo nobody uses: 409 while a live sandbox mounts it.
func (s *Service) Delete(ctx context.Context, owner, id string) error {
	c, err := s.Get(ctx, owner, id)
	if err != nil {
		return err
	}
	if c.Managed && c.ManagedBySandboxID != "" {
		if sb, err := s.Store.SandboxByID(ctx, c.ManagedBySandboxID); err == nil && sb.DeletedAt == nil {
			return errs.Newf(errs.Conflict, "Cannot delete managed cargo %s: its sandbox still exists", id).
				With(map[string]any{"managed_by_sandbox_id": c.ManagedBySandboxID})
		}
	}
	active, err := s.Store.ActiveSandboxesUsingCargo(ctx, id)
	if err != nil {
		return err
	}
	if len(active) > 0 {
		return errs.Newf(errs.Conflict, "Cannot delete cargo %s: still referenced by active sandboxes", id).
			With(map[string]any{"active_sandbox_ids": active})
	}
	if err := s.Driver.DeleteVolume(ctx, c.DriverRef); err != nil {
		return fmt.Errorf("cargo: delete volume: %w", err)
	}
	return s.Store.DeleteCargo(ctx, id)
}
