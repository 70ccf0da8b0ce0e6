package training

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/models"
	"github.com/vigil-video/vigil/training/store"
)

// hardFrameStore writes n synth frames into a new store as a miner would:
// entries alternate between the band and track_gap miners, every object is
// a pre-label of score 0.9 except the first of each frame (0.2), and
// the first `corrected` entries are then corrected to the ground truth
// (score 1, one object fewer than the pre-labels).
func hardFrameStore(t *testing.T, streams, n, corrected int) *dataset.StoreSource {
	t.Helper()
	st, err := store.Create(t.TempDir(), store.Options{Classes: []string{"person", "car"}})
	require.NoError(t, err)
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var fixes []store.Correction
	for i, s := range synthFrames(t, 21, n, 160, 96) {
		var objs []store.Object
		for k, o := range s.Objects {
			b := o.Box
			b.X1, b.Y1, b.X2, b.Y2 = max(b.X1, 0), max(b.Y1, 0), min(b.X2, 160), min(b.Y2, 96)
			if o.Ignore || b.W() < 1 || b.H() < 1 {
				continue
			}
			score := float32(0.9)
			if k == 0 {
				score = 0.2
			}
			objs = append(objs, store.Object{Box: b, Class: slices.Index([]string{"person", "car"}, o.Label), Label: o.Label, Score: score})
		}
		miner := []string{"band", "track_gap"}[i%2]
		id, err := st.Put(store.Entry{
			StreamID: fmt.Sprintf("cam%d", i%streams), CaptureTime: start.Add(time.Duration(i) * time.Second), FrameSeq: uint64(i),
			Miner: miner, Image: s.Image, Objects: objs,
		})
		require.NoError(t, err)
		if i < corrected {
			fix := slices.Clone(objs[1:])
			for k := range fix {
				fix[k].Score = 1
			}
			fixes = append(fixes, store.Correction{ID: id, Objects: fix})
		}
	}
	if len(fixes) > 0 {
		_, err = st.Correct(fixes)
		require.NoError(t, err)
	}
	return dataset.NewStoreSource(st)
}

func allSamples(t *testing.T, src dataset.Source) []dataset.Sample {
	t.Helper()
	var out []dataset.Sample
	for i := range src.Len() {
		s, err := src.At(i)
		require.NoError(t, err)
		out = append(out, s)
	}
	return out
}

