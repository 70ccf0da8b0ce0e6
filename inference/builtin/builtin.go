// Package builtin carries Vigil's own trained models inside the binary, so
// the embedded default config can analyse video with no download: a
// config's model bundle "builtin:NAME" names one. The first use writes the
// bundle into the user's cache folder (once per content: the folder name
// holds a hash of the files), where ONNX Runtime can open it.
//
// The bundles are made by `vigil train` (see the README for the commands
// and their cost) and committed under this package's folder.
package builtin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
)

// Prefix marks a built-in bundle in a config's models[].bundle.
const Prefix = "builtin:"

//go:embed detector embedder segmenter
var files embed.FS

// Names lists the built-in bundles.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

var mu sync.Mutex

// Dir returns a folder holding the named built-in bundle, writing it under
// root (the user's cache folder when empty) if it is not there yet.
func Dir(name, root string) (string, error) {
	if !slices.Contains(Names(), name) {
		return "", fmt.Errorf("no built-in model %q (built in: %v)", name, Names())
	}
	ents, err := fs.ReadDir(files, name)
	if err != nil {
		return "", fmt.Errorf("built-in model %s: %w", name, err)
	}
	h := sha256.New()
	for _, e := range ents {
		b, err := files.ReadFile(path.Join(name, e.Name()))
		if err != nil {
			return "", fmt.Errorf("built-in model %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	if root == "" {
		if root, err = os.UserCacheDir(); err != nil {
			root = os.TempDir()
		}
		root = filepath.Join(root, "vigil", "builtin")
	}
	dir := filepath.Join(root, name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("writing built-in model %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(root, name+".tmp")
	if err != nil {
		return "", fmt.Errorf("writing built-in model %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	for _, e := range ents {
		b, _ := files.ReadFile(path.Join(name, e.Name()))
		if err := os.WriteFile(filepath.Join(tmp, e.Name()), b, 0o644); err != nil {
			return "", fmt.Errorf("writing built-in model %s: %w", name, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return dir, nil // another process wrote it first
		}
		return "", fmt.Errorf("writing built-in model %s: %w", name, err)
	}
	return dir, nil
}
