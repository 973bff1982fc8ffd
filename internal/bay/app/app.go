// Package app wires Bay together: config → store → driver → services → HTTP,
// and runs it until the context ends (graceful shutdown).
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shipyard/shipyard/internal/bay/api"
	"github.com/shipyard/shipyard/internal/bay/auth"
	"github.com/shipyard/shipyard/internal/bay/browser"
	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/cargo"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/docker"
	"github.com/shipyard/shipyard/internal/bay/gc"
	"github.com/shipyard/shipyard/internal/bay/idempotency"
	"github.com/shipyard/shipyard/internal/bay/keylock"
	"github.com/shipyard/shipyard/internal/bay/metrics"
	"github.com/shipyard/shipyard/internal/bay/preview"
	"github.com/shipyard/shipyard/internal/bay/replica"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/sandbox"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/skills"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/tenant"
	"github.com/shipyard/shipyard/internal/bay/warmpool"
	"github.com/shipyard/shipyard/internal/logctx"
)

// Options are test seams; zero values are production defaults.
type Options struct {
	Now   func() time.Time // injected clock
	Hooks session.Hooks    // fault injection
	// Listener, when set, is served instead of listening on server.host:port.
	Listener net.Listener
	// Driver, when set, is used instead of the one driver.type names (tests
	// and benchmarks: the in-memory driver); App.Close does not close it.
	Driver driver.Driver
}

// App is a running Bay.
type App struct {
	Config    *config.Config
	Store     *store.Store
	Driver    driver.Driver
	Runtime   *runtime.Client
	Sessions  *session.Manager
	Sandboxes *sandbox.Service
	Caps      *capability.Service
	Browser   *browser.Service
	Handler   http.Handler
	Log       *slog.Logger
	Now       func() time.Time
	started   time.Time
	Metrics   *metrics.Metrics
	GC        *gc.Collector
	Warm      *warmpool.Pool
	Heart     *replica.Heart
	closers   []func() error
	listener  net.Listener
}

// NewLogger builds the slog logger from config (JSON, or text for a terminal).
func NewLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	var h slog.Handler
	if strings.EqualFold(cfg.Log.Format, "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(logctx.Handler{Handler: h})
}

