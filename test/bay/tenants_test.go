package bay_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
	"github.com/shipyard/shipyard/internal/bay/store/storetest"
	"github.com/shipyard/shipyard/test/baytest"
)

// tenantBays starts two Bays on one fresh PostgreSQL database, as two replicas
// of one deployment (same instance id, their own replica ids).
func tenantBays(t *testing.T, env map[string]string) (a, b *baytest.Bay) {
	t.Helper()
	baytest.Skip(t)
	if storetest.PostgresDSN() == "" {
		t.Skip("set SHIPYARD_TEST_PG_DSN (make test does, from scripts/pg.sh)")
	}
	dsn := storetest.FreshDSN(t, store.Postgres)
	inst := model.NewID("test")
	start := func(replica string) *baytest.Bay {
		e := map[string]string{"BAY_REPLICA__ID": replica}
		for k, v := range env {
			e[k] = v
		}
		return baytest.Start(t, baytest.Options{Postgres: dsn, InstanceID: inst, Env: e})
	}
	return start("tenants-a"), start("tenants-b")
}

// mint makes a key through the admin API with the configured (legacy) key.
func mint(t *testing.T, b *baytest.Bay, owner string, admin bool) (key, id string) {
	t.Helper()
	r := b.Do(t, baytest.Req{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{"owner": owner, "admin": admin, "label": "e2e"}})
	m := r.JSON()
	key, _ = m["key"].(string)
	id, _ = m["id"].(string)
	if r.Status != http.StatusCreated || !strings.HasPrefix(key, "sk-bay-") || m["owner"] != owner || m["admin"] != admin ||
		!strings.HasPrefix(key, m["prefix"].(string)) || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("mint %s: %d %s", owner, r.Status, r.Body)
	}
	return key, id
}

