package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/driver"
	"github.com/shipyard/shipyard/internal/bay/errs"
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

// The start-up check runs in the background: asking about a profile waits
// for it (or for the asker's context), and creating a sandbox of a profile
// it found unavailable is refused with its reason.
func TestProfileCheckInBackground(t *testing.T) {
	s := &Service{}
	if why := s.Unavailable(t.Context(), "p"); why != "" {
		t.Fatalf("no check: %q, want available", why)
	}
	release := make(chan struct{})
	wait := s.CheckProfiles(func() map[string]string {
		<-release
		return map[string]string{"p": "no runtime"}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if why := s.Unavailable(ctx, "p"); why != "" {
		t.Fatalf("check still running, asker gave up: %q, want \"\"", why)
	}
	got := make(chan string)
	go func() { got <- s.Unavailable(t.Context(), "p") }()
	select {
	case why := <-got:
		t.Fatalf("answered %q before the check returned", why)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if why := <-got; why != "no runtime" {
		t.Fatalf("after the check: %q, want its reason", why)
	}
	wait()
	err := s.checkAvailable(t.Context(), "p")
	if e, ok := errs.As(err); !ok || e.Code != errs.ProfileUnavailable {
		t.Fatalf("checkAvailable = %v, want %s", err, errs.ProfileUnavailable)
	}
	if err := s.checkAvailable(t.Context(), "other"); err != nil {
		t.Fatalf("another profile: %v", err)
	}
}
