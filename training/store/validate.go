package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Kind classifies a Problem.
type Kind string

// Kinds of Problem.
const (
	KindManifest  Kind = "manifest"  // manifest.json unreadable or malformed
	KindVersion   Kind = "version"   // version does not match the files
	KindMissing   Kind = "missing"   // listed file not on disk, or an entry's image or label not listed
	KindExtra     Kind = "extra"     // file on disk the manifest does not list
	KindHash      Kind = "hash"      // size or SHA-256 differs from the manifest
	KindLabel     Kind = "label"     // label file unreadable or inconsistent with its image
	KindBox       Kind = "box"       // box not finite, inverted or outside the image
	KindClass     Kind = "class"     // class id negative or not in the manifest's classes
	KindScore     Kind = "score"     // score outside [0,1]
	KindKeypoint  Kind = "keypoint"  // keypoint outside the image or with a bad score
	KindMask      Kind = "mask"      // mask of the wrong size, invalid RLE, or a value that is not a class id + 1
	KindDuplicate Kind = "duplicate" // two entries with byte-identical pictures
)

// Problem is one thing wrong with a store.
type Problem struct {
	Kind Kind
	// Path is the file concerned, relative to the store directory.
	Path string
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Path, p.Kind, p.Msg) }

// Validate checks the store in dir without changing it and returns every
// problem it finds (none for a sound store). The error is for a directory it
// cannot read at all.
func Validate(dir string) ([]Problem, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("validating store: %w", err)
	}
	var ps []Problem
	add := func(k Kind, path, format string, a ...any) {
		ps = append(ps, Problem{Kind: k, Path: path, Msg: fmt.Sprintf(format, a...)})
	}
	m, err := readManifest(dir)
	if err != nil {
		add(KindManifest, manifestName, "%v", err)
		return ps, nil
	}
	if v := Version(m.Files); v != m.Version {
		add(KindVersion, manifestName, "version %q, files give %q", m.Version, v)
	}
	listed := map[string]FileEntry{}
	data := map[string][]byte{}
	for i, f := range m.Files {
		if _, dup := listed[f.Path]; dup {
			add(KindManifest, manifestName, "files[%d]: %s listed twice", i, f.Path)
			continue
		}
		if !validPath(f.Path) {
			add(KindManifest, manifestName, "files[%d]: %q is not images/<id>.png, labels/<id>.json or masks/<id>.png", i, f.Path)
			continue
		}
		listed[f.Path] = f
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			add(KindMissing, f.Path, "listed in the manifest: %v", err)
			continue
		}
		if int64(len(b)) != f.Size {
			add(KindHash, f.Path, "size %d, manifest says %d", len(b), f.Size)
			continue
		}
		if h := hashBytes(b); h != f.SHA256 {
			add(KindHash, f.Path, "sha256 %s, manifest says %s", h, f.SHA256)
			continue
		}
		data[f.Path] = b
	}
	for _, sub := range []string{"", "images", "labels", "masks"} {
		des, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if sub != "" && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("validating store: %w", err)
		}
		for _, de := range des {
			rel := de.Name()
			if sub != "" {
				rel = sub + "/" + rel
			}
			if sub == "" && !strings.HasPrefix(de.Name(), tempPrefix) {
				continue
			}
			if _, ok := listed[rel]; !ok {
				add(KindExtra, rel, "not in the manifest")
			}
		}
	}

	byHash := map[string]string{}
	for _, f := range m.Files {
		id, ok := strings.CutPrefix(f.Path, "images/")
		if !ok {
			continue
		}
		id = strings.TrimSuffix(id, ".png")
		if _, ok := listed[labelPath(id)]; !ok {
			add(KindMissing, f.Path, "no %s in the manifest", labelPath(id))
		}
		if other, dup := byHash[f.SHA256]; dup {
			add(KindDuplicate, f.Path, "same picture as %s", other)
		} else {
			byHash[f.SHA256] = f.Path
		}
	}
	for _, f := range m.Files {
		id, ok := strings.CutPrefix(f.Path, "labels/")
		if !ok {
			continue
		}
		id = strings.TrimSuffix(id, ".json")
		b, ok := data[f.Path]
		if !ok {
			continue // already reported
		}
		ps = append(ps, validateEntry(id, b, listed, data, m.Classes)...)
	}
	for _, f := range m.Files {
		id, ok := strings.CutPrefix(f.Path, "masks/")
		if ok {
			if _, ok := listed[labelPath(strings.TrimSuffix(id, ".png"))]; !ok {
				add(KindMissing, f.Path, "no label in the manifest")
			}
		}
	}
	slices.SortStableFunc(ps, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
	return ps, nil
}

func validPath(p string) bool {
	for _, pre := range []struct{ dir, ext string }{{"images/", ".png"}, {"labels/", ".json"}, {"masks/", ".png"}} {
		if id, ok := strings.CutPrefix(p, pre.dir); ok {
			id, ok = strings.CutSuffix(id, pre.ext)
			return ok && checkID(id) == nil
		}
	}
	return false
}

func validateEntry(id string, label []byte, listed map[string]FileEntry, data map[string][]byte, classes []string) []Problem {
	lp := labelPath(id)
	var ps []Problem
	add := func(k Kind, path, format string, a ...any) {
		ps = append(ps, Problem{Kind: k, Path: path, Msg: fmt.Sprintf(format, a...)})
	}
	e, err := parseLabel(label)
	if err != nil {
		add(KindLabel, lp, "%v", err)
		return ps
	}
	if e.ID != id {
		add(KindLabel, lp, "id: %q, file name says %q", e.ID, id)
		return ps
	}
	ip := imagePath(id)
	if _, ok := listed[ip]; !ok {
		add(KindMissing, lp, "its image %s is not in the manifest", ip)
	} else if b, ok := data[ip]; ok {
		cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
		switch {
		case err != nil:
			add(KindLabel, ip, "decoding: %v", err)
		case format != "png":
			add(KindLabel, ip, "format %s, want png", format)
		case cfg.Width != e.Width || cfg.Height != e.Height:
			add(KindLabel, lp, "width, height: %dx%d, image is %dx%d", e.Width, e.Height, cfg.Width, cfg.Height)
		}
	}
	var seg *image.Gray
	mp := maskPath(id)
	_, segListed := listed[mp]
	if b, ok := data[mp]; ok {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			add(KindMask, mp, "decoding: %v", err)
		} else if g, ok := img.(*image.Gray); ok {
			seg = g
		} else {
			add(KindMask, mp, "%T is not 8-bit gray", img)
		}
	}
	if hasSegField(label) && !segListed {
		add(KindMissing, lp, "its segmentation %s is not in the manifest", mp)
	}
	if !hasSegField(label) && segListed {
		add(KindLabel, lp, "does not name its segmentation %s", mp)
	}
	for _, p := range checkLabels(&e, seg, classes) {
		path := lp
		if strings.HasPrefix(p.msg, "segmentation") {
			path = mp
		}
		add(p.kind, path, "%s", p.msg)
	}
	return ps
}

// hasSegField reports whether a label names a segmentation file.
func hasSegField(label []byte) bool {
	var l struct {
		Segmentation string `json:"segmentation"`
	}
	return json.Unmarshal(label, &l) == nil && l.Segmentation != ""
}

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", " ") }
