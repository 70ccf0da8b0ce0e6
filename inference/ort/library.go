// Package ort runs ONNX models on ONNX Runtime through
// github.com/yalue/onnxruntime_go.
//
// FindLibrary locates libonnxruntime.so (config runtime.ort_library, then
// VIGIL_ORT_LIB, then the place scripts/install-ort.sh puts it), Init loads
// it once per process, and Open makes a Session for one model file. A
// session owns float32 input and output buffers of fixed shape, allocated
// once: callers fill Input(i), call Run, and read Output(i). Nothing is
// copied between the caller's buffers and ONNX Runtime.
//
// Builds without cgo compile, but Init and Open return ErrNoCgo.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvLibrary names the environment variable that overrides the default
// library location (config runtime.ort_library takes precedence over it).
const EnvLibrary = "VIGIL_ORT_LIB"

// libName is the soname scripts/install-ort.sh installs.
const libName = "libonnxruntime.so.1"

// ErrLibraryNotFound is returned (wrapped) by FindLibrary when no ONNX
// Runtime shared library exists at any of the places it looks.
var ErrLibraryNotFound = errors.New("ONNX Runtime library not found")

// FindLibrary returns the path of the ONNX Runtime shared library to load:
// configured (config runtime.ort_library) when not empty, else $VIGIL_ORT_LIB,
// else the first that exists of <executable dir>/../third_party/onnxruntime/lib,
// <repository root>/third_party/onnxruntime/lib (the root is the nearest
// folder above the working directory holding go.mod), /usr/local/lib and
// /usr/lib. A configured or environment path that does not exist is an error,
// not a reason to fall back: the user asked for that file.
func FindLibrary(configured string) (string, error) {
	if configured != "" {
		return existing(configured, "runtime.ort_library")
	}
	if env := os.Getenv(EnvLibrary); env != "" {
		return existing(env, EnvLibrary)
	}
	candidates := defaultPaths()
	for _, p := range candidates {
		if isFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: looked in %s; run scripts/install-ort.sh, or set runtime.ort_library / %s",
		ErrLibraryNotFound, strings.Join(candidates, ", "), EnvLibrary)
}

func existing(p, source string) (string, error) {
	if !isFile(p) {
		return "", fmt.Errorf("%w: %s is %q, which does not exist; run scripts/install-ort.sh, or fix runtime.ort_library / %s",
			ErrLibraryNotFound, source, p, EnvLibrary)
	}
	return p, nil
}

func defaultPaths() []string {
	var out []string
	if exe, err := os.Executable(); err == nil {
		out = append(out, filepath.Join(filepath.Dir(exe), "..", "third_party", "onnxruntime", "lib", libName))
	}
	if root := repoRoot(); root != "" {
		out = append(out, filepath.Join(root, "third_party", "onnxruntime", "lib", libName))
	}
	return append(out, "/usr/local/lib/"+libName, "/usr/lib/"+libName)
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
