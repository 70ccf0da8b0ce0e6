package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

// testEntry makes a 64x48 entry whose picture depends on seed, with a
// person (box, keypoints, mask) and a car, and a matching segmentation.
func testEntry(seed uint64) Entry {
	const w, h = 64, 48
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(r.UintN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	pm := make([]byte, w*h)
	seg := image.NewGray(image.Rect(0, 0, w, h))
	for y := 10; y < 30; y++ {
		for x := 5; x < 15; x++ {
			pm[y*w+x] = 1
			seg.Pix[y*seg.Stride+x] = 1 // person = class 0
		}
	}
	for y := 30; y < 40; y++ {
		for x := 30; x < 60; x++ {
			seg.Pix[y*seg.Stride+x] = 3 // car = class 2
		}
	}
	mask := frame.EncodeMask(pm, w, h)
	kp := make(frame.Keypoints, 17)
	for k := range kp {
		kp[k] = frame.Keypoint{X: 5 + float32(k%10), Y: 10 + float32(k), Score: float32(k%2) * 0.9}
	}
	return Entry{
		StreamID: "cam/1", CaptureTime: t0.Add(time.Duration(seed) * time.Second), FrameSeq: seed,
		Miner: "low_confidence", Reason: "best score 0.31", Model: Model{Name: "yolox_nano", Version: "v3"},
		Image: img, Segmentation: seg,
		Objects: []Object{
			{Box: frame.Box{X1: 5, Y1: 10, X2: 15, Y2: 30}, Class: 0, Label: "person", Score: 0.31, TrackID: 4, Keypoints: kp, Mask: &mask},
			{Box: frame.Box{X1: 30, Y1: 30, X2: 60, Y2: 40}, Class: 2, Label: "car", Score: 0.5, Ignore: true},
		},
	}
}

func requireValid(t *testing.T, dir string) {
	t.Helper()
	ps, err := Validate(dir)
	require.NoError(t, err)
	require.Empty(t, ps)
}

func TestPutGetRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{})
	require.NoError(t, err)
	v0 := s.Version()
	want := testEntry(1)
	id, err := s.Put(want)
	require.NoError(t, err)
	require.Equal(t, "cam_1-20261129T080001.000000000Z-1", id)
	require.NotEqual(t, v0, s.Version())
	requireValid(t, dir)

	for _, st := range []*Store{s, mustOpen(t, dir)} {
		got, err := st.Get(id)
		require.NoError(t, err)
		require.Equal(t, want.Image.(*image.RGBA).Pix, got.Image.(*image.RGBA).Pix)
		require.Equal(t, want.Segmentation.Pix, got.Segmentation.Pix)
		require.Equal(t, want.Objects, got.Objects)
		require.True(t, want.CaptureTime.Equal(got.CaptureTime))
		require.Equal(t, want.Model, got.Model)
		require.Equal(t, want.Miner, got.Miner)
		require.Equal(t, want.Reason, got.Reason)
		require.Equal(t, "cam/1", got.StreamID)
		require.Equal(t, 64, got.Width)
		require.Len(t, st.List(), 1)
		require.Equal(t, s.Version(), st.Version())
	}
	_, err = s.Get("nope")
	require.ErrorIs(t, err, ErrNotFound)

	// The label file is plain JSON with the documented keys.
	b, err := os.ReadFile(filepath.Join(dir, "labels", id+".json"))
	require.NoError(t, err)
	var l map[string]any
	require.NoError(t, json.Unmarshal(b, &l))
	for _, k := range []string{"format", "image", "segmentation", "stream_id", "capture_time", "frame_seq", "miner", "reason", "model", "objects"} {
		require.Contains(t, l, k)
	}
	// The segmentation is a gray PNG, not JPEG.
	mb, err := os.ReadFile(filepath.Join(dir, "masks", id+".png"))
	require.NoError(t, err)
	_, format, err := image.DecodeConfig(bytes.NewReader(mb))
	require.NoError(t, err)
	require.Equal(t, "png", format)
}

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	return s
}

