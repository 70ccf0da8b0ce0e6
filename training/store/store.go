// Package store keeps hard frames: pictures a miner picked out of live
// streams (low confidence, disagreement between models, lost tracks) with
// the pre-labels a model gave them, for people to correct and trainers to
// learn from. A miner Puts entries; a person's checked labels come back
// through Correct (`vigil dataset import`); a trainer reads them back with
// List and Get (or through a training/dataset Source); Validate and Check
// look over a store that was copied, edited or crashed.
//
// # Format
//
// A store is a directory:
//
//	manifest.json       every file below with its SHA-256 and size
//	images/<id>.png     the picture, lossless PNG (never JPEG)
//	labels/<id>.json    the pre-labels and where the frame came from
//	masks/<id>.png      optional per-pixel class map, 8-bit gray PNG
//
// An <id> is 1-128 characters from [A-Za-z0-9._-] not starting with a dot.
//
// manifest.json is {"format": "vigil-hardframes/1", "version": V,
// "classes": [names...] (optional), "files": [{"path", "sha256", "size"}...]}
// with files sorted by path. The data-set version V is the first 12 hex
// digits of the SHA-256 over the sorted files, each as "path NUL sha256 NUL
// size LF" (see Version): it names exactly the bytes a model was trained on.
//
// labels/<id>.json is {"format": "vigil-hardframe-label/1", "id", "image":
// "images/<id>.png", "segmentation": "masks/<id>.png" (when present),
// "width", "height", "stream_id", "capture_time" (RFC 3339), "frame_seq",
// "miner", "reason", "model": {"name", "version"}, "objects": [{"box": [x1,
// y1, x2, y2] (pixels, inside the image), "class" (index >= 0, below
// len(classes) when the manifest lists classes), "label", "score" (0-1),
// "track_id", "keypoints": [[x, y, score]...], "mask": {"size": [h, w],
// "counts": compressed COCO RLE over the whole image}, "ignore"}],
// "corrected": true (only after Correct), "pre_objects": [...] (only with
// corrected)}. A mask pixel is 0 for background or class+1.
//
// An entry starts with the model's pre-labels in "objects". Correct
// replaces them with a person's labels, sets "corrected": true (the label
// source is then human) and keeps the pre-labels in "pre_objects", so that
// a trainer can learn from the pre-labels alone (self-training), from the
// corrected labels alone, or from both (Entry.Corrected, Entry.PreLabels).
//
// # Crash safety
//
// Every file is written to a ".tmp-" file in its directory, synced and
// renamed into place. Put writes an entry's files first and commits them by
// rewriting the manifest the same way; evicted files are deleted only after
// the manifest that drops them is in place. Correct, which must replace
// files in place, writes ".staged-" files beside them, commits the manifest
// that lists their hashes, then renames them over the old ones. A crash
// therefore leaves at most temporary files, files the manifest does not
// list and staged files; Open removes the first two, moves staged files of
// a committed correction into place and removes the others, and reports
// them (Recovery). Validate passes before that too: it checks the committed
// data set and lists temporary files and the files of an uncommitted entry
// apart (Report.Uncommitted), since a write in flight looks the same.
//
// Only one process may write a store at a time: a writable Open takes a
// POSIX record lock on writer.lock, and fails with ErrLocked, naming the
// holder's process ID, while another process holds it (the kernel drops
// it when that process ends, however it ends). Stop a server that mines
// into a store before importing corrections into it; reading (ReadOnly:
// exports, training, validation) needs no lock.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Errors returned by Put and Get.
var (
	// ErrExists is returned by Put for an ID already in the store.
	ErrExists = errors.New("entry already in the store")
	// ErrDuplicate is returned by Put for a picture already in the store.
	ErrDuplicate = errors.New("image already in the store")
	// ErrTooLarge is returned by Put for an entry bigger than MaxBytes.
	ErrTooLarge = errors.New("entry larger than the store's limit")
	// ErrNotFound is returned by Get for an unknown ID.
	ErrNotFound = errors.New("entry not in the store")
	// ErrCorrupt is returned by Get when a file does not match the manifest.
	ErrCorrupt = errors.New("file does not match the manifest")
	// ErrReadOnly is returned by Put and Correct on a store opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("store opened read-only")
	// ErrClosed is returned by Put and Correct after Close.
	ErrClosed = errors.New("store closed")
)

