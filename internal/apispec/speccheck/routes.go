package speccheck

import "slices"

// RouteCoverage compares a document's operation table with the patterns a
// server registered: patterns the table lists twice, patterns registered
// but not documented, and patterns documented but not registered (each
// sorted, in the order given for the first).
func RouteCoverage(documented, registered []string) (twice, undocumented, unregistered []string) {
	doc := map[string]bool{}
	for _, p := range documented {
		if doc[p] {
			twice = append(twice, p)
		}
		doc[p] = true
	}
	reg := map[string]bool{}
	for _, p := range registered {
		reg[p] = true
		if !doc[p] {
			undocumented = append(undocumented, p)
		}
	}
	for p := range doc {
		if !reg[p] {
			unregistered = append(unregistered, p)
		}
	}
	slices.Sort(unregistered)
	return twice, undocumented, unregistered
}
