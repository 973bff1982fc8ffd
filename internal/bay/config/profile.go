package config

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Runtime types, browser modes and startup orders.
const (
	RuntimeShip = "ship"
	RuntimeGull = "gull"

	BrowserShared   = "shared"
	BrowserIsolated = "isolated"

	StartupParallel   = "parallel"
	StartupSequential = "sequential"
)

// DefaultCapabilities are the capabilities of a legacy profile that lists none.
var defaultCapabilities = []string{"filesystem", "shell", "python"}

// Profile is one runtime spec from config, normalized: it always has at least
// one container, and the fields below marked "effective" are already resolved.
type Profile struct {
	ID          string
	Description string
	// Image (effective): the legacy `image` if set, else the primary container's.
	Image string
	// RuntimeType (effective): the primary container's (ship | gull).
	RuntimeType string
	// Resources (effective): the legacy `resources` if set, else the primary container's.
	Resources Resources
	// Capabilities (effective): the legacy `capabilities` list in config order
	// if set, else the sorted union of the containers' capabilities. This is
	// what sandboxes and /v1/profiles report.
	Capabilities []string
	// RuntimePort (effective): the primary container's.
	RuntimePort int
	// Env is the profile-level `env` as written. For a legacy profile it is
	// also the primary container's Env; drivers use ContainerSpec.Env.
	Env map[string]string
	// Proxy is the profile-level override; nil = global (see Config.ProxyFor).
	Proxy *ProxyConfig
	// Containers, never empty. A legacy profile has one, named "primary".
	Containers []ContainerSpec
	Startup    StartupConfig // accepted; unused upstream

	IdleTimeoutSeconds int // idle_timeout; 1800

	WarmPoolSize                  int // warm_pool_size; 0 = no pool
	WarmRotateTTLSeconds          int // warm_rotate_ttl; 1800
	WarmClaimTimeoutMs            int // 200 (unused upstream)
	WarmupRetryMaxAttempts        int // 3 (unused upstream)
	WarmupRetryBackoffBaseMs      int // 200 (unused upstream)
	WarmupRetryBackoffMaxMs       int // 5000 (unused upstream)
	WarmupCircuitBreakerThreshold int // 10 (unused upstream)

	Browser string // "" | shared | isolated

	// Ours.
	PidsLimit int64         // pids_limit; 256
	Runtime   string        // runtime: OCI runtime, e.g. "runsc"; "" = engine default
	NoNetwork bool          // no_network: no outbound network for this profile's containers (= Network.Mode none)
	Network   NetworkPolicy // network: full (default) | none | {allow: [...]}
}

// ContainerSpec is one runtime container of a profile.
type ContainerSpec struct {
	Name            string
	Image           string
	RuntimeType     string // ship | gull
	RuntimePort     int    // default: top-level runtime_port (8123)
	Resources       Resources
	Capabilities    []string // config order
	PrimaryFor      []string // capabilities this container serves first
	Env             map[string]string
	Proxy           *ProxyConfig // nil = profile's, else global
	HealthCheckPath string       // "/health" (unused upstream)
}

// Resources limits one container.
type Resources struct {
	CPUs        float64 // 1.0
	Memory      string  // as written, e.g. "1g"
	MemoryBytes int64   // parsed Memory (binary units: 1g = 1073741824)
}

// NanoCPUs is CPUs * 1e9, as Docker wants it.
func (r Resources) NanoCPUs() int64 { return int64(math.Round(r.CPUs * 1e9)) }

// StartupConfig is a profile's `startup` (accepted, unused upstream).
type StartupConfig struct {
	Order      string // parallel | sequential
	WaitForAll bool   // true
}

// Primary is the primary container: the first named "primary" or "ship",
// else the first; nil only for a Profile built by hand without containers.
func (p *Profile) Primary() *ContainerSpec {
	for i := range p.Containers {
		if n := p.Containers[i].Name; n == "primary" || n == "ship" {
			return &p.Containers[i]
		}
	}
	if len(p.Containers) == 0 {
		return nil
	}
	return &p.Containers[0]
}

// IsMultiContainer reports whether the profile runs more than one container.
func (p *Profile) IsMultiContainer() bool { return len(p.Containers) > 1 }

// HasCapability reports whether cap is in the effective capability list.
func (p *Profile) HasCapability(c string) bool { return slices.Contains(p.Capabilities, c) }