// Options configure a Store.
type Options struct {
	// MaxBytes bounds the bytes of all entries' files (not the manifest);
	// Put evicts the entries with the oldest capture time to stay under it.
	// 0 (the default) means no bound.
	MaxBytes int64
	// Classes, when not nil, names the classes; Create writes them into
	// the manifest and Put then rejects class ids outside them. Open reads
	// them from the manifest and ignores this field.
	Classes []string
	// Compression is the PNG compression level. It defaults to
	// png.BestSpeed: a miner writes more often than anyone reads.
	Compression png.CompressionLevel
	// ReadOnly opens the store without cleaning up after a crashed writer
	// (which would delete the files of a Put in progress in another
	// process), and makes Put and Correct fail with ErrReadOnly. For
	// reading a store a server may be writing (exports, training).
	ReadOnly bool
}

// Recovery says what Open cleaned up after a crash.
type Recovery struct {
	// Temp are the temporary files it removed.
	Temp []string
	// Orphans are the files the manifest did not list (written by a Put that
	// never committed, or left by an eviction); it removed them.
	Orphans []string
	// Missing are files the manifest lists that are not on disk. A crash
	// cannot cause this; Open leaves them listed for Validate to report.
	Missing []string
	// Finished are the files of a committed Correct that a crash stopped
	// before it moved them into place; Open moved them.
	Finished []string
}

// Stats are a Store's counters.
type Stats struct {
	Entries   int
	Bytes     int64
	Puts      uint64
	Evictions uint64
	Version   string
}

// Store is an open hard-frame store. Put must be called from one goroutine
// at a time; List, Get and Stats are safe to call concurrently with it.
type Store struct {
	dir       string
	opts      Options
	recovery  Recovery
	writeMu   sync.Mutex
	lock      *os.File // the writer lock; nil when read-only or closed
	puts      atomic.Uint64
	evictions atomic.Uint64

	mu      sync.RWMutex
	man     manifest
	files   map[string]FileEntry // by path
	entries map[string]*Entry    // by ID, without pictures
	hashes  map[string]string    // image sha256 -> ID
	bytes   int64
}

// Create makes a new, empty store in dir, creating dir if needed. It fails
// if dir already holds a manifest.
func Create(dir string, opts Options) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, manifestName)); err == nil {
		return nil, fmt.Errorf("creating store in %s: %w", dir, os.ErrExist)
	}
	for _, sub := range []string{"", "images", "labels", "masks"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("creating store in %s: %w", dir, err)
		}
	}
	m := &manifest{Format: ManifestFormat, Classes: opts.Classes, Files: []FileEntry{}}
	if err := writeManifest(dir, m); err != nil {
		return nil, fmt.Errorf("creating store in %s: %w", dir, err)
	}
	return Open(dir, opts)
}

