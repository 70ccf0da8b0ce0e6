package dataset

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
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

// TestStoreSourceLabels: a trainer can take the pre-labels only (also of
// corrected entries), the corrected labels only, or the current labels.
func TestStoreSourceLabels(t *testing.T) {
	syn := labelledSynth(t)
	st, err := store.Create(t.TempDir(), store.Options{Classes: []string{"person", "bicycle", "car"}})
	require.NoError(t, err)
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 3 {
		s, err := syn.At(i)
		require.NoError(t, err)
		e := store.Entry{StreamID: "cam", CaptureTime: t0.Add(time.Duration(i) * time.Second), Image: s.Image, Segmentation: s.Segmentation}
		for _, o := range s.Objects {
			e.Objects = append(e.Objects, store.Object{Box: o.Box, Class: o.Class, Label: o.Label, Score: 0.4, Mask: o.Mask})
		}
		id, err := st.Put(e)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	// A person corrects entry 1: one box, no masks.
	fixed := []store.Object{{Box: frame.Box{X1: 1, Y1: 2, X2: 30, Y2: 40}, Class: 2, Label: "car", Score: 1}}
	_, err = st.Correct([]store.Correction{{ID: ids[1], Objects: fixed}})
	require.NoError(t, err)
	pre1, err := syn.At(1)
	require.NoError(t, err)

	cur := NewStoreSource(st)
	require.Equal(t, 3, cur.Len())
	s, err := cur.At(1)
	require.NoError(t, err)
	require.Len(t, s.Objects, 1)
	require.Equal(t, float32(1), s.Objects[0].Score)
	require.Nil(t, s.Segmentation, "the map made from the pre-labels went with the correction")
	c, err := cur.Corrected(1)
	require.NoError(t, err)
	require.True(t, c)
	c, err = cur.Corrected(0)
	require.NoError(t, err)
	require.False(t, c)

	pre := NewStoreSourceWith(st, StoreOptions{Labels: StoreLabelsPre})
	require.Equal(t, 3, pre.Len())
	s, err = pre.At(1)
	require.NoError(t, err)
	require.Len(t, s.Objects, len(pre1.Objects))
	for _, o := range s.Objects {
		require.Equal(t, float32(0.4), o.Score)
	}
	require.Equal(t, pre1.Segmentation.Pix, s.Segmentation.Pix, "painted from the pre-labels' masks")

	corr := NewStoreSourceWith(st, StoreOptions{Labels: StoreLabelsCorrected})
	require.Equal(t, 1, corr.Len())
	s, err = corr.At(0)
	require.NoError(t, err)
	require.Equal(t, ids[1], s.ID)
	require.Equal(t, fixed[0].Box, s.Objects[0].Box)
	require.Equal(t, "corrected", StoreLabelsCorrected.String())
}