func TestVersion(t *testing.T) {
	a := []FileEntry{{"images/a.png", "00", 1}, {"labels/a.json", "11", 2}}
	b := []FileEntry{a[1], a[0]}
	require.Equal(t, Version(a), Version(b))
	require.Len(t, Version(a), 12)
	c := []FileEntry{{"images/a.png", "00", 1}, {"labels/a.json", "11", 3}}
	require.NotEqual(t, Version(a), Version(c))

	// Two stores with the same entries put in another order agree.
	d1, d2 := t.TempDir(), t.TempDir()
	s1, err := Create(d1, Options{})
	require.NoError(t, err)
	s2, err := Create(d2, Options{})
	require.NoError(t, err)
	for _, seed := range []uint64{1, 2, 3} {
		_, err := s1.Put(testEntry(seed))
		require.NoError(t, err)
		_, err = s2.Put(testEntry(4 - seed))
		require.NoError(t, err)
	}
	require.Equal(t, s1.Version(), s2.Version())
}

func TestPutRejects(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{Classes: []string{"person", "bicycle", "car"}})
	require.NoError(t, err)
	_, err = s.Put(testEntry(1))
	require.NoError(t, err)
	v := s.Version()

	e := testEntry(1)
	_, err = s.Put(e)
	require.ErrorIs(t, err, ErrExists)
	e.ID = "other"
	_, err = s.Put(e)
	require.ErrorIs(t, err, ErrDuplicate)

	for _, tc := range []struct {
		name string
		edit func(*Entry)
		msg  string
	}{
		{"bad id", func(e *Entry) { e.ID = "a/../x" }, "character"},
		{"no image", func(e *Entry) { e.Image = nil }, "no image"},
		{"box outside", func(e *Entry) { e.Objects[0].Box.X2 = 65 }, "outside"},
		{"inverted box", func(e *Entry) { e.Objects[0].Box.X2 = 1 }, "inverted"},
		{"unknown class", func(e *Entry) { e.Objects[0].Class = 3 }, "class"},
		{"score", func(e *Entry) { e.Objects[0].Score = 1.5 }, "score"},
		{"keypoint outside", func(e *Entry) { e.Objects[0].Keypoints[1].Y = -3 }, "keypoints[1]"},
		{"mask size", func(e *Entry) { m := frame.EncodeMask(make([]byte, 4), 2, 2); e.Objects[0].Mask = &m }, "mask"},
		{"segmentation value", func(e *Entry) { e.Segmentation.Pix[0] = 4 }, "value 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEntry(9)
			tc.edit(&e)
			_, err := s.Put(e)
			require.ErrorContains(t, err, tc.msg)
			require.Equal(t, v, s.Version())
			require.Equal(t, 1, s.Stats().Entries)
		})
	}
	requireValid(t, dir)

	small, err := Create(t.TempDir(), Options{MaxBytes: 100})
	require.NoError(t, err)
	_, err = small.Put(testEntry(2))
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestEvictionOldestFirst(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{})
	require.NoError(t, err)
	_, err = s.Put(testEntry(100))
	require.NoError(t, err)
	per := s.Stats().Bytes // entries are all about this size
	s, err = Open(dir, Options{MaxBytes: per*3 + per/2})
	require.NoError(t, err)

	// Capture times out of order: eviction goes by capture time, not by
	// insertion.
	for _, seed := range []uint64{5, 1, 7, 3, 9} {
		_, err := s.Put(testEntry(seed))
		require.NoError(t, err)
		require.LessOrEqual(t, s.Stats().Bytes, per*3+per/2)
	}
	st := s.Stats()
	require.Equal(t, 3, st.Entries)
	require.Equal(t, uint64(3), st.Evictions)
	var seqs []uint64
	for _, e := range s.List() {
		seqs = append(seqs, e.FrameSeq)
	}
	// 100 is newest of all; 1 and 3 came after 5 had been evicted.
	require.Equal(t, []uint64{7, 9, 100}, seqs)
	requireValid(t, dir)
	des, err := os.ReadDir(filepath.Join(dir, "images"))
	require.NoError(t, err)
	require.Len(t, des, 3)
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{})
	require.NoError(t, err)
	id, err := s.Put(testEntry(1))
	require.NoError(t, err)
	v := s.Version()

	// A Put that wrote its files but crashed before the manifest: write
	// them by hand from a second store's output.
	other := t.TempDir()
	s2, err := Create(other, Options{})
	require.NoError(t, err)
	id2, err := s2.Put(testEntry(2))
	require.NoError(t, err)
	for _, rel := range []string{"images/" + id2 + ".png", "labels/" + id2 + ".json"} {
		b, err := os.ReadFile(filepath.Join(other, rel))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, rel), b, 0o644))
	}
	// A write cut short inside writeAtomic, and a manifest rewrite cut short.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "images", ".tmp-123"), []byte("half a png"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-456"), []byte(`{"format":`), 0o644))

	// Validate sees the committed data set, sound, and lists the
	// leftovers apart: they are what a crash leaves, not problems.
	r, err := Check(dir)
	require.NoError(t, err)
	require.Empty(t, r.Problems)
	require.ElementsMatch(t, []string{".tmp-456", "images/.tmp-123", "images/" + id2 + ".png", "labels/" + id2 + ".json"}, r.Uncommitted)

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	rec := s.Recovery()
	require.ElementsMatch(t, []string{".tmp-456", "images/.tmp-123"}, rec.Temp)
	require.ElementsMatch(t, []string{"images/" + id2 + ".png", "labels/" + id2 + ".json"}, rec.Orphans)
	require.Empty(t, rec.Missing)
	requireValid(t, dir)
	require.Equal(t, v, s.Version())
	_, err = s.Get(id)
	require.NoError(t, err)
	// The interrupted entry can be put again.
	_, err = s.Put(testEntry(2))
	require.NoError(t, err)
	requireValid(t, dir)
}

