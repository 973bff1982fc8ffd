package config

import (
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is Bay's whole configuration. Fields tagged with a yaml key are read
// from the file and from BAY_* variables; the others are derived at load.
type Config struct {
	Server          ServerConfig          `yaml:"server"`
	Database        DatabaseConfig        `yaml:"database"`
	Driver          DriverConfig          `yaml:"driver"`
	Cargo           CargoConfig           `yaml:"cargo"`
	Security        SecurityConfig        `yaml:"security"`
	Idempotency     IdempotencyConfig     `yaml:"idempotency"`
	GC              GCConfig              `yaml:"gc"`
	WarmPool        WarmPoolConfig        `yaml:"warm_pool"`
	BrowserLearning BrowserLearningConfig `yaml:"browser_learning"`
	// BrowserAutoReleaseEnabled: upstream top-level key (default true).
	BrowserAutoReleaseEnabled bool                 `yaml:"browser_auto_release_enabled"`
	BrowserService            BrowserServiceConfig `yaml:"browser_service"`
	Proxy                     ProxyConfig          `yaml:"proxy"`

	// Ours.
	Log     LogConfig     `yaml:"log"`
	Session SessionConfig `yaml:"session"`
	// Replica identifies this process among the Bay replicas sharing one database.
	Replica ReplicaConfig `yaml:"replica"`
	// Preview is port preview through Bay (signed URL tokens, proxy bounds).
	Preview PreviewConfig `yaml:"preview"`
	// Quotas bound what each owner may hold (0 = unlimited, the default).
	Quotas QuotasConfig `yaml:"quotas"`
	// RateLimit is a per-owner request rate limit (0 = off, the default).
	RateLimit RateLimitConfig `yaml:"rate_limit"`
	// RuntimePort (ours, default 8123) is the port a runtime listens on inside
	// its container when a profile or container does not say.
	RuntimePort int `yaml:"runtime_port"`

	// Profiles by id, normalized (see Profile). Read from the `profiles` list.
	Profiles map[string]*Profile `yaml:"-"`
	// ProfileOrder is the profile ids in config order.
	ProfileOrder []string `yaml:"-"`

	// DataDir is $BAY_DATA_DIR, default "." (credentials.json, default SQLite file).
	DataDir string `yaml:"-"`
	// Source is the file the config was read from; "" means built-in defaults only.
	Source string `yaml:"-"`
	// Warnings are non-fatal findings (unknown nested keys, ignored settings) for the caller to log.
	Warnings []string `yaml:"-"`
}

// ServerConfig is the HTTP listener.
type ServerConfig struct {
	// Host is the listen address: 127.0.0.1 by default (upstream: 0.0.0.0).
	// Set 0.0.0.0 / :: only behind a key (allow_anonymous false) or a firewall.
	Host string `yaml:"host"` // 127.0.0.1
	Port int    `yaml:"port"` // 8114

	// Ours.
	MaxBodyBytes             int64 `yaml:"max_body_bytes"`              // JSON request bodies; 10 MiB
	MaxUploadBytes           int64 `yaml:"max_upload_bytes"`            // file uploads; 1 GiB
	ReadHeaderTimeoutSeconds int   `yaml:"read_header_timeout_seconds"` // 10
	ShutdownTimeoutSeconds   int   `yaml:"shutdown_timeout_seconds"`    // graceful shutdown budget; 30
}

// Addr is host:port for net.Listen.
func (s ServerConfig) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// ReadHeaderTimeout is read_header_timeout_seconds as a duration.
func (s ServerConfig) ReadHeaderTimeout() time.Duration { return seconds(s.ReadHeaderTimeoutSeconds) }

// ShutdownTimeout is shutdown_timeout_seconds as a duration.
func (s ServerConfig) ShutdownTimeout() time.Duration { return seconds(s.ShutdownTimeoutSeconds) }

// Database drivers (DatabaseConfig.Driver).
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// DatabaseConfig is the store. URL accepts the upstream SQLAlchemy forms
// (sqlite+aiosqlite:///./bay.db, postgresql+asyncpg://...) as well as
// sqlite:///path, postgres://..., postgresql://... and a plain file path.
type DatabaseConfig struct {
	URL  string `yaml:"url"`  // sqlite+aiosqlite:///./bay.db
	Echo bool   `yaml:"echo"` // log SQL statements

	// Ours.
	MaxOpenConns int `yaml:"max_open_conns"` // PostgreSQL pool size; 0 = store default

	// Derived from URL at load.
	Driver string `yaml:"-"` // DriverSQLite | DriverPostgres
	// DSN is, for SQLite, a file path (or ":memory:"); the default URL resolves
	// to <DataDir>/bay.db, other relative paths stay relative to the working
	// directory. For PostgreSQL, a pgx-compatible postgres:// URL.
	DSN string `yaml:"-"`
}

// Driver types and enums.
const (
	DriverDocker = "docker"
	DriverK8s    = "k8s"

	PullIfNotPresent = "if_not_present"
	PullAlways       = "always"
	PullNever        = "never"

	ConnectAuto             = "auto"
	ConnectContainerNetwork = "container_network"
	ConnectHostPort         = "host_port"
)

// DriverConfig selects and configures the sandbox driver.
type DriverConfig struct {
	Type            string       `yaml:"type"`              // docker | k8s ("kubernetes" accepted)
	ImagePullPolicy string       `yaml:"image_pull_policy"` // if_not_present | always | never
	Docker          DockerConfig `yaml:"docker"`
	K8s             K8sConfig    `yaml:"k8s"`
}

// DockerConfig is driver.docker.
type DockerConfig struct {
	// Socket is the Docker endpoint, unix:///var/run/docker.sock; a bare path
	// gets unix:// prefixed, other schemes (tcp://, ssh://) are kept.
	Socket       string `yaml:"socket"`
	Network      string `yaml:"network"`       // container network to join; "" = sandbox_network
	ConnectMode  string `yaml:"connect_mode"`  // auto | container_network | host_port
	HostAddress  string `yaml:"host_address"`  // address Bay dials published ports on; 127.0.0.1
	PublishPorts bool   `yaml:"publish_ports"` // true
	HostPort     int    `yaml:"host_port"`     // fixed published port; 0 = random
	// SandboxNetwork is the bridge Bay creates for sandboxes (no traffic
	// between them); bay-sandbox.
	SandboxNetwork string `yaml:"sandbox_network"`
	// IsolateHost: host firewall rules (nftables) keep every sandbox off the
	// host itself, Bay's API included, whatever server.host is; true.
	IsolateHost bool `yaml:"isolate_host"`
}

// K8sConfig is driver.k8s.
type K8sConfig struct {
	Namespace                string   `yaml:"namespace"`            // bay
	Kubeconfig               string   `yaml:"kubeconfig"`           // "" = in-cluster
	StorageClass             string   `yaml:"storage_class"`        // "" = cluster default
	DefaultStorageSize       string   `yaml:"default_storage_size"` // PVC size quantity; 1Gi
	ImagePullSecrets         []string `yaml:"image_pull_secrets"`
	PodStartupTimeoutSeconds int      `yaml:"pod_startup_timeout"` // seconds; 60
	LabelPrefix              string   `yaml:"label_prefix"`        // bay
	// ChownWorkspace (ours) runs a root init container with CAP_CHOWN only that
	// gives the workspace PVC's root to uid 1000, for volume plugins that ignore
	// fsGroup (hostPath); false where Pod Security "restricted" forbids it. true.
	ChownWorkspace bool `yaml:"chown_workspace"`
	// Endpoint (ours): how Bay reaches a sandbox's runtime: pod_ip (Bay on the
	// cluster network), api_proxy (the API server's pod proxy, with Bay's
	// kube credentials) or auto: pod_ip in a cluster, api_proxy outside. auto.
	Endpoint string `yaml:"endpoint"`
}

// PodStartupTimeout is pod_startup_timeout as a duration.
func (k K8sConfig) PodStartupTimeout() time.Duration { return seconds(k.PodStartupTimeoutSeconds) }

// CargoConfig is the workspace volumes.
type CargoConfig struct {
	RootPath           string `yaml:"root_path"`             // /var/lib/bay/cargos
	HostRootPath       string `yaml:"host_root_path"`        // "" = Docker named volumes (unless root_path is a mount)
	DefaultSizeLimitMB int    `yaml:"default_size_limit_mb"` // 1024
	// MountPath is accepted and ignored: the cargo is always mounted at /workspace.
	MountPath string `yaml:"mount_path"`
}

// SecurityConfig is authentication.
type SecurityConfig struct {
	APIKey string `yaml:"api_key"` // "" = none; BAY_API_KEY overrides
	// AllowAnonymous lets requests without an Authorization header act as their
	// X-Owner (or "default"). False by default (upstream: true).
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// AllowAnonymousRemote (ours) also lets such requests come from a
	// non-loopback peer (the TCP peer address; X-Forwarded-For is not trusted).
	// False: anonymous requests are accepted from 127.0.0.1/::1 only.
	AllowAnonymousRemote bool     `yaml:"allow_anonymous_remote"`
	BlockedHosts         []string `yaml:"blocked_hosts"` // accepted, unused (as upstream)
}

// IdempotencyConfig is Idempotency-Key handling.
type IdempotencyConfig struct {
	Enabled  bool `yaml:"enabled"`   // true
	TTLHours int  `yaml:"ttl_hours"` // 1
}

// TTL is ttl_hours as a duration.
func (i IdempotencyConfig) TTL() time.Duration { return time.Duration(i.TTLHours) * time.Hour }

// GCConfig is the garbage collector.
type GCConfig struct {
	Enabled         bool `yaml:"enabled"`          // true
	RunOnStartup    bool `yaml:"run_on_startup"`   // true
	IntervalSeconds int  `yaml:"interval_seconds"` // 300
	// InstanceID labels what this Bay creates (bay.instance_id). Default
	// $HOSTNAME, else "bay"; never empty after load.
	InstanceID      string            `yaml:"instance_id"`
	IdleSession     IdleSessionConfig `yaml:"idle_session"`     // enabled, keep_busy
	ExpiredSandbox  GCTaskConfig      `yaml:"expired_sandbox"`  // enabled
	OrphanCargo     GCTaskConfig      `yaml:"orphan_cargo"`     // enabled
	OrphanContainer GCTaskConfig      `yaml:"orphan_container"` // disabled
}

// Interval is interval_seconds as a duration.
func (g GCConfig) Interval() time.Duration { return seconds(g.IntervalSeconds) }

// IdleSessionConfig switches idle reclaim.
type IdleSessionConfig struct {
	Enabled bool `yaml:"enabled"`
	// KeepBusy (default true): a sandbox whose runtime reports a running
	// background process is not reclaimed when idle (its TTL still applies).
	KeepBusy bool `yaml:"keep_busy"`
}

// GCTaskConfig switches one GC task.
type GCTaskConfig struct {
	Enabled bool `yaml:"enabled"`
}

// Warm-pool queue drop policies.
const (
	DropNewest = "drop_newest"
	DropOldest = "drop_oldest"
)

// WarmPoolConfig is the warm pool scheduler and warmup queue.
type WarmPoolConfig struct {
	Enabled                       bool   `yaml:"enabled"`                           // true
	WarmupQueueWorkers            int    `yaml:"warmup_queue_workers"`              // 2
	WarmupQueueMaxSize            int    `yaml:"warmup_queue_max_size"`             // 256
	WarmupQueueDropPolicy         string `yaml:"warmup_queue_drop_policy"`          // drop_newest | drop_oldest
	WarmupQueueDropAlertThreshold int    `yaml:"warmup_queue_drop_alert_threshold"` // 50
	IntervalSeconds               int    `yaml:"interval_seconds"`                  // 30
	RunOnStartup                  bool   `yaml:"run_on_startup"`                    // true
}

// Interval is interval_seconds as a duration.
func (w WarmPoolConfig) Interval() time.Duration { return seconds(w.IntervalSeconds) }

// BrowserLearningConfig is the browser skill-learning scheduler (upstream keys).
type BrowserLearningConfig struct {
	Enabled                      bool    `yaml:"enabled"`                         // true
	RunOnStartup                 bool    `yaml:"run_on_startup"`                  // true
	IntervalSeconds              int     `yaml:"interval_seconds"`                // 300
	BatchSize                    int     `yaml:"batch_size"`                      // 20
	ScoreThreshold               float64 `yaml:"score_threshold"`                 // 0.85
	ReplaySuccessThreshold       float64 `yaml:"replay_success_threshold"`        // 0.95
	MinSamples                   int     `yaml:"min_samples"`                     // 30
	CanaryWindowHours            int     `yaml:"canary_window_hours"`             // 24
	SuccessDropThreshold         float64 `yaml:"success_drop_threshold"`          // 0.03
	ErrorRateMultiplierThreshold float64 `yaml:"error_rate_multiplier_threshold"` // 2.0
}

// Interval is interval_seconds as a duration.
func (b BrowserLearningConfig) Interval() time.Duration { return seconds(b.IntervalSeconds) }

// BrowserServiceConfig is the shared browser (Gull) service.
type BrowserServiceConfig struct {
	Enabled  bool   `yaml:"enabled"`  // false
	Endpoint string `yaml:"endpoint"` // http://gull-service:8115
}

// ProxyConfig is the outbound HTTP proxy given to runtime containers. A
// profile or container may replace it as a whole (see Config.ProxyFor).
type ProxyConfig struct {
	Enabled        bool   `yaml:"enabled"` // false
	HTTPProxy      string `yaml:"http_proxy"`
	HTTPSProxy     string `yaml:"https_proxy"`
	NoProxy        string `yaml:"no_proxy"`         // appended to default_no_proxy
	DefaultNoProxy string `yaml:"default_no_proxy"` // DefaultNoProxy
}

// DefaultNoProxy is the upstream default of proxy.default_no_proxy.
const DefaultNoProxy = "localhost,127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,*.local,.svc,.svc.cluster.local,.pod.cluster.local"

// Env is the environment a runtime container gets for this proxy, as
// upstream injects it: nothing when disabled; else HTTP_PROXY/http_proxy and
// HTTPS_PROXY/https_proxy when set, and NO_PROXY/no_proxy =
// default_no_proxy[,no_proxy].
func (p ProxyConfig) Env() map[string]string {
	env := map[string]string{}
	if !p.Enabled {
		return env
	}
	if p.HTTPProxy != "" {
		env["HTTP_PROXY"], env["http_proxy"] = p.HTTPProxy, p.HTTPProxy
	}
	if p.HTTPSProxy != "" {
		env["HTTPS_PROXY"], env["https_proxy"] = p.HTTPSProxy, p.HTTPSProxy
	}
	var parts []string
	for _, s := range []string{p.DefaultNoProxy, p.NoProxy} {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) > 0 {
		np := strings.Join(parts, ",")
		env["NO_PROXY"], env["no_proxy"] = np, np
	}
	return env
}

// LogConfig (ours) is Bay's own logging (log/slog).
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error; info
	Format string `yaml:"format"` // json | text; json
}

