// Package orttest loads ONNX Runtime for tests: it skips a test when the
// library is not installed, and fails it instead under
// VIGIL_REQUIRE_SHARED=1 (as CI runs), like the shared reference data.
package orttest

import (
	"errors"
	"testing"

	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// Init loads ONNX Runtime from its default place (see ort.FindLibrary) or
// skips the test.
func Init(tb testing.TB) {
	tb.Helper()
	path, err := ort.FindLibrary("")
	if errors.Is(err, ort.ErrLibraryNotFound) {
		if shareddata.Required() {
			tb.Fatalf("VIGIL_REQUIRE_SHARED=1: %v", err)
		}
		tb.Skipf("skipping: %v", err)
	}
	if err == nil {
		err = ort.Init(path)
	}
	if err != nil {
		tb.Fatalf("loading ONNX Runtime: %v", err)
	}
}
