package bench

import (
	"math"
	"strings"
	"testing"
)

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{[]float64{3, 1, 2}, 0.5, 2},
		{[]float64{1, 2, 3, 4}, 0.5, 2.5},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9.1},
		{[]float64{7}, 0.9, 7},
		{[]float64{1, 100}, 1, 100},
	} {
		if got := Quantile(tc.xs, tc.p); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Quantile(%v, %v) = %v, want %v", tc.xs, tc.p, got, tc.want)
		}
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("Quantile of nothing is not NaN")
	}
}

func TestTable(t *testing.T) {
	yes := true
	r := &Report{Rows: []Row{
		{Figure: "rt", Subject: &Series{Label: "via Bay", Unit: "ms", Values: []float64{2, 4}},
			Base: &Series{Label: "Ship", Unit: "ms", Values: []float64{1, 2}}, Delta: true, Goal: "< 1 ms", Met: &yes},
		{Figure: "start", Subject: &Series{Label: "Bay | start", Unit: "ms", Values: []float64{50}}},
	}}
	out := r.Table()
	for _, want := range []string{"| rt | via Bay | 3.00 ms |", "| 2.00× | +1.50 ms | < 1 ms | yes |", `Bay \| start`, "(own baseline)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if md := r.Markdown(); !strings.Contains(md, "## Results") {
		t.Errorf("markdown:\n%s", md)
	}
	no := false
	r.Rows[1].Goal, r.Rows[1].Met = "< 10 ms", &no
	if g, want := r.Goals(), "Goals met: 1 of 2. Missed: Bay | start: < 10 ms, got p50 50.0 ms."; g != want {
		t.Errorf("Goals() = %q, want %q", g, want)
	}
}
