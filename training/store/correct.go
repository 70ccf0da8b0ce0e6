package store

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// stagedPrefix starts the name of a file Correct has written but not yet
// moved over the file it replaces. Open moves it into place when the
// manifest lists its content (the correction was committed) and removes it
// otherwise.
const stagedPrefix = ".staged-"

// ErrChanged is returned by Correct when another process rewrote the
// manifest after this Store read it.
var ErrChanged = errors.New("store changed on disk since it was opened")

// Correction is the checked labels of one entry, for Correct.
type Correction struct {
	// ID names the entry.
	ID string
	// Objects replace the entry's objects. A person's label is certain:
	// callers normally set Score to 1.
	Objects []Object
	// Segmentation, when not nil, replaces the entry's per-pixel class map
	// (0 background, c+1 for class c; the picture's size).
	Segmentation *image.Gray
	// KeepSegmentation keeps the entry's class map when Segmentation is
	// nil. Otherwise the map is removed: it was made with the pre-labels.
	KeepSegmentation bool
}

// CorrectStats say what Correct changed.
type CorrectStats struct {
	// Entries is the number of entries corrected, Changed those whose files
	// changed (a correction that repeats the current labels of a corrected
	// entry changes nothing).
	Entries, Changed int
	// ObjectsBefore and ObjectsAfter count the objects of those entries
	// before and after.
	ObjectsBefore, ObjectsAfter int
	// PrevVersion and Version are the data-set versions before and after.
	PrevVersion, Version string
}