// TestTenantIsolation: keys of two owners, on two replicas, never see or
// touch each other's sandboxes, cargos, history or skills, on any route.
func TestTenantIsolation(t *testing.T) {
	a, b := tenantBays(t, nil)
	alice, _ := mint(t, a, "alice", false)
	bob, _ := mint(t, b, "bob", false)
	as := func(key string, r baytest.Req) baytest.Req { r.Key = key; return r }

	// Alice's things, made through replica a.
	sb := a.Must(t, http.StatusCreated, as(alice, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"ttl": 600},
		Headers: map[string]string{"Idempotency-Key": "same-key"}}))["id"].(string)
	py := a.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + sb + "/python/exec",
		Body: map[string]any{"code": "open('secret.txt','w').write('alice-secret'); print('alice-out')", "tags": "mine"}}))
	eid := py["execution_id"].(string)
	cargo := a.Must(t, http.StatusCreated, as(alice, baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{"size_limit_mb": 64}}))["id"].(string)
	ref := a.Must(t, http.StatusCreated, as(alice, baytest.Req{Method: "POST", Path: "/v1/skills/payloads",
		Body: map[string]any{"payload": map[string]any{"alice": "payload"}}}))["payload_ref"].(string)
	cand := a.Must(t, http.StatusCreated, as(alice, baytest.Req{Method: "POST", Path: "/v1/skills/candidates",
		Body: map[string]any{"skill_key": "alice-skill", "source_execution_ids": []any{eid}, "payload_ref": ref}}))["id"].(string)
	a.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "POST", Path: "/v1/skills/candidates/" + cand + "/evaluate",
		Body: map[string]any{"passed": true, "score": 1.0}}))
	rel := a.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "POST", Path: "/v1/skills/candidates/" + cand + "/promote",
		Body: map[string]any{}}))["id"].(string)

	// Bob, through replica b, on every route that names one of them.
	S := "/v1/sandboxes/" + sb
	probes := []baytest.Req{
		{Method: "GET", Path: S},
		{Method: "POST", Path: S + "/extend_ttl", Body: map[string]any{"extend_by": 60}},
		{Method: "POST", Path: S + "/keepalive"},
		{Method: "POST", Path: S + "/python/exec", Body: map[string]any{"code": "print(open('secret.txt').read())"}},
		{Method: "POST", Path: S + "/shell/exec", Body: map[string]any{"command": "cat secret.txt"}},
		{Method: "GET", Path: S + "/filesystem/files?path=secret.txt"},
		{Method: "PUT", Path: S + "/filesystem/files", Body: map[string]any{"path": "secret.txt", "content": "bob"}},
		{Method: "GET", Path: S + "/filesystem/directories?path=."},
		{Method: "GET", Path: S + "/filesystem/download?path=secret.txt"},
		{Method: "GET", Path: S + "/history"},
		{Method: "GET", Path: S + "/history/last"},
		{Method: "GET", Path: S + "/history/" + eid},
		{Method: "PATCH", Path: S + "/history/" + eid, Body: map[string]any{"notes": "bob was here"}},
		{Method: "GET", Path: S + "/ports"},
		{Method: "POST", Path: S + "/ports/tokens", Body: map[string]any{"port": 8000}},
		{Method: "DELETE", Path: S + "/ports/tokens"},
		{Method: "GET", Path: S + "/ports/8000/"},
		{Method: "GET", Path: S + "/processes"},
		{Method: "POST", Path: S + "/processes", Body: map[string]any{"command": "sleep 1"}},
		{Method: "GET", Path: S + "/processes/proc-000000000000"},
		{Method: "POST", Path: S + "/browser/exec", Body: map[string]any{"cmd": "snapshot"}},
		{Method: "POST", Path: S + "/browser/exec_batch", Body: map[string]any{"commands": []any{"snapshot"}}},
		{Method: "POST", Path: S + "/browser/skills/alice-skill/run", Body: map[string]any{}},
		{Method: "GET", Path: S + "/terminal", Headers: map[string]string{"Connection": "Upgrade", "Upgrade": "websocket",
			"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}},
		{Method: "GET", Path: "/v1/cargos/" + cargo},
		{Method: "GET", Path: "/v1/skills/payloads/" + ref},
		{Method: "GET", Path: "/v1/skills/candidates/" + cand},
		{Method: "POST", Path: "/v1/skills/candidates/" + cand + "/evaluate", Body: map[string]any{"passed": false}},
		{Method: "POST", Path: "/v1/skills/candidates/" + cand + "/promote", Body: map[string]any{}},
		{Method: "GET", Path: "/v1/skills/releases/" + rel + "/health"},
		{Method: "POST", Path: "/v1/skills/releases/" + rel + "/rollback"},
		// Destructive ones last: if any got through, the checks below say so.
		{Method: "DELETE", Path: "/v1/skills/releases/" + rel},
		{Method: "DELETE", Path: "/v1/skills/candidates/" + cand},
		{Method: "DELETE", Path: S + "/filesystem/files?path=secret.txt"},
		{Method: "POST", Path: S + "/stop"},
		{Method: "DELETE", Path: S},
		{Method: "DELETE", Path: "/v1/cargos/" + cargo},
	}
	for _, p := range probes {
		r := b.Do(t, as(bob, p))
		if r.Status != http.StatusNotFound || strings.Contains(string(r.Body), "alice") {
			t.Errorf("bob: %s %s: %d %s, want 404", p.Method, p.Path, r.Status, r.Body)
		}
	}
	// Using alice's things by reference.
	if r := b.Do(t, as(bob, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"cargo_id": cargo}})); r.Status != http.StatusNotFound {
		t.Errorf("bob attaches alice's cargo: %d %s", r.Status, r.Body)
	}
	if r := b.Do(t, as(bob, baytest.Req{Method: "POST", Path: "/v1/skills/candidates",
		Body: map[string]any{"skill_key": "steal", "source_execution_ids": []any{eid}}})); r.Status != http.StatusBadRequest {
		t.Errorf("bob's candidate from alice's execution: %d %s", r.Status, r.Body)
	}
	// Idempotency keys are per owner: bob's replay of alice's key makes bob's own sandbox.
	mine := b.Must(t, http.StatusCreated, as(bob, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Body: map[string]any{"ttl": 600},
		Headers: map[string]string{"Idempotency-Key": "same-key"}}))["id"].(string)
	if mine == sb {
		t.Fatal("bob's request with alice's Idempotency-Key got alice's sandbox")
	}
	// Lists: bob sees only his own.
	for _, path := range []string{"/v1/sandboxes", "/v1/cargos?managed=true", "/v1/cargos", "/v1/skills/candidates", "/v1/skills/releases"} {
		r := b.Do(t, as(bob, baytest.Req{Method: "GET", Path: path}))
		for _, id := range []string{sb, cargo, cand, rel} {
			if r.Status != http.StatusOK || strings.Contains(string(r.Body), id) {
				t.Errorf("bob lists %s: %d, shows alice's %s: %s", path, r.Status, id, r.Body)
			}
		}
	}
	// MCP: the same owner scoping.
	cs, err := mcpHTTP(t, b, bob)
	if err != nil {
		t.Fatalf("mcp: %v", err)
	}
	defer cs.Close()
	c := mcpCall{t, cs}
	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"execute_python", map[string]any{"sandbox_id": sb, "code": "print(open('secret.txt').read())"}},
		{"read_file", map[string]any{"sandbox_id": sb, "path": "secret.txt"}},
		{"get_execution_history", map[string]any{"sandbox_id": sb}},
		{"get_skill_payload", map[string]any{"payload_ref": ref}},
	} {
		txt, res := c.call(call.tool, call.args)
		if !res.IsError || strings.Contains(txt, "alice") {
			t.Errorf("bob via MCP %s: IsError=%v %s", call.tool, res.IsError, txt)
		}
	}

	// Alice's things are intact, seen from either replica.
	for _, bay := range []*baytest.Bay{a, b} {
		got := bay.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "GET", Path: S + "/filesystem/files?path=secret.txt"}))
		if got["content"] != "alice-secret" {
			t.Fatalf("alice's file after bob's attempts: %v", got)
		}
		h := bay.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "GET", Path: S + "/history/" + eid}))
		if h["notes"] != nil {
			t.Fatalf("alice's history entry was annotated: %v", h)
		}
		bay.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "GET", Path: "/v1/cargos/" + cargo}))
		bay.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "GET", Path: "/v1/skills/candidates/" + cand}))
		bay.Must(t, http.StatusOK, as(alice, baytest.Req{Method: "GET", Path: "/v1/skills/releases/" + rel + "/health"}))
	}
}

