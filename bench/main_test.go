package bench

import (
	"net/http"
	"os"
	"testing"
)

// floorServerEnv makes the test binary a minimal HTTP server (the floor of
// "process start to first 200" that Bay's start is compared with).
const floorServerEnv = "SHIPYARD_BENCH_FLOOR_SERVER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(floorServerEnv); addr != "" {
		// The same work a minimal Go service does: listen and answer /health.
		err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		}))
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
