package dataset

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/training/store"
)

func TestStoreSource(t *testing.T) {
	syn := labelledSynth(t)
	st, err := store.Create(t.TempDir(), store.Options{Classes: []string{"person", "bicycle", "car"}})
	require.NoError(t, err)
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for i := range syn.Len() {
		s, err := syn.At(i)
		require.NoError(t, err)
		e := store.Entry{
			StreamID: s.Sequence, CaptureTime: t0.Add(time.Duration(i) * time.Second), FrameSeq: uint64(i),
			Miner: "test", Image: s.Image, Segmentation: s.Segmentation,
		}
		for k, o := range s.Objects {
			e.Objects = append(e.Objects, store.Object{
				Box: o.Box, Class: o.Class, Label: o.Label, Score: 0.25 + float32(k%3)/4,
				TrackID: o.TrackID, Keypoints: o.Keypoints, Mask: o.Mask, Ignore: o.Ignore,
			})
		}
		_, err = st.Put(e)
		require.NoError(t, err)
	}
	src := NewStoreSource(st)
	require.Equal(t, syn.Len(), src.Len())
	for i := range src.Len() {
		w, err := syn.At(i)
		require.NoError(t, err)
		g, err := src.At(i)
		require.NoError(t, err)
		require.Equal(t, w.Sequence, g.Sequence)
		require.Equal(t, w.Image.Pix, g.Image.Pix)
		require.Equal(t, w.Segmentation.Pix, g.Segmentation.Pix)
		requireSameObjects(t, w.Objects, g.Objects, 0)
		for k, o := range g.Objects {
			require.Equal(t, 0.25+float32(k%3)/4, o.Score)
			require.Equal(t, w.Objects[k].Mask.Counts, o.Mask.Counts)
		}
		e, err := src.Entry(i)
		require.NoError(t, err)
		require.Equal(t, "test", e.Miner)
	}
	tr, va, err := Split(src, 0.5, 1)
	require.NoError(t, err)
	require.Equal(t, 3, tr.Len())
	require.Equal(t, 3, va.Len())
}