// TestTenantKeysAcrossReplicas: a key revoked (or rotated) through one replica
// is refused by another within a second; the admin routes refuse tenant keys;
// the configured key is the default owner's admin key, as before tenants.
func TestTenantKeysAcrossReplicas(t *testing.T) {
	a, b := tenantBays(t, nil)
	dave, daveID := mint(t, a, "dave", false)
	b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: dave})

	// Revoke on a; b refuses at once (it reads the key per request).
	revoked := a.Must(t, http.StatusOK, baytest.Req{Method: "DELETE", Path: "/v1/admin/keys/" + daveID})
	at := time.Now()
	if revoked["active"] != false || revoked["revoked_at"] == nil || revoked["key"] != nil {
		t.Fatalf("revoke answer: %v", revoked)
	}
	for {
		r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: dave})
		if r.Status == http.StatusUnauthorized && r.Code() == "unauthorized" {
			break
		}
		if time.Since(at) > time.Second {
			t.Fatalf("revoked key still accepted by the other replica after %v: %d", time.Since(at), r.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("revoked key refused by the other replica after %v", time.Since(at))

	// Rotate on b: the new key works on a, the old one is refused on both.
	erin, erinID := mint(t, b, "erin", false)
	rot := b.Must(t, http.StatusCreated, baytest.Req{Method: "POST", Path: "/v1/admin/keys/" + erinID + "/rotate"})
	next, _ := rot["key"].(string)
	if rot["owner"] != "erin" || rot["rotated_from"] != erinID || next == "" || next == erin {
		t.Fatalf("rotate answer: %v", rot)
	}
	a.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: next})
	for _, bay := range []*baytest.Bay{a, b} {
		if r := bay.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: erin}); r.Status != http.StatusUnauthorized {
			t.Fatalf("rotated-away key: %d", r.Status)
		}
	}
	if r := a.Do(t, baytest.Req{Method: "POST", Path: "/v1/admin/keys/" + erinID + "/rotate"}); r.Status != http.StatusNotFound {
		t.Fatalf("rotating a revoked key: %d %s", r.Status, r.Body)
	}

	// Every admin route refuses a tenant key with 403 admin_required.
	admin := []baytest.Req{
		{Method: "POST", Path: "/v1/admin/gc/run", Body: map[string]any{}},
		{Method: "GET", Path: "/v1/admin/gc/status"},
		{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{"owner": "erin", "admin": true}},
		{Method: "GET", Path: "/v1/admin/keys"},
		{Method: "POST", Path: "/v1/admin/keys/" + erinID + "/rotate"},
		{Method: "DELETE", Path: "/v1/admin/keys/" + erinID},
		{Method: "GET", Path: "/v1/admin/quotas/erin"},
		{Method: "PUT", Path: "/v1/admin/quotas/erin", Body: map[string]any{"max_sandboxes": 0}},
		{Method: "DELETE", Path: "/v1/admin/quotas/erin"},
	}
	for _, req := range admin {
		req.Key = next
		if r := b.Do(t, req); r.Status != http.StatusForbidden || r.Code() != "admin_required" {
			t.Errorf("tenant key on %s %s: %d %s", req.Method, req.Path, r.Status, r.Body)
		}
	}
	// The configured key: the default owner's, an admin (it minted all of
	// the above); a minted admin key of another owner is an admin too.
	ops, _ := mint(t, a, "ops", true)
	for _, key := range []string{baytest.APIKey, ops} {
		b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/admin/gc/status", Key: key})
		list := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/admin/keys?owner=erin&include_revoked=true", Key: key})
		if items := list["items"].([]any); len(items) != 2 {
			t.Fatalf("erin's keys: %v", list)
		}
	}
	sb := a.CreateSandbox(t, nil)
	if r := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + sb}); r["id"] != sb {
		t.Fatalf("default owner's sandbox: %v", r)
	}
	// Nothing lists a key's secret or hash.
	all := a.Do(t, baytest.Req{Method: "GET", Path: "/v1/admin/keys?include_revoked=true&limit=200"})
	if strings.Contains(string(all.Body), next) || strings.Contains(string(all.Body), baytest.APIKey) || strings.Contains(string(all.Body), `"key"`) {
		t.Fatalf("key listing shows a key: %s", all.Body)
	}
	// Bad input is a clear 4xx.
	for _, req := range []baytest.Req{
		{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{}},
		{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{"owner": ""}},
		{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{"owner": "a\tb"}},
		{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{"owner": model.WarmOwner}},
		{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{"owner": "x", "admin": "maybe"}},
		{Method: "POST", Path: "/v1/admin/keys", Body: map[string]any{"owner": "x", "label": strings.Repeat("l", 300)}},
		{Method: "PUT", Path: "/v1/admin/quotas/x", Body: map[string]any{"max_sandboxes": -1}},
		{Method: "PUT", Path: "/v1/admin/quotas/x", Body: map[string]any{"max_cargo_mb": "lots"}},
		{Method: "DELETE", Path: "/v1/admin/keys/key-000000000000"},
		{Method: "GET", Path: "/v1/admin/keys?owner=%00"},
	} {
		r := a.Do(t, req)
		if r.Status < 400 || r.Status >= 500 || (r.Code() == "" && !strings.Contains(string(r.Body), "detail")) {
			t.Errorf("%s %s %v: %d %s", req.Method, req.Path, req.Body, r.Status, r.Body)
		}
	}
}

