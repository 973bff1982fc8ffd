package bench

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Row is one line of the results table: a subject measured side by side with
// its baseline (nil when the figure is its own baseline).
type Row struct {
	Figure  string
	Subject *Series
	Base    *Series
	Delta   bool   // show the difference of the p50s (subject − baseline)
	Goal    string // as the issue states it; "" = none
	Met     *bool  // nil = no goal or not decidable
	Note    string
}

// Ratio is subject p50 / baseline p50 (NaN without a baseline).
func (r Row) Ratio() float64 {
	if r.Base == nil || r.Base.N() == 0 || r.Subject.N() == 0 {
		return math.NaN()
	}
	return r.Subject.P(0.5) / r.Base.P(0.5)
}

// KV is a labelled value (machine facts, phase times).
type KV struct{ K, V string }

// Report is the whole document.
type Report struct {
	Date    time.Time
	Took    time.Duration
	Machine []KV
	Rows    []Row
	Notes   []string
	Method  []string
	Phases  []KV
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Table renders the results table (Markdown).
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString("| Figure | Measured | p50 | p90 | n | Compared with (same run) | p50 | p90 | n | Ratio p50 | Δ p50 | Goal | Met |\n")
	b.WriteString("|---|---|--:|--:|--:|---|--:|--:|--:|--:|--:|---|:-:|\n")
	for _, row := range r.Rows {
		s := row.Subject
		cols := []string{row.Figure, s.Label, Format(s.P(0.5), s.Unit), Format(s.P(0.9), s.Unit), fmt.Sprint(s.N())}
		if row.Base != nil {
			bs := row.Base
			cols = append(cols, bs.Label, Format(bs.P(0.5), bs.Unit), Format(bs.P(0.9), bs.Unit), fmt.Sprint(bs.N()))
			ratio := row.Ratio()
			if math.IsNaN(ratio) {
				cols = append(cols, "—")
			} else {
				cols = append(cols, Num(ratio)+"×")
			}
			if row.Delta {
				d := s.P(0.5) - bs.P(0.5)
				sign := "+"
				if d < 0 {
					sign = ""
				}
				if math.IsNaN(d) {
					cols = append(cols, "—")
				} else {
					cols = append(cols, sign+Format(d, s.Unit))
				}
			} else {
				cols = append(cols, "")
			}
		} else {
			cols = append(cols, "(own baseline)", "", "", "", "", "")
		}
		met := ""
		if row.Met != nil {
			met = "yes"
			if !*row.Met {
				met = "**no**"
			}
		}
		cols = append(cols, row.Goal, met)
		for i := range cols {
			cols[i] = cell(cols[i])
		}
		b.WriteString("| " + strings.Join(cols, " | ") + " |\n")
	}
	return b.String()
}

// Markdown renders REPORT.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Shipyard benchmark report\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (bench/report_test.go) on %s; the run took %s.\n",
		r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second))
	b.WriteString("Every figure is measured in this one run next to its baseline, interleaved round by round;\n")
	b.WriteString("ratios are the result, absolute numbers belong to this machine. p50/p90 interpolate between\n")
	b.WriteString("ranks; n is the number of samples of each side.\n\n")
	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	for _, kv := range r.Machine {
		fmt.Fprintf(&b, "| %s | %s |\n", cell(kv.K), cell(kv.V))
	}
	b.WriteString("\n## Results\n\n")
	b.WriteString(r.Goals() + "\n\n")
	b.WriteString(r.Table())
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes on this run\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	if len(r.Method) > 0 {
		b.WriteString("\n## How each figure is measured\n\n")
		for _, n := range r.Method {
			b.WriteString("- " + n + "\n")
		}
	}
	if len(r.Phases) > 0 {
		b.WriteString("\n## Time per phase\n\n| Phase | Took |\n|---|--:|\n")
		for _, kv := range r.Phases {
			fmt.Fprintf(&b, "| %s | %s |\n", cell(kv.K), kv.V)
		}
	}
	return b.String()
}

// Goals summarizes the goals: how many were met, and which were missed.
func (r *Report) Goals() string {
	met, total := 0, 0
	var missed []string
	for _, row := range r.Rows {
		if row.Met == nil {
			continue
		}
		total++
		if *row.Met {
			met++
		} else {
			got := "p50 " + Format(row.Subject.P(0.5), row.Subject.Unit)
			if row.Base != nil && row.Delta {
				d := row.Subject.P(0.5) - row.Base.P(0.5)
				sign := "+"
				if d < 0 {
					sign = ""
				}
				got = fmt.Sprintf("%s, Δ %s%s over %s", got, sign, Format(d, row.Subject.Unit), row.Base.Label)
			}
			missed = append(missed, fmt.Sprintf("%s: %s, got %s", row.Subject.Label, row.Goal, got))
		}
	}
	s := fmt.Sprintf("Goals met: %d of %d.", met, total)
	if len(missed) > 0 {
		s += " Missed: " + strings.Join(missed, "; ") + "."
	}
	return s
}
