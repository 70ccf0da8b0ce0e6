package inference

import (
	"errors"
	"fmt"
	"github.com/vigil-video/vigil/inference/builtin"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Registry is a folder of versioned bundles: Root/<name>/<version>/ holds
// one bundle, and Root/<name>/active names the version the server runs
// (the highest version when the file is absent).
type Registry struct {
	Root string
}

// ActiveFile is the file in a model's folder that names its active version.
const ActiveFile = "active"

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Entry is one model of a registry.
type Entry struct {
	Name     string
	Versions []int
	Active   int
	// Bundle is the active version's bundle.
	Bundle *Bundle
}

// Import makes a new version of model name from the plain ONNX file src
// of the given family: its fp32 variant is a copy of src.
func (r Registry) Import(src, family, name string) (*Bundle, error) {
	b, err := FromONNX(src, family)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = b.Name
	}
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("importing %s: model name %q must be 1-64 of [A-Za-z0-9_.-]", src, name)
	}
	vs, err := r.versions(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("importing %s: %w", src, err)
	}
	version := 1
	if len(vs) > 0 {
		version = vs[len(vs)-1] + 1
	}
	dir := filepath.Join(r.Root, name, strconv.Itoa(version))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("importing %s: %w", src, err)
	}
	b.Dir, b.Name, b.Version, b.Created = dir, name, version, time.Now().UTC().Truncate(time.Second)
	v := b.Variants[0]
	b.Variants = nil
	if err := b.AddVariant(v, src, false); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("importing %s: %w", src, err)
	}
	if err := b.Write(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("importing %s: %w", src, err)
	}
	return b, nil
}

// versions lists the versions of model name, ascending.
func (r Registry) versions(name string) ([]int, error) {
	des, err := os.ReadDir(filepath.Join(r.Root, name))
	if err != nil {
		return nil, err
	}
	var vs []int
	for _, de := range des {
		if v, err := strconv.Atoi(de.Name()); err == nil && de.IsDir() && v > 0 {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// active returns the active version of model name.
func (r Registry) active(name string, vs []int) (int, error) {
	b, err := os.ReadFile(filepath.Join(r.Root, name, ActiveFile))
	if errors.Is(err, fs.ErrNotExist) {
		if len(vs) == 0 {
			return 0, fmt.Errorf("model %s has no versions in %s", name, r.Root)
		}
		return vs[len(vs)-1], nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !slices.Contains(vs, v) {
		return 0, fmt.Errorf("model %s: %s names version %q, which does not exist", name, ActiveFile, strings.TrimSpace(string(b)))
	}
	return v, nil
}

// Active returns the active version of model name.
func (r Registry) Active(name string) (int, error) {
	vs, err := r.versions(name)
	if err != nil {
		return 0, fmt.Errorf("model %s: %w", name, err)
	}
	return r.active(name, vs)
}

// Resolve loads the active version of model name.
func (r Registry) Resolve(name string) (*Bundle, error) {
	vs, err := r.versions(name)
	if err != nil {
		return nil, fmt.Errorf("resolving model %s: %w", name, err)
	}
	v, err := r.active(name, vs)
	if err != nil {
		return nil, fmt.Errorf("resolving model %s: %w", name, err)
	}
	return LoadBundle(filepath.Join(r.Root, name, strconv.Itoa(v)))
}

// Promote makes version the active version of model name.
func (r Registry) Promote(name string, version int) error {
	vs, err := r.versions(name)
	if err != nil {
		return fmt.Errorf("promoting %s: %w", name, err)
	}
	if !slices.Contains(vs, version) {
		return fmt.Errorf("promoting %s: no version %d (versions: %v)", name, version, vs)
	}
	path := filepath.Join(r.Root, name, ActiveFile)
	if err := os.WriteFile(path+".tmp", []byte(strconv.Itoa(version)+"\n"), 0o644); err != nil {
		return fmt.Errorf("promoting %s: %w", name, err)
	}
	return os.Rename(path+".tmp", path)
}

// List returns every model in the registry, by name. A model whose active
// bundle does not load is listed with a nil Bundle and its error joined
// into the returned error.
func (r Registry) List() ([]Entry, error) {
	des, err := os.ReadDir(r.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing models: %w", err)
	}
	var (
		out  []Entry
		errs []error
	)
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		vs, err := r.versions(de.Name())
		if err != nil || len(vs) == 0 {
			continue
		}
		e := Entry{Name: de.Name(), Versions: vs}
		if e.Active, err = r.active(e.Name, vs); err == nil {
			e.Bundle, err = LoadBundle(filepath.Join(r.Root, e.Name, strconv.Itoa(e.Active)))
		}
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// OpenBundle finds the bundle path refers to: a bundle folder (holding
// model.yaml), a model's folder in a registry (its active version), or a
// plain ONNX file, which needs family, or "builtin:NAME", one of the
// models inside the binary (package builtin).
func OpenBundle(path, family string) (*Bundle, error) {
	if name, ok := strings.CutPrefix(path, builtin.Prefix); ok {
		dir, err := builtin.Dir(name, "")
		if err != nil {
			return nil, fmt.Errorf("opening model: %w", err)
		}
		path = dir
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening model: %w", err)
	}
	if !st.IsDir() {
		if family == "" {
			return nil, fmt.Errorf("opening model %s: a plain ONNX file needs a family (known: %s)", path, strings.Join(FamilyNames(), ", "))
		}
		return FromONNX(path, family)
	}
	if _, err := os.Stat(filepath.Join(path, BundleFile)); err == nil {
		return LoadBundle(path)
	}
	reg, name := registryOf(path)
	return reg.Resolve(name)
}

// registryOf splits a model's registry folder into its registry and name.
func registryOf(path string) (Registry, string) {
	return Registry{Root: filepath.Dir(filepath.Clean(path))}, filepath.Base(filepath.Clean(path))
}

// isRegistryModel reports whether path is a model's folder in a registry
// (a folder without model.yaml of its own).
func isRegistryModel(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	_, err = os.Stat(filepath.Join(path, BundleFile))
	return errors.Is(err, fs.ErrNotExist)
}
