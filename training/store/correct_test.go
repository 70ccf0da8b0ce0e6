package store

import (
	"encoding/json"
	"image"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

// snapshot reads every file of a store, by path.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	}))
	return out
}

// corrected is entry 1's labels as a person fixed them: the person's box
// moved, the car deleted, a bicycle added.
func corrected() []Object {
	e := testEntry(1)
	p := e.Objects[0]
	p.Box = frame.Box{X1: 6, Y1: 11, X2: 16, Y2: 31}
	p.Score = 1
	return []Object{p, {Box: frame.Box{X1: 40, Y1: 2, X2: 50, Y2: 20}, Class: 1, Label: "bicycle", Score: 1}}
}

func TestCorrect(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{Classes: []string{"person", "bicycle", "car"}})
	require.NoError(t, err)
	id1, err := s.Put(testEntry(1))
	require.NoError(t, err)
	id2, err := s.Put(testEntry(2))
	require.NoError(t, err)
	v0 := s.Version()
	before := snapshot(t, dir)

	st, err := s.Correct([]Correction{{ID: id1, Objects: corrected()}})
	require.NoError(t, err)
	require.Equal(t, CorrectStats{Entries: 1, Changed: 1, ObjectsBefore: 2, ObjectsAfter: 2, PrevVersion: v0, Version: s.Version()}, st)
	require.NotEqual(t, v0, s.Version())
	requireValid(t, dir)

	after := snapshot(t, dir)
	require.Equal(t, before["labels/"+id2+".json"], after["labels/"+id2+".json"], "entries not corrected stay as they were")
	require.Equal(t, before["images/"+id1+".png"], after["images/"+id1+".png"])
	require.NotContains(t, after, "masks/"+id1+".png", "the class map made from the pre-labels is dropped")
	var l map[string]any
	require.NoError(t, json.Unmarshal([]byte(after["labels/"+id1+".json"]), &l))
	require.Equal(t, true, l["corrected"])
	require.Len(t, l["pre_objects"], 2)
	require.NotContains(t, l, "segmentation")

	for _, st := range []*Store{s, mustOpen(t, dir)} {
		e, err := st.Get(id1)
		require.NoError(t, err)
		require.True(t, e.Corrected)
		require.Equal(t, corrected(), e.Objects)
		require.Equal(t, testEntry(1).Objects, e.PreObjects)
		require.Equal(t, testEntry(1).Objects, e.PreLabels())
		require.Nil(t, e.Segmentation)
		e2, err := st.Get(id2)
		require.NoError(t, err)
		require.False(t, e2.Corrected)
		require.Equal(t, e2.Objects, e2.PreLabels())
		require.Equal(t, s.Version(), st.Version())
	}

	// A second correction keeps the model's pre-labels, not the first
	// correction; repeating it changes nothing.
	again := []Correction{{ID: id1, Objects: corrected()[:1]}}
	st, err = s.Correct(again)
	require.NoError(t, err)
	require.Equal(t, 1, st.Changed)
	e, err := s.Get(id1)
	require.NoError(t, err)
	require.Equal(t, testEntry(1).Objects, e.PreObjects)
	v := s.Version()
	st, err = s.Correct(again)
	require.NoError(t, err)
	require.Equal(t, 0, st.Changed)
	require.Equal(t, v, st.Version)
	requireValid(t, dir)

	r, err := Check(dir)
	require.NoError(t, err)
	require.Equal(t, 2, r.Entries)
	require.Equal(t, 1, r.Corrected)
	require.Equal(t, map[string]int{"low_confidence": 2}, r.Miners)
	require.Equal(t, v, r.Version)
	require.Equal(t, s.Stats().Bytes, r.Bytes)
}

func TestCorrectSegmentation(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{Classes: []string{"person", "bicycle", "car"}})
	require.NoError(t, err)
	id1, err := s.Put(testEntry(1))
	require.NoError(t, err)
	id2, err := s.Put(testEntry(2))
	require.NoError(t, err)
	before := snapshot(t, dir)
	seg := testEntry(1).Segmentation
	seg.Pix[0] = 2 // a bicycle pixel
	_, err = s.Correct([]Correction{
		{ID: id1, Objects: corrected(), Segmentation: seg},
		{ID: id2, Objects: testEntry(2).Objects, KeepSegmentation: true},
	})
	require.NoError(t, err)
	requireValid(t, dir)
	after := snapshot(t, dir)
	require.Equal(t, before["masks/"+id2+".png"], after["masks/"+id2+".png"])
	require.NotEqual(t, before["masks/"+id1+".png"], after["masks/"+id1+".png"])
	e, err := mustOpen(t, dir).Get(id1)
	require.NoError(t, err)
	require.Equal(t, seg.Pix, e.Segmentation.Pix)
}

