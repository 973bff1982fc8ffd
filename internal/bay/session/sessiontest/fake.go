// Package sessiontest offers an in-memory driver whose instances are fake
// Ships (httptest servers), for tests of sessions and capability calls that
// need faults the real parts will not produce on demand: a runtime that stops
// answering, a container that dies between two calls, odd Ship answers.
package sessiontest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// Ship is one fake runtime. Handle, when set, answers every route but
// /health and /meta (return false to fall back to the defaults).
type Ship struct {
	srv    *httptest.Server
	Handle func(w http.ResponseWriter, r *http.Request) bool

	mu      sync.Mutex
	stopped chan struct{} // non-nil while SIGSTOPped: every request blocks
	dead    chan struct{}
	Calls   atomic.Int64 // requests other than /health and /meta
}

func newShip(handle func(w http.ResponseWriter, r *http.Request) bool) *Ship {
	s := &Ship{Handle: handle, dead: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the runtime endpoint.
func (s *Ship) URL() string { return s.srv.URL }

// Stop makes every request block, as a SIGSTOPped process does (the kernel
// still accepts connections).
func (s *Ship) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped == nil {
		s.stopped = make(chan struct{})
	}
}

// Continue undoes Stop.
func (s *Ship) Continue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped != nil {
		close(s.stopped)
		s.stopped = nil
	}
}

func (s *Ship) kill() {
	s.mu.Lock()
	select {
	case <-s.dead:
		s.mu.Unlock()
		return
	default:
	}
	close(s.dead)
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

func (s *Ship) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped != nil {
		select {
		case <-stopped:
		case <-s.dead:
			return
		case <-r.Context().Done():
			return
		}
	}
	switch r.URL.Path {
	case "/health":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"healthy"}`))
		return
	case "/meta":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"runtime":{"name":"ship","version":"fake"},"capabilities":{"python":{},"shell":{},"filesystem":{},"terminal":{}}}`))
		return
	}
	s.Calls.Add(1)
	if s.Handle != nil && s.Handle(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/ipython/exec":
		_, _ = w.Write([]byte(`{"success":true,"execution_count":1,"output":{"text":"2","images":[]},"error":null}`))
	case "/shell/exec":
		_, _ = w.Write([]byte(`{"success":true,"return_code":0,"stdout":"ok","stderr":"","pid":1,"process_id":null,"error":null}`))
	case "/fs/read_file":
		_, _ = w.Write([]byte(`{"content":"hello","path":"/workspace/x","size":5}`))
	default:
		_, _ = w.Write([]byte(`{"success":true}`))
	}
}

// Driver is an in-memory driver.Driver whose Start runs a fake Ship.
type Driver struct {
	// Handle is given to every Ship started from now on.
	Handle func(w http.ResponseWriter, r *http.Request) bool

	mu        sync.Mutex
	seq       int
	instances map[string]*instance
	Creates   atomic.Int64
	Destroys  atomic.Int64
	Statuses  atomic.Int64
}

type instance struct {
	spec  driver.InstanceSpec
	state driver.State
	ship  *Ship
}

// NewDriver returns an empty driver; Close stops its Ships.
func NewDriver() *Driver { return &Driver{instances: map[string]*instance{}} }

var _ driver.Driver = (*Driver)(nil)

// Ship returns the fake runtime of a started instance (nil if none).
func (d *Driver) Ship(id string) *Ship {
	d.mu.Lock()
	defer d.mu.Unlock()
	if in := d.instances[id]; in != nil {
		return in.ship
	}
	return nil
}

// Kill makes the instance exit, as docker kill does.
func (d *Driver) Kill(id string) {
	d.mu.Lock()
	in := d.instances[id]
	d.mu.Unlock()
	if in == nil {
		return
	}
	if in.ship != nil {
		in.ship.kill()
	}
	d.mu.Lock()
	in.state = driver.StateExited
	d.mu.Unlock()
}

// Close stops every Ship.
func (d *Driver) Close() {
	d.mu.Lock()
	var ships []*Ship
	for _, in := range d.instances {
		if in.ship != nil {
			ships = append(ships, in.ship)
		}
	}
	d.mu.Unlock()
	for _, s := range ships {
		s.kill()
	}
}

func (d *Driver) Ping(context.Context) error { return nil }

func (d *Driver) Create(_ context.Context, spec driver.InstanceSpec) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	id := fmt.Sprintf("c%d", d.seq)
	d.instances[id] = &instance{spec: spec, state: driver.StateCreated}
	d.Creates.Add(1)
	return id, nil
}

func (d *Driver) Start(_ context.Context, id string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := d.instances[id]
	if in == nil {
		return "", driver.ErrNotFound
	}
	in.ship = newShip(d.Handle)
	in.state = driver.StateRunning
	return in.ship.URL(), nil
}

func (d *Driver) Stop(ctx context.Context, id string) error { d.Kill(id); return nil }

func (d *Driver) Destroy(_ context.Context, id string) error {
	d.Kill(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.instances[id]; ok {
		delete(d.instances, id)
		d.Destroys.Add(1)
	}
	return nil
}

func (d *Driver) Status(_ context.Context, id string) (driver.State, error) {
	d.Statuses.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if in := d.instances[id]; in != nil {
		return in.state, nil
	}
	return driver.StateNotFound, nil
}

func (d *Driver) List(_ context.Context, labels map[string]string) ([]driver.Instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []driver.Instance
next:
	for id, in := range d.instances {
		for k, v := range labels {
			if in.spec.Labels[k] != v {
				continue next
			}
		}
		out = append(out, driver.Instance{ID: id, Name: in.spec.Name, State: in.state, Labels: in.spec.Labels})
	}
	return out, nil
}

func (d *Driver) CreateVolume(context.Context, string, map[string]string, int) error { return nil }
func (d *Driver) DeleteVolume(context.Context, string) error                         { return nil }
func (d *Driver) ListVolumes(context.Context, map[string]string) ([]string, error) {
	return nil, nil
}
func (d *Driver) CreateNetwork(context.Context, string, map[string]string) error { return nil }
func (d *Driver) DeleteNetwork(context.Context, string) error                    { return nil }