// SlogLevel is Level as a slog.Level.
func (l LogConfig) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// ReplicaConfig (ours) is this Bay process as one replica of a deployment
// (several Bays on one PostgreSQL; gc.instance_id is the deployment's id).
type ReplicaConfig struct {
	// ID names this process in logs, /health, leases and claims; it must differ
	// between replicas. Default "<hostname>-<pid>"; never empty after load.
	ID string `yaml:"id"`
	// HeartbeatIntervalSeconds is how often the replica records that it is alive; 5.
	HeartbeatIntervalSeconds int `yaml:"heartbeat_interval_seconds"`
	// LeaseSeconds: a replica silent for this long is taken for dead, and its
	// claims (sessions it was starting, idempotency keys it was answering) and
	// duties (GC pass, warm-pool refill) lapse to the others; 15.
	LeaseSeconds int `yaml:"lease_seconds"`
}

// HeartbeatInterval is heartbeat_interval_seconds as a duration.
func (r ReplicaConfig) HeartbeatInterval() time.Duration { return seconds(r.HeartbeatIntervalSeconds) }

// Lease is lease_seconds as a duration.
func (r ReplicaConfig) Lease() time.Duration { return seconds(r.LeaseSeconds) }

// SessionConfig (ours) holds the session start-up and Bay→runtime timeouts
// that upstream hard-codes; the defaults are upstream's values.
type SessionConfig struct {
	ReadyTimeoutSeconds int `yaml:"ready_timeout_seconds"`  // give up waiting for /health; 120
	ReadyPollInitialMs  int `yaml:"ready_poll_initial_ms"`  // first poll interval, doubled each time; 25
	ReadyPollMaxMs      int `yaml:"ready_poll_max_ms"`      // poll interval cap; 100
	ReadyProbeTimeoutMs int `yaml:"ready_probe_timeout_ms"` // one /health attempt; 2000
	// StartLockTimeoutSeconds bounds how long a request waits for another
	// request that is starting the same sandbox; must be >= ready_timeout_seconds. 150
	StartLockTimeoutSeconds   int `yaml:"start_lock_timeout_seconds"`
	ShipRequestTimeoutSeconds int `yaml:"ship_request_timeout_seconds"` // default per-call timeout to a runtime; 60
	ShipConnectTimeoutSeconds int `yaml:"ship_connect_timeout_seconds"` // TCP connect to a runtime (same host or cluster network); 2
	StopTimeoutSeconds        int `yaml:"stop_timeout_seconds"`         // grace before a stopped container is killed; 10
}

