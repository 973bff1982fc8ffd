package bay_test

import (
	"os"
	"testing"
)

// TestMain checks every answer of every test Bay in this package against
// Bay's OpenAPI document (baytest.Options.ValidateSpec), so that a field or
// status that drifts from /openapi.json fails a real end-to-end test.
// SHIPYARD_VALIDATE_SPEC=0 turns the check off.
func TestMain(m *testing.M) {
	if os.Getenv("SHIPYARD_VALIDATE_SPEC") == "" {
		_ = os.Setenv("SHIPYARD_VALIDATE_SPEC", "1")
	}
	os.Exit(m.Run())
}
