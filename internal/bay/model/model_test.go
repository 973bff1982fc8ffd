package model

import (
	"strings"
	"testing"
	"time"
)

func TestFormatTime(t *testing.T) {
	base := time.Date(2026, 2, 2, 10, 0, 0, 0, time.UTC)
	cases := map[time.Time]string{
		base:                                "2026-02-02T10:00:00",
		base.Add(123400 * time.Microsecond): "2026-02-02T10:00:00.123400",
		base.Add(999 * time.Nanosecond):     "2026-02-02T10:00:00",
		base.In(time.FixedZone("X", 3600)):  "2026-02-02T10:00:00",
	}
	for in, want := range cases {
		if got := FormatTime(in); got != want {
			t.Errorf("%v → %s, want %s", in, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	cases := []struct {
		name string
		sb   Sandbox
		ss   *Session
		want string
	}{
		{"deleted", Sandbox{DeletedAt: &past}, nil, StatusDeleted},
		{"expired", Sandbox{ExpiresAt: &past}, &Session{ObservedState: SessionRunning}, StatusExpired},
		{"idle", Sandbox{ExpiresAt: &future}, nil, StatusIdle},
		{"ready", Sandbox{}, &Session{ObservedState: SessionRunning}, StatusReady},
		{"starting", Sandbox{}, &Session{ObservedState: SessionStarting}, StatusStarting},
		{"pending", Sandbox{}, &Session{ObservedState: SessionPending}, StatusStarting},
		{"failed", Sandbox{}, &Session{ObservedState: SessionFailed}, StatusFailed},
		{"stopped", Sandbox{}, &Session{ObservedState: SessionStopped}, StatusIdle},
	}
	for _, c := range cases {
		if got := c.sb.Status(now, c.ss); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestNewID(t *testing.T) {
	id := NewID("sandbox")
	if !strings.HasPrefix(id, "sandbox-") || len(id) != len("sandbox-")+12 || id == NewID("sandbox") {
		t.Fatalf("%s", id)
	}
}
