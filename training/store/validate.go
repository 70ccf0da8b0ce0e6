package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
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
	KindImage     Kind = "image"     // picture that is not a PNG or does not decode
	KindBox       Kind = "box"       // box not finite, inverted or outside the image
	KindClass     Kind = "class"     // class id negative or not in the manifest's classes
	KindScore     Kind = "score"     // score outside [0,1]
	KindKeypoint  Kind = "keypoint"  // keypoint outside the image or with a bad score
	KindMask      Kind = "mask"      // mask of the wrong size, invalid RLE, or a value that is not a class id + 1
	KindDuplicate Kind = "duplicate" // two entries with the same picture (identical file or pixels)
)

// Problem is one thing wrong with a store.
type Problem struct {
	Kind Kind
	// Path is the file concerned, relative to the store directory.
	Path string
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Path, p.Kind, p.Msg) }

// Report is what Check found in a store.
type Report struct {
	// Problems is every problem, sorted by path; none for a sound store.
	Problems []Problem
	// Version is the manifest's data-set version and Classes its classes.
	Version string
	Classes []string
	// Entries counts the label files that parse, Corrected those marked
	// corrected, and Miners them by miner ("" for none).
	Entries, Corrected int
	Miners             map[string]int
	// Bytes is the size of the files the manifest lists.
	Bytes int64
	// Uncommitted are the files of writes in flight or cut short by a
	// crash: temporary files, and the files of an entry the manifest does
	// not list. They are not part of the data set, so not problems; the
	// store's next writable Open removes them.
	Uncommitted []string
}

// Validate checks the store in dir without changing it and returns every
// problem it finds (none for a sound store). The error is for a directory it
// cannot read at all.
func Validate(dir string) ([]Problem, error) {
	r, err := Check(dir)
	return r.Problems, err
}

// Check is Validate with a summary of the store. It reads and decodes
// every file.
//
// A store a server is writing may change during the check (an eviction
// deletes files the manifest read at the start still listed): when the
// check finds problems and the manifest changed meanwhile, it checks
// again, up to five times in all.
func Check(dir string) (Report, error) {
	if _, err := os.Stat(dir); err != nil {
		return Report{Miners: map[string]int{}}, fmt.Errorf("validating store: %w", err)
	}
	for try := 1; ; try++ {
		r := Report{Miners: map[string]int{}}
		before, _ := os.ReadFile(filepath.Join(dir, manifestName))
		ps, err := check(dir, &r)
		slices.SortStableFunc(ps, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
		r.Problems = ps
		if len(ps) == 0 || err != nil || try == 5 {
			return r, err
		}
		if after, _ := os.ReadFile(filepath.Join(dir, manifestName)); bytes.Equal(before, after) {
			return r, nil
		}
	}
}

func check(dir string, r *Report) ([]Problem, error) {
	var ps []Problem
	add := func(k Kind, path, format string, a ...any) {
		ps = append(ps, Problem{Kind: k, Path: path, Msg: fmt.Sprintf(format, a...)})
	}
	m, err := readManifest(dir)
	if err != nil {
		add(KindManifest, manifestName, "%v", err)
		return ps, nil
	}
	r.Version, r.Classes = m.Version, m.Classes
	for _, f := range m.Files {
		r.Bytes += f.Size
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
	listedIDs := map[string]bool{}
	for p := range listed {
		listedIDs[entryID(p)] = true
	}
	for _, sub := range []string{"", "images", "labels", "masks"} {
		des, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if sub != "" && os.IsNotExist(err) {
				continue
			}
			return ps, fmt.Errorf("validating store: %w", err)
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
				if strings.HasPrefix(de.Name(), tempPrefix) || validPath(rel) && putID.MatchString(entryID(rel)) && !listedIDs[entryID(rel)] {
					r.Uncommitted = append(r.Uncommitted, rel)
					continue
				}
				if strings.HasPrefix(de.Name(), stagedPrefix) {
					add(KindExtra, rel, "not in the manifest: staged by an interrupted correction (opening the store finishes or removes it)")
				} else {
					add(KindExtra, rel, "not in the manifest")
				}
			}
		}
	}

	byHash := map[string]string{}
	byPixels := map[[32]byte]string{}
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
			add(KindDuplicate, f.Path, "same picture as %s (identical file)", other)
			continue
		}
		byHash[f.SHA256] = f.Path
		b, ok := data[f.Path]
		if !ok {
			continue // already reported
		}
		sum, err := pixelHash(b)
		if err != nil {
			add(KindImage, f.Path, "%v", err)
			continue
		}
		if other, dup := byPixels[sum]; dup {
			add(KindDuplicate, f.Path, "same pixels as %s (the PNG files differ)", other)
		} else {
			byPixels[sum] = f.Path
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
		ps = append(ps, validateEntry(id, b, listed, data, m.Classes, r)...)
	}
	for _, f := range m.Files {
		id, ok := strings.CutPrefix(f.Path, "masks/")
		if ok {
			if _, ok := listed[labelPath(strings.TrimSuffix(id, ".png"))]; !ok {
				add(KindMissing, f.Path, "no label in the manifest")
			}
		}
	}
	return ps, nil
}

// pixelHash decodes a PNG and hashes its size and pixels as 8-bit RGBA,
// so that two encodings of one picture (other compression, filters, colour
// type) hash alike.
func pixelHash(b []byte) ([32]byte, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return [32]byte{}, fmt.Errorf("decoding: %w", err)
	}
	if format != "png" {
		return [32]byte{}, fmt.Errorf("format %s, want png", format)
	}
	if cfg.Width*cfg.Height > 1<<26 {
		return [32]byte{}, fmt.Errorf("%dx%d is too large a picture", cfg.Width, cfg.Height)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return [32]byte{}, fmt.Errorf("decoding: %w", err)
	}
	bd := img.Bounds()
	// RGBA, which an opaque PNG decodes to: camera frames need no copy.
	n, ok := img.(*image.RGBA)
	if !ok || n.Stride != 4*bd.Dx() {
		n = image.NewRGBA(image.Rect(0, 0, bd.Dx(), bd.Dy()))
		draw.Draw(n, n.Bounds(), img, bd.Min, draw.Src)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%dx%d\n", bd.Dx(), bd.Dy())
	h.Write(n.Pix)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// putID matches the IDs Put makes (makeID): stream, capture time, frame.
var putID = regexp.MustCompile(`^[A-Za-z0-9_-]+-[0-9]{8}T[0-9]{6}\.[0-9]{9}Z-[0-9]+$`)

// entryID is the ID in a validPath.
func entryID(p string) string {
	_, name, _ := strings.Cut(p, "/")
	return strings.TrimSuffix(strings.TrimSuffix(name, ".png"), ".json")
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

func validateEntry(id string, label []byte, listed map[string]FileEntry, data map[string][]byte, classes []string, r *Report) []Problem {
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
	r.Entries++
	r.Miners[e.Miner]++
	if e.Corrected {
		r.Corrected++
	}
	ip := imagePath(id)
	if _, ok := listed[ip]; !ok {
		add(KindMissing, lp, "its image %s is not in the manifest", ip)
	} else if b, ok := data[ip]; ok {
		cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
		switch {
		case err != nil, format != "png":
			// pixelHash reports it.
		case cfg.Width != e.Width || cfg.Height != e.Height:
			add(KindLabel, lp, "width, height: %dx%d, image is %dx%d", e.Width, e.Height, cfg.Width, cfg.Height)
			// Check the labels against the picture itself.
			e.Width, e.Height = cfg.Width, cfg.Height
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
