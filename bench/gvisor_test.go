package bench

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// gvisorFigure compares the python-secure profile (Ship under gVisor, runsc
// with the ptrace platform) with python-default (runc) on the same Bay, round
// by round in alternating order: cold create → first 1+1, then 1+1 round trips
// on one sandbox of each.
func (r *run) gvisorFigure() {
	coldRunc := &Series{Label: "runc (python-default): cold create → first 1+1", Unit: "ms"}
	coldRunsc := &Series{Label: "gVisor (python-secure): cold create → first 1+1", Unit: "ms"}
	cold := func(profile string, s *Series) string {
		t0 := time.Now()
		id, _, err := r.main.create(r.ctx, profile)
		if err != nil {
			r.t.Fatalf("gvisor figure: create %s: %v", profile, err)
		}
		if err := r.main.python(r.ctx, id, "1+1", "2"); err != nil {
			r.t.Fatalf("gvisor figure: first exec on %s: %v\n%s", profile, err, r.main.logTail())
		}
		s.AddDuration(time.Since(t0))
		return id
	}
	var keep [2]string
	for i := 0; i < r.n(6, 2); i++ {
		ids := [2]string{}
		if i%2 == 0 {
			ids[0], ids[1] = cold("python-default", coldRunc), cold("python-secure", coldRunsc)
		} else {
			ids[1], ids[0] = cold("python-secure", coldRunsc), cold("python-default", coldRunc)
		}
		if i == 0 {
			keep = ids
			continue
		}
		for _, id := range ids {
			if err := r.main.delete(r.ctx, id); err != nil {
				r.t.Fatalf("gvisor figure: delete: %v", err)
			}
		}
	}
	r.add(9, Row{Figure: "9 gVisor vs runc", Subject: coldRunsc, Base: coldRunc, Delta: true})

	rtRunc := &Series{Label: "runc: 1+1 via Bay", Unit: "ms"}
	rtRunsc := &Series{Label: "gVisor: 1+1 via Bay", Unit: "ms"}
	for i := 0; i < r.n(200, 20); i++ {
		for j := range 2 {
			k := (i + j) % 2
			s := []*Series{rtRunc, rtRunsc}[k]
			t0 := time.Now()
			if err := r.main.python(r.ctx, keep[k], "1+1", "2"); err != nil {
				r.t.Fatalf("gvisor figure: round trip: %v", err)
			}
			s.AddDuration(time.Since(t0))
		}
	}
	r.add(9, Row{Figure: "9 gVisor vs runc", Subject: rtRunsc, Base: rtRunc, Delta: true})
	for _, id := range keep {
		if err := r.main.delete(r.ctx, id); err != nil {
			r.t.Fatalf("gvisor figure: delete: %v", err)
		}
	}
	r.note("Figure 9: gVisor is runsc with the ptrace platform and the container's network namespace (docs/security.md); these VMs have no nested KVM.")
}

// TestGVisorFigure measures figure 9 alone on a Bay of its own and prints its
// rows in the report's format (SHIPYARD_BENCH=1 SHIPYARD_BENCH_GVISOR=1).
func TestGVisorFigure(t *testing.T) {
	if os.Getenv("SHIPYARD_BENCH") == "" || os.Getenv("SHIPYARD_BENCH_GVISOR") == "" {
		t.Skip("figure 9 alone: set SHIPYARD_BENCH=1 SHIPYARD_BENCH_GVISOR=1")
	}
	r, id := soloRun(t)
	load0 := loadAvg()
	r.gvisorFigure()
	fmt.Println((&Report{Rows: r.rows[9]}).Table())
	fmt.Printf("load average before / after: %s / %s\n", load0, loadAvg())
	if err := r.main.delete(r.ctx, id); err != nil {
		t.Error(err)
	}
}
