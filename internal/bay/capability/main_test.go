package capability_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Calls are watched by timers whose checks run on goroutines; none may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
