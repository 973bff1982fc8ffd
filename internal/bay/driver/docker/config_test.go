package docker

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Socket", c.Socket, "unix:///var/run/docker.sock"},
		{"ConnectMode", c.ConnectMode, ConnectAuto},
		{"HostAddress", c.HostAddress, "127.0.0.1"},
		{"PublishAddress", c.PublishAddress, "127.0.0.1"},
		{"PublishPorts", *c.PublishPorts, true},
		{"HostPort", c.HostPort, 0},
		{"PullPolicy", c.PullPolicy, PullIfNotPresent},
		{"DefaultPidsLimit", c.DefaultPidsLimit, int64(256)},
		{"StopTimeout", c.StopTimeout, 10 * time.Second},
		{"EndpointTimeout", c.EndpointTimeout, 5 * time.Second},
		{"IsolatedNetwork", c.IsolatedNetwork, "bay-isolated"},
		{"SandboxNetwork", c.SandboxNetwork, "bay-sandbox"},
		{"IsolateHost", *c.IsolateHost, true},
		{"Network", c.Network, ""},
		{"Logger set", c.Logger != nil, true},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // "" = valid
		check   func(t *testing.T, c Config)
	}{
		{name: "bare socket path gets unix://", cfg: Config{Socket: "/run/docker.sock"},
			check: func(t *testing.T, c Config) {
				if c.Socket != "unix:///run/docker.sock" {
					t.Errorf("Socket = %q", c.Socket)
				}
			}},
		{name: "tcp socket kept", cfg: Config{Socket: "tcp://127.0.0.1:2375"},
			check: func(t *testing.T, c Config) {
				if c.Socket != "tcp://127.0.0.1:2375" {
					t.Errorf("Socket = %q", c.Socket)
				}
			}},
		{name: "publish ports false kept", cfg: Config{PublishPorts: Bool(false)},
			check: func(t *testing.T, c Config) {
				if *c.PublishPorts {
					t.Error("PublishPorts became true")
				}
			}},
		{name: "host name as host address publishes on loopback", cfg: Config{HostAddress: "host.docker.internal"},
			check: func(t *testing.T, c Config) {
				if c.PublishAddress != "127.0.0.1" || c.HostAddress != "host.docker.internal" {
					t.Errorf("PublishAddress %q HostAddress %q", c.PublishAddress, c.HostAddress)
				}
			}},
		{name: "ip host address is the publish address", cfg: Config{HostAddress: "127.0.0.2"},
			check: func(t *testing.T, c Config) {
				if c.PublishAddress != "127.0.0.2" {
					t.Errorf("PublishAddress = %q", c.PublishAddress)
				}
			}},
		{name: "every interface refused", cfg: Config{HostAddress: "0.0.0.0"}, wantErr: "every interface"},
		{name: "every interface refused (v6)", cfg: Config{PublishAddress: "::"}, wantErr: "every interface"},
		{name: "publish address must be an ip", cfg: Config{PublishAddress: "localhost"}, wantErr: "not an IP"},
		{name: "bad connect mode", cfg: Config{ConnectMode: "bridge"}, wantErr: "connect mode"},
		{name: "bad pull policy", cfg: Config{PullPolicy: "sometimes"}, wantErr: "pull policy"},
		{name: "bad host port", cfg: Config{HostPort: 70000}, wantErr: "host port"},
		{name: "negative pids", cfg: Config{DefaultPidsLimit: -1}, wantErr: "pids"},
		{name: "negative stop timeout", cfg: Config{StopTimeout: -time.Second}, wantErr: "stop timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.withDefaults()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if _, err := New(tc.cfg); err == nil {
					t.Fatal("New accepted an invalid config")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestEnvListSorted(t *testing.T) {
	got := envList(map[string]string{"B": "2", "A": "x=y:z", "C": ""})
	want := []string{"A=x=y:z", "B=2", "C="}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("envList = %q, want %q", got, want)
	}
	if envList(nil) != nil {
		t.Fatal("envList(nil) not nil")
	}
}

func TestValidateSpec(t *testing.T) {
	ok := InstanceSpec{Name: "n", Image: "img", Port: 8123}
	cases := []struct {
		name string
		mod  func(*InstanceSpec)
	}{
		{"no image", func(s *InstanceSpec) { s.Image = "" }},
		{"no port", func(s *InstanceSpec) { s.Port = 0 }},
		{"port too big", func(s *InstanceSpec) { s.Port = 65536 }},
		{"env name with =", func(s *InstanceSpec) { s.Env = map[string]string{"A=B": "x"} }},
		{"env value with NUL", func(s *InstanceSpec) { s.Env = map[string]string{"A": "x\x00"} }},
		{"negative memory", func(s *InstanceSpec) { s.Resources.MemoryBytes = -1 }},
	}
	if err := validateSpec(ok); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mod(&s)
			if err := validateSpec(s); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestMapState(t *testing.T) {
	cases := map[container.ContainerState]driver.State{
		"created": driver.StateCreated, "running": driver.StateRunning, "restarting": driver.StateRunning,
		"paused": driver.StateRunning, "exited": driver.StateExited, "dead": driver.StateExited,
		"removing": driver.StateExited,
	}
	for in, want := range cases {
		if got := mapState(in); got != want {
			t.Errorf("mapState(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEndpointChoice covers the endpoint rules on synthetic inspect results;
// the integration tests check the same against the engine.
func TestEndpointChoice(t *testing.T) {
	port := nat.Port("8123/tcp")
	inspect := func(mode string, nets map[string]string, hostPort string) container.InspectResponse {
		ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}}
		for n, ip := range nets {
			ns.Networks[n] = &network.EndpointSettings{IPAddress: ip}
		}
		ns.Ports = nat.PortMap{port: nil}
		if hostPort != "" {
			ns.Ports[port] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: hostPort}}
		}
		return container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)}},
			Config:            &container.Config{Labels: map[string]string{driver.LabelRuntimePort: "8123"}, ExposedPorts: nat.PortSet{port: {}, "9000/tcp": {}}},
			NetworkSettings:   ns,
		}
	}
	cases := []struct {
		name string
		cfg  Config
		info container.InspectResponse
		want string // "" = no endpoint
	}{
		{"auto, default bridge, container IPs unreachable: published port", Config{},
			inspect("bridge", map[string]string{"bridge": "172.17.0.2"}, "49153"), "http://127.0.0.1:49153"},
		{"auto, configured network: its IP", Config{Network: "bay"},
			inspect("bay", map[string]string{"bay": "172.20.0.5"}, "49153"), "http://172.20.0.5:8123"},
		{"auto, session network + configured: configured IP first", Config{Network: "bay"},
			inspect("sess", map[string]string{"sess": "172.21.0.2", "bay": "172.20.0.5"}, "49153"), "http://172.20.0.5:8123"},
		{"auto, session network only: session IP", Config{},
			inspect("sess", map[string]string{"sess": "172.21.0.2"}, "49153"), "http://172.21.0.2:8123"},
		{"auto, no publishing: bridge IP", Config{PublishPorts: Bool(false)},
			inspect("bridge", map[string]string{"bridge": "172.17.0.2"}, ""), "http://172.17.0.2:8123"},
		{"host_port even with a network", Config{ConnectMode: ConnectHostPort, HostAddress: "127.0.0.1"},
			inspect("sess", map[string]string{"sess": "172.21.0.2"}, "40000"), "http://127.0.0.1:40000"},
		{"host_port with host name", Config{ConnectMode: ConnectHostPort, HostAddress: "host.docker.internal"},
			inspect("bridge", map[string]string{"bridge": "172.17.0.2"}, "40000"), "http://host.docker.internal:40000"},
		{"container_network on default bridge", Config{ConnectMode: ConnectContainerNetwork},
			inspect("default", map[string]string{"bridge": "172.17.0.2"}, ""), "http://172.17.0.2:8123"},
		{"isolated network: its IP whatever the mode", Config{ConnectMode: ConnectHostPort},
			inspect("bay-isolated", map[string]string{"bay-isolated": "172.30.0.2"}, ""), "http://172.30.0.2:8123"},
		{"not yet: no address, no binding", Config{},
			inspect("bridge", map[string]string{"bridge": ""}, ""), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			c, err := tc.cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			d := &Driver{cfg: c, log: c.Logger, reach: func(string) bool { return false }}
			got, ok := d.endpoint(tc.info)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("endpoint = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestAutoPrefersReachableBridgeIP(t *testing.T) {
	c, err := Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	probes := 0
	d := &Driver{cfg: c, log: c.Logger, reach: func(addr string) bool {
		probes++
		return addr == "172.17.0.2:8123"
	}}
	info := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{HostConfig: &container.HostConfig{NetworkMode: "bridge"}},
		Config:            &container.Config{Labels: map[string]string{driver.LabelRuntimePort: "8123"}},
		NetworkSettings: &container.NetworkSettings{
			Networks: map[string]*network.EndpointSettings{"bridge": {IPAddress: "172.17.0.2"}},
		},
	}
	info.NetworkSettings.Ports = nat.PortMap{"8123/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}}}
	for i := 0; i < 3; i++ {
		if got, _ := d.endpoint(info); got != "http://172.17.0.2:8123" {
			t.Fatalf("endpoint %q, want the bridge IP", got)
		}
	}
	if probes != 1 {
		t.Fatalf("probed %d times, want once per driver", probes)
	}
	host := &Driver{cfg: c, log: c.Logger, reach: func(string) bool { return false }}
	if got, _ := host.endpoint(info); got != "http://127.0.0.1:49153" {
		t.Fatalf("unreachable bridge: endpoint %q", got)
	}
}

func TestWrapNotFound(t *testing.T) {
	err := wrap("inspect", "x", notFound{})
	if !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("%v does not wrap driver.ErrNotFound", err)
	}
	if err := wrap("inspect", "x", errors.New("boom")); errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("%v wraps driver.ErrNotFound", err)
	}
}

type notFound struct{}

func (notFound) Error() string { return "no such thing" }
func (notFound) NotFound()     {}

func TestBridgeName(t *testing.T) {
	seen := map[string]string{}
	for _, n := range []string{DefaultSandboxNetwork, DefaultIsolatedNetwork, "bay_net_sess-0123456789ab", "x"} {
		b := bridgeName(n)
		if len(b) > 15 || !strings.HasPrefix(b, bridgePrefix) {
			t.Errorf("bridgeName(%q) = %q: want at most 15 bytes starting with %q", n, b, bridgePrefix)
		}
		if b != bridgeName(n) {
			t.Errorf("bridgeName(%q) not stable", n)
		}
		if other, dup := seen[b]; dup {
			t.Errorf("bridgeName(%q) = bridgeName(%q) = %q", n, other, b)
		}
		seen[b] = n
	}
}