// TestTenantQuotaAcrossReplicas: a quota reached through one replica holds on
// the other, also when both are raced at once; 429 with Retry-After and
// details naming the quota.
func TestTenantQuotaAcrossReplicas(t *testing.T) {
	a, b := tenantBays(t, map[string]string{"BAY_QUOTAS__MAX_CARGOS": "1", "BAY_QUOTAS__RETRY_AFTER_SECONDS": "7"})
	carol, _ := mint(t, a, "carol", false)
	q := a.Must(t, http.StatusOK, baytest.Req{Method: "PUT", Path: "/v1/admin/quotas/carol", Body: map[string]any{"max_sandboxes": 2}})
	if q["limits"].(map[string]any)["max_sandboxes"] != float64(2) || q["limits"].(map[string]any)["max_cargos"] != float64(1) {
		t.Fatalf("quota: %v", q)
	}
	create := func(bay *baytest.Bay) *baytest.Response {
		return bay.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Key: carol, Body: map[string]any{"ttl": 600}})
	}
	for _, bay := range []*baytest.Bay{a, a} {
		if r := create(bay); r.Status != http.StatusCreated {
			t.Fatalf("create within quota: %d %s", r.Status, r.Body)
		}
	}
	r := create(b)
	d, _ := r.JSON()["error"].(map[string]any)["details"].(map[string]any)
	if r.Status != http.StatusTooManyRequests || r.Code() != "quota_exceeded" || r.Header.Get("Retry-After") != "7" ||
		d["quota"] != "max_sandboxes" || d["limit"] != float64(2) || d["used"] != float64(2) {
		t.Fatalf("third sandbox on the other replica: %d %v %s", r.Status, r.Header, r.Body)
	}
	// The configured default applies through both replicas too.
	b.Must(t, http.StatusCreated, baytest.Req{Method: "POST", Path: "/v1/cargos", Key: carol, Body: map[string]any{"size_limit_mb": 10}})
	if r := a.Do(t, baytest.Req{Method: "POST", Path: "/v1/cargos", Key: carol, Body: map[string]any{"size_limit_mb": 10}}); r.Status != 429 || r.Code() != "quota_exceeded" {
		t.Fatalf("second cargo: %d %s", r.Status, r.Body)
	}
	// Other owners are not limited by carol's override.
	a.CreateSandbox(t, nil)

	// Racing: frank may have 3; 12 creates at once over both replicas.
	frank, _ := mint(t, b, "frank", false)
	b.Must(t, http.StatusOK, baytest.Req{Method: "PUT", Path: "/v1/admin/quotas/frank", Body: map[string]any{"max_sandboxes": 3}})
	codes := make([]int, 12)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bay := []*baytest.Bay{a, b}[i%2]
			codes[i] = bay.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Key: frank, Body: map[string]any{}}).Status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[201] != 3 || count[429] != 9 {
		t.Fatalf("12 racing creates with max_sandboxes 3: %v", count)
	}
	u := a.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/admin/quotas/frank"})["usage"].(map[string]any)
	if u["sandboxes"] != float64(3) {
		t.Fatalf("frank's usage: %v", u)
	}
	// Deleting one frees its place; lifting the override lifts the limit.
	list := a.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: frank})["items"].([]any)
	a.Must(t, http.StatusNoContent, baytest.Req{Method: "DELETE", Path: "/v1/sandboxes/" + list[0].(map[string]any)["id"].(string), Key: frank})
	if r := create2(t, b, frank); r != http.StatusCreated {
		t.Fatalf("create after a delete: %d", r)
	}
	b.Must(t, http.StatusOK, baytest.Req{Method: "DELETE", Path: "/v1/admin/quotas/frank"})
	if r := create2(t, a, frank); r != http.StatusCreated {
		t.Fatalf("create after the override is dropped: %d", r)
	}
}

