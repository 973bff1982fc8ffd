// Package drivertest is the conformance suite every driver.Driver passes, at
// the level of sessions: one container or two sharing a workspace volume and
// reaching each other by name; labels and listing; stop keeping the volume;
// idempotent destroy; and the error vocabulary (not found, conflict, in use,
// image missing).
//
//	func TestConformance(t *testing.T) {
//		d := newDriver(t)
//		drivertest.Run(t, d, drivertest.Options{Image: "ship:latest", HealthPath: "/health", PortEnv: "SHIP_PORT"})
//	}
//
// Everything the suite creates carries a label unique to the run
// (LabelRun=<random>) and is swept when the test ends, whether it passed or not.
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// Labels the suite puts on what it creates. They are deliberately not
// bay.managed, so a Bay reconciling on the same engine leaves them alone.
const (
	LabelRun   = "bay.drivertest.run"
	LabelGroup = "bay.drivertest.group"
)

// MissingImage is the image the suite expects no backend to have.
const MissingImage = "shipyard-no-such-image:v0"

// Options configures a run of the suite.
type Options struct {
	// Image is the runtime image; its default command must listen on Port.
	// Empty: the suite is skipped.
	Image string
	// Port the runtime listens on inside a container; default 8123 (Ship).
	Port int
	// PortEnv names the environment variable that moves the runtime to
	// another port ("SHIP_PORT" for Ship, "PORT" for the test server): the
	// second container of a two-container session listens on Port+1 (on
	// Kubernetes they share a network namespace). Empty: the two-container
	// checks are skipped.
	PortEnv string
	// HealthPath, when set, must answer GET with 2xx once the port is open
	// ("/health" for Ship). Empty: a TCP connect is enough.
	HealthPath string
	// Env is passed to every container.
	Env map[string]string
	// ReadyTimeout bounds the wait for the runtime to answer after Start, and
	// for a missing image to be reported; default 60s.
	ReadyTimeout time.Duration
	// IDPrefix starts the id of every session and the name of every volume;
	// default "dt".
	IDPrefix string
	// WriteFile and ReadFile reach into a running container as its user (e.g.
	// docker exec). Optional: without them the volume checks are skipped.
	WriteFile func(ctx context.Context, c driver.Container, path, data string) error
	ReadFile  func(ctx context.Context, c driver.Container, path string) (string, error)
	// Dial opens a TCP connection to addr (host:port) from inside a running
	// container. Optional: without it the by-name check is skipped.
	Dial func(ctx context.Context, c driver.Container, addr string) error
}

// sweepTimeout bounds the final clean-up.
const sweepTimeout = 2 * time.Minute

// volumeSizeMB is the size the suite asks for (drivers with sized volumes honour it).
const volumeSizeMB = 64

type suite struct {
	d    driver.Driver
	opts Options
	run  string

	mu      sync.Mutex
	seq     int
	volumes []string
}

