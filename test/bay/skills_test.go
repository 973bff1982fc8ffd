package bay_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/shipyard/shipyard/test/baytest"
)

// TestSkillsScenario walks the skills lifecycle as the upstream SDK would:
// payload → candidate from real executions → evaluate → promote → second
// version → health → rollback → delete.
func TestSkillsScenario(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{})
	id := b.CreateSandbox(t, map[string]any{"ttl": 600})
	py := b.Python(t, id, "print(6*7)")
	sh := b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/shell/exec",
		Body: map[string]any{"command": "echo hi"}})
	execs := []any{py["execution_id"], sh["execution_id"]}

	p := b.Must(t, http.StatusCreated, baytest.Req{Method: "POST", Path: "/v1/skills/payloads",
		Body: map[string]any{"payload": map[string]any{"steps": []any{"a", "<b>"}}}})
	ref, _ := p["payload_ref"].(string)
	if !strings.HasPrefix(ref, "blob:blob-") || p["kind"] != "generic" {
		t.Fatalf("payload: %v", p)
	}
	got := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/skills/payloads/" + ref})
	if got.Status != http.StatusOK || !strings.Contains(string(got.Body), `"payload":{"steps":["a","<b>"]}`) {
		t.Fatalf("get payload: %d %s", got.Status, got.Body)
	}

	newCandidate := func() map[string]any {
		return b.Must(t, http.StatusCreated, baytest.Req{Method: "POST", Path: "/v1/skills/candidates",
			Body: map[string]any{"skill_key": "csv-report", "source_execution_ids": execs, "payload_ref": ref,
				"summary": "make a report", "preconditions": map[string]any{"python": true}}})
	}
	c1 := newCandidate()
	cid := c1["id"].(string)
	if !strings.HasPrefix(cid, "sc-") || c1["status"] != "draft" || c1["created_by"] != "default" ||
		len(c1["source_execution_ids"].([]any)) != 2 || c1["preconditions"].(map[string]any)["python"] != true {
		t.Fatalf("candidate: %v", c1)
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/skills/candidates",
		Body: map[string]any{"skill_key": "x", "source_execution_ids": []any{"exec-000000000000"}}}); r.Status != 400 ||
		r.Code() != "validation_error" {
		t.Fatalf("unknown execution: %d %s", r.Status, r.Body)
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/skills/candidates", Body: map[string]any{"skill_key": "x"}}); r.Status != 422 {
		t.Fatalf("missing ids: %d %s", r.Status, r.Body)
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/skills/candidates/" + cid + "/promote",
		Body: map[string]any{"stage": "canary"}}); r.Status != http.StatusConflict || r.Code() != "conflict" {
		t.Fatalf("promotion without evaluation: %d %s", r.Status, r.Body)
	}

	ev := b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/skills/candidates/" + cid + "/evaluate",
		Body: map[string]any{"passed": true, "score": 1.0, "benchmark_id": "bench-1"}})
	if !strings.HasPrefix(ev["id"].(string), "se-") || ev["passed"] != true || ev["candidate_id"] != cid {
		t.Fatalf("evaluation: %v", ev)
	}
	r1 := b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/skills/candidates/" + cid + "/promote",
		Body: map[string]any{"stage": "canary"}})
	if r1["version"] != float64(1) || r1["is_active"] != true || r1["release_mode"] != "manual" {
		t.Fatalf("release 1: %v", r1)
	}
	rid1 := r1["id"].(string)

	// Executions tagged release:<id> feed the health window.
	b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec",
		Body: map[string]any{"code": "1+1", "tags": "release:" + rid1}})
	h := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/skills/releases/" + rid1 + "/health"})
	if h["samples"] != float64(1) || h["success_rate"] != 1.0 || h["healthy"] != true || h["should_rollback"] != false {
		t.Fatalf("health: %v", h)
	}
	raw := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/skills/releases/" + rid1 + "/health"})
	if !strings.Contains(string(raw.Body), `"thresholds":{"success_drop":0.03,"error_rate_multiplier":2.0}`) {
		t.Fatalf("health body: %s", raw.Body)
	}

	c2 := newCandidate()
	b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/skills/candidates/" + c2["id"].(string) + "/evaluate",
		Body: map[string]any{"passed": true}})
	r2 := b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/skills/candidates/" + c2["id"].(string) + "/promote",
		Body: map[string]any{"stage": "stable", "upgrade_of_release_id": rid1, "change_summary": "faster"}})
	if r2["version"] != float64(2) || r2["upgrade_of_release_id"] != rid1 {
		t.Fatalf("release 2: %v", r2)
	}
	active := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/skills/releases?skill_key=csv-report&active_only=true"})
	if active["total"] != float64(1) || active["items"].([]any)[0].(map[string]any)["id"] != r2["id"] {
		t.Fatalf("active releases: %v", active)
	}

	rb := b.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/skills/releases/" + r2["id"].(string) + "/rollback"})
	if rb["version"] != float64(3) || rb["candidate_id"] != cid || rb["rollback_of"] != r2["id"] || rb["stage"] != "canary" {
		t.Fatalf("rollback: %v", rb)
	}
	c2now := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/skills/candidates/" + c2["id"].(string)})
	if c2now["status"] != "rolled_back" {
		t.Fatalf("rolled back candidate: %v", c2now)
	}
	if r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/skills/releases/" + rid1 + "/rollback"}); r.Status != http.StatusConflict {
		t.Fatalf("rollback of the first: %d %s", r.Status, r.Body)
	}

	// Deletes are soft and answer {id, deleted_at, deleted_by, delete_reason}.
	if r := b.Do(t, baytest.Req{Method: "DELETE", Path: "/v1/skills/candidates/" + cid}); r.Status != http.StatusConflict {
		t.Fatalf("delete a candidate in use: %d %s", r.Status, r.Body)
	}
	d := b.Must(t, http.StatusOK, baytest.Req{Method: "DELETE", Path: "/v1/skills/releases/" + rb["id"].(string),
		Body: map[string]any{"reason": "done"}})
	if d["delete_reason"] != "done" || d["deleted_by"] != "default" || d["deleted_at"] == nil {
		t.Fatalf("delete release: %v", d)
	}
	b.Must(t, http.StatusOK, baytest.Req{Method: "DELETE", Path: "/v1/skills/candidates/" + cid})
	b.Must(t, http.StatusNotFound, baytest.Req{Method: "GET", Path: "/v1/skills/candidates/" + cid})
	list := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/skills/candidates?skill_key=csv-report"})
	if list["total"] != float64(1) {
		t.Fatalf("candidates after delete: %v", list)
	}
	rels := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/skills/releases?skill_key=csv-report"})
	if rels["total"] != float64(2) {
		t.Fatalf("releases after delete: %v", rels)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/skills/candidates?status=bogus"}); r.Status != 400 {
		t.Fatalf("bad status: %d %s", r.Status, r.Body)
	}
	if r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/skills/releases?limit=0"}); r.Status != 422 {
		t.Fatalf("bad limit: %d %s", r.Status, r.Body)
	}
}
