// Package fake is an in-memory driver.Driver whose containers are fake Ships
// (httptest servers). It passes the conformance suite (driver/drivertest) and
// serves tests of the services that need faults the real parts will not
// produce on demand: a runtime that stops answering, a container that dies
// between two calls, odd Ship answers.
package fake

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

// Driver is the in-memory driver. The zero value is not usable: call New.
type Driver struct {
	// Handle is given to every Ship started from now on.
	Handle func(w http.ResponseWriter, r *http.Request) bool
	// Endpoint, when set and answering non-empty for a container, starts that
	// container at the endpoint it names instead of a fake Ship (e.g. a fake
	// browser runtime of the test's own).
	Endpoint func(c driver.ContainerSpec) string
	// MissingImages are images the fake does not have: CreateSession of a
	// session using one fails with driver.ErrImageNotFound.
	MissingImages []string
	// StartError, when set and answering non-nil for a session, makes its
	// StartSession fail with that error (fault injection: a start timeout,
	// an unschedulable session).
	StartError func(spec driver.SessionSpec) error

	mu       sync.Mutex
	seq      int
	sessions map[string]*session
	volumes  map[string]*volume

	Creates  atomic.Int64 // containers created
	Destroys atomic.Int64 // sessions destroyed
	Statuses atomic.Int64 // InspectSession calls
}

type session struct {
	spec       driver.SessionSpec
	created    time.Time
	containers []*container
	scratch    map[string]string // files of a session without volume
}

type container struct {
	spec     driver.ContainerSpec
	id       string
	state    driver.State
	endpoint string
	ship     *Ship
}

type volume struct {
	labels map[string]string
	files  map[string]string
}

// New returns an empty driver; Close stops its Ships.
func New() *Driver {
	return &Driver{sessions: map[string]*session{}, volumes: map[string]*volume{}}
}

var _ driver.Driver = (*Driver)(nil)

// find returns the container of that id and its session. Call with d.mu held.
func (d *Driver) find(id string) (*session, *container) {
	for _, s := range d.sessions {
		for _, c := range s.containers {
			if c.id == id {
				return s, c
			}
		}
	}
	return nil, nil
}

// Ship returns the fake runtime of a started container (nil if none).
func (d *Driver) Ship(containerID string) *Ship {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, c := d.find(containerID); c != nil {
		return c.ship
	}
	return nil
}

// Kill makes the container exit, as docker kill does.
func (d *Driver) Kill(containerID string) {
	d.mu.Lock()
	_, c := d.find(containerID)
	var ship *Ship
	if c != nil {
		ship, c.ship = c.ship, nil
		c.state = driver.StateExited
	}
	d.mu.Unlock()
	if ship != nil {
		ship.kill()
	}
}

// Close stops every Ship.
func (d *Driver) Close() {
	d.mu.Lock()
	var ships []*Ship
	for _, s := range d.sessions {
		for _, c := range s.containers {
			if c.ship != nil {
				ships = append(ships, c.ship)
			}
		}
	}
	d.mu.Unlock()
	for _, s := range ships {
		s.kill()
	}
}

// Ping always answers.
func (d *Driver) Ping(context.Context) error { return nil }

func validate(spec driver.SessionSpec) error {
	if spec.ID == "" {
		return fmt.Errorf("fake: session spec has no id")
	}
	if len(spec.Containers) == 0 {
		return fmt.Errorf("fake: session %s has no container", spec.ID)
	}
	names, ports := map[string]bool{}, map[int]bool{}
	for _, c := range spec.Containers {
		if c.Name == "" || c.Image == "" || c.Port < 1 || c.Port > 65535 {
			return fmt.Errorf("fake: session %s: container %q needs a name, an image and a port", spec.ID, c.Name)
		}
		if names[c.Name] || ports[c.Port] {
			return fmt.Errorf("fake: session %s: container names and ports must be unique (%s, %d)", spec.ID, c.Name, c.Port)
		}
		names[c.Name], ports[c.Port] = true, true
	}
	return nil
}

