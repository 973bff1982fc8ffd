package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// Driver op names, the values of the op label: create, start, stop, destroy,
// status (inspect) and list are of sessions.
const (
	OpPing         = "ping"
	OpCreate       = "create"
	OpStart        = "start"
	OpStop         = "stop"
	OpDestroy      = "destroy"
	OpStatus       = "status"
	OpList         = "list"
	OpCreateVolume = "create_volume"
	OpDeleteVolume = "delete_volume"
	OpListVolumes  = "list_volumes"
)

var driverOps = []string{OpPing, OpCreate, OpStart, OpStop, OpDestroy, OpStatus, OpList,
	OpCreateVolume, OpDeleteVolume, OpListVolumes}

// InstrumentDriver wraps d so every call is timed in
// bay_driver_call_duration_seconds{op} and every failure counted in
// bay_driver_errors_total{op}. Results and errors pass through unchanged.
//
// Not failures: a wrapped driver.ErrNotFound from StopSession, DestroySession
// and DeleteVolume (the thing is already gone, which is what was asked), and
// context.Canceled (the caller gave up; the driver did not fail). A deadline
// that runs out does count: that is a slow driver.
//
// The wrapper also has Unwrap() driver.Driver, and Close() error, which closes d
// when d is an io.Closer. With a nil m, d is returned as it is.
func InstrumentDriver(d driver.Driver, m *Metrics) driver.Driver {
	if m == nil || d == nil {
		return d
	}
	for _, op := range driverOps {
		m.driverDuration.WithLabelValues(op)
		m.driverErrors.WithLabelValues(op)
	}
	return &instrumented{d: d, m: m}
}

type instrumented struct {
	d driver.Driver
	m *Metrics
}

// Unwrap returns the wrapped driver.
func (i *instrumented) Unwrap() driver.Driver { return i.d }

// Close closes the wrapped driver if it has a Close() error method.
func (i *instrumented) Close() error {
	if c, ok := i.d.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// done records one call of op that started at start and returned err.
// notFoundOK: a driver.ErrNotFound means success for this op.
func (i *instrumented) done(op string, start time.Time, err error, notFoundOK bool) {
	i.m.driverDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err == nil || errors.Is(err, context.Canceled) || (notFoundOK && errors.Is(err, driver.ErrNotFound)) {
		return
	}
	i.m.driverErrors.WithLabelValues(op).Inc()
}

func (i *instrumented) Ping(ctx context.Context) error {
	start := time.Now()
	err := i.d.Ping(ctx)
	i.done(OpPing, start, err, false)
	return err
}

func (i *instrumented) CreateSession(ctx context.Context, spec driver.SessionSpec) (*driver.Session, error) {
	start := time.Now()
	s, err := i.d.CreateSession(ctx, spec)
	i.done(OpCreate, start, err, false)
	return s, err
}

func (i *instrumented) StartSession(ctx context.Context, id string) (*driver.Session, error) {
	start := time.Now()
	s, err := i.d.StartSession(ctx, id)
	i.done(OpStart, start, err, false)
	return s, err
}

func (i *instrumented) StopSession(ctx context.Context, id string) error {
	start := time.Now()
	err := i.d.StopSession(ctx, id)
	i.done(OpStop, start, err, true)
	return err
}

func (i *instrumented) DestroySession(ctx context.Context, id string) error {
	start := time.Now()
	err := i.d.DestroySession(ctx, id)
	i.done(OpDestroy, start, err, true)
	return err
}

func (i *instrumented) InspectSession(ctx context.Context, id string) (*driver.Session, error) {
	start := time.Now()
	s, err := i.d.InspectSession(ctx, id)
	i.done(OpStatus, start, err, false)
	return s, err
}

func (i *instrumented) ListSessions(ctx context.Context, labels map[string]string) ([]driver.Session, error) {
	start := time.Now()
	list, err := i.d.ListSessions(ctx, labels)
	i.done(OpList, start, err, false)
	return list, err
}

func (i *instrumented) CreateVolume(ctx context.Context, name string, labels map[string]string, sizeMB int) error {
	start := time.Now()
	err := i.d.CreateVolume(ctx, name, labels, sizeMB)
	i.done(OpCreateVolume, start, err, false)
	return err
}

func (i *instrumented) DeleteVolume(ctx context.Context, name string) error {
	start := time.Now()
	err := i.d.DeleteVolume(ctx, name)
	i.done(OpDeleteVolume, start, err, true)
	return err
}

func (i *instrumented) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	start := time.Now()
	names, err := i.d.ListVolumes(ctx, labels)
	i.done(OpListVolumes, start, err, false)
	return names, err
}

var _ driver.Driver = (*instrumented)(nil)