// rewrite replaces a store file and fixes the manifest to match, so that
// only the planted problem remains.
func rewrite(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, rel), data, 0o644))
	m, err := readManifest(dir)
	require.NoError(t, err)
	found := false
	for i := range m.Files {
		if m.Files[i].Path == rel {
			m.Files[i] = FileEntry{rel, hashBytes(data), int64(len(data))}
			found = true
		}
	}
	if !found {
		m.Files = append(m.Files, FileEntry{rel, hashBytes(data), int64(len(data))})
	}
	require.NoError(t, writeManifest(dir, m))
}

func editLabel(t *testing.T, dir, id string, edit func(l map[string]any)) {
	t.Helper()
	rel := "labels/" + id + ".json"
	b, err := os.ReadFile(filepath.Join(dir, rel))
	require.NoError(t, err)
	var l map[string]any
	require.NoError(t, json.Unmarshal(b, &l))
	edit(l)
	b, err = json.Marshal(l)
	require.NoError(t, err)
	rewrite(t, dir, rel, b)
}

func object(l map[string]any, i int) map[string]any {
	return l["objects"].([]any)[i].(map[string]any)
}

func TestValidatePlantedProblems(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, dir, id string)
		kind  Kind
		path  string // "" for the label of id
	}{
		{"missing image", func(t *testing.T, dir, id string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "images", id+".png")))
		}, KindMissing, "images/%s.png"},
		{"extra file", func(t *testing.T, dir, id string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "images", "stray.png"), []byte("x"), 0o644))
		}, KindExtra, "images/stray.png"},
		{"hash mismatch", func(t *testing.T, dir, id string) {
			p := filepath.Join(dir, "images", id+".png")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			b[len(b)/2] ^= 1
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}, KindHash, "images/%s.png"},
		{"size mismatch", func(t *testing.T, dir, id string) {
			p := filepath.Join(dir, "labels", id+".json")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, append(b, ' '), 0o644))
		}, KindHash, ""},
		{"version", func(t *testing.T, dir, id string) {
			b, err := os.ReadFile(filepath.Join(dir, manifestName))
			require.NoError(t, err)
			var m manifest
			require.NoError(t, json.Unmarshal(b, &m))
			m.Version = "000000000000"
			b, err = json.Marshal(m)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, manifestName), b, 0o644))
		}, KindVersion, manifestName},
		{"manifest", func(t *testing.T, dir, id string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, manifestName), []byte("{"), 0o644))
		}, KindManifest, manifestName},
		{"box outside", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) { object(l, 1)["box"] = []float64{30, 30, 70, 40} })
		}, KindBox, ""},
		{"keypoint outside", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) {
				object(l, 0)["keypoints"].([]any)[3] = []float64{80, 10, 1}
			})
		}, KindKeypoint, ""},
		{"class", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) { object(l, 0)["class"] = -1 })
		}, KindClass, ""},
		{"label size", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) { l["width"] = 65 })
		}, KindLabel, ""},
		{"instance mask size", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) {
				object(l, 0)["mask"] = map[string]any{"size": []int{2, 2}, "counts": "04"}
			})
		}, KindMask, ""},
		{"segmentation value", func(t *testing.T, dir, id string) {
			seg := image.NewGray(image.Rect(0, 0, 64, 48))
			seg.SetGray(3, 3, color.Gray{Y: 9}) // class 8: no such object
			var buf bytes.Buffer
			require.NoError(t, png.Encode(&buf, seg))
			rewrite(t, dir, "masks/"+id+".png", buf.Bytes())
		}, KindMask, "masks/%s.png"},
		{"duplicate image", func(t *testing.T, dir, id string) {
			b, err := os.ReadFile(filepath.Join(dir, "images", id+".png"))
			require.NoError(t, err)
			rewrite(t, dir, "images/copy.png", b)
			editLabelTo(t, dir, id, "copy")
		}, KindDuplicate, "images/copy.png"},
		{"image not png", func(t *testing.T, dir, id string) {
			var buf bytes.Buffer
			require.NoError(t, jpeg.Encode(&buf, testEntry(1).Image, nil))
			rewrite(t, dir, "images/"+id+".png", buf.Bytes())
		}, KindImage, "images/%s.png"},
		{"same pixels", func(t *testing.T, dir, id string) {
			var buf bytes.Buffer
			enc := png.Encoder{CompressionLevel: png.BestCompression}
			require.NoError(t, enc.Encode(&buf, testEntry(1).Image))
			rewrite(t, dir, "images/copy.png", buf.Bytes())
			editLabelTo(t, dir, id, "copy")
		}, KindDuplicate, "images/copy.png"},
		{"label not json", func(t *testing.T, dir, id string) {
			rewrite(t, dir, "labels/"+id+".json", []byte(`{"format": "vigil-hardframe-label/1", "objects": [`))
		}, KindLabel, ""},
		{"label format", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) { l["format"] = "yolo" })
		}, KindLabel, ""},
		{"inverted box", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) { object(l, 1)["box"] = []float64{30, 40, 60, 30} })
		}, KindBox, ""},
		{"keypoint score", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) {
				object(l, 0)["keypoints"].([]any)[2] = []float64{6, 12, 1.5}
			})
		}, KindKeypoint, ""},
		{"pre-label box", func(t *testing.T, dir, id string) {
			editLabel(t, dir, id, func(l map[string]any) {
				l["corrected"] = true
				l["pre_objects"] = []any{map[string]any{"box": []float64{0, 0, 99, 4}, "class": 0, "score": 0.5}}
			})
		}, KindBox, ""},
		{"label without image", func(t *testing.T, dir, id string) {
			editLabelTo(t, dir, id, "lonely")
		}, KindMissing, "labels/lonely.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Create(dir, Options{})
			require.NoError(t, err)
			id, err := s.Put(testEntry(1))
			require.NoError(t, err)
			_, err = s.Put(testEntry(2))
			require.NoError(t, err)
			requireValid(t, dir)
			tc.plant(t, dir, id)
			ps, err := Validate(dir)
			require.NoError(t, err)
			if tc.kind != KindMissing && tc.kind != KindManifest && tc.kind != KindClass {
				require.Len(t, ps, 1, "one planted problem, one report: %v", ps)
			}
			path := "labels/" + id + ".json"
			if tc.path != "" {
				path = tc.path
				if bytes.Contains([]byte(path), []byte("%s")) {
					path = string(bytes.ReplaceAll([]byte(path), []byte("%s"), []byte(id)))
				}
			}
			require.Contains(t, ps, findProblem(ps, tc.kind, path), "%v", ps)
			require.NotEmpty(t, findProblem(ps, tc.kind, path).Msg, "want a %s problem on %s, got %v", tc.kind, path, ps)
		})
	}
}