// CreateSession records the session, its containers created.
func (d *Driver) CreateSession(ctx context.Context, spec driver.SessionSpec) (*driver.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validate(spec); err != nil {
		return nil, err
	}
	for _, c := range spec.Containers {
		if slices.Contains(d.MissingImages, c.Image) {
			return nil, fmt.Errorf("fake: image %q: %w", c.Image, driver.ErrImageNotFound)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.sessions[spec.ID]; ok {
		return nil, fmt.Errorf("fake: session %s exists: %w", spec.ID, driver.ErrConflict)
	}
	if spec.Volume != "" && d.volumes[spec.Volume] == nil { // as Docker does with a named volume
		d.volumes[spec.Volume] = &volume{files: map[string]string{}}
	}
	s := &session{spec: cloneSpec(spec), created: time.Now(), scratch: map[string]string{}}
	for _, cs := range s.spec.Containers {
		d.seq++
		s.containers = append(s.containers, &container{spec: cs, id: "c" + strconv.Itoa(d.seq), state: driver.StateCreated})
		d.Creates.Add(1)
	}
	d.sessions[spec.ID] = s
	return s.observe(), nil
}

func cloneSpec(spec driver.SessionSpec) driver.SessionSpec {
	spec.Labels = maps.Clone(spec.Labels)
	spec.Containers = slices.Clone(spec.Containers)
	for i := range spec.Containers {
		spec.Containers[i].Env = maps.Clone(spec.Containers[i].Env)
		spec.Containers[i].Labels = maps.Clone(spec.Containers[i].Labels)
	}
	return spec
}

// labels are the session's labels as a real driver reports them.
func (s *session) labels() map[string]string {
	l := maps.Clone(s.spec.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[driver.LabelSessionID] = s.spec.ID
	return l
}

// observe returns what a real driver would report. Call with d.mu held.
func (s *session) observe() *driver.Session {
	out := &driver.Session{ID: s.spec.ID, Labels: s.labels(), CreatedAt: s.created}
	for _, c := range s.containers {
		out.Containers = append(out.Containers, driver.Container{Name: c.spec.Name, ID: c.id, State: c.state, Endpoint: c.endpoint})
	}
	out.State = driver.Aggregate(out.Containers)
	return out
}

// StartSession starts a fake Ship (or the Endpoint hook's runtime) for every
// container not running.
func (d *Driver) StartSession(ctx context.Context, id string) (*driver.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[id]
	if s == nil {
		return nil, fmt.Errorf("fake: session %s: %w", id, driver.ErrNotFound)
	}
	if d.StartError != nil {
		if err := d.StartError(s.spec); err != nil {
			return nil, fmt.Errorf("fake: start %s: %w", id, err)
		}
	}
	for _, c := range s.containers {
		if c.state == driver.StateRunning {
			continue
		}
		c.endpoint = ""
		if d.Endpoint != nil {
			c.endpoint = d.Endpoint(c.spec)
		}
		if c.endpoint == "" {
			c.ship = newShip(d.Handle)
			c.endpoint = c.ship.URL()
		}
		c.state = driver.StateRunning
	}
	return s.observe(), nil
}

// StopSession stops every container and keeps the session.
func (d *Driver) StopSession(_ context.Context, id string) error {
	d.mu.Lock()
	s := d.sessions[id]
	var ships []*Ship
	if s != nil {
		for _, c := range s.containers {
			if c.ship != nil {
				ships = append(ships, c.ship)
				c.ship = nil
			}
			if c.state == driver.StateRunning {
				c.state = driver.StateExited
			}
			c.endpoint = ""
		}
	}
	d.mu.Unlock()
	for _, sh := range ships {
		sh.kill()
	}
	return nil
}

// DestroySession removes the session; its volume stays.
func (d *Driver) DestroySession(ctx context.Context, id string) error {
	if err := d.StopSession(ctx, id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.sessions[id]; ok {
		delete(d.sessions, id)
		d.Destroys.Add(1)
	}
	return nil
}

// InspectSession observes the session.
func (d *Driver) InspectSession(_ context.Context, id string) (*driver.Session, error) {
	d.Statuses.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[id]
	if s == nil {
		return nil, fmt.Errorf("fake: session %s: %w", id, driver.ErrNotFound)
	}
	return s.observe(), nil
}

// ListSessions returns the sessions whose labels include labels, by id.
func (d *Driver) ListSessions(_ context.Context, labels map[string]string) ([]driver.Session, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []driver.Session
	for _, s := range d.sessions {
		if driver.MatchLabels(s.labels(), labels) {
			out = append(out, *s.observe())
		}
	}
	slices.SortFunc(out, func(a, b driver.Session) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// CreateVolume records a volume (its size is not kept).
func (d *Driver) CreateVolume(_ context.Context, name string, labels map[string]string, _ int) error {
	if name == "" {
		return fmt.Errorf("fake: volume has no name")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.volumes[name] == nil {
		d.volumes[name] = &volume{labels: maps.Clone(labels), files: map[string]string{}}
	}
	return nil
}

// DeleteVolume deletes a volume no session uses.
func (d *Driver) DeleteVolume(_ context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.sessions {
		if s.spec.Volume == name {
			return fmt.Errorf("fake: volume %s: session %s uses it: %w", name, s.spec.ID, driver.ErrInUse)
		}
	}
	delete(d.volumes, name)
	return nil
}

// ListVolumes returns the names of the volumes carrying labels, sorted.
func (d *Driver) ListVolumes(_ context.Context, labels map[string]string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, v := range d.volumes {
		if driver.MatchLabels(v.labels, labels) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// files returns the file store the running container of that id sees at
// /workspace. Call with d.mu held.
func (d *Driver) files(containerID string) (map[string]string, error) {
	s, c := d.find(containerID)
	if c == nil || c.state != driver.StateRunning {
		return nil, fmt.Errorf("fake: container %s is not running", containerID)
	}
	if s.spec.Volume == "" {
		return s.scratch, nil
	}
	return d.volumes[s.spec.Volume].files, nil
}

// WriteFile writes a file into a running container's /workspace (what
// drivertest's WriteFile hook does with docker exec on a real driver).
func (d *Driver) WriteFile(containerID, path, data string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fs, err := d.files(containerID)
	if err != nil {
		return err
	}
	fs[path] = data
	return nil
}

// ReadFile reads a file of a running container's /workspace.
func (d *Driver) ReadFile(containerID, path string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fs, err := d.files(containerID)
	if err != nil {
		return "", err
	}
	data, ok := fs[path]
	if !ok {
		return "", fmt.Errorf("fake: %s: no such file", path)
	}
	return data, nil
}

// Dial reports whether the running container of that id reaches addr
// (name:port) by name, as a sibling's runtime port in its session.
func (d *Driver) Dial(containerID, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, c := d.find(containerID)
	if c == nil || c.state != driver.StateRunning {
		return fmt.Errorf("fake: container %s is not running", containerID)
	}
	for _, o := range s.containers {
		if o.spec.Name == host && strconv.Itoa(o.spec.Port) == port && o.state == driver.StateRunning {
			return nil
		}
	}
	return fmt.Errorf("fake: %s: connection refused", addr)
}
