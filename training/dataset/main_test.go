package dataset

import (
	"testing"

	"go.uber.org/goleak"
)

// NewSynthSource starts render workers; none may outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