// ReadyTimeout is ready_timeout_seconds as a duration.
func (s SessionConfig) ReadyTimeout() time.Duration { return seconds(s.ReadyTimeoutSeconds) }

// ReadyPollInitial is ready_poll_initial_ms as a duration.
func (s SessionConfig) ReadyPollInitial() time.Duration { return millis(s.ReadyPollInitialMs) }

// ReadyPollMax is ready_poll_max_ms as a duration.
func (s SessionConfig) ReadyPollMax() time.Duration { return millis(s.ReadyPollMaxMs) }

// ReadyProbeTimeout is ready_probe_timeout_ms as a duration.
func (s SessionConfig) ReadyProbeTimeout() time.Duration { return millis(s.ReadyProbeTimeoutMs) }

// StartLockTimeout is start_lock_timeout_seconds as a duration.
func (s SessionConfig) StartLockTimeout() time.Duration { return seconds(s.StartLockTimeoutSeconds) }

// ShipRequestTimeout is ship_request_timeout_seconds as a duration.
func (s SessionConfig) ShipRequestTimeout() time.Duration {
	return seconds(s.ShipRequestTimeoutSeconds)
}

// ShipConnectTimeout is ship_connect_timeout_seconds as a duration.
func (s SessionConfig) ShipConnectTimeout() time.Duration {
	return seconds(s.ShipConnectTimeoutSeconds)
}