// New builds Bay: opens the store (migrating it), provisions API keys, connects the driver.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opt Options) (*App, error) {
	// Every line says which replica wrote it (several Bays may share one deployment).
	log = log.With("replica_id", cfg.Replica.ID)
	a := &App{Config: cfg, Log: log, Now: opt.Now, started: time.Now()}
	if a.Now == nil {
		a.Now = func() time.Time { return time.Now().UTC() }
	}
	for _, w := range cfg.Warnings {
		log.Warn("config", "warning", w)
	}
	st, err := store.Open(ctx, cfg.Database.Driver, cfg.Database.DSN)
	if err != nil {
		return nil, err
	}
	a.Store = st
	a.closers = append(a.closers, st.Close)
	// Alive before anything else: other replicas must not take this one's
	// claims for a dead replica's, and its reconcile counts itself in.
	a.Heart = &replica.Heart{Store: st, Identity: replica.Identity{InstanceID: cfg.GC.InstanceID, ReplicaID: cfg.Replica.ID},
		Interval: cfg.Replica.HeartbeatInterval(), Lease: cfg.Replica.Lease(), Now: a.Now, Log: log}
	if err := a.Heart.Beat(ctx); err != nil {
		a.Close()
		return nil, err
	}

	// The driver of driver.type, from the registry in drivers.go. An engine
	// that cannot be reached answers 503 + Retry-After, not 500.
	d := opt.Driver
	if d == nil {
		var closeDriver func() error
		d, closeDriver, err = openDriver(ctx, cfg, log)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.closers = append(a.closers, closeDriver)
	}
	a.Driver = d

	a.Metrics = metrics.New()
	a.Driver = metrics.InstrumentDriver(a.Driver, a.Metrics)
	hooks := opt.Hooks
	if hooks.Started == nil {
		hooks.Started = a.Metrics.SessionStarted
	}
	if hooks.StartError == nil {
		hooks.StartError = a.Metrics.SessionStartFailed
	}

	sc := cfg.Session
	a.Runtime = runtime.New(runtime.Config{ConnectTimeout: sc.ShipConnectTimeout(), RequestTimeout: sc.ShipRequestTimeout(),
		WrapTransport: runtimeTransport(d)})
	a.closers = append(a.closers, func() error { a.Runtime.Close(); return nil })
	locks := keylock.New()
	a.Sessions = session.New(st, a.Driver, a.Runtime, locks, session.Config{
		InstanceID: cfg.GC.InstanceID, ReadyTimeout: sc.ReadyTimeout(), ReadyPollInitial: sc.ReadyPollInitial(),
		ReadyPollMax: sc.ReadyPollMax(), HealthTimeout: sc.ReadyProbeTimeout(), LockTimeout: sc.StartLockTimeout(),
		SingleInstance: singleInstance(cfg), ReplicaID: cfg.Replica.ID, Lease: cfg.Replica.Lease(),
	}, log, hooks)

	profiles := map[string]*session.Profile{}
	for id, p := range cfg.Profiles {
		profiles[id] = sandbox.SessionProfile(cfg, p)
	}
	a.Sandboxes = &sandbox.Service{Store: st, Sessions: a.Sessions, Driver: a.Driver, Config: cfg, Profiles: profiles, Log: log}
	// Checked beside the rest of the start (the engine's /info is slow);
	// create and GET /v1/profiles wait for it.
	checkCtx, cancelCheck := context.WithCancel(context.WithoutCancel(ctx))
	checked := a.Sandboxes.CheckProfiles(func() map[string]string {
		unavailable, err := sandbox.UnavailableProfiles(checkCtx, d, cfg)
		if err != nil {
			log.Warn("could not check the profiles' OCI runtimes; a missing one fails at create", "err", err)
		}
		for id, why := range unavailable {
			log.Error("profile unavailable", "profile", id, "reason", why)
		}
		return unavailable
	})
	a.closers = append(a.closers, func() error { cancelCheck(); checked(); return nil })
	a.Caps = &capability.Service{Store: st, Sessions: a.Sessions, Runtime: a.Runtime, Config: cfg, Profiles: profiles, Log: log,
		Observe: a.Metrics.ObserveExec}
	gull := browser.NewClient(browser.ClientConfig{ConnectTimeout: sc.ShipConnectTimeout(), WrapTransport: runtimeTransport(d)})
	a.closers = append(a.closers, func() error { gull.Close(); return nil })
	a.Browser = &browser.Service{Caps: a.Caps, Store: st, Gull: gull, Config: cfg, Log: log}
	a.Metrics.SetSandboxCounter(func(ctx context.Context) (map[string]int, error) {
		return st.CountSandboxesByStatus(ctx, a.Now())
	})
	a.Metrics.InitSeries([]string{capability.Python, capability.Shell, capability.Filesystem, browser.Capability}, gc.Order, cfg.ProfileOrder)
	cargos := &cargo.Service{Store: st, Driver: a.Driver, InstanceID: cfg.GC.InstanceID, Log: log}
	a.GC = &gc.Collector{Store: st, Driver: a.Driver, Sessions: a.Sessions, Sandboxes: a.Sandboxes, Now: a.Now, Log: log,
		Config: gc.Config{Enabled: cfg.GC.Enabled, RunOnStartup: cfg.GC.RunOnStartup, Interval: cfg.GC.Interval(),
			InstanceID: cfg.GC.InstanceID, ReplicaID: cfg.Replica.ID, Lease: cfg.Replica.Lease(),
			SingleInstance: singleInstance(cfg), Tasks: map[string]bool{
				gc.IdleSession: cfg.GC.IdleSession.Enabled, gc.ExpiredSandbox: cfg.GC.ExpiredSandbox.Enabled,
				gc.OrphanCargo: cfg.GC.OrphanCargo.Enabled, gc.OrphanContainer: cfg.GC.OrphanContainer.Enabled,
			}}}
	a.GC.Observer = a.Metrics
	a.GC.Config.KeepBusy, a.GC.Busy = cfg.GC.IdleSession.KeepBusy, a.Caps.HasRunningProcesses
	a.GC.Init()
	a.GC.ExpectReconcile()
	a.Warm = &warmpool.Pool{Store: st, Sessions: a.Sessions, Sandboxes: a.Sandboxes, Config: cfg, Profiles: profiles,
		Now: a.Now, Log: log, Holder: cfg.Replica.ID, Lease: cfg.Replica.Lease(), Observer: a.Metrics}
	if cfg.WarmPool.Enabled {
		a.Sandboxes.Warm = a.Warm
	}

	apiKey := cfg.Security.APIKey
	if path, revoked, err := auth.Provision(ctx, st, apiKey, cfg.DataDir, fmt.Sprintf("http://%s", cfg.Server.Addr()), a.Now()); err != nil {
		a.Close()
		return nil, err
	} else if revoked {
		log.Warn("security.api_key was revoked through the admin API: it is refused (remove it from the config)")
	} else if path != "" {
		log.Info("generated an API key; send it as Authorization: Bearer <api_key>", "credentials_file", path)
	} else if apiKey == "" {
		log.Info("API keys are in the database; the first generated one is in credentials_file",
			"credentials_file", filepath.Join(cfg.DataDir, "credentials.json"))
	}
	authn := auth.New(st, auth.Policy{AllowAnonymous: cfg.Security.AllowAnonymous,
		AllowAnonymousRemote: cfg.Security.AllowAnonymousRemote})
	st.SetQuotas(tenant.QuotaConfig(cfg.Quotas))
	previewKey, err := preview.KeyFor(ctx, st, cfg.Preview.Key, a.Now())
	if err != nil {
		a.Close()
		return nil, err
	}
	pp := preview.NewProxy(cfg.Preview.ConnectTimeout(), log)
	a.closers = append(a.closers, func() error { pp.Close(); return nil })
	a.Handler = api.New(api.Deps{
		Config: cfg, Store: st, Auth: authn, Sandboxes: a.Sandboxes, Capabilities: a.Caps, Browser: a.Browser, Cargos: cargos,
		Preview: preview.NewService(st, previewKey, pp, cfg.Preview.DefaultTokenTTL(), cfg.Preview.MaxTokenTTL(),
			cfg.Preview.MaxRequestBytes),
		Skills: &skills.Service{Store: st},
		Idempotency: &idempotency.Guard{Store: st, Enabled: cfg.Idempotency.Enabled, TTL: cfg.Idempotency.TTL(),
			Holder: cfg.Replica.ID, Log: log},
		Runtime: a.Runtime, Health: healthChecks{st: st, drv: a.Driver}, Log: log, Now: a.Now, Started: a.started,
		GC: a.GC, Metrics: a.Metrics,
		Tenants: &tenant.Service{Store: st, Now: a.Now}, RateLimit: tenant.NewLimiter(cfg.RateLimit.RequestsPerSecond, cfg.RateLimit.Burst),
	})
	a.listener = opt.Listener
	return a, nil
}

