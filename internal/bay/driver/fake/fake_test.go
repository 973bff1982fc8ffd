package fake_test

import (
	"context"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/driver/drivertest"
	"github.com/shipyard/shipyard/internal/bay/driver/fake"
)

// The fake passes the suite the real drivers pass, so what services learn
// from it holds on Docker and Kubernetes too.
func TestConformance(t *testing.T) {
	d := fake.New()
	d.MissingImages = []string{drivertest.MissingImage}
	t.Cleanup(d.Close)
	drivertest.Run(t, d, drivertest.Options{
		Image:      "ship:latest",
		PortEnv:    "SHIP_PORT",
		HealthPath: "/health",
		WriteFile: func(_ context.Context, c driver.Container, path, data string) error {
			return d.WriteFile(c.ID, path, data)
		},
		ReadFile: func(_ context.Context, c driver.Container, path string) (string, error) {
			return d.ReadFile(c.ID, path)
		},
		Dial: func(_ context.Context, c driver.Container, addr string) error { return d.Dial(c.ID, addr) },
	})
}