// ContainerFor is the container that serves a capability, as upstream routes
// it: the first whose primary_for lists it, else the first whose capabilities do.
func (p *Profile) ContainerFor(capability string) (*ContainerSpec, bool) {
	for i := range p.Containers {
		if slices.Contains(p.Containers[i].PrimaryFor, capability) {
			return &p.Containers[i], true
		}
	}
	for i := range p.Containers {
		if slices.Contains(p.Containers[i].Capabilities, capability) {
			return &p.Containers[i], true
		}
	}
	return nil, false
}

// IdleTimeout is idle_timeout as a duration.
func (p *Profile) IdleTimeout() time.Duration { return seconds(p.IdleTimeoutSeconds) }

// WarmRotateTTL is warm_rotate_ttl as a duration.
func (p *Profile) WarmRotateTTL() time.Duration { return seconds(p.WarmRotateTTLSeconds) }

// --- YAML shapes. Pointers mark keys whose presence matters. ---

type profileYAML struct {
	ID                   string            `yaml:"id"`
	Description          string            `yaml:"description"`
	Image                *string           `yaml:"image"`
	RuntimeType          *string           `yaml:"runtime_type"`
	Resources            *resourcesYAML    `yaml:"resources"`
	Capab                []string          `yaml:"capabilities"`
	RuntimePort          *int              `yaml:"runtime_port"`
	Env                  map[string]string `yaml:"env"`
	Proxy                *proxyYAML        `yaml:"proxy"`
	Containers           []containerYAML   `yaml:"containers"`
	Startup              *startupYAML      `yaml:"startup"`
	IdleTimeout          *int              `yaml:"idle_timeout"`
	Browser              *string           `yaml:"browser"`
	warmYAML             `yaml:",inline"`
	profileAdditionsYAML `yaml:",inline"`
}

type warmYAML struct {
	WarmPoolSize                  *int `yaml:"warm_pool_size"`
	WarmRotateTTL                 *int `yaml:"warm_rotate_ttl"`
	WarmClaimTimeoutMs            *int `yaml:"warm_claim_timeout_ms"`
	WarmupRetryMaxAttempts        *int `yaml:"warmup_retry_max_attempts"`
	WarmupRetryBackoffBaseMs      *int `yaml:"warmup_retry_backoff_base_ms"`
	WarmupRetryBackoffMaxMs       *int `yaml:"warmup_retry_backoff_max_ms"`
	WarmupCircuitBreakerThreshold *int `yaml:"warmup_circuit_breaker_threshold"`
}

type profileAdditionsYAML struct {
	PidsLimit *int64       `yaml:"pids_limit"`
	Runtime   string       `yaml:"runtime"`
	NoNetwork bool         `yaml:"no_network"`
	Network   *networkYAML `yaml:"network"`
}

type containerYAML struct {
	Name            string            `yaml:"name"`
	Image           string            `yaml:"image"`
	RuntimeType     *string           `yaml:"runtime_type"`
	RuntimePort     *int              `yaml:"runtime_port"`
	Resources       *resourcesYAML    `yaml:"resources"`
	Capabilities    []string          `yaml:"capabilities"`
	PrimaryFor      []string          `yaml:"primary_for"`
	Env             map[string]string `yaml:"env"`
	Proxy           *proxyYAML        `yaml:"proxy"`
	HealthCheckPath *string           `yaml:"health_check_path"`
}

type resourcesYAML struct {
	CPUs   *float64 `yaml:"cpus"`
	Memory *string  `yaml:"memory"`
}

type startupYAML struct {
	Order      *string `yaml:"order"`
	WaitForAll *bool   `yaml:"wait_for_all"`
}

// proxyYAML is a profile/container proxy override; unset keys take the
// ProxyConfig defaults (not the global section's values), as upstream.
type proxyYAML struct {
	Enabled        bool    `yaml:"enabled"`
	HTTPProxy      string  `yaml:"http_proxy"`
	HTTPSProxy     string  `yaml:"https_proxy"`
	NoProxy        string  `yaml:"no_proxy"`
	DefaultNoProxy *string `yaml:"default_no_proxy"`
}

func (y *proxyYAML) config() *ProxyConfig {
	if y == nil {
		return nil
	}
	return &ProxyConfig{
		Enabled:        y.Enabled,
		HTTPProxy:      y.HTTPProxy,
		HTTPSProxy:     y.HTTPSProxy,
		NoProxy:        y.NoProxy,
		DefaultNoProxy: deref(y.DefaultNoProxy, DefaultNoProxy),
	}
}