// editLabelTo copies id's label to a new id (with its image path), as a
// hand-made entry would be.
func editLabelTo(t *testing.T, dir, id, newID string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "labels", id+".json"))
	require.NoError(t, err)
	var l map[string]any
	require.NoError(t, json.Unmarshal(b, &l))
	l["id"], l["image"] = newID, "images/"+newID+".png"
	delete(l, "segmentation")
	b, err = json.Marshal(l)
	require.NoError(t, err)
	rewrite(t, dir, "labels/"+newID+".json", b)
}

func findProblem(ps []Problem, k Kind, path string) Problem {
	for _, p := range ps {
		if p.Kind == k && p.Path == path {
			return p
		}
	}
	return Problem{}
}

func BenchmarkPut(b *testing.B) {
	dir := b.TempDir()
	s, err := Create(dir, Options{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	// A 640x360 picture with smooth content, as a camera frame compresses.
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	for y := range 360 {
		for x := range 640 {
			i := img.PixOffset(x, y)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(x), byte(y), byte(x+y), 255
		}
	}
	e := testEntry(1)
	e.Segmentation = nil
	e.Objects[0].Mask = nil
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		img.Pix[0] = byte(n) // a new picture each time
		img.Pix[4] = byte(n >> 8)
		img.Pix[8] = byte(n >> 16)
		e.Image, e.FrameSeq, e.CaptureTime, e.ID = img, n, t0.Add(time.Duration(n)), ""
		if _, err := s.Put(e); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{})
	require.NoError(t, err)
	_, err = s.Put(testEntry(0))
	require.NoError(t, err)
	per := s.Stats().Bytes
	s, err = Open(dir, Options{MaxBytes: 3 * per})
	require.NoError(t, err)
	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, e := range s.List() {
				if _, err := s.Get(e.ID); err != nil && !errors.Is(err, ErrNotFound) {
					readerErr <- err
					return
				}
			}
			_ = s.Stats()
		}
	}()
	for seed := uint64(1); seed <= 12; seed++ {
		_, err := s.Put(testEntry(seed))
		require.NoError(t, err)
	}
	close(done)
	require.NoError(t, <-readerErr)
	st := s.Stats()
	require.Equal(t, uint64(13), st.Evictions+uint64(st.Entries))
	require.GreaterOrEqual(t, st.Entries, 2)
	requireValid(t, dir)
}

