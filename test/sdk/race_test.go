//go:build race

package sdk_test

// The race detector slows JSON decoding several-fold: timing goals are
// held loosely under it.
const raceEnabled = true
