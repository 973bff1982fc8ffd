package bay_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
	"github.com/shipyard/shipyard/test/baytest"
)

// TestCommitCutDuringCreate: PostgreSQL receives a create's COMMIT and goes
// away before answering (a proxy drops the connection there). The client gets
// 503 database_unavailable; a retry with the same Idempotency-Key gets the
// sandbox (or cargo) that did get made, never a second one, and it works;
// without a key, what got made is removed, since nobody knows its id.
func TestCommitCutDuringCreate(t *testing.T) {
	baytest.Skip(t)
	cutter, dsn := storetest.NewCommitCutter(t, storetest.FreshDSN(t, store.Postgres))
	bay := baytest.Start(t, baytest.Options{Postgres: dsn})

	// cut sends req with the COMMIT of the transaction carrying match cut,
	// expects a 503, then retries until the database answers.
	cut := func(t *testing.T, match string, req baytest.Req) *baytest.Response {
		t.Helper()
		before := cutter.Cuts()
		cutter.Arm(match)
		first := bay.Do(t, req)
		if cutter.Cuts() != before+1 {
			t.Fatalf("no COMMIT was cut: %d %s", first.Status, first.Body)
		}
		if first.Status != http.StatusServiceUnavailable || first.Code() != "database_unavailable" || first.Header.Get("Retry-After") == "" {
			t.Fatalf("answer to a cut commit: %d %s (Retry-After %q), want 503 database_unavailable",
				first.Status, first.Body, first.Header.Get("Retry-After"))
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			r := bay.Do(t, req)
			if r.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return r
			}
		}
	}
	count := func(t *testing.T, path string) int {
		t.Helper()
		items, _ := bay.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: path})["items"].([]any)
		return len(items)
	}
	key := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

	t.Run("sandbox with a key", func(t *testing.T) {
		req := baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{}, Headers: key("cut-sandbox")}
		r := cut(t, "python-default", req) // the profile is bound by the sandbox's INSERT only
		if r.Status != http.StatusCreated {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		id, _ := r.JSON()["id"].(string)
		if n := count(t, "/v1/sandboxes"); n != 1 {
			t.Fatalf("%d sandboxes after a cut create and its retry, want 1", n)
		}
		again := bay.Must(t, http.StatusCreated, req)
		if again["id"] != id {
			t.Errorf("a second retry answered sandbox %v, the first %s", again["id"], id)
		}
		// Its workspace volume was made when the create was resolved: it runs.
		out := bay.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec",
			Body: map[string]any{"command": "echo made > made.txt && cat made.txt"}})
		if out["output"] != "made" {
			t.Errorf("shell in the resolved sandbox: %v", out)
		}
	})

	t.Run("sandbox without a key", func(t *testing.T) {
		req := baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{}}
		before := count(t, "/v1/sandboxes")
		cutter.Arm("python-default")
		if r := bay.Do(t, req); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("answer to a cut commit: %d %s", r.Status, r.Body)
		}
		// It was made (the server committed) and is then removed, with its volume.
		vols := func() int {
			list, err := baytest.Docker(t).VolumeList(context.Background(), volume.ListOptions{
				Filters: filters.NewArgs(filters.Arg("label", "bay.instance_id="+bay.InstanceID))})
			if err != nil {
				t.Fatal(err)
			}
			return len(list.Volumes)
		}
		for deadline := time.Now().Add(20 * time.Second); count(t, "/v1/sandboxes") != before || vols() != before; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d sandboxes and %d volumes after a cut create without a key, want %d", count(t, "/v1/sandboxes"), vols(), before)
			}
		}
	})

	t.Run("the key's reservation", func(t *testing.T) {
		// The reservation committed but Bay could not know: it drops it once the
		// database answers, or every retry would wait for a request that is over.
		before := count(t, "/v1/cargos")
		req := baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{}, Headers: key("cut-reservation")}
		if r := cut(t, "cut-reservation", req); r.Status != http.StatusCreated {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		if n := count(t, "/v1/cargos"); n != before+1 {
			t.Fatalf("%d cargos after a cut reservation and its retry, want %d", n, before+1)
		}
	})

	t.Run("cargo with a key", func(t *testing.T) {
		req := baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{"size_limit_mb": 64}, Headers: key("cut-cargo")}
		r := cut(t, "bay-cargo-", req) // the volume name is bound by the cargo's INSERT only
		if r.Status != http.StatusCreated {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		if n := count(t, "/v1/cargos"); n != 2 {
			t.Fatalf("%d cargos after a cut create and its retry, want 2 (one of the previous subtest)", n)
		}
	})
}
