package dataset

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

func TestYOLORoundTrip(t *testing.T) {
	src := Concat(labelledSynth(t), memSource{handSample()})
	dir := t.TempDir()
	require.NoError(t, WriteYOLO(src, dir, ExportOptions{Keypoints: 17}))
	classes, err := os.ReadFile(filepath.Join(dir, "classes.txt"))
	require.NoError(t, err)
	require.Equal(t, "person\nclass1\ncar\n", string(classes))

	// Stems are "NNNNNN_<id>"; the sequence is the id up to its last '_'.
	seqOf := func(stem string) string {
		_, id, _ := strings.Cut(stem, "_")
		return id[:strings.LastIndex(id, "_")]
	}
	got, err := LoadYOLO(filepath.Join(dir, "images"), filepath.Join(dir, "labels"), filepath.Join(dir, "classes.txt"), YOLOOptions{SequenceOf: seqOf})
	require.NoError(t, err)
	require.Equal(t, src.Len(), got.Len())
	totalOutside := 0
	for i := range src.Len() {
		w, err := src.At(i)
		require.NoError(t, err)
		g, err := got.At(i)
		require.NoError(t, err)
		require.Equal(t, w.Image.Pix, g.Image.Pix)
		require.Equal(t, strings.ReplaceAll(w.Sequence, "/", "_"), g.Sequence)
		var kept []Object
		outside := 0
		for _, o := range w.Objects {
			if o.Ignore {
				continue
			}
			// Keypoints outside the picture are written as unlabelled.
			o.Keypoints = slices.Clone(o.Keypoints)
			for k, kp := range o.Keypoints {
				if kp.X < 0 || kp.Y < 0 || kp.X >= 160 || kp.Y >= 96 {
					o.Keypoints[k] = frame.Keypoint{}
					outside++
				}
			}
			if !slices.ContainsFunc(o.Keypoints, func(kp frame.Keypoint) bool { return kp != frame.Keypoint{} }) {
				o.Keypoints = nil // all zeros read as none
			}
			kept = append(kept, o)
		}
		totalOutside += outside
		// 6 decimals of a 160-pixel width.
		requireSameObjects(t, kept, g.Objects, 2e-4)
	}
	require.Positive(t, totalOutside)
}

func TestYOLOHandChecked(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "a.png"))
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, image.NewRGBA(image.Rect(0, 0, 100, 50))))
	require.NoError(t, f.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "classes.txt"), []byte("person\nbicycle\ncar\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("2 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.1 0.2 0.1 0.2 2 0.3 0.4 1\n"), 0o644))
	src, err := LoadYOLO(dir, dir, filepath.Join(dir, "classes.txt"), YOLOOptions{})
	require.NoError(t, err)
	s, err := src.At(0)
	require.NoError(t, err)
	require.Equal(t, "a", s.ID)
	require.Equal(t, []Object{
		{Box: frame.Box{X1: 40, Y1: 15, X2: 60, Y2: 35}, Class: 2, Label: "car", Score: 1},
		{Box: frame.Box{X1: 5, Y1: 5, X2: 15, Y2: 15}, Class: 0, Label: "person", Score: 1,
			Keypoints: frame.Keypoints{{X: 10, Y: 10, Score: 1}, {X: 30, Y: 20, Score: 0}}},
	}, s.Objects)
}

func TestYOLOErrors(t *testing.T) {
	for _, tc := range []struct{ name, line, msg string }{
		{"number", "0 0.5 x 0.2 0.2", "a.txt:2: field 3 (cy)"},
		{"class", "3 0.5 0.5 0.2 0.2", "a.txt:2: field 1 (class)"},
		{"fractional class", "0.5 0.5 0.5 0.2 0.2", "a.txt:2: field 1 (class)"},
		{"fields", "0 0.5 0.5 0.2 0.2 0.1", "a.txt:2: 6 fields"},
		{"negative size", "0 0.5 0.5 -0.2 0.2", "a.txt:2: field 4 (w): -0.2 is outside 0-1"},
		{"keypoint outside", "0 0.5 0.5 0.2 0.2 1.5 0.5 2", "a.txt:2: field 6"},
		{"negative visibility", "0 0.5 0.5 0.2 0.2 0.5 0.5 -1", "a.txt:2: field 8"},
		{"nan", "0 0.5 0.5 NaN 0.2", "a.txt:2: field 4 (w)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := os.Create(filepath.Join(dir, "a.png"))
			require.NoError(t, err)
			require.NoError(t, png.Encode(f, image.NewGray(image.Rect(0, 0, 8, 8))))
			require.NoError(t, f.Close())
			require.NoError(t, os.WriteFile(filepath.Join(dir, "c.txt"), []byte("person\nbicycle\ncar\n"), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("0 0.5 0.5 0.1 0.1\n"+tc.line+"\n"), 0o644))
			_, err = LoadYOLO(dir, dir, filepath.Join(dir, "c.txt"), YOLOOptions{})
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func FuzzParseYOLO(f *testing.F) {
	f.Add("2 0.5 0.5 0.2 0.4\n0 0.1 0.2 0.1 0.2 0.1 0.2 2 0.3 0.4 1\n")
	f.Add("1 1e308 -1e308 0 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		objs, from, err := parseYOLO(strings.NewReader(s), "f.txt", 100, 50, []string{"a", "b", "c"})
		if err != nil {
			return
		}
		require.Len(t, from, len(objs))
		for _, o := range objs {
			require.GreaterOrEqual(t, o.Box.X2, o.Box.X1)
			require.True(t, o.Class >= 0 && o.Class < 3)
		}
	})
}