// TestTenantRunningSessionQuota: max_running_sessions counts containers of
// the owner across replicas; a stop frees the place.
func TestTenantRunningSessionQuota(t *testing.T) {
	a, b := tenantBays(t, nil)
	hank, _ := mint(t, a, "hank", false)
	a.Must(t, http.StatusOK, baytest.Req{Method: "PUT", Path: "/v1/admin/quotas/hank", Body: map[string]any{"max_running_sessions": 1}})
	s1 := a.Must(t, http.StatusCreated, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Key: hank, Body: map[string]any{"ttl": 600}})["id"].(string)
	s2 := b.Must(t, http.StatusCreated, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Key: hank, Body: map[string]any{"ttl": 600}})["id"].(string)
	exec := func(bay *baytest.Bay, id string) *baytest.Response {
		return bay.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + id + "/python/exec", Key: hank, Body: map[string]any{"code": "1+1"}})
	}
	if r := exec(a, s1); r.Status != http.StatusOK {
		t.Fatalf("first session: %d %s", r.Status, r.Body)
	}
	t0 := time.Now()
	r := exec(b, s2)
	t.Logf("refused in %v", time.Since(t0))
	d, _ := r.JSON()["error"].(map[string]any)["details"].(map[string]any)
	if r.Status != http.StatusTooManyRequests || r.Code() != "quota_exceeded" || d["quota"] != "max_running_sessions" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second session on the other replica: %d %s", r.Status, r.Body)
	}
	if st := b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes/" + s2, Key: hank}); st["status"] != "idle" {
		t.Fatalf("refused sandbox: %v", st)
	}
	t0 = time.Now()
	a.Must(t, http.StatusOK, baytest.Req{Method: "POST", Path: "/v1/sandboxes/" + s1 + "/stop", Key: hank})
	t.Logf("stopped in %v", time.Since(t0))
	if r := exec(b, s2); r.Status != http.StatusOK {
		t.Fatalf("after stopping the first: %d %s", r.Status, r.Body)
	}
}

