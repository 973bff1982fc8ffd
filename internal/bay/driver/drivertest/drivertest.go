// Package drivertest is the conformance suite every driver.Driver passes.
//
//	func TestConformance(t *testing.T) {
//		d := newDriver(t)
//		drivertest.Run(t, d, drivertest.Options{Image: "ship:latest", HealthPath: "/health"})
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
	"net"
	"net/http"
	"net/url"
	"slices"
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

// Options configures a run of the suite.
type Options struct {
	// Image is the runtime image; its default command must listen on Port.
	// Empty: the suite is skipped.
	Image string
	// Port the runtime listens on inside the instance; default 8123 (Ship).
	Port int
	// HealthPath, when set, must answer GET with 2xx once the port is open
	// ("/health" for Ship). Empty: a TCP connect is enough.
	HealthPath string
	// Env is passed to every instance.
	Env map[string]string
	// ReadyTimeout bounds the wait for the runtime to answer after Start; default 60s.
	ReadyTimeout time.Duration
	// NamePrefix starts the name of every instance, volume and network; default "bay-drivertest".
	NamePrefix string
	// WriteFile and ReadFile reach into a running instance as its user (e.g.
	// docker exec). Optional: without them the volume persistence check is skipped.
	WriteFile func(ctx context.Context, id, path, data string) error
	ReadFile  func(ctx context.Context, id, path string) (string, error)
}

// sweepTimeout bounds the final clean-up.
const sweepTimeout = 2 * time.Minute

// volumeSizeMB is the size the suite asks for (drivers with sized volumes honour it).
const volumeSizeMB = 64