func TestCorrectRejects(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{Classes: []string{"person", "bicycle", "car"}})
	require.NoError(t, err)
	id, err := s.Put(testEntry(1))
	require.NoError(t, err)
	before := snapshot(t, dir)
	v := s.Version()
	bad := corrected()
	bad[1].Box.X2 = 70
	for _, tc := range []struct {
		name string
		cs   []Correction
		msg  string
	}{
		{"unknown id", []Correction{{ID: "nope"}}, "not in the store"},
		{"box outside", []Correction{{ID: id, Objects: bad}}, "objects[1].box"},
		{"class", []Correction{{ID: id, Objects: []Object{{Box: frame.Box{X2: 1, Y2: 1}, Class: 3, Score: 1}}}}, "objects[0].class"},
		{"twice", []Correction{{ID: id}, {ID: id}}, "listed twice"},
		// The first correction is sound: nothing is written all the same.
		{"second bad", []Correction{{ID: id, Objects: corrected()}, {ID: "nope"}}, "not in the store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Correct(tc.cs)
			require.ErrorContains(t, err, tc.msg)
			require.Equal(t, before, snapshot(t, dir))
			require.Equal(t, v, s.Version())
		})
	}

	ro, err := Open(dir, Options{ReadOnly: true})
	require.NoError(t, err)
	_, err = ro.Correct([]Correction{{ID: id, Objects: corrected()}})
	require.ErrorIs(t, err, ErrReadOnly)
	_, err = ro.Put(testEntry(3))
	require.ErrorIs(t, err, ErrReadOnly)

	// Another process committed since this Store was opened.
	other := mustOpen(t, dir)
	_, err = other.Put(testEntry(2))
	require.NoError(t, err)
	_, err = s.Correct([]Correction{{ID: id, Objects: corrected()}})
	require.ErrorIs(t, err, ErrChanged)
}

// TestCorrectCrash: a crash after the manifest commit leaves staged files,
// which Open moves into place; a crash before it leaves staged files that
// Open removes.
func TestCorrectCrash(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, Options{})
	require.NoError(t, err)
	id, err := s.Put(testEntry(1))
	require.NoError(t, err)
	before := snapshot(t, dir)
	_, err = s.Correct([]Correction{{ID: id, Objects: corrected()}})
	require.NoError(t, err)
	done := snapshot(t, dir)

	write := func(dir string, files map[string]string) {
		require.NoError(t, os.RemoveAll(dir))
		for rel, data := range files {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, rel), []byte(data), 0o644))
		}
	}
	lp := "labels/" + id + ".json"
	staged := "labels/.staged-" + id + ".json"

	// Committed: new manifest, old label, new label staged, old class map
	// not yet deleted.
	crashed := t.TempDir()
	files := maps.Clone(before)
	files[manifestName] = done[manifestName]
	files[staged] = done[lp]
	write(crashed, files)
	ps, err := Validate(crashed)
	require.NoError(t, err)
	var kinds []Kind
	for _, p := range ps {
		kinds = append(kinds, p.Kind)
	}
	slices.Sort(kinds)
	require.Equal(t, []Kind{KindExtra, KindExtra, KindHash}, kinds, "%v", ps)
	// A read-only Open leaves a writer's files alone.
	_, err = Open(crashed, Options{ReadOnly: true})
	require.NoError(t, err)
	require.Equal(t, files, snapshot(t, crashed))
	re := mustOpen(t, crashed)
	require.Equal(t, []string{lp}, re.Recovery().Finished)
	requireValid(t, crashed)
	require.Equal(t, done, snapshot(t, crashed))
	e, err := re.Get(id)
	require.NoError(t, err)
	require.True(t, e.Corrected)

	// Not committed: old manifest, new label staged.
	files = maps.Clone(before)
	files[staged] = done[lp]
	write(crashed, files)
	re = mustOpen(t, crashed)
	require.Equal(t, []string{staged}, re.Recovery().Temp)
	require.Empty(t, re.Recovery().Finished)
	requireValid(t, crashed)
	require.Equal(t, before, snapshot(t, crashed))
}

// BenchmarkCheck validates a store of 16 camera-sized entries (decoding
// every picture for the duplicate check); compare its time per entry with
// BenchmarkPut's.
func BenchmarkCheck(b *testing.B) {
	dir := b.TempDir()
	s, err := Create(dir, Options{})
	require.NoError(b, err)
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
	for n := range 16 {
		img.Pix[0] = byte(n)
		e.Image, e.FrameSeq, e.ID = img, uint64(n), ""
		_, err := s.Put(e)
		require.NoError(b, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Check(dir)
		if err != nil || len(r.Problems) > 0 || r.Entries != 16 {
			b.Fatal(err, r.Problems)
		}
	}
}