func create2(t *testing.T, bay *baytest.Bay, key string) int {
	return bay.Do(t, baytest.Req{Method: "POST", Path: "/v1/sandboxes", Key: key, Body: map[string]any{}}).Status
}

// TestTenantRateLimit: over its rate an owner gets 429 rate_limited with
// Retry-After; other owners are not slowed by it. Also what anonymous
// requests may do on /v1/admin.
func TestTenantRateLimit(t *testing.T) {
	baytest.Skip(t)
	b := baytest.Start(t, baytest.Options{Env: map[string]string{
		"BAY_RATE_LIMIT__REQUESTS_PER_SECOND": "0.5", "BAY_RATE_LIMIT__BURST": "3", "BAY_SECURITY__ALLOW_ANONYMOUS": "true"}})
	gina, _ := mint(t, b, "gina", false)
	var got []int
	for range 4 {
		got = append(got, b.Do(t, baytest.Req{Method: "GET", Path: "/v1/sandboxes", Key: gina}).Status)
	}
	if fmt.Sprint(got) != "[200 200 200 429]" {
		t.Fatalf("4 requests with burst 3: %v", got)
	}
	r := b.Do(t, baytest.Req{Method: "GET", Path: "/v1/cargos", Key: gina})
	ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != http.StatusTooManyRequests || r.Code() != "rate_limited" || ra < 1 || ra > 2 {
		t.Fatalf("over the rate: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	// The default owner (the configured key) has its own bucket.
	b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/sandboxes"})
	// Unauthenticated routes are not limited.
	for range 5 {
		b.Must(t, http.StatusOK, baytest.Req{Method: "GET", Path: "/v1/profiles", Key: gina})
	}

	// Anonymous requests (allowed here, from loopback): GC as before tenants,
	// but no key or quota management, and never as the warm pool's owner.
	anon := func(path, owner string) *baytest.Response {
		return b.Do(t, baytest.Req{Method: "GET", Path: path, NoAuth: true, Headers: map[string]string{"X-Owner": owner}})
	}
	if r := anon("/v1/admin/gc/status", "ops"); r.Status != http.StatusOK {
		t.Fatalf("anonymous GC status: %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/v1/admin/keys", "/v1/admin/quotas/ops"} {
		if r := anon(path, "ops"); r.Status != http.StatusForbidden || r.Code() != "admin_required" {
			t.Fatalf("anonymous %s: %d %s", path, r.Status, r.Body)
		}
	}
	if r := anon("/v1/sandboxes", model.WarmOwner); r.Status != http.StatusBadRequest {
		t.Fatalf("anonymous as the warm pool: %d %s", r.Status, r.Body)
	}
}