type suite struct {
	d    driver.Driver
	opts Options
	run  string

	mu       sync.Mutex
	seq      int
	volumes  []string
	networks []string
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
	if opts.NamePrefix == "" {
		opts.NamePrefix = "bay-drivertest"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &suite{d: d, opts: opts, run: hex.EncodeToString(b[:])}
	t.Cleanup(func() { s.sweep(t) })

	if err := d.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	t.Run("MissingIsNotAnError", s.testMissing)
	t.Run("Lifecycle", s.testLifecycle)
	t.Run("ListByLabels", s.testList)
	t.Run("Volumes", s.testVolumes)
	t.Run("Networks", s.testNetworks)
	t.Run("VolumeOutlivesInstance", s.testVolumeOutlivesInstance)
}

// name returns a unique resource name for this run.
func (s *suite) name(kind string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s-%s-%s-%d", s.opts.NamePrefix, s.run, kind, s.seq)
}

func (s *suite) labels(kv ...string) map[string]string {
	l := map[string]string{LabelRun: s.run}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

func (s *suite) spec(name, volume string, labels map[string]string) driver.InstanceSpec {
	if labels == nil {
		labels = s.labels()
	}
	return driver.InstanceSpec{
		Name:   name,
		Image:  s.opts.Image,
		Env:    s.opts.Env,
		Labels: labels,
		Volume: volume,
		Port:   s.opts.Port,
		Resources: driver.Resources{
			NanoCPUs:    500_000_000,
			MemoryBytes: 256 << 20,
		},
	}
}

func (s *suite) volume(t *testing.T) string {
	t.Helper()
	name := s.name("vol")
	s.mu.Lock()
	s.volumes = append(s.volumes, name)
	s.mu.Unlock()
	if err := s.d.CreateVolume(t.Context(), name, s.labels(), volumeSizeMB); err != nil {
		t.Fatalf("CreateVolume(%s): %v", name, err)
	}
	return name
}

func (s *suite) create(t *testing.T, spec driver.InstanceSpec) string {
	t.Helper()
	id, err := s.d.Create(t.Context(), spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.Name, err)
	}
	if id == "" {
		t.Fatalf("Create(%s) returned an empty id", spec.Name)
	}
	return id
}

// start starts id and waits until its runtime answers at the endpoint.
func (s *suite) start(t *testing.T, id string) string {
	t.Helper()
	ep, err := s.d.Start(t.Context(), id)
	if err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	s.waitReady(t, ep)
	return ep
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

func (s *suite) wantState(t *testing.T, id string, want driver.State) {
	t.Helper()
	got, err := s.d.Status(t.Context(), id)
	if err != nil {
		t.Fatalf("Status(%s): %v", id, err)
	}
	if got != want {
		t.Fatalf("Status(%s) = %q, want %q", id, got, want)
	}
}

func (s *suite) testMissing(t *testing.T) {
	ctx := t.Context()
	missing := s.name("missing")
	cases := []struct {
		name string
		call func() error
	}{
		{"Stop", func() error { return s.d.Stop(ctx, missing) }},
		{"Destroy", func() error { return s.d.Destroy(ctx, missing) }},
		{"DeleteVolume", func() error { return s.d.DeleteVolume(ctx, missing) }},
		{"DeleteNetwork", func() error { return s.d.DeleteNetwork(ctx, missing) }},
		{"Status", func() error {
			st, err := s.d.Status(ctx, missing)
			if err == nil && st != driver.StateNotFound {
				return fmt.Errorf("state %q, want %q", st, driver.StateNotFound)
			}
			return err
		}},
		{"StartIsErrNotFound", func() error {
			_, err := s.d.Start(ctx, missing)
			if !errors.Is(err, driver.ErrNotFound) {
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
	vol := s.volume(t)
	id := s.create(t, s.spec(s.name("life"), vol, nil))
	s.wantState(t, id, driver.StateCreated)

	s.start(t, id)
	s.wantState(t, id, driver.StateRunning)

	if err := s.d.Stop(t.Context(), id); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	s.wantState(t, id, driver.StateExited)
	if err := s.d.Stop(t.Context(), id); err != nil {
		t.Fatalf("Stop of a stopped instance: %v", err)
	}

	// Stop keeps the instance: it can be started again.
	s.start(t, id)
	s.wantState(t, id, driver.StateRunning)

	if err := s.d.Destroy(t.Context(), id); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	s.wantState(t, id, driver.StateNotFound)
	if err := s.d.Destroy(t.Context(), id); err != nil {
		t.Fatalf("Destroy of a destroyed instance: %v", err)
	}
	// The volume outlives its instance.
	vols, err := s.d.ListVolumes(t.Context(), s.labels())
	if err != nil {
		t.Fatalf("ListVolumes: %v", err)
	}
	if !slices.Contains(vols, vol) {
		t.Fatalf("volume %s gone after Destroy of its instance (have %v)", vol, vols)
	}
}

func (s *suite) testList(t *testing.T) {
	before := time.Now().Add(-time.Minute)
	want := map[string][]string{}
	var ids []string
	for _, g := range []string{"a", "a", "b"} {
		name := s.name("list-" + g)
		ids = append(ids, s.create(t, s.spec(name, "", s.labels(LabelGroup, g, driver.LabelSessionID, name))))
		want[g] = append(want[g], name)
	}
	// One running, to see that List covers every state.
	s.start(t, ids[0])

	cases := []struct {
		name   string
		labels map[string]string
		want   []string
	}{
		{"group a", s.labels(LabelGroup, "a"), want["a"]},
		{"group b", s.labels(LabelGroup, "b"), want["b"]},
		{"whole run", s.labels(), append(append([]string{}, want["a"]...), want["b"]...)},
		{"one session", s.labels(driver.LabelSessionID, want["a"][1]), want["a"][1:2]},
		{"no match", s.labels(LabelGroup, "c"), nil},
		{"value must match", map[string]string{LabelRun: s.run + "x"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.d.List(t.Context(), tc.labels)
			if err != nil {
				t.Fatalf("List(%v): %v", tc.labels, err)
			}
			var names []string
			for _, in := range got {
				names = append(names, in.Name)
				if in.ID == "" {
					t.Errorf("instance %s has no id", in.Name)
				}
				for k, v := range tc.labels {
					if in.Labels[k] != v {
						t.Errorf("instance %s: label %s=%q, want %q", in.Name, k, in.Labels[k], v)
					}
				}
				if in.CreatedAt.Before(before) || in.CreatedAt.After(time.Now().Add(time.Minute)) {
					t.Errorf("instance %s: CreatedAt %v not around now", in.Name, in.CreatedAt)
				}
				if in.State != driver.StateCreated && in.State != driver.StateRunning {
					t.Errorf("instance %s: state %q", in.Name, in.State)
				}
			}
			slices.Sort(names)
			w := slices.Clone(tc.want)
			slices.Sort(w)
			if !slices.Equal(names, w) {
				t.Fatalf("List(%v) = %v, want %v", tc.labels, names, w)
			}
		})
	}
	for _, id := range ids {
		if err := s.d.Destroy(t.Context(), id); err != nil {
			t.Errorf("Destroy(%s): %v", id, err)
		}
	}
}

func (s *suite) testVolumes(t *testing.T) {
	ctx := t.Context()
	name := s.name("vol")
	other := s.name("vol")
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

func (s *suite) testNetworks(t *testing.T) {
	ctx := t.Context()
	netName := s.name("net")
	s.mu.Lock()
	s.networks = append(s.networks, netName)
	s.mu.Unlock()
	for _, step := range []string{"create", "create again"} {
		if err := s.d.CreateNetwork(ctx, netName, s.labels()); err != nil {
			t.Fatalf("CreateNetwork (%s): %v", step, err)
		}
	}
	spec := s.spec(s.name("net-inst"), "", nil)
	spec.Network = netName
	spec.Hostname = "primary"
	id := s.create(t, spec)
	s.start(t, id)
	if err := s.d.Destroy(ctx, id); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, step := range []string{"delete", "delete again"} {
		if err := s.d.DeleteNetwork(ctx, netName); err != nil {
			t.Fatalf("DeleteNetwork (%s): %v", step, err)
		}
	}
}

func (s *suite) testVolumeOutlivesInstance(t *testing.T) {
	if s.opts.WriteFile == nil || s.opts.ReadFile == nil {
		t.Skip("drivertest: no WriteFile/ReadFile hooks for this driver; skipping the persistence check")
	}
	ctx := t.Context()
	vol := s.volume(t)
	const path = "/workspace/drivertest.txt"
	token := "written by " + s.run

	first := s.create(t, s.spec(s.name("persist"), vol, nil))
	s.start(t, first)
	if err := s.opts.WriteFile(ctx, first, path, token); err != nil {
		t.Fatalf("writing %s as the instance user: %v", path, err)
	}
	if err := s.d.Destroy(ctx, first); err != nil {
		t.Fatalf("Destroy: %v", err)
	}

	second := s.create(t, s.spec(s.name("persist"), vol, nil))
	s.start(t, second)
	got, err := s.opts.ReadFile(ctx, second, path)
	if err != nil {
		t.Fatalf("reading %s in a new instance: %v", path, err)
	}
	if strings.TrimSpace(got) != token {
		t.Fatalf("%s in a new instance on the same volume = %q, want %q", path, got, token)
	}
	if err := s.d.Destroy(ctx, second); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
}

// sweep removes everything this run created, then checks nothing is left.
func (s *suite) sweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	mine := map[string]string{LabelRun: s.run}
	insts, err := s.d.List(ctx, mine)
	if err != nil {
		t.Errorf("sweep: List: %v", err)
	}
	for _, in := range insts {
		if err := s.d.Destroy(ctx, in.ID); err != nil {
			t.Errorf("sweep: Destroy(%s): %v", in.Name, err)
		}
	}
	s.mu.Lock()
	vols, nets := slices.Clone(s.volumes), slices.Clone(s.networks)
	s.mu.Unlock()
	if listed, err := s.d.ListVolumes(ctx, mine); err != nil {
		t.Errorf("sweep: ListVolumes: %v", err)
	} else {
		vols = append(vols, listed...)
	}
	slices.Sort(vols)
	for _, v := range slices.Compact(vols) {
		if err := s.d.DeleteVolume(ctx, v); err != nil {
			t.Errorf("sweep: DeleteVolume(%s): %v", v, err)
		}
	}
	for _, n := range nets {
		if err := s.d.DeleteNetwork(ctx, n); err != nil {
			t.Errorf("sweep: DeleteNetwork(%s): %v", n, err)
		}
	}
	if left, err := s.d.List(ctx, mine); err == nil && len(left) > 0 {
		t.Errorf("sweep: %d instances left behind: %v", len(left), left)
	}
	if left, err := s.d.ListVolumes(ctx, mine); err == nil && len(left) > 0 {
		t.Errorf("sweep: volumes left behind: %v", left)
	}
}