func dockerConfig(cfg *config.Config, log *slog.Logger) docker.Config {
	d := cfg.Driver.Docker
	pub := d.PublishPorts
	return docker.Config{
		Socket: d.Socket, Network: d.Network, SandboxNetwork: d.SandboxNetwork, IsolateHost: docker.Bool(d.IsolateHost),
		ConnectMode: docker.ConnectMode(d.ConnectMode),
		HostAddress: d.HostAddress, PublishPorts: &pub, HostPort: d.HostPort,
		PullPolicy: docker.PullPolicy(cfg.Driver.ImagePullPolicy), StopTimeout: cfg.Session.StopTimeout(), Logger: log,
		Egress: sandbox.EgressPolicies(cfg),
	}
}

type healthChecks struct {
	st  *store.Store
	drv driver.Driver
}

func (h healthChecks) Check(ctx context.Context) map[string]error {
	return map[string]error{"database": h.st.Ping(ctx), "driver": h.drv.Ping(ctx)}
}

// Run serves until ctx ends, then shuts down gracefully.
func (a *App) Run(ctx context.Context) error {
	ln := a.listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", a.Config.Server.Addr())
		if err != nil {
			return fmt.Errorf("listen %s: %w", a.Config.Server.Addr(), err)
		}
	}
	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: a.Config.Server.ReadHeaderTimeout(),
		ErrorLog: slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("bay listening", "addr", ln.Addr().String(), "instance_id", a.Config.GC.InstanceID,
		"database", a.Config.Database.Driver,
		"driver", a.Config.Driver.Type, "startup_ms", time.Since(a.started).Milliseconds())

	// Background duties: reconcile what a previous run left, then GC and the warm pool.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Heart.Run(bg) }()
	go func() {
		defer wg.Done()
		if err := a.GC.Reconcile(bg); err != nil && bg.Err() == nil {
			a.Log.Error("reconcile", "err", err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); a.GC.Loop(bg) }()
		go func() { defer wg.Done(); a.Warm.Run(bg) }()
	}()

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.Server.ShutdownTimeout())
	defer cancel()
	if serr := srv.Shutdown(sctx); err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	stopBG()
	wg.Wait()
	if a.Config.WarmPool.Enabled {
		a.Warm.Drain(sctx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// singleInstance: with SQLite this Bay is the only one using the database.
func singleInstance(cfg *config.Config) bool { return cfg.Database.Driver == config.DriverSQLite }

// Close releases everything New opened, in reverse order.
func (a *App) Close() error {
	var list []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		list = append(list, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(list...)
}
