// Package bench is Shipyard's benchmark report. `make bench` runs TestReport
// (skipped unless SHIPYARD_BENCH=1), which measures every figure the issues
// ask for side by side with its baseline in one run — interleaved, so that
// the noise of a shared machine falls on both — and writes REPORT.md: p50,
// p90 and n of each, the ratio, the goal, the machine and the date.
//
// Ratios are the result; absolute times depend on the machine and are never
// asserted (DESIGN.md, Testing).
package bench