// StopTimeout is stop_timeout_seconds as a duration.
func (s SessionConfig) StopTimeout() time.Duration { return seconds(s.StopTimeoutSeconds) }

// Profile returns the profile with this id.
func (c *Config) Profile(id string) (*Profile, bool) {
	p, ok := c.Profiles[id]
	return p, ok
}

// OrderedProfiles returns the profiles in config order.
func (c *Config) OrderedProfiles() []*Profile {
	out := make([]*Profile, 0, len(c.ProfileOrder))
	for _, id := range c.ProfileOrder {
		out = append(out, c.Profiles[id])
	}
	return out
}

// ProxyFor is the effective proxy of a runtime container: the container's
// own, else the profile's, else the global one (each replaces the next as a
// whole, as upstream). ct may be nil.
func (c *Config) ProxyFor(p *Profile, ct *ContainerSpec) ProxyConfig {
	switch {
	case ct != nil && ct.Proxy != nil:
		return *ct.Proxy
	case p != nil && p.Proxy != nil:
		return *p.Proxy
	}
	return c.Proxy
}

// Redacted returns a copy fit for logging: the API key and passwords in the
// database URL and the global proxy URLs are masked. (Profile env values are
// left as they are.)
func (c *Config) Redacted() Config {
	r := *c
	if r.Security.APIKey != "" {
		r.Security.APIKey = "REDACTED"
	}
	if r.Preview.Key != "" {
		r.Preview.Key = "REDACTED"
	}
	r.Database.URL = redactURL(r.Database.URL)
	r.Database.DSN = redactURL(r.Database.DSN)
	r.Proxy.HTTPProxy = redactURL(r.Proxy.HTTPProxy)
	r.Proxy.HTTPSProxy = redactURL(r.Proxy.HTTPSProxy)
	return r
}

