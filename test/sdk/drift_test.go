package sdk_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard"
	"github.com/shipyard/shipyard/pkg/shipyard/wire"
	"github.com/shipyard/shipyard/test/baytest"
)

// Every field a real Bay answers is one the SDK's types know: each answer
// is decoded with unknown fields refused, so a field added to Bay and not
// to the SDK (the drift issue 11 complains of) fails here.
func TestSDKTypesMatchBay(t *testing.T) {
	b, c := start(t)
	ctx := ctxT(t, 3*time.Minute)
	ttl := 600
	sb, err := c.CreateSandbox(ctx, shipyard.CreateSandboxRequest{TTL: &ttl})
	if err != nil {
		t.Fatal(err)
	}
	id := sb.ID
	strict := func(r baytest.Req, want int, into any) {
		t.Helper()
		resp := b.Do(t, r)
		if resp.Status != want {
			t.Fatalf("%s %s: %d %s", r.Method, r.Path, resp.Status, resp.Body)
		}
		dec := json.NewDecoder(bytes.NewReader(resp.Body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Errorf("%s %s: the SDK's %T does not cover Bay's answer: %v\n%s", r.Method, r.Path, into, err, resp.Body)
		}
	}
	sp := "/v1/sandboxes/" + id
	strict(baytest.Req{Method: "POST", Path: sp + "/python/exec", Body: map[string]any{"code": "print(1); 1+1", "include_code": true}}, 200, &shipyard.PythonResult{})
	strict(baytest.Req{Method: "POST", Path: sp + "/shell/exec", Body: map[string]any{"command": "echo a; echo b >&2", "include_code": true}}, 200, &shipyard.ShellResult{})
	strict(baytest.Req{Method: "GET", Path: sp}, 200, &shipyard.Sandbox{})
	strict(baytest.Req{Method: "GET", Path: "/v1/sandboxes"}, 200, &shipyard.SandboxPage{})
	strict(baytest.Req{Method: "POST", Path: sp + "/extend_ttl", Body: map[string]any{"extend_by": 10}}, 200, &shipyard.Sandbox{})
	strict(baytest.Req{Method: "GET", Path: sp + "/history"}, 200, &shipyard.History{})
	strict(baytest.Req{Method: "GET", Path: sp + "/history/last"}, 200, &shipyard.Execution{})
	var profiles struct {
		Items []shipyard.Profile `json:"items"`
	}
	strict(baytest.Req{Method: "GET", Path: "/v1/profiles?detail=true"}, 200, &profiles)
	var cargo shipyard.Cargo
	strict(baytest.Req{Method: "POST", Path: "/v1/cargos", Body: map[string]any{}}, 201, &cargo)
	strict(baytest.Req{Method: "GET", Path: "/v1/cargos"}, 200, &shipyard.CargoPage{})
	if err := c.WriteFile(ctx, id, "d/x.txt", "x"); err != nil {
		t.Fatal(err)
	}
	var dir struct {
		Entries []shipyard.FileEntry `json:"entries"`
	}
	strict(baytest.Req{Method: "GET", Path: sp + "/filesystem/directories?path=d"}, 200, &dir)
	strict(baytest.Req{Method: "GET", Path: sp + "/sandbox-none"}, 404, &struct{ Detail any }{})
	strict(baytest.Req{Method: "GET", Path: "/v1/sandboxes/sandbox-000000000000"}, 404, &wire.ErrorBody{})

	var p shipyard.Process
	strict(baytest.Req{Method: "POST", Path: sp + "/processes", Body: map[string]any{"command": "echo hi"}}, http.StatusCreated, &p)
	if p.ProcessID == "" {
		t.Skip("no process routes")
	}
	strict(baytest.Req{Method: "POST", Path: sp + "/processes/" + p.ProcessID + "/wait", Body: map[string]any{"timeout": 10}}, 200, &shipyard.Process{})
	strict(baytest.Req{Method: "GET", Path: sp + "/processes"}, 200, &wire.ProcessList{})
	strict(baytest.Req{Method: "GET", Path: sp + "/processes/" + p.ProcessID + "/output"}, 200, &shipyard.ProcessOutput{})
}
