package decoders

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// fuzzValues fills n values from one of several distributions: small
// normal, probabilities, wide uniform, or any of those with NaN, ±Inf
// and huge values sprinkled in.
func fuzzValues(rng *rand.Rand, n int, mode uint8) []float32 {
	v := make([]float32, n)
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e30, -1e30, 0, 1}
	for i := range v {
		switch mode % 4 {
		case 0:
			v[i] = float32(rng.NormFloat64() * 3)
		case 1:
			v[i] = rng.Float32()
		case 2:
			v[i] = (rng.Float32() - 0.5) * 200
		default:
			v[i] = rng.Float32()
			if rng.IntN(5) == 0 {
				v[i] = specials[rng.IntN(len(specials))]
			}
		}
	}
	return v
}

// fuzzOutputs makes outputs of the right shapes for family with batch
// size batch, and the options (input size) to decode them.
func fuzzOutputs(rng *rand.Rand, family string, batch int, mode uint8) (Options, []Tensor) {
	B := int64(batch)
	t := func(name string, shape ...int64) Tensor {
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		return Tensor{Name: name, Shape: append([]int64{B}, shape...), Data: fuzzValues(rng, batch*n, mode)}
	}
	nc := int64(1 + rng.IntN(4))
	switch family {
	case "yolox":
		w, h := 32*(1+rng.IntN(3)), 32*(1+rng.IntN(3))
		a := 0
		for _, s := range []int{8, 16, 32} {
			a += (w / s) * (h / s)
		}
		return Options{InputW: w, InputH: h}, []Tensor{t("output", int64(a), 5+nc)}
	case "fastestdet":
		return Options{InputW: 64, InputH: 48}, []Tensor{t("out", 5+nc, int64(1+rng.IntN(4)), int64(1+rng.IntN(4)))}
	case "nanodet":
		w, h := 8*(1+rng.IntN(8)), 8*(1+rng.IntN(8))
		o := Options{InputW: w, InputH: h}
		var cls, dis []Tensor
		for _, s := range []int{8, 16, 32} {
			cells := int64(((w + s - 1) / s) * ((h + s - 1) / s))
			cls = append(cls, t("cls", cells, nc))
			dis = append(dis, t("dis", cells, 32))
		}
		return o, append(cls, dis...)
	case "ultraface":
		a := int64(1 + rng.IntN(50))
		return Options{InputW: 320, InputH: 240}, []Tensor{t("scores", a, 2), t("boxes", a, 4)}
	case "bodypix":
		gw, gh := 1+rng.IntN(6), 1+rng.IntN(6)
		o := Options{InputW: (gw-1)*16 + 1, InputH: (gh-1)*16 + 1}
		return o, []Tensor{
			t("heatmaps", int64(gh), int64(gw), 17), t("short_offsets", int64(gh), int64(gw), 34),
			t("displacement_fwd", int64(gh), int64(gw), 32), t("displacement_bwd", int64(gh), int64(gw), 32),
			t("segments", int64(gh), int64(gw), 1),
		}
	case "selfie":
		return Options{InputW: 64, InputH: 36}, []Tensor{t("segment_back", int64(1+rng.IntN(20)), int64(1+rng.IntN(20)), 1)}
	case "embedding":
		return Options{InputW: 32, InputH: 64}, []Tensor{t("Identity:0", int64(1+rng.IntN(16)))}
	case "centernet":
		gw, gh := 1+rng.IntN(8), 1+rng.IntN(8)
		return Options{InputW: 4 * gw, InputH: 4 * gh}, []Tensor{
			t("heatmap", nc, int64(gh), int64(gw)), t("size", 2, int64(gh), int64(gw)),
			t("offset", 2, int64(gh), int64(gw)), t("keypoints", 3*int64(rng.IntN(3)), int64(gh), int64(gw)),
		}
	}
	panic("no fuzz outputs for " + family)
}

// FuzzDecode feeds every decoder random outputs of the right shapes and
// random transforms: it must not panic, and every box, keypoint and mask
// must be finite and inside the source frame.
func FuzzDecode(f *testing.F) {
	for i := range Families() {
		for mode := range uint8(4) {
			f.Add(uint8(i), uint64(i)*7+uint64(mode), mode)
		}
	}
	f.Fuzz(func(t *testing.T, fam uint8, seed uint64, mode uint8) {
		names := Families()
		family := names[int(fam)%len(names)]
		rng := rand.New(rand.NewPCG(seed, uint64(mode)))
		batch := 1 + rng.IntN(2)
		o, outs := fuzzOutputs(rng, family, batch, mode)
		o.ClassAgnostic = rng.IntN(2) == 0
		d, err := New(family, o)
		require.NoError(t, err)
		tf := prep.Transform{
			ScaleX: 0.05 + rng.Float32()*4, ScaleY: 0.05 + rng.Float32()*4,
			PadX: (rng.Float32() - 0.5) * 200, PadY: (rng.Float32() - 0.5) * 200,
			SrcW: 1 + rng.IntN(300), SrcH: 1 + rng.IntN(300),
		}
		for b := range batch {
			dets, err := d.Decode(nil, outs, b, tf)
			if family == "embedding" && err != nil {
				require.ErrorContains(t, err, "norm")
				continue
			}
			require.NoError(t, err)
			require.LessOrEqual(t, len(dets), 100)
			for _, det := range dets {
				checkDetection(t, det, tf, family != "embedding")
			}
		}
	})
}

func checkDetection(t *testing.T, d frame.Detection, tf prep.Transform, nonEmpty bool) {
	t.Helper()
	b := d.Box
	w, h := float32(tf.SrcW), float32(tf.SrcH)
	require.True(t, finite(b.X1) && finite(b.Y1) && finite(b.X2) && finite(b.Y2), "box %+v", b)
	require.True(t, 0 <= b.X1 && b.X1 <= b.X2 && b.X2 <= w && 0 <= b.Y1 && b.Y1 <= b.Y2 && b.Y2 <= h, "box %+v outside %vx%v", b, w, h)
	if nonEmpty {
		require.Positive(t, b.Area(), "box %+v", b)
	}
	for _, k := range d.Keypoints {
		require.True(t, finite(k.X) && finite(k.Y) && finite(k.Score) && k.X >= 0 && k.X <= w && k.Y >= 0 && k.Y <= h, "keypoint %+v", k)
	}
	if d.Mask != nil {
		require.Equal(t, tf.SrcW, d.Mask.Width)
		require.Equal(t, tf.SrcH, d.Mask.Height)
		total := 0
		for _, c := range d.Mask.Counts {
			total += int(c)
		}
		require.Equal(t, tf.SrcW*tf.SrcH, total)
	}
	for _, e := range d.Embedding {
		require.True(t, finite(e))
	}
}