// Run runs the conformance suite against d as subtests of t.
func Run(t *testing.T, d driver.Driver, opts Options) {
	t.Helper()
	if opts.Image == "" {
		t.Skip("drivertest: no runtime image given (Options.Image); skipping the conformance suite")
	}
	if opts.Port == 0 {
		opts.Port = 8123
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	if opts.IDPrefix == "" {
		opts.IDPrefix = "dt"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &suite{d: d, opts: opts, run: hex.EncodeToString(b[:])}
	t.Cleanup(func() { s.sweep(t) })

	if err := d.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	t.Run("MissingIsNotFound", s.testMissing)
	t.Run("Lifecycle", s.testLifecycle)
	t.Run("ListByLabels", s.testList)
	t.Run("Volumes", s.testVolumes)
	t.Run("VolumeInUse", s.testVolumeInUse)
	t.Run("ImageMissing", s.testImageMissing)
	t.Run("TwoContainers", s.testTwoContainers)
	t.Run("VolumeOutlivesSession", s.testVolumeOutlivesSession)
}

// id returns a unique session id or volume name for this run.
func (s *suite) id(kind string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s-%s-%s-%d", s.opts.IDPrefix, s.run, kind, s.seq)
}

func (s *suite) labels(kv ...string) map[string]string {
	l := map[string]string{LabelRun: s.run}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

func (s *suite) container(name string, port int) driver.ContainerSpec {
	env := maps.Clone(s.opts.Env)
	if env == nil {
		env = map[string]string{}
	}
	if s.opts.PortEnv != "" {
		env[s.opts.PortEnv] = strconv.Itoa(port)
	}
	return driver.ContainerSpec{
		Name: name, Image: s.opts.Image, Env: env, Port: port,
		Resources: driver.Resources{NanoCPUs: 500_000_000, MemoryBytes: 256 << 20},
	}
}

// spec is a session of one container called "main".
func (s *suite) spec(id, volume string, labels map[string]string) driver.SessionSpec {
	if labels == nil {
		labels = s.labels()
	}
	return driver.SessionSpec{ID: id, Labels: labels, Volume: volume,
		Containers: []driver.ContainerSpec{s.container("main", s.opts.Port)}}
}

// pair is a session of two containers, "a" on Port and "b" on Port+1.
func (s *suite) pair(id, volume string) driver.SessionSpec {
	return driver.SessionSpec{ID: id, Labels: s.labels(), Volume: volume,
		Containers: []driver.ContainerSpec{s.container("a", s.opts.Port), s.container("b", s.opts.Port+1)}}
}

func (s *suite) volume(t *testing.T) string {
	t.Helper()
	name := s.id("vol")
	s.mu.Lock()
	s.volumes = append(s.volumes, name)
	s.mu.Unlock()
	if err := s.d.CreateVolume(t.Context(), name, s.labels(), volumeSizeMB); err != nil {
		t.Fatalf("CreateVolume(%s): %v", name, err)
	}
	return name
}

func (s *suite) create(t *testing.T, spec driver.SessionSpec) *driver.Session {
	t.Helper()
	got, err := s.d.CreateSession(t.Context(), spec)
	if err != nil {
		t.Fatalf("CreateSession(%s): %v", spec.ID, err)
	}
	if got.ID != spec.ID || len(got.Containers) != len(spec.Containers) {
		t.Fatalf("CreateSession(%s) = %+v: want its id and %d containers", spec.ID, got, len(spec.Containers))
	}
	for i, c := range got.Containers {
		if c.Name != spec.Containers[i].Name || c.ID == "" {
			t.Fatalf("CreateSession(%s): container %d is %+v, want %s with an id", spec.ID, i, c, spec.Containers[i].Name)
		}
	}
	return got
}

// start starts the session and waits until every runtime answers at its endpoint.
func (s *suite) start(t *testing.T, id string) *driver.Session {
	t.Helper()
	got, err := s.d.StartSession(t.Context(), id)
	if err != nil {
		t.Fatalf("StartSession(%s): %v", id, err)
	}
	seen := map[string]bool{}
	for _, c := range got.Containers {
		if seen[c.Endpoint] {
			t.Fatalf("StartSession(%s): two containers at %s", id, c.Endpoint)
		}
		seen[c.Endpoint] = true
		s.waitReady(t, c.Endpoint)
	}
	return got
}

func (s *suite) waitReady(t *testing.T, endpoint string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Port() == "" || u.Hostname() == "" {
		t.Fatalf("endpoint %q is not http://host:port (%v)", endpoint, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), s.opts.ReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	var last error
	for {
		last = probe(ctx, hc, u, s.opts.HealthPath)
		if last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("runtime at %s did not answer within %s: %v", endpoint, s.opts.ReadyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, hc *http.Client, u *url.URL, healthPath string) error {
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	conn, err := dialer.DialContext(dctx, "tcp", u.Host)
	cancel()
	if err != nil {
		return err
	}
	_ = conn.Close()
	if healthPath == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath(healthPath).String(), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", healthPath, resp.Status)
	}
	return nil
}

func (s *suite) wantState(t *testing.T, id string, want driver.State) *driver.Session {
	t.Helper()
	got, err := s.d.InspectSession(t.Context(), id)
	if want == driver.StateNotFound {
		if !errors.Is(err, driver.ErrNotFound) {
			t.Fatalf("InspectSession(%s) = %+v, %v; want an error wrapping driver.ErrNotFound", id, got, err)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("InspectSession(%s): %v", id, err)
	}
	if got.State != want {
		t.Fatalf("InspectSession(%s).State = %q, want %q (%+v)", id, got.State, want, got.Containers)
	}
	if got.ID != id || got.Labels[driver.LabelSessionID] != id {
		t.Fatalf("InspectSession(%s): id %q, label %s=%q", id, got.ID, driver.LabelSessionID, got.Labels[driver.LabelSessionID])
	}
	for _, c := range got.Containers {
		if c.State != want {
			t.Fatalf("InspectSession(%s): container %s is %q, want %q", id, c.Name, c.State, want)
		}
	}
	return got
}

func (s *suite) testMissing(t *testing.T) {
	ctx := t.Context()
	missing := s.id("missing")
	cases := []struct {
		name string
		call func() error
	}{
		{"StopSession", func() error { return s.d.StopSession(ctx, missing) }},
		{"DestroySession", func() error { return s.d.DestroySession(ctx, missing) }},
		{"DeleteVolume", func() error { return s.d.DeleteVolume(ctx, missing) }},
		{"InspectSessionIsErrNotFound", func() error {
			if _, err := s.d.InspectSession(ctx, missing); !errors.Is(err, driver.ErrNotFound) {
				return fmt.Errorf("got %v, want an error wrapping driver.ErrNotFound", err)
			}
			return nil
		}},
		{"StartSessionIsErrNotFound", func() error {
			if _, err := s.d.StartSession(ctx, missing); !errors.Is(err, driver.ErrNotFound) {
				return fmt.Errorf("got %v, want an error wrapping driver.ErrNotFound", err)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatalf("%s of a missing resource: %v", tc.name, err)
			}
		})
	}
}

func (s *suite) testLifecycle(t *testing.T) {
	ctx := t.Context()
	vol := s.volume(t)
	id := s.id("life")
	spec := s.spec(id, vol, nil)
	s.create(t, spec)
	s.wantState(t, id, driver.StateCreated)

	// A second create of the same id is a conflict and leaves the first alone.
	if _, err := s.d.CreateSession(ctx, spec); !errors.Is(err, driver.ErrConflict) {
		t.Fatalf("CreateSession of an existing id: %v, want an error wrapping driver.ErrConflict", err)
	}
	s.wantState(t, id, driver.StateCreated)

	s.start(t, id)
	s.wantState(t, id, driver.StateRunning)

	if err := s.d.StopSession(ctx, id); err != nil {
		t.Fatalf("StopSession: %v", err)
	}
	s.wantState(t, id, driver.StateExited)
	if err := s.d.StopSession(ctx, id); err != nil {
		t.Fatalf("StopSession of a stopped session: %v", err)
	}

	// Stop keeps the session: it can be started again.
	s.start(t, id)
	s.wantState(t, id, driver.StateRunning)

	if err := s.d.DestroySession(ctx, id); err != nil {
		t.Fatalf("DestroySession: %v", err)
	}
	s.wantState(t, id, driver.StateNotFound)
	if err := s.d.DestroySession(ctx, id); err != nil {
		t.Fatalf("DestroySession of a destroyed session: %v", err)
	}
	// The volume outlives its session.
	vols, err := s.d.ListVolumes(ctx, s.labels())
	if err != nil {
		t.Fatalf("ListVolumes: %v", err)
	}
	if !slices.Contains(vols, vol) {
		t.Fatalf("volume %s gone after DestroySession of its session (have %v)", vol, vols)
	}
}

func (s *suite) testList(t *testing.T) {
	before := time.Now().Add(-time.Minute)
	want := map[string][]string{}
	var ids []string
	for _, g := range []string{"a", "a", "b"} {
		id := s.id("list-" + g)
		s.create(t, s.spec(id, "", s.labels(LabelGroup, g)))
		ids = append(ids, id)
		want[g] = append(want[g], id)
	}
	// One running, to see that ListSessions covers every state.
	s.start(t, ids[0])

	cases := []struct {
		name   string
		labels map[string]string
		want   []string
	}{
		{"group a", s.labels(LabelGroup, "a"), want["a"]},
		{"group b", s.labels(LabelGroup, "b"), want["b"]},
		{"whole run", s.labels(), append(slices.Clone(want["a"]), want["b"]...)},
		{"one session", s.labels(driver.LabelSessionID, want["a"][1]), want["a"][1:2]},
		{"no match", s.labels(LabelGroup, "c"), nil},
		{"value must match", map[string]string{LabelRun: s.run + "x"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.d.ListSessions(t.Context(), tc.labels)
			if err != nil {
				t.Fatalf("ListSessions(%v): %v", tc.labels, err)
			}
			var names []string
			for _, ss := range got {
				names = append(names, ss.ID)
				if len(ss.Containers) != 1 || ss.Containers[0].ID == "" || ss.Containers[0].Name != "main" {
					t.Errorf("session %s: containers %+v, want main with an id", ss.ID, ss.Containers)
				}
				if !driver.MatchLabels(ss.Labels, tc.labels) || ss.Labels[driver.LabelSessionID] != ss.ID {
					t.Errorf("session %s: labels %v, want %v and its id", ss.ID, ss.Labels, tc.labels)
				}
				if ss.CreatedAt.Before(before) || ss.CreatedAt.After(time.Now().Add(time.Minute)) {
					t.Errorf("session %s: CreatedAt %v not around now", ss.ID, ss.CreatedAt)
				}
				wantState := driver.StateCreated
				if ss.ID == ids[0] {
					wantState = driver.StateRunning
				}
				if ss.State != wantState {
					t.Errorf("session %s: state %q, want %q", ss.ID, ss.State, wantState)
				}
			}
			slices.Sort(names)
			w := slices.Clone(tc.want)
			slices.Sort(w)
			if !slices.Equal(names, w) {
				t.Fatalf("ListSessions(%v) = %v, want %v", tc.labels, names, w)
			}
		})
	}
	for _, id := range ids {
		if err := s.d.DestroySession(t.Context(), id); err != nil {
			t.Errorf("DestroySession(%s): %v", id, err)
		}
	}
}

func (s *suite) testVolumes(t *testing.T) {
	ctx := t.Context()
	name := s.id("vol")
	other := s.id("vol")
	s.mu.Lock()
	s.volumes = append(s.volumes, name, other)
	s.mu.Unlock()
	mine := s.labels(LabelGroup, "volumes", driver.LabelCargoID, name)
	steps := []struct {
		name string
		do   func() error
		want []string // ListVolumes(mine) afterwards
	}{
		{"create", func() error { return s.d.CreateVolume(ctx, name, mine, volumeSizeMB) }, []string{name}},
		{"create again", func() error { return s.d.CreateVolume(ctx, name, mine, volumeSizeMB) }, []string{name}},
		{"create another", func() error { return s.d.CreateVolume(ctx, other, s.labels(LabelGroup, "other"), 0) }, []string{name}},
		{"delete", func() error { return s.d.DeleteVolume(ctx, name) }, nil},
		{"delete again", func() error { return s.d.DeleteVolume(ctx, name) }, nil},
		{"delete the other", func() error { return s.d.DeleteVolume(ctx, other) }, nil},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := s.d.ListVolumes(ctx, mine)
		if err != nil {
			t.Fatalf("%s: ListVolumes: %v", st.name, err)
		}
		if !slices.Equal(got, st.want) {
			t.Fatalf("after %s: ListVolumes = %v, want %v", st.name, got, st.want)
		}
	}
}

// A volume a session uses cannot be deleted (driver.ErrInUse) until the
// session is destroyed.
func (s *suite) testVolumeInUse(t *testing.T) {
	ctx := t.Context()
	vol := s.volume(t)
	id := s.id("inuse")
	s.create(t, s.spec(id, vol, nil))
	s.start(t, id)
	if err := s.d.DeleteVolume(ctx, vol); !errors.Is(err, driver.ErrInUse) {
		t.Fatalf("DeleteVolume of a volume a running session uses: %v, want an error wrapping driver.ErrInUse", err)
	}
	if err := s.d.DestroySession(ctx, id); err != nil {
		t.Fatalf("DestroySession: %v", err)
	}
	// Deletion may need a moment after the session is gone (Kubernetes
	// finishes a pod's deletion asynchronously); in use is the only error
	// allowed meanwhile.
	deadline := time.Now().Add(s.opts.ReadyTimeout)
	for {
		err := s.d.DeleteVolume(ctx, vol)
		if err == nil {
			break
		}
		if !errors.Is(err, driver.ErrInUse) || time.Now().After(deadline) {
			t.Fatalf("DeleteVolume after DestroySession: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if vols, err := s.d.ListVolumes(ctx, s.labels()); err != nil || slices.Contains(vols, vol) {
		t.Fatalf("ListVolumes after DeleteVolume: %v, %v", vols, err)
	}
}

// A session whose image is missing fails with driver.ErrImageNotFound, at
// create or at start (where the node learns it), within the ready timeout;
// DestroySession then leaves nothing.
func (s *suite) testImageMissing(t *testing.T) {
	ctx := t.Context()
	id := s.id("noimage")
	spec := s.spec(id, "", nil)
	spec.Containers[0].Image = MissingImage
	_, err := s.d.CreateSession(ctx, spec)
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
		_, err = s.d.StartSession(sctx, id)
		cancel()
		if err == nil {
			t.Fatalf("session of image %s started", MissingImage)
		}
	}
	if !errors.Is(err, driver.ErrImageNotFound) {
		t.Fatalf("session of image %s: %v, want an error wrapping driver.ErrImageNotFound", MissingImage, err)
	}
	if errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("a missing image must not read as a missing session: %v", err)
	}
	if err := s.d.DestroySession(ctx, id); err != nil {
		t.Fatalf("DestroySession: %v", err)
	}
	s.wantState(t, id, driver.StateNotFound)
}

// Two containers of one session: both run, share the volume, reach each
// other by name; the session is listed once; destroy removes both.
func (s *suite) testTwoContainers(t *testing.T) {
	if s.opts.PortEnv == "" {
		t.Skip("drivertest: no PortEnv for this image; skipping the two-container session")
	}
	ctx := t.Context()
	vol := s.volume(t)
	id := s.id("pair")
	s.create(t, s.pair(id, vol))
	s.wantState(t, id, driver.StateCreated)
	got := s.start(t, id)
	if len(got.Containers) != 2 || got.Containers[0].Name != "a" || got.Containers[1].Name != "b" {
		t.Fatalf("StartSession: containers %+v, want a then b", got.Containers)
	}
	s.wantState(t, id, driver.StateRunning)
	a, b := got.Containers[0], got.Containers[1]
	if list, err := s.d.ListSessions(ctx, s.labels(driver.LabelSessionID, id)); err != nil || len(list) != 1 || len(list[0].Containers) != 2 {
		t.Fatalf("ListSessions of the pair: %+v, %v; want one session of two containers", list, err)
	}
	if s.opts.WriteFile != nil && s.opts.ReadFile != nil {
		const path = "/workspace/shared.txt"
		token := "from a " + s.run
		if err := s.opts.WriteFile(ctx, a, path, token); err != nil {
			t.Fatalf("writing %s in a: %v", path, err)
		}
		data, err := s.opts.ReadFile(ctx, b, path)
		if err != nil || strings.TrimSpace(data) != token {
			t.Fatalf("%s read in b = %q, %v; want %q (one volume)", path, data, err, token)
		}
	}
	if s.opts.Dial != nil {
		for _, tc := range []struct {
			from driver.Container
			addr string
		}{{b, net.JoinHostPort("a", strconv.Itoa(s.opts.Port))}, {a, net.JoinHostPort("b", strconv.Itoa(s.opts.Port+1))}} {
			if err := s.opts.Dial(ctx, tc.from, tc.addr); err != nil {
				t.Fatalf("%s dialling %s by name: %v", tc.from.Name, tc.addr, err)
			}
		}
	}
	if err := s.d.StopSession(ctx, id); err != nil {
		t.Fatalf("StopSession: %v", err)
	}
	s.wantState(t, id, driver.StateExited)
	if err := s.d.DestroySession(ctx, id); err != nil {
		t.Fatalf("DestroySession: %v", err)
	}
	s.wantState(t, id, driver.StateNotFound)
}

// Files written in one session are there in the next session on the same
// volume; a stop keeps them too.
func (s *suite) testVolumeOutlivesSession(t *testing.T) {
	if s.opts.WriteFile == nil || s.opts.ReadFile == nil {
		t.Skip("drivertest: no WriteFile/ReadFile hooks for this driver; skipping the persistence check")
	}
	ctx := t.Context()
	vol := s.volume(t)
	const path = "/workspace/drivertest.txt"
	token := "written by " + s.run

	first := s.id("persist")
	s.create(t, s.spec(first, vol, nil))
	got := s.start(t, first)
	if err := s.opts.WriteFile(ctx, got.Containers[0], path, token); err != nil {
		t.Fatalf("writing %s as the container user: %v", path, err)
	}
	if err := s.d.StopSession(ctx, first); err != nil {
		t.Fatalf("StopSession: %v", err)
	}
	got = s.start(t, first)
	if data, err := s.opts.ReadFile(ctx, got.Containers[0], path); err != nil || strings.TrimSpace(data) != token {
		t.Fatalf("%s after a stop and start = %q, %v; want %q", path, data, err, token)
	}
	if err := s.d.DestroySession(ctx, first); err != nil {
		t.Fatalf("DestroySession: %v", err)
	}

	second := s.id("persist")
	s.create(t, s.spec(second, vol, nil))
	got = s.start(t, second)
	data, err := s.opts.ReadFile(ctx, got.Containers[0], path)
	if err != nil {
		t.Fatalf("reading %s in a new session: %v", path, err)
	}
	if strings.TrimSpace(data) != token {
		t.Fatalf("%s in a new session on the same volume = %q, want %q", path, data, token)
	}
	if err := s.d.DestroySession(ctx, second); err != nil {
		t.Fatalf("DestroySession: %v", err)
	}
}

// sweep removes everything this run created, then checks nothing is left.
func (s *suite) sweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	mine := map[string]string{LabelRun: s.run}
	list, err := s.d.ListSessions(ctx, mine)
	if err != nil {
		t.Errorf("sweep: ListSessions: %v", err)
	}
	for _, ss := range list {
		if err := s.d.DestroySession(ctx, ss.ID); err != nil {
			t.Errorf("sweep: DestroySession(%s): %v", ss.ID, err)
		}
	}
	s.mu.Lock()
	vols := slices.Clone(s.volumes)
	s.mu.Unlock()
	if listed, err := s.d.ListVolumes(ctx, mine); err != nil {
		t.Errorf("sweep: ListVolumes: %v", err)
	} else {
		vols = append(vols, listed...)
	}
	slices.Sort(vols)
	for _, v := range slices.Compact(vols) {
		deadline := time.Now().Add(time.Minute)
		for {
			err := s.d.DeleteVolume(ctx, v)
			if err == nil || !errors.Is(err, driver.ErrInUse) || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("sweep: DeleteVolume(%s): %v", v, err)
				}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if left, err := s.d.ListSessions(ctx, mine); err == nil && len(left) > 0 {
		t.Errorf("sweep: %d sessions left behind: %+v", len(left), left)
	}
	if left, err := s.d.ListVolumes(ctx, mine); err == nil && len(left) > 0 {
		t.Errorf("sweep: volumes left behind: %v", left)
	}
}
