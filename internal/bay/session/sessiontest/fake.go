// Package sessiontest holds what the tests of the services built on sessions
// share: the in-memory driver (driver/fake, which passes the driver
// conformance suite) under this name, a private SQLite store, a session
// manager over them, and a stored sandbox to run sessions for.
package sessiontest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/fake"
	"github.com/shipyard/shipyard/internal/bay/keylock"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/session"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Driver is the in-memory driver whose containers are fake Ships.
type Driver = fake.Driver

// Ship is one fake runtime.
type Ship = fake.Ship

// NewDriver returns an empty driver; Close stops its Ships.
func NewDriver() *Driver { return fake.New() }

// ShipSpec and GullSpec are the containers of the test profiles: a Ship alone, or a
// Ship with a browser beside it.
var (
	ShipSpec = session.ContainerSpec{Name: "ship", Image: "ship:latest", RuntimeType: "ship", Port: 8123}
	GullSpec = session.ContainerSpec{Name: "browser", Image: "gull:latest", RuntimeType: "gull", Port: 8115}
)

// Profile is a profile of those containers with an hour's idle timeout.
func Profile(id string, containers ...session.ContainerSpec) *session.Profile {
	return &session.Profile{ID: id, IdleTimeout: time.Hour, Containers: containers}
}

// Store opens a private in-memory SQLite store, closed when the test ends.
func Store(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.SQLite, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Manager builds a session manager over st and d with its own runtime
// client (closed when the test ends) and a logger that writes nowhere.
func Manager(t testing.TB, st session.Store, d driver.Driver, cfg session.Config) *session.Manager {
	t.Helper()
	rt := runtime.New(runtime.Config{})
	t.Cleanup(rt.Close)
	return session.New(st, d, rt, keylock.New(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), session.Hooks{})
}

// Sandbox stores a sandbox of owner on profileID with its managed cargo, as
// a create does.
func Sandbox(t testing.TB, st *store.Store, owner, profileID string) *model.Sandbox {
	t.Helper()
	now := time.Now().UTC()
	cargo := &model.Cargo{ID: model.NewID("ws"), Owner: owner, Managed: true, Backend: "docker",
		DriverRef: "vol", CreatedAt: now, LastAccessedAt: now}
	sb := &model.Sandbox{ID: model.NewID("sandbox"), Owner: owner, ProfileID: profileID, CargoID: cargo.ID,
		CreatedAt: now, LastActiveAt: now}
	cargo.ManagedBySandboxID = sb.ID
	if err := st.CreateSandbox(context.Background(), sb, cargo); err != nil {
		t.Fatal(err)
	}
	return sb
}
