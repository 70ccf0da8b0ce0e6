// Package shareddata finds the third-party reference data (clips, models,
// MOT and COCO files) that tests and benchmarks read from ../shared/data
// beside the repository, or from $VIGIL_SHARED_DATA, and checks for the
// command-line tools that tests run as peers.
package shareddata

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Dir returns the reference data folder, or "" when it cannot be found.
func Dir() string {
	if d := os.Getenv("VIGIL_SHARED_DATA"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(filepath.Dir(dir), "shared", "data")
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return d
			}
			return ""
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

// Required reports whether a missing file must fail the test rather than
// skip it (VIGIL_REQUIRE_SHARED=1, as CI sets).
func Required() bool { return os.Getenv("VIGIL_REQUIRE_SHARED") == "1" }

// Path returns the absolute path of rel inside the reference data. When the
// file is missing it skips tb, or fails it when Required.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	dir := Dir()
	p := filepath.Join(dir, rel)
	if dir != "" {
		if _, err := os.Stat(p); err == nil {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	if Required() {
		tb.Fatalf("reference file %s is missing (VIGIL_REQUIRE_SHARED=1); looked in %q", rel, dir)
	}
	tb.Skipf("reference file %s is missing: put ../shared/data beside the repository or set VIGIL_SHARED_DATA", rel)
	return ""
}

// NeedCommands skips tb when one of the named programs (ffmpeg, ffprobe, …)
// is not on PATH, or fails it when Required: CI installs them, so a skip
// there would hide a broken install step.
func NeedCommands(tb testing.TB, names ...string) {
	tb.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if Required() {
				tb.Fatalf("%s is not on PATH (VIGIL_REQUIRE_SHARED=1): run scripts/install-deps.sh", name)
			}
			tb.Skipf("%s not found: install it (scripts/install-deps.sh)", name)
		}
	}
}
