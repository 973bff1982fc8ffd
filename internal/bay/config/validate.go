package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// normalize canonicalizes spellings and derives fields (database driver/DSN).
func (c *Config) normalize() []error {
	var errs []error
	c.Driver.Type = strings.ToLower(strings.TrimSpace(c.Driver.Type))
	if c.Driver.Type == "kubernetes" {
		c.Driver.Type = DriverK8s
	}
	switch p := strings.ToLower(strings.TrimSpace(c.Driver.ImagePullPolicy)); p {
	case "ifnotpresent", "if-not-present":
		c.Driver.ImagePullPolicy = PullIfNotPresent
	default:
		c.Driver.ImagePullPolicy = p
	}
	c.Driver.Docker.ConnectMode = strings.ToLower(strings.TrimSpace(c.Driver.Docker.ConnectMode))
	if s := strings.TrimSpace(c.Driver.Docker.Socket); s != "" && !strings.Contains(s, "://") {
		c.Driver.Docker.Socket = "unix://" + s
	}
	c.WarmPool.WarmupQueueDropPolicy = strings.ToLower(strings.TrimSpace(c.WarmPool.WarmupQueueDropPolicy))
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))

	driver, dsn, warn, err := ParseDatabaseURL(c.Database.URL, c.DataDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("database.url: %w", err))
	}
	c.Database.Driver, c.Database.DSN = driver, dsn
	if warn != "" {
		c.Warnings = append(c.Warnings, "database.url: "+warn)
	}
	return errs
}

// ParseDatabaseURL turns database.url into a driver ("sqlite" | "postgres")
// and a DSN. Accepted forms:
//
//	sqlite+aiosqlite:///./bay.db  sqlite:///rel/path.db  sqlite:////abs/path.db   (SQLAlchemy: 3 slashes relative, 4 absolute)
//	sqlite://  sqlite:///:memory:  :memory:                                        (in-memory)
//	file:bay.db  /var/lib/bay/bay.db  bay.db                                       (plain file paths)
//	postgresql+asyncpg://u:p@h:5432/db  postgresql://...  postgres://...           (→ postgres://..., asyncpg's ssl=X → sslmode=X)
//
// The default URL (sqlite+aiosqlite:///./bay.db) resolves to <dataDir>/bay.db;
// other relative SQLite paths stay relative to the working directory. The
// warning, if any, names URL parts that were dropped.
func ParseDatabaseURL(raw, dataDir string) (driver, dsn, warning string, err error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", "", "", fmt.Errorf("must not be empty")
	}
	if s == defaultDatabaseURL {
		if dataDir == "" {
			dataDir = "."
		}
		return DriverSQLite, filepath.Join(dataDir, "bay.db"), "", nil
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if p, ok := strings.CutPrefix(s, "file:"); ok {
			s = p
		}
		path, q, _ := strings.Cut(s, "?")
		if q != "" {
			warning = fmt.Sprintf("query %q ignored", q)
		}
		if path == "" {
			return "", "", "", fmt.Errorf("empty SQLite path in %q", raw)
		}
		return DriverSQLite, path, warning, nil
	}
	base, _, _ := strings.Cut(strings.ToLower(scheme), "+") // drop the SQLAlchemy async driver
	switch base {
	case "sqlite", "sqlite3":
		path, q, _ := strings.Cut(rest, "?")
		if q != "" {
			warning = fmt.Sprintf("query %q ignored", q)
		}
		switch {
		case path == "" || path == "/:memory:":
			return DriverSQLite, ":memory:", warning, nil
		case !strings.HasPrefix(path, "/"):
			return "", "", "", fmt.Errorf("%q: a SQLite URL needs three slashes (sqlite:///relative.db or sqlite:////absolute.db)", raw)
		}
		path = path[1:] // sqlite:///x → "x" (relative), sqlite:////x → "/x"
		if path == "" {
			return "", "", "", fmt.Errorf("empty SQLite path in %q", raw)
		}
		return DriverSQLite, path, warning, nil
	case "postgres", "postgresql":
		u, perr := url.Parse("postgres://" + rest)
		if perr != nil {
			return "", "", "", fmt.Errorf("invalid PostgreSQL URL: %v", redact(perr))
		}
		q := u.Query()
		if ssl := q.Get("ssl"); ssl != "" { // asyncpg spelling
			q.Del("ssl")
			if q.Get("sslmode") == "" {
				switch strings.ToLower(ssl) {
				case "true", "1":
					ssl = "require"
				case "false", "0":
					ssl = "disable"
				}
				q.Set("sslmode", ssl)
			}
			u.RawQuery = q.Encode()
		}
		if strings.Trim(u.Path, "/") == "" {
			return "", "", "", fmt.Errorf("PostgreSQL URL has no database name")
		}
		return DriverPostgres, u.String(), "", nil
	}
	return "", "", "", fmt.Errorf("unsupported scheme %q (want sqlite or postgresql)", scheme)
}

