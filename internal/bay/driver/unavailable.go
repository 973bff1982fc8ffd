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

func (m *marked) CreateSession(ctx context.Context, spec SessionSpec) (*Session, error) {
	s, err := m.d.CreateSession(ctx, spec)
	return s, m.mark(err)
}

func (m *marked) StartSession(ctx context.Context, id string) (*Session, error) {
	s, err := m.d.StartSession(ctx, id)
	return s, m.mark(err)
}

func (m *marked) StopSession(ctx context.Context, id string) error {
	return m.mark(m.d.StopSession(ctx, id))
}

func (m *marked) DestroySession(ctx context.Context, id string) error {
	return m.mark(m.d.DestroySession(ctx, id))
}

func (m *marked) InspectSession(ctx context.Context, id string) (*Session, error) {
	s, err := m.d.InspectSession(ctx, id)
	return s, m.mark(err)
}

func (m *marked) ListSessions(ctx context.Context, labels map[string]string) ([]Session, error) {
	l, err := m.d.ListSessions(ctx, labels)
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
