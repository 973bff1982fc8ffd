package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shipyard/shipyard/pkg/shipyard"
	"github.com/shipyard/shipyard/test/baytest"
)

// ---- Figure 13: the Go SDK vs raw HTTP ---------------------------------------

// sdkFigure measures `python/exec` `1+1` through the Go SDK's ExecPython
// against the same call as a plain net/http POST (the bench's own JSON
// client), on the same started sandbox and HTTP client, interleaved in
// alternating order round by round.
func (r *run) sdkFigure(id string) {
	c, err := shipyard.New(r.main.URL, baytest.APIKey, shipyard.WithHTTPClient(r.main.http))
	if err != nil {
		r.t.Fatal(err)
	}
	raw := &Series{Label: "`python/exec` 1+1, plain net/http POST", Unit: "ms"}
	viaSDK := &Series{Label: "`python/exec` 1+1 via the Go SDK (`ExecPython`)", Unit: "ms"}
	sides := []struct {
		s  *Series
		fn func() error
	}{
		{raw, func() error { return r.main.python(r.ctx, id, "1+1", "2") }},
		{viaSDK, func() error {
			res, err := c.ExecPython(r.ctx, id, shipyard.PythonExecRequest{Code: "1+1"})
			if err == nil && (!res.Success || res.Data == nil || strings.TrimSpace(res.Data.Output.Text) != "2") {
				err = fmt.Errorf("sdk 1+1: %+v", res)
			}
			return err
		}},
	}
	n := r.n(300, 40)
	for i := 0; i < n+10; i++ {
		for j := range sides {
			sd := sides[(i+j)%len(sides)]
			t0 := time.Now()
			if err := sd.fn(); err != nil {
				r.t.Fatalf("%s: %v", sd.s.Label, err)
			}
			if i >= 10 {
				sd.s.AddDuration(time.Since(t0))
			}
		}
	}
	d, paired := viaSDK.P(0.5)-raw.P(0.5), pairedMedian(viaSDK, raw)
	abs := func(f float64) float64 { return max(f, -f) }
	r.add(13, Row{Figure: "13 Go SDK vs raw HTTP, same sandbox", Subject: viaSDK, Base: raw, Delta: true,
		Goal: "under 0.2 ms apart", Met: metIf(abs(d) < 0.2 && abs(paired) < 0.2)})
	r.note("Go SDK vs raw HTTP (figure 13), paired by round: median of (SDK − raw) %s.", Format(paired, "ms"))
}

var sdkMethod = "13: a started python-default sandbox; each round calls `1+1` through `POST /v1/sandboxes/{id}/python/exec` " +
	"as a plain net/http POST (body marshalled, answer decoded into three fields) and through the Go SDK's `ExecPython` " +
	"(its full `PythonResult`), in alternating order, on one keep-alive HTTP client; 10 warm-up rounds not counted. " +
	"The goal counts as met only when both the difference of the p50s and the median of the per-round differences are under 0.2 ms."

// TestSDKFigure measures figure 13 alone on a Bay of its own
// (SHIPYARD_BENCH=1 SHIPYARD_BENCH_SDK=1).
func TestSDKFigure(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" || os.Getenv("SHIPYARD_BENCH_SDK") == "" {
		t.Skip("figure 13 alone: set SHIPYARD_BENCH=1 SHIPYARD_BENCH_SDK=1")
	}
	r, id := soloRun(t)
	load0 := loadAvg()
	r.sdkFigure(id)
	rep := &Report{Rows: r.rows[13]}
	fmt.Println(rep.Table())
	fmt.Println("- " + sdkMethod)
	for _, n := range r.notes {
		fmt.Println("- " + n)
	}
	fmt.Printf("load average before / after: %s / %s\n", load0, loadAvg())
	if err := r.main.delete(r.ctx, id); err != nil {
		t.Error(err)
	}
}