func defaultProfiles() []profileYAML {
	legacy := func(id, image string, cpus float64, mem string) profileYAML {
		return profileYAML{
			ID:          id,
			Image:       &image,
			Resources:   &resourcesYAML{CPUs: &cpus, Memory: &mem},
			Capab:       slices.Clone(defaultCapabilities),
			IdleTimeout: ptr(1800),
		}
	}
	secure := legacy("python-secure", "ship:latest", 1.0, "1g")
	secure.Runtime = "runsc"
	secure.Description = "python-default under gVisor (runsc): a user-space kernel between sandbox code and the host's"
	return []profileYAML{
		legacy("python-default", "ship:latest", 1.0, "1g"),
		legacy("python-data", "ship:data", 2.0, "4g"),
		secure,
		browserProfile(),
	}
}

// buildProfiles normalizes and validates the profiles into c.Profiles and c.ProfileOrder.
func (c *Config) buildProfiles(raws []profileYAML) []error {
	var errs []error
	c.Profiles = make(map[string]*Profile, len(raws))
	c.ProfileOrder = make([]string, 0, len(raws))
	if len(raws) == 0 {
		return []error{fmt.Errorf("profiles: at least one profile is required")}
	}
	seen := map[string]int{}
	for i, raw := range raws {
		path := fmt.Sprintf("profiles[%d]", i)
		if raw.ID != "" {
			path = fmt.Sprintf("profiles[%d](%s)", i, raw.ID)
		}
		p, perrs := c.buildProfile(raw, path)
		errs = append(errs, perrs...)
		switch {
		case raw.ID == "":
			errs = append(errs, fmt.Errorf("%s.id: required", path))
			continue
		case strings.TrimSpace(raw.ID) != raw.ID || strings.ContainsAny(raw.ID, " \t\r\n/\x00"):
			errs = append(errs, fmt.Errorf("%s.id: must not contain spaces or '/'", path))
		}
		if j, dup := seen[raw.ID]; dup {
			errs = append(errs, fmt.Errorf("%s.id: duplicate profile id %q (also profiles[%d])", path, raw.ID, j))
			continue
		}
		seen[raw.ID] = i
		c.Profiles[raw.ID] = p
		c.ProfileOrder = append(c.ProfileOrder, raw.ID)
	}
	return errs
}

