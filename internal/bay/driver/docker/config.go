package docker

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

// ConnectMode says how Bay reaches the runtime port of an instance.
type ConnectMode string

const (
	// ConnectAuto uses the container's IP when a container network is configured or
	// used, else the port published on the host.
	ConnectAuto ConnectMode = "auto"
	// ConnectContainerNetwork always uses the container's IP (Bay shares a network with it).
	ConnectContainerNetwork ConnectMode = "container_network"
	// ConnectHostPort always uses the port published on the host.
	ConnectHostPort ConnectMode = "host_port"
)

// PullPolicy says when Create pulls the image.
type PullPolicy string

const (
	PullIfNotPresent PullPolicy = "if_not_present" // pull only when the image is absent
	PullAlways       PullPolicy = "always"         // pull before every create
	PullNever        PullPolicy = "never"          // never pull; an absent image is an error
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultSocket          = "unix:///var/run/docker.sock"
	DefaultHostAddress     = "127.0.0.1"
	DefaultPidsLimit       = 256
	DefaultStopTimeout     = 10 * time.Second
	DefaultEndpointTimeout = 5 * time.Second
	DefaultIsolatedNetwork = "bay-isolated"
	DefaultSandboxNetwork  = "bay-sandbox"
)

// Config configures the Docker driver (config.yaml: driver.docker.* and
// driver.image_pull_policy). Zero values take the documented defaults.
type Config struct {
	// Socket is the Docker Engine address; default unix:///var/run/docker.sock.
	// A bare path is prefixed with "unix://"; tcp:// and other schemes pass through.
	Socket string
	// Network is an optional container network instances join instead of
	// SandboxNetwork (modes container_network and auto), e.g. one Bay itself is
	// on. If it does not exist, a warning is logged and SandboxNetwork is used.
	// Its isolation (enable_icc=false, no route to the host) is the operator's.
	Network string
	// SandboxNetwork is the bridge network instances join by default, created on
	// demand with enable_icc=false (no traffic between sandboxes) and a bridge
	// interface covered by the host rules of IsolateHost; default "bay-sandbox".
	SandboxNetwork string
	// IsolateHost installs host firewall rules (nftables, needs CAP_NET_ADMIN)
	// so that no sandbox can open a connection to the host itself: Bay's API
	// whatever its bind address, and every other host service. nil means true.
	IsolateHost *bool
	// ConnectMode: auto (default), container_network or host_port.
	ConnectMode ConnectMode
	// HostAddress is the address Bay dials for published ports; default 127.0.0.1.
	HostAddress string
	// PublishAddress is the host IP ports are published on. Default: HostAddress
	// when that is an IP literal, else 127.0.0.1. An unspecified address
	// (0.0.0.0, ::) is refused: Ship ports are never published on every interface.
	PublishAddress string
	// PublishPorts publishes the runtime port on the host (modes host_port and
	// auto); nil means true.
	PublishPorts *bool
	// HostPort is the fixed host port to publish on; 0 = a random free port.
	// A fixed port allows only one running instance at a time.
	HostPort int
	// PullPolicy: if_not_present (default), always or never.
	PullPolicy PullPolicy
	// DefaultPidsLimit applies when a spec sets none; default 256.
	DefaultPidsLimit int64
	// StopTimeout is the grace period of Stop before SIGKILL; default 10s.
	StopTimeout time.Duration
	// EndpointTimeout bounds how long Start waits for Docker to report the
	// instance's address and port binding after starting it; default 5s.
	EndpointTimeout time.Duration
	// IsolatedNetwork is the internal bridge network (no egress, no traffic
	// between instances, reachable from the host) that instances with NoNetwork
	// join; created on demand; default "bay-isolated".
	IsolatedNetwork string
	// Egress lists the egress policies (profiles with network: {allow: …})
	// that Prepare readies, so sandboxes that outlive a Bay restart keep their
	// DNS; Create readies any policy on first use too.
	Egress []driver.Egress
	// EgressUpstreams are the resolvers (host:port) the egress DNS forwarder
	// asks; default: the nameservers of the host's /etc/resolv.conf.
	EgressUpstreams []string
	// Logger receives the driver's logs; nil = slog.Default().
	Logger *slog.Logger
}

// Bool returns a pointer to v, for Config.PublishPorts.
func Bool(v bool) *bool { return &v }

// withDefaults returns a validated copy of c with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if !strings.Contains(c.Socket, "://") {
		c.Socket = "unix://" + c.Socket
	}
	if c.ConnectMode == "" {
		c.ConnectMode = ConnectAuto
	}
	switch c.ConnectMode {
	case ConnectAuto, ConnectContainerNetwork, ConnectHostPort:
	default:
		return c, fmt.Errorf("docker: invalid connect mode %q (want auto, container_network or host_port)", c.ConnectMode)
	}
	if c.HostAddress == "" {
		c.HostAddress = DefaultHostAddress
	}
	if c.PublishAddress == "" {
		if net.ParseIP(c.HostAddress) != nil {
			c.PublishAddress = c.HostAddress
		} else {
			c.PublishAddress = DefaultHostAddress
		}
	}
	ip := net.ParseIP(c.PublishAddress)
	if ip == nil {
		return c, fmt.Errorf("docker: publish address %q is not an IP address", c.PublishAddress)
	}
	if ip.IsUnspecified() {
		return c, fmt.Errorf("docker: refusing to publish runtime ports on %s (every interface); use 127.0.0.1 or a specific address", c.PublishAddress)
	}
	if ip4 := ip.To4(); ip4 != nil {
		c.PublishAddress = ip4.String()
	} else {
		c.PublishAddress = ip.String()
	}
	if c.PublishPorts == nil {
		c.PublishPorts = Bool(true)
	} else {
		c.PublishPorts = Bool(*c.PublishPorts) // own copy
	}
	if c.HostPort < 0 || c.HostPort > 65535 {
		return c, fmt.Errorf("docker: invalid host port %d", c.HostPort)
	}
	if c.PullPolicy == "" {
		c.PullPolicy = PullIfNotPresent
	}
	switch c.PullPolicy {
	case PullIfNotPresent, PullAlways, PullNever:
	default:
		return c, fmt.Errorf("docker: invalid pull policy %q (want if_not_present, always or never)", c.PullPolicy)
	}
	if c.DefaultPidsLimit < 0 {
		return c, fmt.Errorf("docker: invalid default pids limit %d", c.DefaultPidsLimit)
	}
	if c.DefaultPidsLimit == 0 {
		c.DefaultPidsLimit = DefaultPidsLimit
	}
	if c.StopTimeout < 0 {
		return c, fmt.Errorf("docker: invalid stop timeout %s", c.StopTimeout)
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.EndpointTimeout < 0 {
		return c, fmt.Errorf("docker: invalid endpoint timeout %s", c.EndpointTimeout)
	}
	if c.EndpointTimeout == 0 {
		c.EndpointTimeout = DefaultEndpointTimeout
	}
	if c.IsolatedNetwork == "" {
		c.IsolatedNetwork = DefaultIsolatedNetwork
	}
	if c.SandboxNetwork == "" {
		c.SandboxNetwork = DefaultSandboxNetwork
	}
	if c.IsolateHost == nil {
		c.IsolateHost = Bool(true)
	} else {
		c.IsolateHost = Bool(*c.IsolateHost)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
