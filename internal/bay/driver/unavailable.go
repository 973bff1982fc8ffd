package driver

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnavailable is returned (wrapped) when the engine behind a driver cannot
// be reached (Docker Engine down or restarting): a retry later may succeed.
var ErrUnavailable = errors.New("driver unavailable")

// MarkUnavailable wraps d so that every error for which unreachable holds also
// matches ErrUnavailable; everything else passes through unchanged. Each
// driver knows how its engine says "cannot connect" (for Docker:
// docker.Unreachable).
func MarkUnavailable(d Driver, unreachable func(error) bool) Driver {
	return &marked{Driver: d, d: d, unreachable: unreachable}
}

// marked embeds the driver so that methods it does not wrap still pass through.
type marked struct {
	Driver
	d           Driver
	unreachable func(error) bool
}

// Unwrap returns the wrapped driver.
func (m *marked) Unwrap() Driver { return m.d }

func (m *marked) mark(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) || !m.unreachable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (m *marked) Ping(ctx context.Context) error { return m.mark(m.d.Ping(ctx)) }

func (m *marked) Create(ctx context.Context, spec InstanceSpec) (string, error) {
	id, err := m.d.Create(ctx, spec)
	return id, m.mark(err)
}

func (m *marked) Start(ctx context.Context, id string) (string, error) {
	ep, err := m.d.Start(ctx, id)
	return ep, m.mark(err)
}

func (m *marked) Stop(ctx context.Context, id string) error    { return m.mark(m.d.Stop(ctx, id)) }
func (m *marked) Destroy(ctx context.Context, id string) error { return m.mark(m.d.Destroy(ctx, id)) }

func (m *marked) Status(ctx context.Context, id string) (State, error) {
	st, err := m.d.Status(ctx, id)
	return st, m.mark(err)
}

func (m *marked) List(ctx context.Context, labels map[string]string) ([]Instance, error) {
	l, err := m.d.List(ctx, labels)
	return l, m.mark(err)
}

func (m *marked) CreateVolume(ctx context.Context, name string, labels map[string]string, sizeMB int) error {
	return m.mark(m.d.CreateVolume(ctx, name, labels, sizeMB))
}

func (m *marked) DeleteVolume(ctx context.Context, name string) error {
	return m.mark(m.d.DeleteVolume(ctx, name))
}

func (m *marked) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	l, err := m.d.ListVolumes(ctx, labels)
	return l, m.mark(err)
}

func (m *marked) CreateNetwork(ctx context.Context, name string, labels map[string]string) error {
	return m.mark(m.d.CreateNetwork(ctx, name, labels))
}

func (m *marked) DeleteNetwork(ctx context.Context, name string) error {
	return m.mark(m.d.DeleteNetwork(ctx, name))
}
