package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Series is one measured quantity: its samples and their unit.
type Series struct {
	Label  string
	Unit   string // "ms", "MiB", "execs/s"
	Values []float64
}

// Add appends a sample.
func (s *Series) Add(v float64) { s.Values = append(s.Values, v) }

// AddDuration appends a duration sample in milliseconds.
func (s *Series) AddDuration(d time.Duration) { s.Add(float64(d) / float64(time.Millisecond)) }

// N is the number of samples.
func (s *Series) N() int { return len(s.Values) }

// P returns the p-quantile (0 < p ≤ 1) by linear interpolation between the
// closest ranks (R-7, what numpy and most spreadsheets do); NaN when empty.
func (s *Series) P(p float64) float64 { return Quantile(s.Values, p) }

// Quantile is the p-quantile of xs (R-7 interpolation); NaN when empty.
func Quantile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	v := slices.Clone(xs)
	slices.Sort(v)
	h := p * float64(len(v)-1)
	lo := int(math.Floor(h))
	hi := int(math.Ceil(h))
	if hi >= len(v) {
		hi = len(v) - 1
	}
	return v[lo] + (h-float64(lo))*(v[hi]-v[lo])
}

// Format renders a value with its unit and a precision that suits its size.
func Format(v float64, unit string) string {
	if math.IsNaN(v) {
		return "—"
	}
	return Num(v) + " " + unit
}

// Num renders a number with 3 significant digits (at least integer precision).
func Num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a < 1:
		return fmt.Sprintf("%.3f", v)
	case a < 10:
		return fmt.Sprintf("%.2f", v)
	case a < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
