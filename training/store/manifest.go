package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ManifestFormat is the "format" of manifest.json.
const ManifestFormat = "vigil-hardframes/1"

// manifestName is the manifest's file name in the store directory.
const manifestName = "manifest.json"

// tempPrefix starts the name of every file being written; Open removes
// them, since only a crash leaves one behind.
const tempPrefix = ".tmp-"

// FileEntry is one file of the store, as the manifest lists it.
type FileEntry struct {
	// Path is relative to the store directory, with forward slashes.
	Path string `json:"path"`
	// SHA256 is the file's hash in lower-case hex.
	SHA256 string `json:"sha256"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
}

// manifest is the JSON form of manifest.json.
type manifest struct {
	Format string `json:"format"`
	// Version is Version(Files).
	Version string   `json:"version"`
	Classes []string `json:"classes,omitempty"`
	// Files are sorted by Path.
	Files []FileEntry `json:"files"`
}

// Version returns the data-set version of a list of files: the first 12
// hex digits of the SHA-256 over the entries sorted by path, each written as
// "path NUL sha256 NUL size LF". Two stores with the same files have the same
// version whatever order they were written in.
func Version(files []FileEntry) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b FileEntry) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, f := range sorted {
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
		h.Write([]byte(f.SHA256))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, f.Size, 10))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func readManifest(dir string) (*manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", manifestName, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: format: got %q, want %q", manifestName, m.Format, ManifestFormat)
	}
	return &m, nil
}

// writeManifest writes m atomically, with its files sorted and its version
// set.
func writeManifest(dir string, m *manifest) error {
	slices.SortFunc(m.Files, func(a, b FileEntry) int { return strings.Compare(a.Path, b.Path) })
	m.Version = Version(m.Files)
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	return writeAtomic(dir, manifestName, b)
}

// writeAtomic writes data to dir/rel through a temporary file in the same
// directory, synced before it is renamed into place, then syncs the
// directory so that the rename itself survives a crash.
func writeAtomic(dir, rel string, data []byte) error {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	d := filepath.Dir(path)
	f, err := os.CreateTemp(d, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	if err := syncDir(d); err != nil {
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	return nil
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	return nil
}

func hashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
