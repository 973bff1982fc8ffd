package metrics

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// fakeDriver returns what it is told and records the arguments it got. It only
// checks the wrapper's bookkeeping; real drivers run drivertest.
type fakeDriver struct {
	err     error // returned by every method but Ping
	pingErr error
	delay   time.Duration
	mu      sync.Mutex
	got     []any // op followed by its arguments
	closed  bool
}

func (f *fakeDriver) rec(args ...any) {
	f.mu.Lock()
	f.got = append(f.got, args...)
	f.mu.Unlock()
	time.Sleep(f.delay)
}

func (f *fakeDriver) Ping(ctx context.Context) error { f.rec(OpPing); return f.pingErr }
func (f *fakeDriver) CreateSession(ctx context.Context, spec driver.SessionSpec) (*driver.Session, error) {
	f.rec(OpCreate, spec.ID)
	return &driver.Session{ID: spec.ID, State: driver.StateCreated}, f.err
}
func (f *fakeDriver) StartSession(ctx context.Context, id string) (*driver.Session, error) {
	f.rec(OpStart, id)
	return &driver.Session{ID: id, State: driver.StateRunning,
		Containers: []driver.Container{{Name: "ship", Endpoint: "http://127.0.0.1:49153"}}}, f.err
}
func (f *fakeDriver) StopSession(ctx context.Context, id string) error {
	f.rec(OpStop, id)
	return f.err
}
func (f *fakeDriver) DestroySession(ctx context.Context, id string) error {
	f.rec(OpDestroy, id)
	return f.err
}
func (f *fakeDriver) InspectSession(ctx context.Context, id string) (*driver.Session, error) {
	f.rec(OpStatus, id)
	return &driver.Session{ID: id, State: driver.StateRunning}, f.err
}
func (f *fakeDriver) ListSessions(ctx context.Context, labels map[string]string) ([]driver.Session, error) {
	f.rec(OpList, labels)
	return []driver.Session{{ID: "sess-1", State: driver.StateRunning}}, f.err
}
func (f *fakeDriver) CreateVolume(ctx context.Context, name string, labels map[string]string, _ int) error {
	f.rec(OpCreateVolume, name, labels)
	return f.err
}
func (f *fakeDriver) DeleteVolume(ctx context.Context, name string) error {
	f.rec(OpDeleteVolume, name)
	return f.err
}
func (f *fakeDriver) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	f.rec(OpListVolumes, labels)
	return []string{"vol-1"}, f.err
}
func (f *fakeDriver) Close() error { f.closed = true; return nil }

// call invokes op on d with fixed arguments and returns its results.
func call(ctx context.Context, d driver.Driver, op string) (result any, err error) {
	labels := map[string]string{driver.LabelManaged: "true"}
	switch op {
	case OpPing:
		return nil, d.Ping(ctx)
	case OpCreate:
		return d.CreateSession(ctx, driver.SessionSpec{ID: "sess-1"})
	case OpStart:
		return d.StartSession(ctx, "sess-1")
	case OpStop:
		return nil, d.StopSession(ctx, "sess-1")
	case OpDestroy:
		return nil, d.DestroySession(ctx, "sess-1")
	case OpStatus:
		return d.InspectSession(ctx, "sess-1")
	case OpList:
		return d.ListSessions(ctx, labels)
	case OpCreateVolume:
		return nil, d.CreateVolume(ctx, "vol-1", labels, 0)
	case OpDeleteVolume:
		return nil, d.DeleteVolume(ctx, "vol-1")
	case OpListVolumes:
		return d.ListVolumes(ctx, labels)
	}
	panic("unknown op " + op)
}

func TestDriverOpsCoverTheInterface(t *testing.T) {
	n := reflect.TypeFor[driver.Driver]().NumMethod()
	if len(driverOps) != n {
		t.Fatalf("driver.Driver has %d methods, the wrapper names %d ops: wrap the new method", n, len(driverOps))
	}
}