// Open opens the store in dir, recovering from a crashed writer (see
// Recovery) unless opts.ReadOnly.
func Open(dir string, opts Options) (_ *Store, err error) {
	var lock *os.File
	if _, serr := os.Stat(filepath.Join(dir, manifestName)); serr == nil && !opts.ReadOnly {
		// Locked before the manifest is read: another writer may be
		// about to replace it.
		if lock, err = lockStore(dir); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", dir, err)
		}
		defer func() {
			if err != nil {
				lock.Close()
			}
		}()
	}
	m, err := readManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", dir, err)
	}
	if opts.Compression == 0 {
		opts.Compression = png.BestSpeed
	}
	opts.Classes = m.Classes
	s := &Store{
		dir: dir, opts: opts, man: *m, lock: lock,
		files:   make(map[string]FileEntry, len(m.Files)),
		entries: map[string]*Entry{},
		hashes:  map[string]string{},
	}
	for _, f := range m.Files {
		s.files[f.Path] = f
	}
	if !opts.ReadOnly {
		for _, sub := range []string{"images", "labels", "masks"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				return nil, fmt.Errorf("opening store %s: %w", dir, err)
			}
		}
		if err := s.recover(); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", dir, err)
		}
	}
	for _, f := range m.Files {
		s.bytes += f.Size
		id, ok := strings.CutPrefix(f.Path, "labels/")
		if !ok {
			continue
		}
		id = strings.TrimSuffix(id, ".json")
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			continue // in Recovery.Missing
		}
		e, err := parseLabel(b)
		if err != nil || e.ID != id {
			continue // Validate reports it; the entry is unreadable
		}
		s.entries[id] = &e
		if img, ok := s.files[imagePath(id)]; ok {
			s.hashes[img.SHA256] = id
		}
	}
	return s, nil
}

// recover removes temporary and unlisted files and notes missing ones.
func (s *Store) recover() error {
	if err := s.finishStaged(); err != nil {
		return err
	}
	onDisk := map[string]bool{}
	for _, sub := range []string{"", "images", "labels", "masks"} {
		des, err := os.ReadDir(filepath.Join(s.dir, sub))
		if err != nil {
			return fmt.Errorf("listing %s: %w", sub, err)
		}
		for _, de := range des {
			rel := de.Name()
			if sub != "" {
				rel = sub + "/" + rel
			}
			switch {
			case strings.HasPrefix(de.Name(), tempPrefix):
				if err := os.RemoveAll(filepath.Join(s.dir, filepath.FromSlash(rel))); err != nil {
					return fmt.Errorf("removing %s: %w", rel, err)
				}
				s.recovery.Temp = append(s.recovery.Temp, rel)
			case sub == "" || de.IsDir():
				// Top-level files and folders are not the store's business.
			default:
				onDisk[rel] = true
				if _, ok := s.files[rel]; !ok {
					if err := os.Remove(filepath.Join(s.dir, filepath.FromSlash(rel))); err != nil {
						return fmt.Errorf("removing %s: %w", rel, err)
					}
					s.recovery.Orphans = append(s.recovery.Orphans, rel)
				}
			}
		}
	}
	for p := range s.files {
		if !onDisk[p] {
			s.recovery.Missing = append(s.recovery.Missing, p)
		}
	}
	slices.Sort(s.recovery.Missing)
	return nil
}

// Close releases the store's writer lock (a process's lock: Close on one
// of two writable Stores of the same folder releases it for both). Put and
// Correct must not be called after it; reads still work.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	if err != nil {
		return fmt.Errorf("closing store %s: %w", s.dir, err)
	}
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Classes returns the class names from the manifest (nil if none).
func (s *Store) Classes() []string { return slices.Clone(s.opts.Classes) }

// Recovery returns what Open cleaned up.
func (s *Store) Recovery() Recovery { return s.recovery }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{
		Entries: len(s.entries), Bytes: s.bytes, Version: s.man.Version,
		Puts: s.puts.Load(), Evictions: s.evictions.Load(),
	}
}

// Version returns the data-set version of the store's current contents.
func (s *Store) Version() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.man.Version
}