// redactURL masks the password of a URL; strings that do not parse as URLs
// with credentials are returned unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}

// Default returns the built-in configuration (upstream defaults plus ours),
// as Load returns it with no file and no environment.
func Default() *Config {
	cfg, err := build(nil, "", nil)
	if err != nil {
		panic("config: built-in defaults are invalid: " + err.Error())
	}
	return cfg
}

const defaultDatabaseURL = "sqlite+aiosqlite:///./bay.db"

// defaults returns the sections with their default values; profiles and
// derived fields are filled by build.
func defaults() *Config {
	return &Config{
		Server: ServerConfig{
			Host:                     "127.0.0.1",
			Port:                     8114,
			MaxBodyBytes:             10 << 20,
			MaxUploadBytes:           1 << 30,
			ReadHeaderTimeoutSeconds: 10,
			ShutdownTimeoutSeconds:   30,
		},
		Database: DatabaseConfig{URL: defaultDatabaseURL},
		Driver: DriverConfig{
			Type:            DriverDocker,
			ImagePullPolicy: PullIfNotPresent,
			Docker: DockerConfig{
				Socket:         "unix:///var/run/docker.sock",
				ConnectMode:    ConnectAuto,
				HostAddress:    "127.0.0.1",
				PublishPorts:   true,
				IsolateHost:    true,
				SandboxNetwork: "bay-sandbox",
			},
			K8s: K8sConfig{
				Namespace:                "bay",
				DefaultStorageSize:       "1Gi",
				ImagePullSecrets:         []string{},
				PodStartupTimeoutSeconds: 60,
				ChownWorkspace:           true,
				LabelPrefix:              "bay",
				Endpoint:                 "auto",
			},
		},
		Cargo: CargoConfig{
			RootPath:           "/var/lib/bay/cargos",
			DefaultSizeLimitMB: 1024,
			MountPath:          "/workspace",
		},
		Security: SecurityConfig{
			BlockedHosts: []string{"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"},
		},
		Idempotency: IdempotencyConfig{Enabled: true, TTLHours: 1},
		GC: GCConfig{
			Enabled:         true,
			RunOnStartup:    true,
			IntervalSeconds: 300,
			IdleSession:     IdleSessionConfig{Enabled: true, KeepBusy: true},
			ExpiredSandbox:  GCTaskConfig{Enabled: true},
			OrphanCargo:     GCTaskConfig{Enabled: true},
			OrphanContainer: GCTaskConfig{Enabled: false},
		},
		WarmPool: WarmPoolConfig{
			Enabled:                       true,
			WarmupQueueWorkers:            2,
			WarmupQueueMaxSize:            256,
			WarmupQueueDropPolicy:         DropNewest,
			WarmupQueueDropAlertThreshold: 50,
			IntervalSeconds:               30,
			RunOnStartup:                  true,
		},
		BrowserLearning: BrowserLearningConfig{
			Enabled:                      true,
			RunOnStartup:                 true,
			IntervalSeconds:              300,
			BatchSize:                    20,
			ScoreThreshold:               0.85,
			ReplaySuccessThreshold:       0.95,
			MinSamples:                   30,
			CanaryWindowHours:            24,
			SuccessDropThreshold:         0.03,
			ErrorRateMultiplierThreshold: 2.0,
		},
		BrowserAutoReleaseEnabled: true,
		BrowserService:            BrowserServiceConfig{Endpoint: "http://gull-service:8115"},
		Proxy:                     ProxyConfig{DefaultNoProxy: DefaultNoProxy},
		Log:                       LogConfig{Level: "info", Format: "json"},
		Session: SessionConfig{
			ReadyTimeoutSeconds:       120,
			ReadyPollInitialMs:        25,
			ReadyPollMaxMs:            100,
			ReadyProbeTimeoutMs:       2000,
			StartLockTimeoutSeconds:   150,
			ShipRequestTimeoutSeconds: 60,
			ShipConnectTimeoutSeconds: 2,
			StopTimeoutSeconds:        10,
		},
		Replica:     ReplicaConfig{HeartbeatIntervalSeconds: 5, LeaseSeconds: 15},
		RuntimePort: 8123,
		Preview:     defaultPreview(),
		Quotas:      defaultQuotas(),
		DataDir:     ".",
	}
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }
func millis(n int) time.Duration  { return time.Duration(n) * time.Millisecond }