func TestInstrumentDriver(t *testing.T) {
	notFound := fmt.Errorf("container cid-1: %w", driver.ErrNotFound)
	inUse := fmt.Errorf("volume vol-1: %w", driver.ErrInUse)
	canceled := fmt.Errorf("docker: %w", context.Canceled)
	deadline := fmt.Errorf("docker: %w", context.DeadlineExceeded)
	notFoundOK := map[string]bool{OpStop: true, OpDestroy: true, OpDeleteVolume: true}

	type tc struct {
		name      string
		op        string
		err       error
		wantCount float64 // bay_driver_errors_total{op} after one call
	}
	var tests []tc
	for _, op := range driverOps {
		tests = append(tests,
			tc{op + "/ok", op, nil, 0},
			tc{op + "/error", op, errBoom, 1},
			tc{op + "/canceled", op, canceled, 0},
			tc{op + "/deadline", op, deadline, 1},
		)
		want := 1.0
		if notFoundOK[op] {
			want = 0
		}
		tests = append(tests, tc{op + "/not found", op, notFound, want})
	}
	tests = append(tests, tc{"delete_volume/in use", OpDeleteVolume, inUse, 1})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			plainFake := &fakeDriver{err: tt.err, pingErr: tt.err}
			wantRes, wantErr := call(context.Background(), plainFake, tt.op)

			fake := &fakeDriver{err: tt.err, pingErr: tt.err, delay: 2 * time.Millisecond}
			d := InstrumentDriver(fake, m)
			res, err := call(context.Background(), d, tt.op)

			if err != wantErr { // the very same error value, not a re-wrap
				t.Errorf("error = %v, want %v unchanged", err, wantErr)
			}
			if !reflect.DeepEqual(res, wantRes) {
				t.Errorf("result = %#v, want %#v", res, wantRes)
			}
			if !reflect.DeepEqual(fake.got, plainFake.got) {
				t.Errorf("driver got %v, want %v", fake.got, plainFake.got)
			}
			if got := testutil.ToFloat64(m.driverErrors.WithLabelValues(tt.op)); got != tt.wantCount {
				t.Errorf("bay_driver_errors_total{op=%q} = %v, want %v", tt.op, got, tt.wantCount)
			}
			h := histCount(t, m.driverDuration.WithLabelValues(tt.op).(prometheus.Histogram))
			if h != 1 {
				t.Errorf("bay_driver_call_duration_seconds{op=%q}: %d observations, want 1", tt.op, h)
			}
			// Only the called op moved.
			for _, other := range driverOps {
				if other == tt.op {
					continue
				}
				if n := histCount(t, m.driverDuration.WithLabelValues(other).(prometheus.Histogram)); n != 0 {
					t.Errorf("op %s observed %d times", other, n)
				}
			}
			if n := testutil.CollectAndCount(m.driverErrors, "bay_driver_errors_total"); n != len(driverOps) {
				t.Errorf("%d error series, want one per op (%d)", n, len(driverOps))
			}
			lintClean(t, m)
		})
	}
}

func TestInstrumentDriverDurationAndExtras(t *testing.T) {
	m := New()
	fake := &fakeDriver{delay: 20 * time.Millisecond}
	d := InstrumentDriver(fake, m)
	if err := d.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The observation lands at or above the 0.01 s bucket: it timed the call.
	got, err := testutil.GatherAndCount(m.Registry(), "bay_driver_call_duration_seconds")
	if err != nil || got != len(driverOps) {
		t.Fatalf("GatherAndCount = %d, %v", got, err)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bay_driver_call_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if mt.GetLabel()[0].GetValue() == OpPing && mt.GetHistogram().GetSampleSum() < 0.02 {
				t.Errorf("ping took %vs, want >= 0.02", mt.GetHistogram().GetSampleSum())
			}
		}
	}

	u, ok := d.(interface{ Unwrap() driver.Driver })
	if !ok || u.Unwrap() != fake {
		t.Error("wrapper does not Unwrap to the driver")
	}
	c, ok := d.(interface{ Close() error })
	if !ok {
		t.Fatal("wrapper has no Close")
	}
	if err := c.Close(); err != nil || !fake.closed {
		t.Errorf("Close = %v, closed %v", err, fake.closed)
	}
	if errors.Is(nil, driver.ErrNotFound) {
		t.Fatal("unreachable")
	}
}