// redact keeps passwords out of URL parse errors.
func redact(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}

var (
	k8sQuantityRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`)
	k8sLabelRE    = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	replicaIDRE   = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	k8sNameRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// checker collects problems for validate.
type checker struct {
	errs     []error
	warnings []string
}

func (v *checker) bad(key, format string, a ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
}

func (v *checker) warn(format string, a ...any) {
	v.warnings = append(v.warnings, fmt.Sprintf(format, a...))
}

func (v *checker) port(key string, p int, zeroOK bool) {
	switch {
	case p >= 1 && p <= 65535, p == 0 && zeroOK:
	case zeroOK:
		v.bad(key, "must be 0 (random) or 1..65535 (got %d)", p)
	default:
		v.bad(key, "must be 1..65535 (got %d)", p)
	}
}

func (v *checker) positive(key string, n int) {
	if n <= 0 {
		v.bad(key, "must be > 0 (got %d)", n)
	}
}

func (v *checker) nonNegative(key string, n int) {
	if n < 0 {
		v.bad(key, "must be >= 0 (got %d)", n)
	}
}

func (v *checker) oneOf(key, s string, set ...string) {
	if !isOneOf(s, set...) {
		v.bad(key, "must be one of %s (got %q)", strings.Join(set, ", "), s)
	}
}

func (v *checker) notEmpty(key, s string) {
	if strings.TrimSpace(s) == "" {
		v.bad(key, "must not be empty")
	}
}

// validate checks every section except profiles (see buildProfiles).
func (c *Config) validate() []error {
	v := &checker{}
	defer func() { c.Warnings = append(c.Warnings, v.warnings...) }()

	// server
	v.notEmpty("server.host", c.Server.Host)
	v.port("server.port", c.Server.Port, false)
	if c.Server.MaxBodyBytes <= 0 {
		v.bad("server.max_body_bytes", "must be > 0 (got %d)", c.Server.MaxBodyBytes)
	}
	if c.Server.MaxUploadBytes <= 0 {
		v.bad("server.max_upload_bytes", "must be > 0 (got %d)", c.Server.MaxUploadBytes)
	}
	v.positive("server.read_header_timeout_seconds", c.Server.ReadHeaderTimeoutSeconds)
	v.nonNegative("server.shutdown_timeout_seconds", c.Server.ShutdownTimeoutSeconds)

	// database (url: see normalize)
	v.nonNegative("database.max_open_conns", c.Database.MaxOpenConns)

	// driver: only the selected driver's section is checked.
	v.oneOf("driver.type", c.Driver.Type, DriverDocker, DriverK8s)
	v.oneOf("driver.image_pull_policy", c.Driver.ImagePullPolicy, PullIfNotPresent, PullAlways, PullNever)
	switch c.Driver.Type {
	case DriverDocker:
		dk := c.Driver.Docker
		v.notEmpty("driver.docker.socket", dk.Socket)
		v.oneOf("driver.docker.connect_mode", dk.ConnectMode, ConnectAuto, ConnectContainerNetwork, ConnectHostPort)
		v.notEmpty("driver.docker.host_address", dk.HostAddress)
		v.port("driver.docker.host_port", dk.HostPort, true)
		if dk.ConnectMode == ConnectHostPort && !dk.PublishPorts {
			v.warn("driver.docker: connect_mode host_port with publish_ports false: Bay can only reach runtimes by container name")
		}
	case DriverK8s:
		k := c.Driver.K8s
		if !k8sNameRE.MatchString(k.Namespace) {
			v.bad("driver.k8s.namespace", "must be a DNS label (got %q)", k.Namespace)
		}
		if !k8sQuantityRE.MatchString(k.DefaultStorageSize) {
			v.bad("driver.k8s.default_storage_size", "must be a Kubernetes quantity such as 1Gi (got %q)", k.DefaultStorageSize)
		}
		v.positive("driver.k8s.pod_startup_timeout", k.PodStartupTimeoutSeconds)
		v.oneOf("driver.k8s.endpoint", k.Endpoint, "auto", "pod_ip", "api_proxy")
		if k.LabelPrefix == "" || !k8sLabelRE.MatchString(k.LabelPrefix) {
			v.bad("driver.k8s.label_prefix", "must be a label-safe name (got %q)", k.LabelPrefix)
		}
		for i, s := range k.ImagePullSecrets {
			v.notEmpty(fmt.Sprintf("driver.k8s.image_pull_secrets[%d]", i), s)
		}
		if len(c.GC.InstanceID) > 63 || !k8sLabelRE.MatchString(c.GC.InstanceID) {
			v.bad("gc.instance_id", "must be a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric (got %q)", c.GC.InstanceID)
		}
	}

	// cargo
	v.notEmpty("cargo.root_path", c.Cargo.RootPath)
	if c.Cargo.HostRootPath != "" && !filepath.IsAbs(c.Cargo.HostRootPath) {
		v.bad("cargo.host_root_path", "must be an absolute path (got %q)", c.Cargo.HostRootPath)
	}
	v.positive("cargo.default_size_limit_mb", c.Cargo.DefaultSizeLimitMB)
	if c.Cargo.MountPath != "" && c.Cargo.MountPath != "/workspace" {
		v.warn("cargo.mount_path %q ignored: the cargo is always mounted at /workspace", c.Cargo.MountPath)
	}

	// security: anonymous access from other hosts needs both switches.
	switch {
	case c.Security.AllowAnonymousRemote && !c.Security.AllowAnonymous:
		v.warn("security.allow_anonymous_remote has no effect while security.allow_anonymous is false")
	case c.Security.AllowAnonymousRemote:
		v.warn("security.allow_anonymous_remote: any host that reaches server.host can act as any owner without a key")
	}
	// security: blocked_hosts is unused (as upstream), so oddities only warn.
	for i, h := range c.Security.BlockedHosts {
		if _, err := netip.ParsePrefix(h); err != nil && net.ParseIP(h) == nil {
			v.warn("security.blocked_hosts[%d]: %q is not an IP or CIDR (the list is unused)", i, h)
		}
	}

	// idempotency
	if c.Idempotency.Enabled {
		v.positive("idempotency.ttl_hours", c.Idempotency.TTLHours)
	}

	// gc
	if c.GC.Enabled {
		v.positive("gc.interval_seconds", c.GC.IntervalSeconds)
	}

	// replica
	if len(c.Replica.ID) > 128 || !replicaIDRE.MatchString(c.Replica.ID) {
		v.bad("replica.id", "must be 1-128 letters, digits, '-', '_' or '.' (got %q)", c.Replica.ID)
	}
	v.positive("replica.heartbeat_interval_seconds", c.Replica.HeartbeatIntervalSeconds)
	if c.Replica.LeaseSeconds < 2*c.Replica.HeartbeatIntervalSeconds {
		v.bad("replica.lease_seconds", "must be at least twice replica.heartbeat_interval_seconds (got %d and %d)",
			c.Replica.LeaseSeconds, c.Replica.HeartbeatIntervalSeconds)
	}

	// warm_pool
	w := c.WarmPool
	v.positive("warm_pool.warmup_queue_workers", w.WarmupQueueWorkers)
	v.positive("warm_pool.warmup_queue_max_size", w.WarmupQueueMaxSize)
	v.oneOf("warm_pool.warmup_queue_drop_policy", w.WarmupQueueDropPolicy, DropNewest, DropOldest)
	v.nonNegative("warm_pool.warmup_queue_drop_alert_threshold", w.WarmupQueueDropAlertThreshold)
	if w.Enabled {
		v.positive("warm_pool.interval_seconds", w.IntervalSeconds)
	}

	// browser_learning
	b := c.BrowserLearning
	if b.Enabled {
		v.positive("browser_learning.interval_seconds", b.IntervalSeconds)
	}
	v.positive("browser_learning.batch_size", b.BatchSize)
	for _, f := range []struct {
		key string
		n   float64
	}{
		{"browser_learning.score_threshold", b.ScoreThreshold},
		{"browser_learning.replay_success_threshold", b.ReplaySuccessThreshold},
		{"browser_learning.success_drop_threshold", b.SuccessDropThreshold},
	} {
		if !(f.n >= 0 && f.n <= 1) {
			v.bad(f.key, "must be within 0..1 (got %v)", f.n)
		}
	}
	v.nonNegative("browser_learning.min_samples", b.MinSamples)
	v.positive("browser_learning.canary_window_hours", b.CanaryWindowHours)
	if !(b.ErrorRateMultiplierThreshold > 0) {
		v.bad("browser_learning.error_rate_multiplier_threshold", "must be > 0 (got %v)", b.ErrorRateMultiplierThreshold)
	}

	// browser_service
	if c.BrowserService.Enabled {
		u, err := url.Parse(c.BrowserService.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.bad("browser_service.endpoint", "must be an http(s) URL (got %q)", c.BrowserService.Endpoint)
		}
		if c.Driver.Type == DriverK8s {
			v.bad("browser_service.enabled", "the shared browser service is not supported with driver.type k8s")
		}
	}

	// proxy
	v.errs = append(v.errs, checkProxy("proxy", c.Proxy)...)
	v.preview(c.Preview)
	v.tenants(c.Quotas, c.RateLimit)

	// log
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "warning", "error")
	v.oneOf("log.format", c.Log.Format, "json", "text")

	// session
	s := c.Session
	v.positive("session.ready_timeout_seconds", s.ReadyTimeoutSeconds)
	v.positive("session.ready_poll_initial_ms", s.ReadyPollInitialMs)
	v.positive("session.ready_poll_max_ms", s.ReadyPollMaxMs)
	if s.ReadyPollMaxMs < s.ReadyPollInitialMs {
		v.bad("session.ready_poll_max_ms", "must be >= session.ready_poll_initial_ms (%d)", s.ReadyPollInitialMs)
	}
	v.positive("session.ready_probe_timeout_ms", s.ReadyProbeTimeoutMs)
	v.positive("session.start_lock_timeout_seconds", s.StartLockTimeoutSeconds)
	if s.StartLockTimeoutSeconds < s.ReadyTimeoutSeconds {
		v.bad("session.start_lock_timeout_seconds", "must be >= session.ready_timeout_seconds (%d), or waiters give up before a start can finish", s.ReadyTimeoutSeconds)
	}
	v.positive("session.ship_request_timeout_seconds", s.ShipRequestTimeoutSeconds)
	v.positive("session.ship_connect_timeout_seconds", s.ShipConnectTimeoutSeconds)
	v.nonNegative("session.stop_timeout_seconds", s.StopTimeoutSeconds)

	v.port("runtime_port", c.RuntimePort, false)
	return v.errs
}

// checkProxy validates a proxy section (global, profile or container).
func checkProxy(path string, p ProxyConfig) []error {
	var errs []error
	for _, f := range [][2]string{{"http_proxy", p.HTTPProxy}, {"https_proxy", p.HTTPSProxy}} {
		if f[1] == "" {
			continue
		}
		// The value may carry credentials: never echo it.
		if u, err := url.Parse(f[1]); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.%s: must be a URL such as http://proxy:3128", path, f[0]))
		}
	}
	return errs
}
