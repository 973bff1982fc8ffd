package driver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shipyard/shipyard/internal/bay/driver"
)

var errDial = errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")

// failing fails every call it implements with err (the rest is never called).
type failing struct {
	driver.Driver
	err error
}

func (f failing) CreateSession(context.Context, driver.SessionSpec) (*driver.Session, error) {
	return nil, f.err
}
func (f failing) InspectSession(context.Context, string) (*driver.Session, error) { return nil, f.err }
func (f failing) Ping(context.Context) error                                      { return f.err }

func TestMarkUnavailable(t *testing.T) {
	unreachable := func(err error) bool { return errors.Is(err, errDial) }
	tests := []struct {
		name   string
		err    error
		marked bool
	}{
		{"engine unreachable", errDial, true},
		{"engine refused the request", errors.New("conflict: name in use"), false},
		{"caller gave up", context.Canceled, false},
		{"no error", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := driver.MarkUnavailable(failing{err: tt.err}, unreachable)
			_, err := d.CreateSession(t.Context(), driver.SessionSpec{})
			_, serr := d.InspectSession(t.Context(), "x")
			for _, got := range []error{err, serr, d.Ping(t.Context())} {
				if errors.Is(got, driver.ErrUnavailable) != tt.marked {
					t.Errorf("%v: marked %v, want %v", got, !tt.marked, tt.marked)
				}
				if !errors.Is(got, tt.err) {
					t.Errorf("%v does not wrap %v", got, tt.err)
				}
			}
		})
	}
}
