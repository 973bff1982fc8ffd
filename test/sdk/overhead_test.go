package sdk_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard"
	"github.com/shipyard/shipyard/test/baytest"
)

// The SDK adds little to a call: python/exec 1+1 through ExecPython vs a
// plain net/http POST (body read, not decoded) on the same sandbox, same
// connection pool, interleaved so that a busy machine's slow stretches fall
// on both. The goal (issue 11) is under 0.2 ms apart. On the shared 2-core
// machine under load (load average 20+) a round's wall time swings by
// milliseconds, so both estimates (the difference of p50s and the median of
// per-round differences) wander by ±0.5 ms whatever the SDK does: the test
// logs them and holds what would betray an extra round trip or a retry
// (either doubles a call). The 0.2 ms goal is held precisely, on the
// client, by pkg/shipyard's TestOverheadVsRawHTTP (a server that answers at
// once) and by bench figure 13 (TestSDKFigure) on an idle machine.
func TestSDKOverhead(t *testing.T) {
	b, c := start(t)
	ctx := ctxT(t, 3*time.Minute)
	sb, err := c.CreateSandbox(ctx, shipyard.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{}
	body := []byte(`{"code":"1+1"}`)
	raw := func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.URL+"/v1/sandboxes/"+sb.ID+"/python/exec", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+baytest.APIKey)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && (resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"text":"2"`))) {
			t.Fatalf("raw: %d %s", resp.StatusCode, b)
		}
		return err
	}
	sdk := func() error {
		r, err := c.ExecPython(ctx, sb.ID, shipyard.PythonExecRequest{Code: "1+1"})
		if err == nil && r.Data.Output.Text != "2" {
			t.Fatalf("sdk: %+v", r)
		}
		return err
	}
	timeIt := func(f func() error) time.Duration {
		s := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		return time.Since(s)
	}
	for range 20 { // warm both paths
		timeIt(raw)
		timeIt(sdk)
	}
	const n = 100
	var rs, ss, diffs []time.Duration
	for i := range n {
		var r, s time.Duration
		if i%2 == 0 {
			r, s = timeIt(raw), timeIt(sdk)
		} else {
			s, r = timeIt(sdk), timeIt(raw)
		}
		rs, ss, diffs = append(rs, r), append(ss, s), append(diffs, s-r)
	}
	med := func(d []time.Duration) time.Duration { d = slices.Clone(d); slices.Sort(d); return d[len(d)/2] }
	t.Logf("1+1 over %d interleaved rounds: raw HTTP p50 %v, SDK p50 %v, median of per-round (SDK − raw) %v",
		n, med(rs), med(ss), med(diffs))
	limit := max(time.Millisecond, med(rs)/4)
	if d := med(ss) - med(rs); d > limit {
		t.Fatalf("the SDK adds %v per call (p50s)", d)
	}
	if m := med(diffs); m > limit {
		t.Fatalf("the SDK adds %v per call (median of rounds)", m)
	}
}