func (c *Config) buildProfile(raw profileYAML, path string) (*Profile, []error) {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, a...)))
	}
	p := &Profile{
		ID:                            raw.ID,
		Description:                   raw.Description,
		Env:                           cloneMap(raw.Env),
		Proxy:                         raw.Proxy.config(),
		Startup:                       StartupConfig{Order: StartupParallel, WaitForAll: true},
		IdleTimeoutSeconds:            deref(raw.IdleTimeout, 1800),
		WarmPoolSize:                  deref(raw.WarmPoolSize, 0),
		WarmRotateTTLSeconds:          deref(raw.WarmRotateTTL, 1800),
		WarmClaimTimeoutMs:            deref(raw.WarmClaimTimeoutMs, 200),
		WarmupRetryMaxAttempts:        deref(raw.WarmupRetryMaxAttempts, 3),
		WarmupRetryBackoffBaseMs:      deref(raw.WarmupRetryBackoffBaseMs, 200),
		WarmupRetryBackoffMaxMs:       deref(raw.WarmupRetryBackoffMaxMs, 5000),
		WarmupCircuitBreakerThreshold: deref(raw.WarmupCircuitBreakerThreshold, 10),
		Browser:                       deref(raw.Browser, ""),
		PidsLimit:                     deref(raw.PidsLimit, 256),
		Runtime:                       raw.Runtime,
		NoNetwork:                     raw.NoNetwork,
	}
	if raw.Startup != nil {
		p.Startup.Order = deref(raw.Startup.Order, StartupParallel)
		p.Startup.WaitForAll = deref(raw.Startup.WaitForAll, true)
	}

	legacyRes := raw.Resources.resources()
	if len(raw.Containers) == 0 {
		caps := raw.Capab
		if len(caps) == 0 {
			caps = defaultCapabilities
		}
		p.Containers = []ContainerSpec{{
			Name:            "primary",
			Image:           deref(raw.Image, "ship:latest"),
			RuntimeType:     deref(raw.RuntimeType, RuntimeShip),
			RuntimePort:     deref(raw.RuntimePort, c.RuntimePort),
			Resources:       legacyRes,
			Capabilities:    slices.Clone(caps),
			PrimaryFor:      slices.Clone(caps),
			Env:             cloneMap(raw.Env),
			Proxy:           raw.Proxy.config(),
			HealthCheckPath: "/health",
		}}
	} else {
		for _, rc := range raw.Containers {
			p.Containers = append(p.Containers, ContainerSpec{
				Name:            rc.Name,
				Image:           rc.Image,
				RuntimeType:     deref(rc.RuntimeType, RuntimeShip),
				RuntimePort:     deref(rc.RuntimePort, c.RuntimePort),
				Resources:       rc.Resources.resources(),
				Capabilities:    orEmpty(rc.Capabilities),
				PrimaryFor:      orEmpty(rc.PrimaryFor),
				Env:             cloneMap(rc.Env),
				Proxy:           rc.Proxy.config(),
				HealthCheckPath: deref(rc.HealthCheckPath, "/health"),
			})
		}
	}

	prim := p.Primary()
	p.Image = deref(raw.Image, prim.Image)
	p.RuntimeType = prim.RuntimeType
	p.RuntimePort = prim.RuntimePort
	if raw.Resources != nil {
		p.Resources = legacyRes
	} else {
		p.Resources = prim.Resources
	}
	if len(raw.Capab) > 0 {
		p.Capabilities = slices.Clone(raw.Capab)
	} else {
		var union []string
		for _, ct := range p.Containers {
			union = append(union, ct.Capabilities...)
		}
		slices.Sort(union)
		p.Capabilities = orEmpty(slices.Compact(union))
	}

	// Validation.
	if raw.Image != nil && strings.TrimSpace(*raw.Image) == "" {
		bad("image", "must not be empty")
	}
	if raw.RuntimeType != nil && !isOneOf(*raw.RuntimeType, RuntimeShip, RuntimeGull) {
		bad("runtime_type", "must be one of ship, gull (got %q)", *raw.RuntimeType)
	}
	if raw.Resources != nil && len(raw.Containers) > 0 {
		// Shown by /v1/profiles only; a legacy profile's resources are checked as its container's below.
		if err := p.Resources.parse(); err != nil {
			bad("resources."+err.key, "%s", err.msg)
		}
	}
	errs = append(errs, checkCapabilities(path+".capabilities", raw.Capab)...)
	errs = append(errs, checkEnv(path+".env", raw.Env)...)
	if p.Proxy != nil {
		errs = append(errs, checkProxy(path+".proxy", *p.Proxy)...)
	}
	if !isOneOf(p.Startup.Order, StartupParallel, StartupSequential) {
		bad("startup.order", "must be one of parallel, sequential (got %q)", p.Startup.Order)
	}
	if p.IdleTimeoutSeconds <= 0 {
		bad("idle_timeout", "must be > 0 seconds (got %d)", p.IdleTimeoutSeconds)
	}
	if p.WarmPoolSize < 0 {
		bad("warm_pool_size", "must be >= 0 (got %d)", p.WarmPoolSize)
	}
	if p.WarmRotateTTLSeconds <= 0 {
		bad("warm_rotate_ttl", "must be > 0 seconds (got %d)", p.WarmRotateTTLSeconds)
	}
	for _, f := range []struct {
		key string
		n   int
	}{
		{"warm_claim_timeout_ms", p.WarmClaimTimeoutMs},
		{"warmup_retry_max_attempts", p.WarmupRetryMaxAttempts},
		{"warmup_retry_backoff_base_ms", p.WarmupRetryBackoffBaseMs},
		{"warmup_retry_backoff_max_ms", p.WarmupRetryBackoffMaxMs},
		{"warmup_circuit_breaker_threshold", p.WarmupCircuitBreakerThreshold},
	} {
		if f.n < 0 {
			bad(f.key, "must be >= 0 (got %d)", f.n)
		}
	}
	if p.WarmupRetryBackoffMaxMs < p.WarmupRetryBackoffBaseMs {
		bad("warmup_retry_backoff_max_ms", "must be >= warmup_retry_backoff_base_ms (%d)", p.WarmupRetryBackoffBaseMs)
	}
	if !isOneOf(p.Browser, "", BrowserShared, BrowserIsolated) {
		bad("browser", "must be shared, isolated or null (got %q)", p.Browser)
	}
	if p.PidsLimit <= 0 {
		bad("pids_limit", "must be > 0 (got %d)", p.PidsLimit)
	}
	p.networkPolicy(raw.Network, raw.NoNetwork, bad)
	if p.Runtime != "" && !runtimeNameRE.MatchString(p.Runtime) {
		bad("runtime", "invalid OCI runtime name %q", p.Runtime)
	}
	if p.Browser == BrowserShared && !c.BrowserService.Enabled {
		c.Warnings = append(c.Warnings, path+".browser: shared, but browser_service.enabled is false")
	}
	if len(raw.Containers) > 0 {
		for _, f := range []struct {
			key string
			set bool
		}{{"runtime_type", raw.RuntimeType != nil}, {"runtime_port", raw.RuntimePort != nil}, {"env", len(raw.Env) > 0}} {
			if f.set {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s.%s ignored: the profile has containers, set it on each container", path, f.key))
			}
		}
	}

	names := map[string]bool{}
	for i := range p.Containers {
		ct := &p.Containers[i]
		cpath := fmt.Sprintf("%s.containers[%d]", path, i)
		if len(raw.Containers) == 0 {
			cpath = path // legacy: the keys are the profile's own
		}
		cbad := func(key, format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s.%s: %s", cpath, key, fmt.Sprintf(format, a...)))
		}
		if len(raw.Containers) > 0 {
			switch {
			case ct.Name == "":
				cbad("name", "required")
			case !containerNameRE.MatchString(ct.Name):
				cbad("name", "invalid container name %q (letters, digits, '_', '.', '-'; at most 63)", ct.Name)
			case names[ct.Name]:
				cbad("name", "duplicate container name %q", ct.Name)
			}
			names[ct.Name] = true
			if strings.TrimSpace(ct.Image) == "" {
				cbad("image", "must not be empty")
			}
			if !isOneOf(ct.RuntimeType, RuntimeShip, RuntimeGull) {
				cbad("runtime_type", "must be one of ship, gull (got %q)", ct.RuntimeType)
			}
			errs = append(errs, checkCapabilities(cpath+".capabilities", ct.Capabilities)...)
			errs = append(errs, checkCapabilities(cpath+".primary_for", ct.PrimaryFor)...)
			errs = append(errs, checkEnv(cpath+".env", ct.Env)...)
			if ct.Proxy != nil {
				errs = append(errs, checkProxy(cpath+".proxy", *ct.Proxy)...)
			}
		}
		if ct.RuntimePort < 1 || ct.RuntimePort > 65535 {
			cbad("runtime_port", "must be 1..65535 (got %d)", ct.RuntimePort)
		}
		if err := ct.Resources.parse(); err != nil {
			cbad("resources."+err.key, "%s", err.msg)
		}
	}
	// The effective Resources were copied before parsing.
	if raw.Resources == nil || len(raw.Containers) == 0 {
		p.Resources = prim.Resources
	}
	return p, errs
}

