// Package sessiontest names the in-memory driver the session tests use: it is
// driver/fake (which passes the driver conformance suite), kept under this
// name for the tests of the services built on sessions.
package sessiontest

import "github.com/shipyard/shipyard/internal/bay/driver/fake"

// Driver is the in-memory driver whose containers are fake Ships.
type Driver = fake.Driver

// Ship is one fake runtime.
type Ship = fake.Ship

// NewDriver returns an empty driver; Close stops its Ships.
func NewDriver() *Driver { return fake.New() }
