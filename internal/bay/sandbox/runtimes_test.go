package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
)

type runtimesDriver struct {
	driver.Driver
	have []string
	err  error
}

func (r runtimesDriver) Runtimes(context.Context) ([]string, error) { return r.have, r.err }

// A profile whose OCI runtime the engine lacks is unavailable with a reason
// that names it, also when the driver is wrapped (as Bay wraps it with
// driver.MarkUnavailable); an engine that cannot list runtimes leaves the
// profiles to be tried.
func TestUnavailableRuntimes(t *testing.T) {
	cfg := config.Default() // python-secure needs runsc
	cases := []struct {
		name    string
		d       driver.Driver
		missing bool
		err     bool
	}{
		{"runsc registered", runtimesDriver{have: []string{"runc", "runsc"}}, false, false},
		{"runsc missing", runtimesDriver{have: []string{"runc"}}, true, false},
		{"runsc missing, driver wrapped", driver.MarkUnavailable(runtimesDriver{have: []string{"runc"}}, func(error) bool { return false }), true, false},
		{"engine does not answer", runtimesDriver{err: errors.New("connection refused")}, false, true},
		{"driver cannot list runtimes", plainDriver{}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnavailableProfiles(t.Context(), tc.d, cfg)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v", err)
			}
			why := got["python-secure"]
			if tc.missing != (why != "") || tc.missing && !strings.Contains(why, `"runsc"`) {
				t.Fatalf("python-secure: %q", why)
			}
			if got["python-default"] != "" {
				t.Fatalf("python-default marked unavailable: %q", got["python-default"])
			}
		})
	}
}
