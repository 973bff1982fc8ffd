package capability_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Calls are watched by a goroutine each; none may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
