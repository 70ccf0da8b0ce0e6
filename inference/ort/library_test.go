package ort

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFindLibrary(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf.so")
	env := filepath.Join(dir, "env.so")
	for _, p := range []string{conf, env} {
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
	}
	missing := filepath.Join(dir, "missing.so")

	for _, tc := range []struct {
		name       string
		configured string
		env        string
		want       string
		wantErr    string
	}{
		{name: "configured wins over env", configured: conf, env: env, want: conf},
		{name: "env when not configured", env: env, want: env},
		{name: "missing configured path is an error", configured: missing, env: env, wantErr: "runtime.ort_library is \"" + missing + "\""},
		{name: "missing env path is an error", env: missing, wantErr: "VIGIL_ORT_LIB is \"" + missing + "\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvLibrary, tc.env)
			got, err := FindLibrary(tc.configured)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrLibraryNotFound)
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "scripts/install-ort.sh")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestFindLibraryDefaults runs from a temporary module so that the
// repository's own installed library does not count.
func TestFindLibraryDefaults(t *testing.T) {
	if isFile("/usr/local/lib/"+libName) || isFile("/usr/lib/"+libName) {
		t.Skip("a system-wide ONNX Runtime is installed; the not-found case cannot be tested here")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	if isFile(filepath.Join(filepath.Dir(exe), "..", "third_party", "onnxruntime", "lib", libName)) {
		t.Skip("a library sits beside the test binary")
	}
	root := t.TempDir()
	sub := filepath.Join(root, "a", "b")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644))
	t.Chdir(sub)
	t.Setenv(EnvLibrary, "")

	_, err = FindLibrary("")
	require.ErrorIs(t, err, ErrLibraryNotFound)
	want := filepath.Join(root, "third_party", "onnxruntime", "lib", libName)
	require.ErrorContains(t, err, want)
	require.ErrorContains(t, err, "/usr/local/lib/"+libName)
	require.ErrorContains(t, err, "run scripts/install-ort.sh, or set runtime.ort_library / VIGIL_ORT_LIB")

	// The repository root found from a subfolder is the next default.
	require.NoError(t, os.MkdirAll(filepath.Dir(want), 0o755))
	require.NoError(t, os.WriteFile(want, []byte("x"), 0o644))
	got, err := FindLibrary("")
	require.NoError(t, err)
	require.Equal(t, want, got)
}
