package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/docker"
	"github.com/shipyard/shipyard/internal/bay/driver/k8s"
)

// driverFactory opens the driver of one driver.type: ready for use, with its
// errors of an unreachable engine marked driver.ErrUnavailable (503, not 500),
// and the function that releases it.
type driverFactory func(ctx context.Context, cfg *config.Config, log *slog.Logger) (driver.Driver, func() error, error)

// transportWrapper is implemented by drivers whose runtime endpoints need
// their own transport (Kubernetes: the API server's pod proxy); app hands it
// to the runtime client.
type transportWrapper interface {
	WrapTransport(http.RoundTripper) http.RoundTripper
}

// driverFactories is the registry of drivers, by driver.type.
func driverFactories() map[string]driverFactory {
	return map[string]driverFactory{
		config.DriverDocker: openDocker,
		config.DriverK8s:    openK8s,
	}
}

// openDriver opens the driver the config names.
func openDriver(ctx context.Context, cfg *config.Config, log *slog.Logger) (driver.Driver, func() error, error) {
	all := driverFactories()
	open, ok := all[cfg.Driver.Type]
	if !ok {
		names := make([]string, 0, len(all))
		for n := range all {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, nil, fmt.Errorf("driver.type %q is not supported (have %s)", cfg.Driver.Type, strings.Join(names, ", "))
	}
	return open(ctx, cfg, log)
}

func openDocker(ctx context.Context, cfg *config.Config, log *slog.Logger) (driver.Driver, func() error, error) {
	d, err := docker.New(dockerConfig(cfg, log))
	if err != nil {
		return nil, nil, err
	}
	if err := d.Prepare(ctx); err != nil {
		_ = d.Close()
		return nil, nil, err
	}
	return driver.MarkUnavailable(d, docker.Unreachable), d.Close, nil
}

func openK8s(ctx context.Context, cfg *config.Config, log *slog.Logger) (driver.Driver, func() error, error) {
	k := cfg.Driver.K8s
	d, err := k8s.New(k8s.Config{
		Namespace: k.Namespace, Kubeconfig: k.Kubeconfig, StorageClass: k.StorageClass,
		DefaultStorageSize: k.DefaultStorageSize, ImagePullSecrets: k.ImagePullSecrets,
		PullPolicy: cfg.Driver.ImagePullPolicy, StartTimeout: k.PodStartupTimeout(),
		LabelPrefix: k.LabelPrefix, ChownWorkspace: k8s.Bool(k.ChownWorkspace), Endpoint: k.Endpoint, Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	// As with Docker, an API server that does not answer at start-up is fatal:
	// a misconfigured kubeconfig or Role should fail the start, not every call.
	if err := d.Ping(ctx); err != nil {
		return nil, nil, err
	}
	return driver.MarkUnavailable(d, k8s.Unreachable), d.Close, nil
}

// runtimeTransport is the WrapTransport of d or of a driver it wraps; nil if none.
func runtimeTransport(d driver.Driver) func(http.RoundTripper) http.RoundTripper {
	for {
		if w, ok := d.(transportWrapper); ok {
			return w.WrapTransport
		}
		u, ok := d.(interface{ Unwrap() driver.Driver })
		if !ok {
			return nil
		}
		d = u.Unwrap()
	}
}
