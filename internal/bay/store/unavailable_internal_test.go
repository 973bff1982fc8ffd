package store

import "testing"

func TestWithConnectTimeout(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h:5432/db":            "postgres://u:p@h:5432/db?connect_timeout=5",
		"postgresql://u@h/db?sslmode=disable": "postgresql://u@h/db?sslmode=disable&connect_timeout=5",
		"postgres://u@h/db?connect_timeout=1": "postgres://u@h/db?connect_timeout=1",
		"host=h user=u dbname=db":             "host=h user=u dbname=db connect_timeout=5",
		"host=h connect_timeout=30":           "host=h connect_timeout=30",
	} {
		if got := withConnectTimeout(in); got != want {
			t.Errorf("withConnectTimeout(%q) = %q, want %q", in, got, want)
		}
	}
}
