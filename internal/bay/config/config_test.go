package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// envMap is a test environment.
func envMap(kv ...string) LookupEnv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// loadYAML loads a config from YAML text.
func loadYAML(t *testing.T, text string, env LookupEnv) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return LoadFile(path, env)
}

func mustLoadYAML(t *testing.T, text string, env LookupEnv) *Config {
	t.Helper()
	cfg, err := loadYAML(t, text, env)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}

type check struct {
	name      string
	got, want any
}

func runChecks(t *testing.T, checks []check) {
	t.Helper()
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestDefaultsMatchUpstream(t *testing.T) {
	c := Default()
	def, _ := c.Profile("python-default")
	data, _ := c.Profile("python-data")
	secure, ok := c.Profile("python-secure")
	if !ok {
		t.Fatal("no python-secure profile")
	}
	runChecks(t, []check{
		{"server.host (secure default, upstream 0.0.0.0)", c.Server.Host, "127.0.0.1"},
		{"server.port", c.Server.Port, 8114},
		{"database.url", c.Database.URL, "sqlite+aiosqlite:///./bay.db"},
		{"database.echo", c.Database.Echo, false},
		{"database driver", c.Database.Driver, DriverSQLite},
		{"database dsn", c.Database.DSN, "bay.db"},
		{"driver.type", c.Driver.Type, "docker"},
		{"driver.image_pull_policy", c.Driver.ImagePullPolicy, "if_not_present"},
		{"driver.docker.socket", c.Driver.Docker.Socket, "unix:///var/run/docker.sock"},
		{"driver.docker.network", c.Driver.Docker.Network, ""},
		{"driver.docker.connect_mode", c.Driver.Docker.ConnectMode, "auto"},
		{"driver.docker.host_address", c.Driver.Docker.HostAddress, "127.0.0.1"},
		{"driver.docker.publish_ports", c.Driver.Docker.PublishPorts, true},
		{"driver.docker.host_port", c.Driver.Docker.HostPort, 0},
		{"driver.k8s.namespace", c.Driver.K8s.Namespace, "bay"},
		{"driver.k8s.kubeconfig", c.Driver.K8s.Kubeconfig, ""},
		{"driver.k8s.storage_class", c.Driver.K8s.StorageClass, ""},
		{"driver.k8s.default_storage_size", c.Driver.K8s.DefaultStorageSize, "1Gi"},
		{"driver.k8s.image_pull_secrets", c.Driver.K8s.ImagePullSecrets, []string{}},
		{"driver.k8s.pod_startup_timeout", c.Driver.K8s.PodStartupTimeout(), 60 * time.Second},
		{"driver.k8s.label_prefix", c.Driver.K8s.LabelPrefix, "bay"},
		{"driver.k8s.endpoint", c.Driver.K8s.Endpoint, "auto"},
		{"cargo.root_path", c.Cargo.RootPath, "/var/lib/bay/cargos"},
		{"cargo.host_root_path", c.Cargo.HostRootPath, ""},
		{"cargo.default_size_limit_mb", c.Cargo.DefaultSizeLimitMB, 1024},
		{"cargo.mount_path", c.Cargo.MountPath, "/workspace"},
		{"security.api_key", c.Security.APIKey, ""},
		{"security.allow_anonymous (secure default, upstream true)", c.Security.AllowAnonymous, false},
		{"security.allow_anonymous_remote", c.Security.AllowAnonymousRemote, false},
		{"security.blocked_hosts", len(c.Security.BlockedHosts), 4},
		{"idempotency.enabled", c.Idempotency.Enabled, true},
		{"idempotency.ttl", c.Idempotency.TTL(), time.Hour},
		{"gc.enabled", c.GC.Enabled, true},
		{"gc.run_on_startup", c.GC.RunOnStartup, true},
		{"gc.interval", c.GC.Interval(), 300 * time.Second},
		{"gc.instance_id", c.GC.InstanceID, "bay"},
		{"gc.idle_session", c.GC.IdleSession.Enabled, true},
		{"gc.expired_sandbox", c.GC.ExpiredSandbox.Enabled, true},
		{"gc.orphan_cargo", c.GC.OrphanCargo.Enabled, true},
		{"gc.orphan_container", c.GC.OrphanContainer.Enabled, false},
		{"warm_pool", c.WarmPool, WarmPoolConfig{Enabled: true, WarmupQueueWorkers: 2, WarmupQueueMaxSize: 256,
			WarmupQueueDropPolicy: "drop_newest", WarmupQueueDropAlertThreshold: 50, IntervalSeconds: 30, RunOnStartup: true}},
		{"browser_learning", c.BrowserLearning, BrowserLearningConfig{Enabled: true, RunOnStartup: true, IntervalSeconds: 300,
			BatchSize: 20, ScoreThreshold: 0.85, ReplaySuccessThreshold: 0.95, MinSamples: 30, CanaryWindowHours: 24,
			SuccessDropThreshold: 0.03, ErrorRateMultiplierThreshold: 2.0}},
		{"browser_auto_release_enabled", c.BrowserAutoReleaseEnabled, true},
		{"browser_service", c.BrowserService, BrowserServiceConfig{Enabled: false, Endpoint: "http://gull-service:8115"}},
		{"proxy", c.Proxy, ProxyConfig{DefaultNoProxy: "localhost,127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,*.local,.svc,.svc.cluster.local,.pod.cluster.local"}},
		{"profile order (upstream's two, then ours)", c.ProfileOrder[:2], []string{"python-default", "python-data"}},
		{"python-secure (ours): python-default on gVisor", []any{secure.Image, secure.Runtime, secure.Resources, secure.Capabilities},
			[]any{"ship:latest", "runsc", def.Resources, def.Capabilities}},
		{"python-default image", def.Image, "ship:latest"},
		{"python-default resources", def.Resources, Resources{CPUs: 1.0, Memory: "1g", MemoryBytes: 1 << 30}},
		{"python-default caps", def.Capabilities, []string{"filesystem", "shell", "python"}},
		{"python-default idle", def.IdleTimeout(), 1800 * time.Second},
		{"python-default warm", def.WarmPoolSize, 0},
		{"python-default rotate", def.WarmRotateTTLSeconds, 1800},
		{"python-default claim", def.WarmClaimTimeoutMs, 200},
		{"python-default containers", len(def.Containers), 1},
		{"python-default primary", def.Primary().Name, "primary"},
		{"python-default port", def.RuntimePort, 8123},
		{"python-data image", data.Image, "ship:data"},
		{"python-data resources", data.Resources, Resources{CPUs: 2.0, Memory: "4g", MemoryBytes: 4 << 30}},
		{"python-data caps", data.Capabilities, []string{"filesystem", "shell", "python"}},
		{"python-data idle", data.IdleTimeoutSeconds, 1800},
		// ours
		{"log", c.Log, LogConfig{Level: "info", Format: "json"}},
		{"session.ready_timeout", c.Session.ReadyTimeout(), 120 * time.Second},
		{"session.ready_poll_initial", c.Session.ReadyPollInitial(), 25 * time.Millisecond},
		{"session.ready_poll_max", c.Session.ReadyPollMax(), 100 * time.Millisecond},
		{"session.ready_probe_timeout", c.Session.ReadyProbeTimeout(), 2 * time.Second},
		{"session.start_lock_timeout", c.Session.StartLockTimeout(), 150 * time.Second},
		{"session.ship_request_timeout", c.Session.ShipRequestTimeout(), 60 * time.Second},
		{"session.ship_connect_timeout", c.Session.ShipConnectTimeout(), 2 * time.Second},
		{"session.stop_timeout", c.Session.StopTimeout(), 10 * time.Second},
		{"server.max_body_bytes", c.Server.MaxBodyBytes, int64(10 << 20)},
		{"server.max_upload_bytes", c.Server.MaxUploadBytes, int64(1 << 30)},
		{"runtime_port", c.RuntimePort, 8123},
		{"python-default pids_limit", def.PidsLimit, int64(256)},
		{"python-default runtime", def.Runtime, ""},
		{"python-default no_network", def.NoNetwork, false},
		{"data dir", c.DataDir, "."},
		{"source", c.Source, ""},
		{"warnings", len(c.Warnings), 0},
	})
}

func TestLoadWithoutFileEqualsDefault(t *testing.T) {
	cfg, err := load(envMap(), []string{filepath.Join(t.TempDir(), "absent.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("Load with no file and no env differs from Default()")
	}
}

func TestLoadUpstreamFile(t *testing.T) {
	c, err := LoadFile("testdata/upstream.yaml", envMap("HOSTNAME", "ignored-host"))
	if err != nil {
		t.Fatal(err)
	}
	runChecks(t, []check{
		{"server", c.Server.Addr(), "127.0.0.1:8200"},
		{"db driver", c.Database.Driver, DriverPostgres},
		{"db dsn", c.Database.DSN, "postgres://bay:s3cret@db.internal:5432/bay?sslmode=require"},
		{"db echo", c.Database.Echo, true},
		{"pull", c.Driver.ImagePullPolicy, PullAlways},
		{"socket", c.Driver.Docker.Socket, "unix:///run/docker.sock"},
		{"network", c.Driver.Docker.Network, "bay-net"},
		{"connect_mode", c.Driver.Docker.ConnectMode, ConnectContainerNetwork},
		{"host_address", c.Driver.Docker.HostAddress, "10.0.0.5"},
		{"publish_ports", c.Driver.Docker.PublishPorts, false},
		{"host_port null", c.Driver.Docker.HostPort, 0},
		{"k8s", c.Driver.K8s, K8sConfig{Namespace: "sandboxes", Kubeconfig: "/etc/bay/kubeconfig", StorageClass: "fast-ssd",
			DefaultStorageSize: "5Gi", ImagePullSecrets: []string{"regcred"}, PodStartupTimeoutSeconds: 90, LabelPrefix: "shipyard",
			ChownWorkspace: true, Endpoint: "auto"}}, // ours, defaults: the file (upstream keys only) does not set them
		{"cargo", c.Cargo, CargoConfig{RootPath: "/data/cargos", HostRootPath: "/srv/bay/cargos", DefaultSizeLimitMB: 2048, MountPath: "/workspace"}},
		{"security", c.Security, SecurityConfig{APIKey: "sk-bay-from-file", AllowAnonymous: false, BlockedHosts: []string{"169.254.0.0/16", "10.0.0.0/8"}}},
		{"idempotency", c.Idempotency, IdempotencyConfig{Enabled: true, TTLHours: 24}},
		{"gc", c.GC, GCConfig{Enabled: true, RunOnStartup: false, IntervalSeconds: 600, InstanceID: "bay-prod-1",
			IdleSession: IdleSessionConfig{Enabled: true, KeepBusy: true}, ExpiredSandbox: GCTaskConfig{false}, OrphanCargo: GCTaskConfig{true}, OrphanContainer: GCTaskConfig{true}}},
		{"warm_pool", c.WarmPool, WarmPoolConfig{Enabled: true, WarmupQueueWorkers: 4, WarmupQueueMaxSize: 512,
			WarmupQueueDropPolicy: DropOldest, WarmupQueueDropAlertThreshold: 10, IntervalSeconds: 15}},
		{"browser_learning", c.BrowserLearning, BrowserLearningConfig{IntervalSeconds: 120, BatchSize: 10, ScoreThreshold: 0.9,
			ReplaySuccessThreshold: 0.97, MinSamples: 50, CanaryWindowHours: 12, SuccessDropThreshold: 0.05, ErrorRateMultiplierThreshold: 3}},
		{"browser_auto_release_enabled", c.BrowserAutoReleaseEnabled, false},
		{"browser_service", c.BrowserService, BrowserServiceConfig{Enabled: true, Endpoint: "http://gull-service:8115"}},
		{"proxy", c.Proxy, ProxyConfig{Enabled: true, HTTPProxy: "http://proxy.internal:3128", HTTPSProxy: "http://proxy.internal:3128",
			NoProxy: "internal.example.com", DefaultNoProxy: DefaultNoProxy}},
		{"profile order", c.ProfileOrder, []string{"python-default", "minimal", "browser-python"}},
		{"ours keep defaults", c.Session, Default().Session},
		{"warnings", c.Warnings, []string(nil)},
		{"source", c.Source, "testdata/upstream.yaml"},
	})

	pd := c.Profiles["python-default"]
	runChecks(t, []check{
		{"pd description", pd.Description, "Standard Python sandbox"},
		{"pd warm", pd.WarmPoolSize, 2},
		{"pd rotate", pd.WarmRotateTTL(), time.Hour},
		{"pd env", pd.Env, map[string]string{"PIP_INDEX_URL": "https://pypi.internal/simple", "TZ": "UTC"}},
		{"pd container env", pd.Primary().Env, pd.Env},
		{"pd proxy inherits", c.ProxyFor(pd, pd.Primary()), c.Proxy},
	})

	min := c.Profiles["minimal"]
	runChecks(t, []check{
		{"minimal image", min.Image, "ship:latest"},
		{"minimal runtime", min.RuntimeType, RuntimeShip},
		{"minimal resources", min.Resources, Resources{CPUs: 1, Memory: "1g", MemoryBytes: 1 << 30}},
		// No legacy list: the sorted union of the container's capabilities.
		{"minimal caps", min.Capabilities, []string{"filesystem", "python", "shell"}},
		{"minimal container caps", min.Primary().Capabilities, []string{"filesystem", "shell", "python"}},
		{"minimal primary_for", min.Primary().PrimaryFor, []string{"filesystem", "shell", "python"}},
		{"minimal idle", min.IdleTimeoutSeconds, 1800},
	})

	bp := c.Profiles["browser-python"]
	browser, _ := bp.ContainerFor("browser")
	py, _ := bp.ContainerFor("python")
	runChecks(t, []check{
		{"bp multi", bp.IsMultiContainer(), true},
		{"bp primary", bp.Primary().Name, "ship"},
		{"bp image", bp.Image, "ship:latest"},
		{"bp resources = primary's", bp.Resources, Resources{CPUs: 1, Memory: "1g", MemoryBytes: 1 << 30}},
		{"bp caps sorted union", bp.Capabilities, []string{"browser", "filesystem", "python", "shell"}},
		{"bp container caps config order", bp.Containers[0].Capabilities, []string{"python", "shell", "filesystem"}},
		{"bp browser container", browser.Name, "browser"},
		{"bp browser memory", browser.Resources.MemoryBytes, int64(2048 << 20)},
		{"bp browser port", browser.RuntimePort, 8115},
		{"bp browser type", browser.RuntimeType, RuntimeGull},
		{"bp python container", py.Name, "ship"},
		{"bp startup", bp.Startup, StartupConfig{Order: StartupSequential, WaitForAll: true}},
		{"bp browser", bp.Browser, BrowserIsolated},
		{"bp idle", bp.IdleTimeoutSeconds, 900},
		{"bp warmup", []int{bp.WarmClaimTimeoutMs, bp.WarmupRetryMaxAttempts, bp.WarmupRetryBackoffBaseMs,
			bp.WarmupRetryBackoffMaxMs, bp.WarmupCircuitBreakerThreshold}, []int{300, 5, 100, 2000, 20}},
		{"bp browser proxy: whole-object override with defaults", c.ProxyFor(bp, browser),
			ProxyConfig{Enabled: true, HTTPProxy: "http://browser-proxy:8080", DefaultNoProxy: DefaultNoProxy}},
		{"bp ship proxy: global", c.ProxyFor(bp, bp.Primary()), c.Proxy},
	})
}

func TestEnvOverridesFile(t *testing.T) {
	const file = `
server: {host: 127.0.0.1, port: 8200}
driver: {docker: {host_address: 10.0.0.5, publish_ports: true}}
gc: {instance_id: from-file, interval_seconds: 600, orphan_container: {enabled: false}}
security: {api_key: file-key}
warm_pool: {enabled: true}
`
	tests := []struct {
		name  string
		env   []string
		check func(*Config) (got, want any)
	}{
		{"nested port", []string{"BAY_SERVER__PORT", "9000"},
			func(c *Config) (any, any) { return c.Server.Port, 9000 }},
		{"file value kept when env unset", nil,
			func(c *Config) (any, any) { return c.Server.Port, 8200 }},
		{"three levels", []string{"BAY_DRIVER__DOCKER__HOST_ADDRESS", "192.168.1.9"},
			func(c *Config) (any, any) { return c.Driver.Docker.HostAddress, "192.168.1.9" }},
		{"instance id: env beats file", []string{"BAY_GC__INSTANCE_ID", "env-id", "HOSTNAME", "host"},
			func(c *Config) (any, any) { return c.GC.InstanceID, "env-id" }},
		{"instance id: file beats HOSTNAME", []string{"HOSTNAME", "host"},
			func(c *Config) (any, any) { return c.GC.InstanceID, "from-file" }},
		{"lower-case name", []string{"bay_server__port", "9001"},
			func(c *Config) (any, any) { return c.Server.Port, 9001 }},
		{"bool yes", []string{"BAY_GC__ORPHAN_CONTAINER__ENABLED", "yes"},
			func(c *Config) (any, any) { return c.GC.OrphanContainer.Enabled, true }},
		{"bool 0", []string{"BAY_DRIVER__DOCKER__PUBLISH_PORTS", "0"},
			func(c *Config) (any, any) { return c.Driver.Docker.PublishPorts, false }},
		{"top-level bool", []string{"BAY_BROWSER_AUTO_RELEASE_ENABLED", "false"},
			func(c *Config) (any, any) { return c.BrowserAutoReleaseEnabled, false }},
		{"float", []string{"BAY_BROWSER_LEARNING__SCORE_THRESHOLD", "0.5"},
			func(c *Config) (any, any) { return c.BrowserLearning.ScoreThreshold, 0.5 }},
		{"list comma", []string{"BAY_DRIVER__K8S__IMAGE_PULL_SECRETS", "a, b,,c"},
			func(c *Config) (any, any) { return c.Driver.K8s.ImagePullSecrets, []string{"a", "b", "c"} }},
		{"list JSON", []string{"BAY_SECURITY__BLOCKED_HOSTS", `["10.0.0.0/8","1.2.3.4"]`},
			func(c *Config) (any, any) { return c.Security.BlockedHosts, []string{"10.0.0.0/8", "1.2.3.4"} }},
		{"empty non-string keeps file", []string{"BAY_SERVER__PORT", ""},
			func(c *Config) (any, any) { return c.Server.Port, 8200 }},
		{"empty string clears", []string{"BAY_SECURITY__API_KEY", ""},
			func(c *Config) (any, any) { return c.Security.APIKey, "" }},
		{"BAY_API_KEY beats both", []string{"BAY_SECURITY__API_KEY", "nested", "BAY_API_KEY", "top"},
			func(c *Config) (any, any) { return c.Security.APIKey, "top" }},
		{"allow anonymous", []string{"BAY_SECURITY__ALLOW_ANONYMOUS", "true"},
			func(c *Config) (any, any) { return c.Security.AllowAnonymous, true }},
		{"allow anonymous remote", []string{"BAY_SECURITY__ALLOW_ANONYMOUS", "1", "BAY_SECURITY__ALLOW_ANONYMOUS_REMOTE", "yes"},
			func(c *Config) (any, any) {
				return []bool{c.Security.AllowAnonymous, c.Security.AllowAnonymousRemote}, []bool{true, true}
			}},
		{"section as JSON, keys on top", []string{"BAY_SERVER", `{"host":"0.0.0.0","port":7000}`, "BAY_SERVER__PORT", "7001"},
			func(c *Config) (any, any) { return c.Server.Addr(), "0.0.0.0:7001" }},
		{"section JSON merges", []string{"BAY_GC", `{"enabled":false}`},
			func(c *Config) (any, any) { return []any{c.GC.Enabled, c.GC.IntervalSeconds}, []any{false, 600} }},
		{"ours: log level", []string{"BAY_LOG__LEVEL", "DEBUG"},
			func(c *Config) (any, any) { return c.Log.Level, "debug" }},
		{"ours: runtime port", []string{"BAY_RUNTIME_PORT", "9123"},
			func(c *Config) (any, any) { return c.Profiles["python-default"].RuntimePort, 9123 }},
		{"data dir moves default db", []string{"BAY_DATA_DIR", "/var/lib/bay"},
			func(c *Config) (any, any) {
				return []string{c.DataDir, c.Database.DSN}, []string{"/var/lib/bay", "/var/lib/bay/bay.db"}
			}},
		{"database url", []string{"BAY_DATABASE__URL", "postgres://u@h/db"},
			func(c *Config) (any, any) {
				return c.Database.Driver + " " + c.Database.DSN, "postgres postgres://u@h/db"
			}},
		{"profiles JSON replaces", []string{"BAY_PROFILES", `[{"id":"p1","image":"img:1","resources":{"cpus":0.5,"memory":"512m"}}]`},
			func(c *Config) (any, any) {
				p := c.Profiles["p1"]
				return []any{c.ProfileOrder, p.Image, p.Resources.MemoryBytes}, []any{[]string{"p1"}, "img:1", int64(512 << 20)}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoadYAML(t, file, envMap(tt.env...))
			if got, want := tt.check(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestEnvLookupCaseInsensitive(t *testing.T) {
	c, err := load(EnvLookup([]string{"Bay_Server__Port=9100", "hostname=h1", "X=1=2"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Port != 9100 || c.GC.InstanceID != "h1" {
		t.Errorf("port %d instance %q", c.Server.Port, c.GC.InstanceID)
	}
}

func TestUnusedEnv(t *testing.T) {
	got := UnusedEnv([]string{
		"BAY_SERVER__PORT=1", "BAY_SERVER_PORT=1", "bay_gc__idle_session__enabled=1", "BAY_GC__IDLE_SESSION__ENABLE=1",
		"BAY_API_KEY=x", "BAY_DATA_DIR=.", "BAY_CONFIG_FILE=x", "BAY_PROFILES=[]", "BAY_GC=1", "PATH=/bin", "BAY_LOG__FORMAT=json",
	})
	want := []string{"BAY_GC__IDLE_SESSION__ENABLE", "BAY_SERVER_PORT"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UnusedEnv = %v, want %v", got, want)
	}
}

func TestInstanceIDDefault(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"HOSTNAME", []string{"HOSTNAME", "abc123"}, "abc123"},
		{"no HOSTNAME", nil, "bay"},
		{"blank HOSTNAME", []string{"HOSTNAME", " "}, "bay"},
		{"env key", []string{"HOSTNAME", "abc123", "BAY_GC__INSTANCE_ID", "bay-2"}, "bay-2"},
		{"empty env key falls back", []string{"HOSTNAME", "abc123", "BAY_GC__INSTANCE_ID", ""}, "abc123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(envMap(tt.env...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.GC.InstanceID != tt.want {
				t.Errorf("instance_id = %q, want %q", c.GC.InstanceID, tt.want)
			}
		})
	}
	// null in the file does not block the fallback.
	c := mustLoadYAML(t, "gc: {instance_id: null}\n", envMap("HOSTNAME", "h"))
	if c.GC.InstanceID != "h" {
		t.Errorf("instance_id = %q, want h", c.GC.InstanceID)
	}
}

func TestLoadSearchOrder(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.yaml")
	second := filepath.Join(dir, "second.yaml")
	explicit := filepath.Join(dir, "explicit.yaml")
	for path, port := range map[string]string{first: "1001", second: "1002", explicit: "1003"} {
		if err := os.WriteFile(path, []byte("server:\n  port: "+port+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	absent := filepath.Join(dir, "absent.yaml")
	tests := []struct {
		name   string
		env    []string
		search []string
		port   int
		source string
	}{
		{"BAY_CONFIG_FILE first", []string{"BAY_CONFIG_FILE", explicit}, []string{first}, 1003, explicit},
		{"first found", nil, []string{absent, first, second}, 1001, first},
		{"second found", nil, []string{absent, second}, 1002, second},
		{"none: defaults", nil, []string{absent}, 8114, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(envMap(tt.env...), tt.search)
			if err != nil {
				t.Fatal(err)
			}
			if c.Server.Port != tt.port || c.Source != tt.source {
				t.Errorf("port %d source %q, want %d %q", c.Server.Port, c.Source, tt.port, tt.source)
			}
		})
	}
	if _, err := load(envMap("BAY_CONFIG_FILE", absent), nil); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("missing BAY_CONFIG_FILE: err = %v", err)
	}
	if _, err := Load(envMap("BAY_CONFIG_FILE", explicit)); err != nil {
		t.Errorf("Load: %v", err)
	}
}

func TestUnknownKeys(t *testing.T) {
	_, err := loadYAML(t, "server: {port: 1}\nservr: {port: 2}\nextra: 1\n", nil)
	if err == nil {
		t.Fatal("unknown top-level keys accepted")
	}
	for _, want := range []string{`servr: unknown top-level key`, `extra: unknown top-level key`, "line 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	c := mustLoadYAML(t, `
server: {port: 8114, colour: blue}
gc: {idle_session: {enabled: true, when: never}}
profiles:
  - id: p
    imagee: x
    containers:
      - {name: a, image: i, extra: 1}
`, envMap("BAY_GC", `{"typo": 1}`))
	want := []string{
		`unknown key "server.colour" ignored`,
		`unknown key "gc.idle_session.when" ignored`,
		`unknown key "profiles[0].imagee" ignored`,
		`unknown key "profiles[0].containers[0].extra" ignored`,
		`unknown key "gc.typo" ignored (from BAY_GC)`,
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", c.Warnings, want)
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string // substrings, all must appear
	}{
		{"port range", "server: {port: 70000}", nil, []string{"server.port: must be 1..65535 (got 70000)"}},
		{"port zero", "server: {port: 0}", nil, []string{"server.port: must be 1..65535"}},
		{"port type", "server: {port: abc}", nil, []string{"server.port: line 1: cannot unmarshal !!str `abc` into int"}},
		{"section type", "server: 8114", nil, []string{"server: line 1: expected a mapping"}},
		{"list type", "security: {blocked_hosts: 10.0.0.0/8}", nil, []string{"security.blocked_hosts: line 1: expected a list"}},
		{"top level not a map", "- a\n- b", nil, []string{"the top level must be a mapping"}},
		{"driver type", "driver: {type: podman}", nil, []string{`driver.type: must be one of docker, k8s (got "podman")`}},
		{"pull policy", "driver: {image_pull_policy: sometimes}", nil, []string{`driver.image_pull_policy: must be one of if_not_present, always, never (got "sometimes")`}},
		{"connect mode", "driver: {docker: {connect_mode: bridge}}", nil, []string{`driver.docker.connect_mode: must be one of auto, container_network, host_port (got "bridge")`}},
		{"host port", "driver: {docker: {host_port: -1}}", nil, []string{"driver.docker.host_port: must be 0 (random) or 1..65535"}},
		{"k8s namespace", "driver: {type: k8s, k8s: {namespace: Bad_NS}}", nil, []string{"driver.k8s.namespace: must be a DNS label"}},
		{"k8s storage", "driver: {type: kubernetes, k8s: {default_storage_size: lots}}", nil, []string{"driver.k8s.default_storage_size: must be a Kubernetes quantity"}},
		{"k8s endpoint", "driver: {type: k8s, k8s: {endpoint: service}}", nil, []string{`driver.k8s.endpoint: must be one of auto, pod_ip, api_proxy (got "service")`}},
		{"k8s browser service", "driver: {type: k8s}\nbrowser_service: {enabled: true}", nil, []string{"browser_service.enabled: the shared browser service is not supported with driver.type k8s"}},
		{"browser endpoint", "browser_service: {enabled: true, endpoint: gull}", nil, []string{`browser_service.endpoint: must be an http(s) URL (got "gull")`}},
		{"gc interval", "gc: {enabled: true, interval_seconds: 0}", nil, []string{"gc.interval_seconds: must be > 0 (got 0)"}},
		{"warm interval", "warm_pool: {interval_seconds: -5}", nil, []string{"warm_pool.interval_seconds: must be > 0 (got -5)"}},
		{"warm policy", "warm_pool: {warmup_queue_drop_policy: drop_all}", nil, []string{"warm_pool.warmup_queue_drop_policy: must be one of drop_newest, drop_oldest"}},
		{"warm workers", "warm_pool: {warmup_queue_workers: 0}", nil, []string{"warm_pool.warmup_queue_workers: must be > 0"}},
		{"idempotency ttl", "idempotency: {ttl_hours: 0}", nil, []string{"idempotency.ttl_hours: must be > 0"}},
		{"cargo size", "cargo: {default_size_limit_mb: 0}", nil, []string{"cargo.default_size_limit_mb: must be > 0"}},
		{"cargo host root", "cargo: {host_root_path: rel/path}", nil, []string{"cargo.host_root_path: must be an absolute path"}},
		{"score threshold", "browser_learning: {score_threshold: 1.5}", nil, []string{"browser_learning.score_threshold: must be within 0..1 (got 1.5)"}},
		{"proxy url", "proxy: {enabled: true, http_proxy: 'proxy:3128'}", nil, []string{"proxy.http_proxy: must be a URL"}},
		{"log level", "log: {level: loud}", nil, []string{`log.level: must be one of debug, info, warn, warning, error (got "loud")`}},
		{"log format", "log: {format: xml}", nil, []string{`log.format: must be one of json, text`}},
		{"lock < ready", "session: {ready_timeout_seconds: 200}", nil, []string{"session.start_lock_timeout_seconds: must be >= session.ready_timeout_seconds (200)"}},
		{"poll", "session: {ready_poll_initial_ms: 2000}", nil, []string{"session.ready_poll_max_ms: must be >= session.ready_poll_initial_ms (2000)"}},
		{"body limit", "server: {max_body_bytes: 0}", nil, []string{"server.max_body_bytes: must be > 0"}},
		{"database scheme", "database: {url: 'mysql+aiomysql://u@h/db'}", nil, []string{`database.url: unsupported scheme "mysql+aiomysql"`}},
		{"runtime port", "runtime_port: 0", nil, []string{"runtime_port: must be 1..65535"}},
		{"env int", "", []string{"BAY_SERVER__PORT", "80x"}, []string{`BAY_SERVER__PORT: invalid integer "80x" (server.port)`}},
		{"env bool", "", []string{"BAY_GC__ENABLED", "maybe"}, []string{`BAY_GC__ENABLED: invalid boolean "maybe"`}},
		{"env float", "", []string{"BAY_BROWSER_LEARNING__SCORE_THRESHOLD", "high"}, []string{`BAY_BROWSER_LEARNING__SCORE_THRESHOLD: invalid number "high"`}},
		{"env list", "", []string{"BAY_SECURITY__BLOCKED_HOSTS", `["a",`}, []string{`BAY_SECURITY__BLOCKED_HOSTS: invalid JSON list`}},
		{"env section", "", []string{"BAY_SERVER", `{"port": "x"}`}, []string{"BAY_SERVER (server.port): line 1: cannot unmarshal"}},
		{"env profiles", "", []string{"BAY_PROFILES", `[{"id": "a", "image": ""}]`}, []string{"profiles[0](a).image: must not be empty"}},
		{"env validated", "", []string{"BAY_SERVER__PORT", "70000"}, []string{"server.port: must be 1..65535"}},
		{"all problems joined", "server: {port: 0}\ndriver: {type: x}\ngc: {interval_seconds: 0}", nil,
			[]string{"server.port:", "driver.type:", "gc.interval_seconds:"}},
		// profiles
		{"no profiles", "profiles: []", nil, []string{"profiles: at least one profile is required"}},
		{"missing id", "profiles: [{image: x}]", nil, []string{"profiles[0].id: required"}},
		{"duplicate id", "profiles: [{id: a}, {id: b}, {id: a}]", nil, []string{`profiles[2](a).id: duplicate profile id "a" (also profiles[0])`}},
		{"id with space", "profiles: [{id: 'a b'}]", nil, []string{"profiles[0](a b).id: must not contain spaces"}},
		{"empty legacy image", "profiles: [{id: a, image: ''}]", nil, []string{"profiles[0](a).image: must not be empty"}},
		{"legacy runtime type", "profiles: [{id: a, runtime_type: docker}]", nil, []string{`profiles[0](a).runtime_type: must be one of ship, gull (got "docker")`}},
		{"legacy memory", "profiles: [{id: a, resources: {memory: 1x}}]", nil, []string{`profiles[0](a).resources.memory: invalid memory size "1x"`}},
		{"legacy cpus", "profiles: [{id: a, resources: {cpus: 0}}]", nil, []string{"profiles[0](a).resources.cpus: must be > 0"}},
		{"legacy port", "profiles: [{id: a, runtime_port: 70000}]", nil, []string{"profiles[0](a).runtime_port: must be 1..65535"}},
		{"warm size", "profiles: [{id: a, warm_pool_size: -1}]", nil, []string{"profiles[0](a).warm_pool_size: must be >= 0 (got -1)"}},
		{"warm rotate", "profiles: [{id: a, warm_rotate_ttl: 0}]", nil, []string{"profiles[0](a).warm_rotate_ttl: must be > 0"}},
		{"idle", "profiles: [{id: a, idle_timeout: 0}]", nil, []string{"profiles[0](a).idle_timeout: must be > 0"}},
		{"browser", "profiles: [{id: a, browser: remote}]", nil, []string{`profiles[0](a).browser: must be shared, isolated or null (got "remote")`}},
		{"startup", "profiles: [{id: a, startup: {order: random}}]", nil, []string{"profiles[0](a).startup.order: must be one of parallel, sequential"}},
		{"pids", "profiles: [{id: a, pids_limit: 0}]", nil, []string{"profiles[0](a).pids_limit: must be > 0"}},
		{"oci runtime", "profiles: [{id: a, runtime: 'run sc'}]", nil, []string{`profiles[0](a).runtime: invalid OCI runtime name "run sc"`}},
		{"env name", "profiles: [{id: a, env: {'1BAD': x, 'OK': y}}]", nil, []string{`profiles[0](a).env: invalid variable name "1BAD"`}},
		{"profile proxy", "profiles: [{id: a, proxy: {enabled: true, https_proxy: nope}}]", nil, []string{"profiles[0](a).proxy.https_proxy: must be a URL"}},
		{"container image", "profiles: [{id: a, containers: [{name: c}]}]", nil, []string{"profiles[0](a).containers[0].image: must not be empty"}},
		{"container name", "profiles: [{id: a, containers: [{image: i}]}]", nil, []string{"profiles[0](a).containers[0].name: required"}},
		{"container name chars", "profiles: [{id: a, containers: [{name: 'a b', image: i}]}]", nil, []string{`profiles[0](a).containers[0].name: invalid container name "a b"`}},
		{"container dup", "profiles: [{id: a, containers: [{name: c, image: i}, {name: c, image: j}]}]", nil, []string{`profiles[0](a).containers[1].name: duplicate container name "c"`}},
		{"container runtime type", "profiles: [{id: a, containers: [{name: c, image: i, runtime_type: browser}]}]", nil, []string{`profiles[0](a).containers[0].runtime_type: must be one of ship, gull (got "browser")`}},
		{"container memory", "profiles: [{id: a, containers: [{name: c, image: i, resources: {memory: '-1g'}}]}]", nil, []string{`profiles[0](a).containers[0].resources.memory: invalid memory size "-1g"`}},
		{"container port", "profiles: [{id: a, containers: [{name: c, image: i, runtime_port: 0}]}]", nil, []string{"profiles[0](a).containers[0].runtime_port: must be 1..65535"}},
		{"container cap", "profiles: [{id: a, containers: [{name: c, image: i, capabilities: ['']}]}]", nil, []string{"profiles[0](a).containers[0].capabilities[0]: must not be empty"}},
		{"profile type", "profiles: {id: a}", nil, []string{"profiles: line 1: expected a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadYAML(t, tt.yaml, envMap(tt.env...))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}

		})
	}
}

func TestIntervalsIgnoredWhenDisabled(t *testing.T) {
	mustLoadYAML(t, `
gc: {enabled: false, interval_seconds: 0}
warm_pool: {enabled: false, interval_seconds: 0}
browser_learning: {enabled: false, interval_seconds: 0}
idempotency: {enabled: false, ttl_hours: 0}
`, nil)
}

func TestWarnings(t *testing.T) {
	c := mustLoadYAML(t, `
cargo: {mount_path: /data}
security: {blocked_hosts: [metadata.google.internal], allow_anonymous_remote: true}
driver: {docker: {connect_mode: host_port, publish_ports: false}}
database: {url: "sqlite:///bay.db?timeout=5"}
`, nil)
	for _, want := range []string{"cargo.mount_path", "security.blocked_hosts[0]", "security.allow_anonymous_remote", "driver.docker: connect_mode host_port", `database.url: query "timeout=5" ignored`} {
		if !slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("no warning about %s in %q", want, c.Warnings)
		}
	}
}

func TestParseDatabaseURL(t *testing.T) {
	tests := []struct {
		url, dataDir, driver, dsn, err string
	}{
		{"sqlite+aiosqlite:///./bay.db", ".", "sqlite", "bay.db", ""},
		{"sqlite+aiosqlite:///./bay.db", "/var/lib/bay", "sqlite", "/var/lib/bay/bay.db", ""},
		{"sqlite+aiosqlite:///./data/other.db", "/var/lib/bay", "sqlite", "./data/other.db", ""},
		{"sqlite:///bay.db", "", "sqlite", "bay.db", ""},
		{"sqlite:////var/lib/bay/bay.db", "", "sqlite", "/var/lib/bay/bay.db", ""},
		{"sqlite+aiosqlite:////abs/bay.db", "", "sqlite", "/abs/bay.db", ""},
		{"sqlite://", "", "sqlite", ":memory:", ""},
		{"sqlite:///:memory:", "", "sqlite", ":memory:", ""},
		{"/var/lib/bay/bay.db", "", "sqlite", "/var/lib/bay/bay.db", ""},
		{"bay.db", "/x", "sqlite", "bay.db", ""},
		{"file:/tmp/bay.db?cache=shared", "", "sqlite", "/tmp/bay.db", ""},
		{"postgresql+asyncpg://bay:pw@db:5432/bay", "", "postgres", "postgres://bay:pw@db:5432/bay", ""},
		{"postgresql+asyncpg://bay:pw@db/bay?ssl=true", "", "postgres", "postgres://bay:pw@db/bay?sslmode=require", ""},
		{"postgresql+asyncpg://bay@db/bay?ssl=disable&application_name=bay", "", "postgres", "postgres://bay@db/bay?application_name=bay&sslmode=disable", ""},
		{"postgresql+psycopg://bay@db/bay?sslmode=verify-full&ssl=require", "", "postgres", "postgres://bay@db/bay?sslmode=verify-full", ""},
		{"postgresql://bay@db/bay", "", "postgres", "postgres://bay@db/bay", ""},
		{"postgres://bay@db:6432/bay?sslmode=disable", "", "postgres", "postgres://bay@db:6432/bay?sslmode=disable", ""},
		{"postgres:///bay?host=/var/run/postgresql", "", "postgres", "postgres:///bay?host=/var/run/postgresql", ""},
		{"postgresql+asyncpg://bay@db:5432", "", "", "", "no database name"},
		{"postgres://bay:p%zz@db/bay", "", "", "", "invalid PostgreSQL URL"},
		{"sqlite://bay.db", "", "", "", "three slashes"},
		{"mysql://u@h/db", "", "", "", `unsupported scheme "mysql"`},
		{"", "", "", "", "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			driver, dsn, _, err := ParseDatabaseURL(tt.url, tt.dataDir)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "p%zz") {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if driver != tt.driver || dsn != tt.dsn {
				t.Errorf("got %s %q, want %s %q", driver, dsn, tt.driver, tt.dsn)
			}
		})
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0 = error
	}{
		{"1g", 1 << 30}, {"1G", 1 << 30}, {"4g", 4 << 30}, {"512m", 512 << 20}, {"1024k", 1 << 20},
		{"1073741824", 1 << 30}, {"1Gi", 1 << 30}, {"1gb", 1 << 30}, {"2GiB", 2 << 30}, {"1t", 1 << 40},
		{"1.5g", 3 << 29}, {" 256M ", 256 << 20}, {"0.5k", 512}, {"1", 1},
		{"", 0}, {"g", 0}, {"1x", 0}, {"-1g", 0}, {"0", 0}, {"0m", 0}, {"1 gigabyte", 0}, {"1i", 0},
		{"99999999999999999999", 0}, {"1.5", 0}, {"1e9", 0},
	}
	for _, tt := range tests {
		got, err := ParseMemory(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("ParseMemory(%q) = %d, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestProfileNormalization(t *testing.T) {
	c := mustLoadYAML(t, `
runtime_port: 9000
profiles:
  - id: legacy-caps-order
    capabilities: [shell, python]
    runtime_type: ship
  - id: legacy-with-port
    runtime_port: 8200
    pids_limit: 512
    runtime: runsc
    no_network: true
  - id: first-is-primary
    containers:
      - {name: worker, image: w, capabilities: [shell]}
      - {name: helper, image: h, capabilities: [python, filesystem]}
  - id: named-primary
    capabilities: [python, filesystem]   # legacy list wins, config order
    containers:
      - {name: side, image: s, capabilities: [browser], runtime_type: gull}
      - {name: primary, image: p, capabilities: [python, filesystem], resources: {cpus: 3, memory: 3g}}
  - id: no-caps
    containers:
      - {name: c, image: i}
`, nil)
	lc := c.Profiles["legacy-caps-order"]
	lp := c.Profiles["legacy-with-port"]
	fp := c.Profiles["first-is-primary"]
	np := c.Profiles["named-primary"]
	nc := c.Profiles["no-caps"]
	side, _ := np.ContainerFor("browser")
	_, noBrowser := fp.ContainerFor("browser")
	runChecks(t, []check{
		{"order", c.ProfileOrder, []string{"legacy-caps-order", "legacy-with-port", "first-is-primary", "named-primary", "no-caps"}},
		{"legacy caps config order", lc.Capabilities, []string{"shell", "python"}},
		{"legacy container caps", lc.Primary().Capabilities, []string{"shell", "python"}},
		{"legacy primary_for", lc.Primary().PrimaryFor, []string{"shell", "python"}},
		{"legacy default port from runtime_port", lc.RuntimePort, 9000},
		{"legacy image default", lc.Primary().Image, "ship:latest"},
		{"legacy health path", lc.Primary().HealthCheckPath, "/health"},
		{"legacy has cap", lc.HasCapability("python") && !lc.HasCapability("filesystem"), true},
		{"legacy port", lp.Primary().RuntimePort, 8200},
		{"ours", []any{lp.PidsLimit, lp.Runtime, lp.NoNetwork}, []any{int64(512), "runsc", true}},
		{"first is primary", fp.Primary().Name, "worker"},
		{"first: image", fp.Image, "w"},
		{"first: caps union sorted", fp.Capabilities, []string{"filesystem", "python", "shell"}},
		{"first: no browser", noBrowser, false},
		{"first: port default", fp.Containers[1].RuntimePort, 9000},
		{"first: resources default", fp.Containers[1].Resources, Resources{CPUs: 1, Memory: "1g", MemoryBytes: 1 << 30}},
		{"first: primary_for empty", fp.Containers[0].PrimaryFor, []string{}},
		{"first: env empty", fp.Containers[0].Env, map[string]string{}},
		{"named primary", np.Primary().Name, "primary"},
		{"named: image is primary's", np.Image, "p"},
		{"named: runtime type is primary's", np.RuntimeType, RuntimeShip},
		{"named: resources are primary's", np.Resources, Resources{CPUs: 3, Memory: "3g", MemoryBytes: 3 << 30}},
		{"named: legacy caps win", np.Capabilities, []string{"python", "filesystem"}},
		{"named: browser routed", side.Name, "side"},
		{"no caps", nc.Capabilities, []string{}},
		{"no caps container", nc.Containers[0].Capabilities, []string{}},
	})
}

func TestYAMLAnchorsAndMerge(t *testing.T) {
	c := mustLoadYAML(t, `
server: &srv {host: 127.0.0.1, port: 9000}
profiles:
  - &base
    id: base
    image: ship:latest
    resources: {cpus: 2.0, memory: 2g}
    env: {A: "1"}
  - <<: *base
    id: derived
    env: {B: "2"}
`, nil)
	d := c.Profiles["derived"]
	runChecks(t, []check{
		{"order", c.ProfileOrder, []string{"base", "derived"}},
		{"merged image", d.Image, "ship:latest"},
		{"merged resources", d.Resources.MemoryBytes, int64(2 << 30)},
		{"own key wins (shallow)", d.Env, map[string]string{"B": "2"}},
		{"server", c.Server.Port, 9000},
	})
}

func TestProfileWarnings(t *testing.T) {
	c := mustLoadYAML(t, `
profiles:
  - id: m
    env: {A: "1"}
    runtime_port: 9000
    browser: shared
    containers: [{name: c, image: i}]
`, nil)
	want := []string{
		"profiles[0](m).browser: shared, but browser_service.enabled is false",
		"profiles[0](m).runtime_port ignored: the profile has containers, set it on each container",
		"profiles[0](m).env ignored: the profile has containers, set it on each container",
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", c.Warnings, want)
	}
}

func TestRedacted(t *testing.T) {
	c := mustLoadYAML(t, `
database: {url: "postgresql+asyncpg://bay:s3cret@db/bay"}
proxy: {http_proxy: "http://u:pw@proxy:3128"}
`, envMap("BAY_API_KEY", "sk-bay-secret"))
	r := c.Redacted()
	text := fmt.Sprintf("%+v", r)
	for _, secret := range []string{"s3cret", "pw@", "sk-bay-secret"} {
		if strings.Contains(text, secret) {
			t.Errorf("Redacted leaks %q: %s", secret, text)
		}
	}
	if c.Security.APIKey != "sk-bay-secret" || !strings.Contains(c.Database.DSN, "s3cret") {
		t.Error("Redacted changed the original")
	}
	if r.Database.DSN != "postgres://bay:REDACTED@db/bay" {
		t.Errorf("DSN = %q", r.Database.DSN)
	}
}

func TestProxyEnv(t *testing.T) {
	p := ProxyConfig{Enabled: true, HTTPProxy: "http://p:1", NoProxy: "corp.local", DefaultNoProxy: "localhost"}
	want := map[string]string{"HTTP_PROXY": "http://p:1", "http_proxy": "http://p:1", "NO_PROXY": "localhost,corp.local", "no_proxy": "localhost,corp.local"}
	if got := p.Env(); !reflect.DeepEqual(got, want) {
		t.Errorf("Env = %v, want %v", got, want)
	}
	p.Enabled = false
	if got := p.Env(); len(got) != 0 {
		t.Errorf("disabled Env = %v", got)
	}
}

func TestDerived(t *testing.T) {
	c := Default()
	runChecks(t, []check{
		{"addr v6", ServerConfig{Host: "::", Port: 1}.Addr(), "[::]:1"},
		{"nano cpus", Resources{CPUs: 1.5}.NanoCPUs(), int64(1_500_000_000)},
		{"slog", []any{LogConfig{Level: "debug"}.SlogLevel().String(), c.Log.SlogLevel().String()}, []any{"DEBUG", "INFO"}},
		{"ordered", len(c.OrderedProfiles()), len(c.ProfileOrder)},
	})
}

// TestExampleConfig: config.example.yaml at the repository root documents
// every key with its default value, so loading it gives exactly Default().
func TestExampleConfig(t *testing.T) {
	const path = "../../../config.example.yaml"
	c, err := LoadFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) > 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	c.Source = ""
	if !reflect.DeepEqual(c, Default()) {
		t.Error("config.example.yaml does not load to Default(): keep its values equal to the defaults")
	}

	// Every section key is written out.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node, typ reflect.Type, path string)
	walk = func(n *yaml.Node, typ reflect.Type, path string) {
		keys := map[string]*yaml.Node{}
		for _, kv := range mappingPairs(n) {
			keys[kv[0].Value] = kv[1]
		}
		for key, idx := range fieldsByKey(typ) {
			v, ok := keys[key]
			if !ok {
				t.Errorf("config.example.yaml lacks %s%s", path, key)
				continue
			}
			if f := typ.FieldByIndex(idx); f.Type.Kind() == reflect.Struct {
				walk(v, f.Type, path+key+".")
			}
		}
	}
	walk(doc.Content[0], reflect.TypeFor[Config](), "")
	if !strings.Contains(string(data), "\nprofiles:") {
		t.Error("config.example.yaml lacks profiles")
	}
	// Every profile and container key is at least mentioned.
	for _, typ := range []reflect.Type{reflect.TypeFor[profileYAML](), reflect.TypeFor[containerYAML]()} {
		for key := range fieldsByKey(typ) {
			if !strings.Contains(string(data), key+":") {
				t.Errorf("config.example.yaml does not mention profile key %s", key)
			}
		}
	}
}

// The default config has a browser profile: Ship plus a Gull container, the
// browser capability routed to it, Ship primary for the rest.
func TestDefaultBrowserProfile(t *testing.T) {
	c := Default()
	bp, ok := c.Profile("browser-python")
	if !ok {
		t.Fatalf("no browser-python profile in %v", c.ProfileOrder)
	}
	browser, _ := bp.ContainerFor("browser")
	py, _ := bp.ContainerFor("python")
	runChecks(t, []check{
		{"listed after upstream's", c.ProfileOrder[len(c.ProfileOrder)-1], "browser-python"},
		{"multi", bp.IsMultiContainer(), true},
		{"primary", bp.Primary().Name, "ship"},
		{"image = primary's", bp.Image, "ship:latest"},
		{"caps", bp.Capabilities, []string{"browser", "filesystem", "python", "shell"}},
		{"browser container", []any{browser.Name, browser.Image, browser.RuntimeType, browser.RuntimePort, browser.Resources.MemoryBytes},
			[]any{"browser", "gull:latest", RuntimeGull, 8115, int64(1 << 30)}},
		{"python container", []any{py.Name, py.Image, py.RuntimePort}, []any{"ship", "ship:latest", 8123}},
		{"browser mode", bp.Browser, BrowserIsolated},
		{"no warnings", c.Warnings, []string(nil)},
	})
}