// Correct replaces the labels of some entries with checked ones and marks
// them corrected ("corrected": true in their label files, with the model's
// pre-labels kept as "pre_objects"), then rewrites the manifest, which
// changes the data-set version. It checks every correction first (unknown
// IDs fail with ErrNotFound, labels that do not fit the picture or the
// classes with an error naming the entry and field) and changes nothing
// when one fails.
//
// Crash safety: the new files are written as ".staged-" files beside the
// ones they replace, the manifest that lists their hashes is the commit,
// and only then are they renamed into place; Open finishes a committed
// correction that a crash interrupted (Recovery.Finished) and drops one that
// was not committed.
//
// Two processes cannot both have a store open for writing (the writer
// lock); should one write it all the same (a file system without record
// locks), Correct fails with ErrChanged when it sees that another process
// committed since Open.
func (s *Store) Correct(cs []Correction) (CorrectStats, error) {
	if s.opts.ReadOnly {
		return CorrectStats{}, fmt.Errorf("correcting: %w", ErrReadOnly)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.lock == nil {
		return CorrectStats{}, fmt.Errorf("correcting: %w", ErrClosed)
	}
	s.mu.RLock()
	st := CorrectStats{PrevVersion: s.man.Version, Version: s.man.Version}
	s.mu.RUnlock()
	if len(cs) == 0 {
		return st, nil
	}
	disk, err := readManifest(s.dir)
	if err != nil {
		return st, fmt.Errorf("correcting: %w", err)
	}
	if disk.Version != st.PrevVersion {
		return st, fmt.Errorf("correcting: version %s on disk, %s when opened: %w", disk.Version, st.PrevVersion, ErrChanged)
	}

	type staged struct {
		rel  string // final path
		data []byte
		file FileEntry
	}
	var files []staged
	drop := map[string]bool{}
	updated := map[string]*Entry{}
	enc := png.Encoder{CompressionLevel: s.opts.Compression}
	for i, c := range cs {
		s.mu.RLock()
		old, ok := s.entries[c.ID]
		segF, hasSeg := s.files[maskPath(c.ID)]
		labelF := s.files[labelPath(c.ID)]
		s.mu.RUnlock()
		if !ok {
			return st, fmt.Errorf("correcting [%d] %q: %w", i, c.ID, ErrNotFound)
		}
		if _, dup := updated[c.ID]; dup {
			return st, fmt.Errorf("correcting [%d] %q: listed twice", i, c.ID)
		}
		ne := *old
		ne.Objects = slices.Clone(c.Objects)
		if ne.Objects == nil {
			ne.Objects = []Object{}
		}
		ne.PreObjects = old.PreLabels()
		if ne.PreObjects == nil {
			ne.PreObjects = []Object{}
		}
		ne.Corrected = true
		var seg *image.Gray
		var segData []byte
		keep := false
		switch {
		case c.Segmentation != nil:
			seg = c.Segmentation
			var buf bytes.Buffer
			if err := enc.Encode(&buf, seg); err != nil {
				return st, fmt.Errorf("correcting %s: encoding segmentation: %w", c.ID, err)
			}
			segData = buf.Bytes()
		case c.KeepSegmentation && hasSeg:
			img, err := s.readPNG(segF)
			if err != nil {
				return st, fmt.Errorf("correcting %s: %w", c.ID, err)
			}
			g, ok := img.(*image.Gray)
			if !ok {
				return st, fmt.Errorf("correcting %s: %s: %T is not 8-bit gray", c.ID, segF.Path, img)
			}
			seg, keep = g, true
		case hasSeg:
			drop[segF.Path] = true
		}
		if ps := checkLabels(&ne, seg, s.opts.Classes); len(ps) > 0 {
			return st, fmt.Errorf("correcting %s: %s", c.ID, ps[0].msg)
		}
		lb, err := jsonIndent(ne.toLabel(seg != nil))
		if err != nil {
			return st, fmt.Errorf("correcting %s: encoding labels: %w", c.ID, err)
		}
		changed := false
		if h := hashBytes(lb); h != labelF.SHA256 {
			files = append(files, staged{labelPath(c.ID), lb, FileEntry{labelPath(c.ID), h, int64(len(lb))}})
			changed = true
		}
		if segData != nil && !keep {
			if h := hashBytes(segData); !hasSeg || h != segF.SHA256 {
				files = append(files, staged{maskPath(c.ID), segData, FileEntry{maskPath(c.ID), h, int64(len(segData))}})
				changed = true
			}
		}
		if drop[maskPath(c.ID)] {
			changed = true
		}
		if changed {
			st.Changed++
		}
		st.Entries++
		st.ObjectsBefore += len(old.Objects)
		st.ObjectsAfter += len(ne.Objects)
		updated[c.ID] = &ne
	}
	if st.Changed == 0 {
		return st, nil
	}

	stagedPath := func(rel string) string {
		return path.Join(path.Dir(rel), stagedPrefix+path.Base(rel))
	}
	removeStaged := func() {
		for _, f := range files {
			_ = os.Remove(filepath.Join(s.dir, filepath.FromSlash(stagedPath(f.rel))))
		}
	}
	for _, f := range files {
		if err := writeAtomic(s.dir, stagedPath(f.rel), f.data); err != nil {
			removeStaged()
			return st, fmt.Errorf("correcting: %w", err)
		}
	}

	// Commit: the manifest lists the new contents.
	replace := map[string]FileEntry{}
	for _, f := range files {
		replace[f.rel] = f.file
	}
	s.mu.RLock()
	next := manifest{Format: ManifestFormat, Classes: s.man.Classes}
	for _, f := range s.man.Files {
		if drop[f.Path] {
			continue
		}
		if r, ok := replace[f.Path]; ok {
			f = r
			delete(replace, f.Path)
		}
		next.Files = append(next.Files, f)
	}
	s.mu.RUnlock()
	for _, f := range files {
		if r, ok := replace[f.rel]; ok {
			next.Files = append(next.Files, r) // a new segmentation
		}
	}
	if err := writeManifest(s.dir, &next); err != nil {
		removeStaged()
		return st, fmt.Errorf("correcting: %w", err)
	}
	st.Version = next.Version

	// Readers check pictures against s.files: swap the files and the
	// in-memory state together.
	var moveErr error
	s.mu.Lock()
	for _, f := range files {
		from := filepath.Join(s.dir, filepath.FromSlash(stagedPath(f.rel)))
		if err := os.Rename(from, filepath.Join(s.dir, filepath.FromSlash(f.rel))); err != nil && moveErr == nil {
			moveErr = fmt.Errorf("correcting: committed, but moving %s into place (opening the store again finishes it): %w", f.rel, err)
		}
	}
	for p := range drop {
		s.bytes -= s.files[p].Size
		delete(s.files, p)
	}
	for _, f := range files {
		s.bytes += f.file.Size - s.files[f.rel].Size
		s.files[f.rel] = f.file
	}
	for id, e := range updated {
		s.entries[id] = e
	}
	s.man = next
	s.mu.Unlock()
	if moveErr != nil {
		return st, moveErr
	}
	for _, sub := range []string{"labels", "masks"} {
		if err := syncDir(filepath.Join(s.dir, sub)); err != nil {
			return st, fmt.Errorf("correcting: %w", err)
		}
	}
	// Deleting after the commit: a crash here leaves orphans, which Open
	// removes.
	for p := range drop {
		_ = os.Remove(filepath.Join(s.dir, filepath.FromSlash(p)))
	}
	return st, nil
}

// finishStaged moves the staged files of a committed correction into place
// and removes those of one that was not committed.
func (s *Store) finishStaged() error {
	for _, sub := range []string{"images", "labels", "masks"} {
		des, err := os.ReadDir(filepath.Join(s.dir, sub))
		if err != nil {
			return fmt.Errorf("listing %s: %w", sub, err)
		}
		for _, de := range des {
			name, ok := strings.CutPrefix(de.Name(), stagedPrefix)
			if !ok || de.IsDir() {
				continue
			}
			from := filepath.Join(s.dir, sub, de.Name())
			rel := sub + "/" + name
			f, listed := s.files[rel]
			b, err := os.ReadFile(from)
			if err != nil {
				return fmt.Errorf("reading %s/%s: %w", sub, de.Name(), err)
			}
			if listed && int64(len(b)) == f.Size && hashBytes(b) == f.SHA256 {
				if err := os.Rename(from, filepath.Join(s.dir, sub, name)); err != nil {
					return fmt.Errorf("finishing %s: %w", rel, err)
				}
				s.recovery.Finished = append(s.recovery.Finished, rel)
				continue
			}
			if err := os.Remove(from); err != nil {
				return fmt.Errorf("removing %s/%s: %w", sub, de.Name(), err)
			}
			s.recovery.Temp = append(s.recovery.Temp, sub+"/"+de.Name())
		}
		if err := syncDir(filepath.Join(s.dir, sub)); err != nil {
			return err
		}
	}
	return nil
}