func FuzzParseLabel(f *testing.F) {
	e := testEntry(1)
	e.ID = "x"
	e.Width, e.Height = 64, 48
	b, err := jsonIndent(e.toLabel(true))
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte(`{"format":"vigil-hardframe-label/1","id":"a","image":"images/a.png","width":1,"height":1,"objects":[{"mask":{"size":[1,1],"counts":"0"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseLabel(b)
		if err != nil {
			return
		}
		_ = checkLabels(&e, nil, nil)
	})
}

// TestValidateWhileWriting checks a store while another goroutine keeps
// putting entries and evicting the oldest: the check sees the committed
// data set each time, with no problem, however the writes interleave with
// its reads. (A single pass, without Check's retry, fails here within a
// few evictions: it reads the label of an entry evicted after it read the
// manifest.)
func TestValidateWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{})
	require.NoError(t, err)
	_, err = s.Put(testEntry(1))
	require.NoError(t, err)
	s, err = Open(dir, Options{MaxBytes: s.Stats().Bytes * 30})
	require.NoError(t, err)
	seed := uint64(2)
	for ; s.Stats().Evictions == 0; seed++ { // full: every Put evicts
		_, err := s.Put(testEntry(seed))
		require.NoError(t, err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for ; ; seed++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := s.Put(testEntry(seed))
			require.NoError(t, err)
		}
	}()
	defer func() { close(stop); <-done }()
	checks := 0
	for deadline := time.Now().Add(time.Minute); s.Stats().Evictions < 20 && time.Now().Before(deadline); checks++ {
		r, err := Check(dir)
		require.NoError(t, err)
		require.Empty(t, r.Problems, "check %d", checks)
		require.Positive(t, r.Entries)
	}
	t.Logf("%d checks, %d evictions", checks, s.Stats().Evictions)
	require.GreaterOrEqual(t, s.Stats().Evictions, uint64(20))
}
