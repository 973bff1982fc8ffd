package sandbox

import (
	"math"
	"testing"
	"time"
)

// TestAddSecondsSaturates: issue 8 finding 3. A TTL or extend_by above ~9.2e9 s
// used to wrap time.Duration into the past (a date in 1737), expiring the sandbox.
func TestAddSecondsSaturates(t *testing.T) {
	now := time.Date(2026, 2, 2, 10, 0, 0, 123400000, time.UTC)
	cases := []struct {
		name string
		n    int
		want time.Time
	}{
		{"zero adds nothing", 0, now},
		{"negative adds nothing", -5, now},
		{"one hour", 3600, now.Add(time.Hour)},
		{"ten years", 315_360_000, now.Add(315_360_000 * time.Second)},
		{"just past time.Duration", 9_223_372_037, time.Unix(now.Unix()+9_223_372_037, int64(now.Nanosecond())).UTC()},
		{"1e11 s (year 5196)", 100_000_000_000, time.Unix(now.Unix()+100_000_000_000, int64(now.Nanosecond())).UTC()},
		{"1e12 s saturates", 1_000_000_000_000, MaxExpiry},
		{"max int", math.MaxInt, MaxExpiry},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := AddSeconds(now, c.n)
			if !got.Equal(c.want) {
				t.Fatalf("AddSeconds(now, %d) = %v, want %v", c.n, got, c.want)
			}
			if got.Before(now) || got.After(MaxExpiry) {
				t.Fatalf("AddSeconds(now, %d) = %v outside [now, MaxExpiry]", c.n, got)
			}
		})
	}
	if got := AddSeconds(MaxExpiry, 10); !got.Equal(MaxExpiry) {
		t.Fatalf("extending MaxExpiry: %v", got)
	}
}

func FuzzAddSeconds(f *testing.F) {
	f.Add(int64(1_700_000_000), 3600)
	f.Add(int64(1_700_000_000), math.MaxInt)
	f.Add(int64(253402300799), 1)
	f.Fuzz(func(t *testing.T, unix int64, n int) {
		if unix < 0 || unix > MaxExpiry.Unix() {
			return
		}
		base := time.Unix(unix, 0).UTC()
		got := AddSeconds(base, n)
		if got.Before(base) || got.After(MaxExpiry) {
			t.Fatalf("AddSeconds(%v, %d) = %v", base, n, got)
		}
	})
}