type fieldError struct{ key, msg string }

func (r *Resources) parse() *fieldError {
	if math.IsNaN(r.CPUs) || r.CPUs <= 0 {
		return &fieldError{"cpus", fmt.Sprintf("must be > 0 (got %v)", r.CPUs)}
	}
	n, err := ParseMemory(r.Memory)
	if err != nil {
		return &fieldError{"memory", err.Error()}
	}
	r.MemoryBytes = n
	return nil
}

func (y *resourcesYAML) resources() Resources {
	r := Resources{CPUs: 1.0, Memory: "1g"}
	if y != nil {
		r.CPUs = deref(y.CPUs, 1.0)
		r.Memory = deref(y.Memory, "1g")
	}
	return r
}

var memoryRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)$`)

// ParseMemory parses a memory size: plain bytes ("1073741824") or a number
// with a binary unit k, m, g or t, optionally followed by "i", "b" or "ib",
// case-insensitive ("512m", "1g", "1.5G", "2Gi", "1024MB"). 1g = 1073741824.
// The result must be > 0.
func ParseMemory(s string) (int64, error) {
	m := memoryRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil || (m[2] == "" && (m[3] != "" || strings.Contains(m[1], "."))) {
		return 0, fmt.Errorf("invalid memory size %q (want bytes or a number with k, m, g or t, e.g. 512m, 1g)", s)
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2]]
	var n float64
	if m[2] == "" && !strings.Contains(m[1], ".") {
		i, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid memory size %q: %v", s, err)
		}
		n = float64(i)
	} else {
		f, _ := strconv.ParseFloat(m[1], 64)
		n = math.Floor(f * mult)
	}
	if n < 1 || n > math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid memory size %q: must be > 0 and sane", s)
	}
	return int64(n), nil
}

var (
	containerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	runtimeNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
	envNameRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func checkCapabilities(path string, caps []string) []error {
	var errs []error
	for i, c := range caps {
		if strings.TrimSpace(c) == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: must not be empty", path, i))
		}
	}
	return errs
}

func checkEnv(path string, env map[string]string) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if !envNameRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("%s: invalid variable name %q (letters, digits, '_'; not starting with a digit)", path, k))
		}
		if strings.ContainsRune(env[k], 0) {
			errs = append(errs, fmt.Errorf("%s.%s: value contains a NUL byte", path, k))
		}
	}
	return errs
}

func isOneOf(s string, set ...string) bool { return slices.Contains(set, s) }

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// orEmpty clones s, never returning nil (so lists encode as [] not null).
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