// Put adds an entry and returns its ID. It fails with ErrExists,
// ErrDuplicate or ErrTooLarge, or when the labels do not fit the picture
// (boxes or keypoints outside it, masks of another size, classes that are
// not class ids); the store is then unchanged.
func (s *Store) Put(e Entry) (string, error) {
	if s.opts.ReadOnly {
		return "", fmt.Errorf("putting entry: %w", ErrReadOnly)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.lock == nil {
		return "", fmt.Errorf("putting entry: %w", ErrClosed)
	}
	if e.Image == nil {
		return "", errors.New("putting entry: no image")
	}
	b := e.Image.Bounds()
	e.Width, e.Height = b.Dx(), b.Dy()
	e.Corrected, e.PreObjects = false, nil
	if e.ID == "" {
		e.ID = makeID(&e)
	}
	if err := checkID(e.ID); err != nil {
		return "", fmt.Errorf("putting entry: id: %w", err)
	}
	if ps := checkLabels(&e, e.Segmentation, s.opts.Classes); len(ps) > 0 {
		return "", fmt.Errorf("putting entry %s: %s", e.ID, ps[0].msg)
	}
	s.mu.RLock()
	_, exists := s.entries[e.ID]
	s.mu.RUnlock()
	if exists {
		return "", fmt.Errorf("putting entry %s: %w", e.ID, ErrExists)
	}

	enc := png.Encoder{CompressionLevel: s.opts.Compression}
	type file struct {
		path string
		data []byte
	}
	var img bytes.Buffer
	if err := enc.Encode(&img, e.Image); err != nil {
		return "", fmt.Errorf("putting entry %s: encoding image: %w", e.ID, err)
	}
	files := []file{{imagePath(e.ID), img.Bytes()}}
	imgHash := hashBytes(img.Bytes())
	s.mu.RLock()
	dup, isDup := s.hashes[imgHash]
	s.mu.RUnlock()
	if isDup {
		return "", fmt.Errorf("putting entry %s: same picture as %s: %w", e.ID, dup, ErrDuplicate)
	}
	if e.Segmentation != nil {
		var seg bytes.Buffer
		if err := enc.Encode(&seg, e.Segmentation); err != nil {
			return "", fmt.Errorf("putting entry %s: encoding segmentation: %w", e.ID, err)
		}
		files = append(files, file{maskPath(e.ID), seg.Bytes()})
	}
	lb, err := jsonIndent(e.toLabel(e.Segmentation != nil))
	if err != nil {
		return "", fmt.Errorf("putting entry %s: encoding labels: %w", e.ID, err)
	}
	files = append(files, file{labelPath(e.ID), lb})

	var size int64
	added := make([]FileEntry, len(files))
	for i, f := range files {
		size += int64(len(f.data))
		added[i] = FileEntry{Path: f.path, Size: int64(len(f.data)), SHA256: hashBytes(f.data)}
		if f.path == imagePath(e.ID) {
			added[i].SHA256 = imgHash
		}
	}
	if s.opts.MaxBytes > 0 && size > s.opts.MaxBytes {
		return "", fmt.Errorf("putting entry %s: %d bytes, limit %d: %w", e.ID, size, s.opts.MaxBytes, ErrTooLarge)
	}

	removeNew := func() {
		for _, f := range files {
			_ = os.Remove(filepath.Join(s.dir, filepath.FromSlash(f.path)))
		}
	}
	for _, f := range files {
		if err := writeAtomic(s.dir, f.path, f.data); err != nil {
			removeNew()
			return "", fmt.Errorf("putting entry %s: %w", e.ID, err)
		}
	}

	// Commit: the new manifest lists the new files and drops the evicted.
	s.mu.RLock()
	evict := s.chooseEvictions(size)
	next := manifest{Format: ManifestFormat, Classes: s.man.Classes}
	drop := map[string]bool{}
	for _, id := range evict {
		for _, p := range []string{imagePath(id), labelPath(id), maskPath(id)} {
			drop[p] = true
		}
	}
	for _, f := range s.man.Files {
		if !drop[f.Path] {
			next.Files = append(next.Files, f)
		}
	}
	s.mu.RUnlock()
	next.Files = append(next.Files, added...)
	if err := writeManifest(s.dir, &next); err != nil {
		removeNew()
		return "", fmt.Errorf("putting entry %s: %w", e.ID, err)
	}

	e.Image, e.Segmentation = nil, nil
	s.mu.Lock()
	for _, id := range evict {
		delete(s.hashes, s.files[imagePath(id)].SHA256)
		delete(s.entries, id)
	}
	for p := range drop {
		if f, ok := s.files[p]; ok {
			s.bytes -= f.Size
			delete(s.files, p)
		}
	}
	for _, f := range added {
		s.files[f.Path] = f
		s.bytes += f.Size
	}
	s.entries[e.ID] = &e
	s.hashes[imgHash] = e.ID
	s.man = next
	s.mu.Unlock()

	// Deleting after the commit: a crash here leaves orphans, which Open
	// removes.
	for p := range drop {
		_ = os.Remove(filepath.Join(s.dir, filepath.FromSlash(p)))
	}
	s.puts.Add(1)
	s.evictions.Add(uint64(len(evict)))
	return e.ID, nil
}

// chooseEvictions returns the IDs to evict, oldest capture time first, so
// that adding size bytes stays within MaxBytes. The caller holds s.mu.
func (s *Store) chooseEvictions(size int64) []string {
	if s.opts.MaxBytes <= 0 || s.bytes+size <= s.opts.MaxBytes {
		return nil
	}
	all := s.sortedLocked()
	var ids []string
	total := s.bytes
	for _, e := range all {
		if total+size <= s.opts.MaxBytes {
			break
		}
		for _, p := range []string{imagePath(e.ID), labelPath(e.ID), maskPath(e.ID)} {
			total -= s.files[p].Size
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func (s *Store) sortedLocked() []*Entry {
	all := make([]*Entry, 0, len(s.entries))
	for _, e := range s.entries {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b *Entry) int {
		if c := a.CaptureTime.Compare(b.CaptureTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return all
}

// List returns every entry without its pictures, oldest capture time first.
// The Objects are shared with the store: do not modify them.
func (s *Store) List() []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all := s.sortedLocked()
	out := make([]Entry, len(all))
	for i, e := range all {
		out[i] = *e
	}
	return out
}

// Get returns an entry with its picture (*image.RGBA) and segmentation,
// after checking both files against the manifest's hashes.
func (s *Store) Get(id string) (Entry, error) {
	s.mu.RLock()
	ep, ok := s.entries[id]
	var imgF, segF FileEntry
	var hasSeg bool
	if ok {
		imgF = s.files[imagePath(id)]
		segF, hasSeg = s.files[maskPath(id)]
	}
	s.mu.RUnlock()
	if !ok {
		return Entry{}, fmt.Errorf("getting %q: %w", id, ErrNotFound)
	}
	e := *ep
	img, err := s.readPNG(imgF)
	if err != nil {
		return Entry{}, fmt.Errorf("getting %q: %w", id, err)
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		rgba = image.NewRGBA(img.Bounds())
		draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
	}
	e.Image = rgba
	if hasSeg {
		m, err := s.readPNG(segF)
		if err != nil {
			return Entry{}, fmt.Errorf("getting %q: %w", id, err)
		}
		g, ok := m.(*image.Gray)
		if !ok {
			return Entry{}, fmt.Errorf("getting %q: %s: %T is not 8-bit gray", id, segF.Path, m)
		}
		e.Segmentation = g
	}
	return e, nil
}

func (s *Store) readPNG(f FileEntry) (image.Image, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(f.Path)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: evicted or removed: %w", f.Path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Path, err)
	}
	if int64(len(b)) != f.Size || hashBytes(b) != f.SHA256 {
		return nil, fmt.Errorf("%s: %w", f.Path, ErrCorrupt)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", f.Path, err)
	}
	return img, nil
}

// makeID builds an ID from the stream, capture time and frame number.
func makeID(e *Entry) string {
	var sb strings.Builder
	for _, c := range []byte(e.StreamID) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			c = '_'
		}
		if sb.Len() < 64 {
			sb.WriteByte(c)
		}
	}
	if sb.Len() == 0 {
		sb.WriteString("frame")
	}
	fmt.Fprintf(&sb, "-%s-%d", e.CaptureTime.UTC().Format("20060102T150405.000000000Z"), e.FrameSeq)
	return sb.String()
}