// TestFinetuneDataLabels: each label set picks the entries and labels it
// promises, weights repeat training entries by miner, and low-score
// pre-labels become Ignore regions.
func TestFinetuneDataLabels(t *testing.T) {
	src := hardFrameStore(t, 2, 12, 4)
	classes := []string{"person", "car"}
	pre := map[string]int{} // pre-label count by entry
	for i := range src.Len() {
		e, err := src.Entry(i)
		require.NoError(t, err)
		pre[e.ID] = len(e.PreLabels())
	}

	t.Run("pre", func(t *testing.T) {
		set, err := FinetuneData{Stores: []*dataset.StoreSource{src}, Labels: LabelsPre, MinScore: 0.5}.Build(classes, 1)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"band": 6, "track_gap": 6}, set.Miners)
		require.Equal(t, 0, set.Corrected)
		require.Equal(t, 12, set.StoreTrain+set.StoreVal)
		for _, s := range append(allSamples(t, set.Train), allSamples(t, set.Val)...) {
			require.Len(t, s.Objects, pre[s.ID], s.ID)
			for _, o := range s.Objects {
				require.Equal(t, o.Score < 0.5, o.Ignore, "%s: score %g", s.ID, o.Score)
			}
		}
	})
	t.Run("corrected", func(t *testing.T) {
		set, err := FinetuneData{Stores: []*dataset.StoreSource{src}, Labels: LabelsCorrected, MinScore: 0.5}.Build(classes, 1)
		require.NoError(t, err)
		require.Equal(t, 4, set.Corrected)
		require.Equal(t, 4, set.StoreTrain+set.StoreVal)
		for _, s := range append(allSamples(t, set.Train), allSamples(t, set.Val)...) {
			require.Len(t, s.Objects, pre[s.ID]-1, s.ID)
			for _, o := range s.Objects {
				require.False(t, o.Ignore)
				require.EqualValues(t, 1, o.Score)
			}
		}
	})
	t.Run("both", func(t *testing.T) {
		set, err := FinetuneData{Stores: []*dataset.StoreSource{src}, Labels: LabelsBoth}.Build(classes, 1)
		require.NoError(t, err)
		require.Equal(t, 4, set.Corrected)
		require.Equal(t, 12, set.StoreTrain+set.StoreVal)
	})
	t.Run("weights", func(t *testing.T) {
		set, err := FinetuneData{Stores: []*dataset.StoreSource{src}, MinerWeights: map[string]float64{"band": 2, "track_gap": 0}}.Build(classes, 1)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"band": 6}, set.Miners)
		// The newest band entry validates, the others train, each twice.
		require.Equal(t, 2*(6-set.StoreVal), set.StoreTrain)
		ids := map[string]int{}
		for _, s := range allSamples(t, set.Train) {
			ids[s.ID]++
		}
		for id, n := range ids {
			require.Equal(t, 2, n, id)
		}
	})
	t.Run("one stream holds out its last frames", func(t *testing.T) {
		one := hardFrameStore(t, 1, 8, 0)
		set, err := FinetuneData{Stores: []*dataset.StoreSource{one}, ValFraction: 0.25}.Build(classes, 1)
		require.NoError(t, err)
		require.Equal(t, 6, set.Train.Len())
		require.Equal(t, 2, set.Val.Len())
		last, err := one.Entry(7)
		require.NoError(t, err)
		s, err := set.Val.At(1)
		require.NoError(t, err)
		require.Equal(t, last.ID, s.ID)
	})
	t.Run("every stream trains and validates", func(t *testing.T) {
		three := hardFrameStore(t, 3, 12, 0)
		set, err := FinetuneData{Stores: []*dataset.StoreSource{three}, ValFraction: 0.25}.Build(classes, 1)
		require.NoError(t, err)
		require.Equal(t, 9, set.Train.Len())
		newest := map[string]string{} // stream -> its newest entry
		for i := range three.Len() {
			e, err := three.Entry(i)
			require.NoError(t, err)
			newest[e.StreamID] = e.ID
		}
		var val []string
		for _, s := range allSamples(t, set.Val) {
			val = append(val, s.ID)
		}
		require.ElementsMatch(t, slices.Collect(maps.Values(newest)), val)
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			data FinetuneData
			msg  string
		}{
			{"label set", FinetuneData{Stores: []*dataset.StoreSource{src}, Labels: "gold"}, `"gold"`},
			{"weight", FinetuneData{Stores: []*dataset.StoreSource{src}, MinerWeights: map[string]float64{"band": -1}}, "miner band"},
			{"nothing left", FinetuneData{Stores: []*dataset.StoreSource{src}, MinerWeights: map[string]float64{"band": 0, "track_gap": 0}}, "0 training"},
			{"fraction", FinetuneData{Stores: []*dataset.StoreSource{src}, ValFraction: 1.5}, "fraction"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := tc.data.Build(classes, 1)
				require.ErrorContains(t, err, tc.msg)
			})
		}
	})
}

// TestFinetune: a few steps from a base model change a copy of its
// weights, not the base's, and map a COCO-style class index by label.
func TestFinetune(t *testing.T) {
	opts := smallOptions(4)
	base, err := models.NewCenterNet(opts.Model, 5)
	require.NoError(t, err)
	before := snapshot(base.Params)
	// Synth frames label cars with COCO's class 2: by label they are the
	// detector's class 1.
	coco := synthFrames(t, 31, 6, 160, 96)
	for i := range coco {
		coco[i].Sequence = fmt.Sprint(i % 2)
	}
	set, err := FinetuneData{Stores: []*dataset.StoreSource{hardFrameStore(t, 2, 6, 0)}, Labelled: []dataset.Source{coco}, MinScore: 0.5}.Build(opts.Model.Classes, 1)
	require.NoError(t, err)
	for _, s := range allSamples(t, set.Train) {
		for _, o := range s.Objects {
			require.Equal(t, slices.Index(opts.Model.Classes, o.Label), o.Class)
		}
	}
	opts.Model = models.CenterNetConfig{} // taken from the base
	opts.Batch = 2
	res, err := Finetune(context.Background(), base, opts, set)
	require.NoError(t, err)
	require.Equal(t, 4, res.Steps)
	require.Equal(t, base.Cfg, res.Model.Cfg)
	require.Equal(t, before, snapshot(base.Params), "the base model changed")
	changed := false
	for i, p := range res.Model.Params {
		if !slices.Equal(p.Data(), before[i]) {
			changed = true
		}
	}
	require.True(t, changed, "fine-tuning left every weight as it was")
	require.NotNil(t, res.Final)

	_, err = Finetune(context.Background(), nil, opts, set)
	require.ErrorContains(t, err, "no base")
}
