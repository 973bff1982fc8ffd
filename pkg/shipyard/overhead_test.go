package shipyard

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// A python/exec answer as Bay sends it for 1+1.
const onePlusOne = `{"success":true,"output":"","error":null,"data":{"execution_count":7,"output":{"text":"2","images":[]}},"execution_id":"exec-0123456789ab","execution_time_ms":4,"code":null,"timed_out":false,"kernel_restarted":false,"notice":null,"truncated":false}`

func cannedBay(tb testing.TB) *httptest.Server {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, onePlusOne)
	}))
	tb.Cleanup(hs.Close)
	return hs
}

// rawPost is the baseline: the same request with net/http, body read, not decoded.
func rawPost(ctx context.Context, hc *http.Client, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(`{"code":"1+1"}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

func BenchmarkRawPost(b *testing.B) {
	hs := cannedBay(b)
	url := hs.URL + "/v1/sandboxes/sandbox-1/python/exec"
	for b.Loop() {
		if err := rawPost(context.Background(), hs.Client(), url); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExecPython(b *testing.B) {
	hs := cannedBay(b)
	c, _ := New(hs.URL, "sk", WithHTTPClient(hs.Client()))
	for b.Loop() {
		if _, err := c.ExecPython(context.Background(), "sandbox-1", PythonExecRequest{Code: "1+1"}); err != nil {
			b.Fatal(err)
		}
	}
}

// What the SDK adds to a call on the client (Bay and the sandbox take the
// same time either way): ExecPython vs a plain POST against a server that
// answers at once, interleaved. Goal (issue 11): under 0.2 ms.
func TestOverheadVsRawHTTP(t *testing.T) {
	hs := cannedBay(t)
	ctx := context.Background()
	url := hs.URL + "/v1/sandboxes/sandbox-1/python/exec"
	c, _ := New(hs.URL, "sk", WithHTTPClient(hs.Client()))
	var raw, sdk []time.Duration
	for i := range 1200 {
		t0 := time.Now()
		if err := rawPost(ctx, hs.Client(), url); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		res, err := c.ExecPython(ctx, "sandbox-1", PythonExecRequest{Code: "1+1"})
		if err != nil || res.Data.Output.Text != "2" {
			t.Fatalf("%+v %v", res, err)
		}
		if i >= 200 { // warm-up
			raw, sdk = append(raw, t1.Sub(t0)), append(sdk, time.Since(t1))
		}
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	r, s := med(raw), med(sdk)
	t.Logf("against a server that answers at once: raw POST p50 %v, ExecPython p50 %v, SDK adds %v", r, s, s-r)
	if s-r > 200*time.Microsecond {
		t.Fatalf("the SDK adds %v to a call (goal < 0.2 ms)", s-r)
	}
}
