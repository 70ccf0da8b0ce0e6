package decoders

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

func randDets(rng *rand.Rand, n, classes int) []frame.Detection {
	dets := make([]frame.Detection, n)
	for i := range dets {
		x, y := rng.Float32()*200, rng.Float32()*200
		w, h := 5+rng.Float32()*60, 5+rng.Float32()*60
		c := rng.IntN(classes)
		dets[i] = frame.Detection{Box: frame.Box{X1: x, Y1: y, X2: x + w, Y2: y + h}, Class: c,
			Score: float32(rng.IntN(1000)) / 1000, Label: fmt.Sprint(i)}
	}
	return dets
}

// TestNMSProperties checks NMS against the definition of greedy
// suppression, on random boxes: the kept detections are sorted, no two
// (of one class, when class-aware) overlap by more than the threshold,
// and every dropped one overlaps a kept one of at least its score; with
// a cap, the result is the uncapped result's prefix.
func TestNMSProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		n := rng.IntN(60)
		in := randDets(rng, n, 1+rng.IntN(3))
		iou := 0.1 + rng.Float32()*0.8
		aware := trial%2 == 0
		conflict := func(a, b frame.Detection) bool {
			return (!aware || a.Class == b.Class) && a.Box.IoU(b.Box) > iou
		}
		kept := NMS(slices.Clone(in), iou, aware, 0)
		for i := range kept {
			if i > 0 {
				require.GreaterOrEqual(t, kept[i-1].Score, kept[i].Score)
			}
			for j := range i {
				require.False(t, conflict(kept[i], kept[j]), "two kept overlap")
			}
			require.Contains(t, in, kept[i])
		}
		for _, d := range in {
			if slices.ContainsFunc(kept, func(k frame.Detection) bool { return k.Label == d.Label }) {
				continue
			}
			require.True(t, slices.ContainsFunc(kept, func(k frame.Detection) bool {
				return k.Score >= d.Score && conflict(k, d)
			}), "dropped %+v without a stronger overlapping box", d)
		}
		if len(kept) > 0 {
			m := 1 + rng.IntN(len(kept))
			require.Equal(t, kept[:m], NMS(slices.Clone(in), iou, aware, m))
		}
	}
}

func TestNMSClassAware(t *testing.T) {
	b := frame.Box{X1: 0, Y1: 0, X2: 10, Y2: 10}
	shifted := frame.Box{X1: 1, Y1: 0, X2: 11, Y2: 10} // IoU 9/11
	dets := []frame.Detection{
		{Box: shifted, Class: 1, Score: 0.8},
		{Box: b, Class: 0, Score: 0.9},
		{Box: shifted, Class: 0, Score: 0.7},
	}
	aware := NMS(slices.Clone(dets), 0.5, true, 0)
	require.Equal(t, []frame.Detection{dets[1], dets[0]}, aware)
	agnostic := NMS(slices.Clone(dets), 0.5, false, 0)
	require.Equal(t, []frame.Detection{dets[1]}, agnostic)
	require.Equal(t, []frame.Detection{dets[1], dets[0]}, NMS(slices.Clone(dets), 0.85, false, 0), "IoU 90/110 is under 0.85; the identical box goes")
	require.Empty(t, NMS(nil, 0.5, true, 10))
}

func BenchmarkNMS(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			in := randDets(rand.New(rand.NewPCG(5, 6)), n, 3)
			work := make([]frame.Detection, n)
			b.ReportAllocs()
			for b.Loop() {
				copy(work, in)
				NMS(work, 0.45, true, 100)
			}
		})
	}
}
