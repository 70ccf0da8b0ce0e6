package frame

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// Expected counts and strings below were checked two ways: by hand (the
// comments) and by running pycocotools' own C code (cocoapi
// common/maskApi.c, copied in inference/cocoeval/testdata/ref) on the same
// inputs: rleFrPoly, rleToString, rleFrString, rleToBbox, rleMerge, rleIou.

func TestCOCOStringRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts []uint32
		want   string
	}{
		// 0 -> '0', 2 -> '2', then 2-2=0 -> '0', 2-2=0 -> '0', 10-2=8 -> '8'.
		{"square", []uint32{0, 2, 2, 2, 10}, "02208"},
		// 10 -> ':'; 40 = 8 | 1<<5 -> 'X' (8|0x20) then '1'; 20 has bit 4
		// set, so it needs a second char: 'd' (20|0x20), '0'; 30-40 = -10
		// -> 22 with the sign bit, one char: 'F'.
		{"hand", []uint32{10, 40, 20, 30}, ":X1d0F"},
		{"triangle", []uint32{8, 1, 6, 3, 4, 4, 4, 2, 5, 1, 18}, "8162N10N1O="},
		{"large", []uint32{0, 100000, 3, 70000000, 5, 1}, "0PeQ33PgUeR22QdhWmM"},
		{"empty", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Mask{Width: 10, Height: 10, Counts: tc.counts}
			require.Equal(t, tc.want, m.COCOString())
			got, err := MaskFromCOCOString(tc.want, 10, 10)
			require.NoError(t, err)
			require.Equal(t, len(tc.counts), len(got.Counts))
			if len(tc.counts) > 0 {
				require.Equal(t, tc.counts, got.Counts)
			}
			require.Equal(t, 10, got.Width)
			require.Equal(t, 10, got.Height)
		})
	}
}

func TestMaskFromCOCOStringErrors(t *testing.T) {
	for _, tc := range []struct{ name, s string }{
		{"below range", "0/"},
		{"above range", "0p"},
		{"cut short", "0X"},         // 'X' has the continuation bit
		{"too long", "XXXXXXX1"},    // 8 characters for one value
		{"negative count", "00F"},   // third count 0 + ... no delta yet: -10
		{"overflow", "0000______?"}, // 15 in each 5 bits up to bit 34
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MaskFromCOCOString(tc.s, 4, 4)
			require.ErrorIs(t, err, ErrMaskString)
		})
	}
}

func TestMaskFromPolygon(t *testing.T) {
	for _, tc := range []struct {
		name string
		xy   []float64
		w, h int
		want []uint32
		bbox [4]float64
	}{
		// The 2x2 square from (0,0) to (2,2) covers pixels x 0..1, y 0..1:
		// columns 0 and 1 start with 2 ones, then 2+... zeros.
		{"square", []float64{0, 0, 0, 2, 2, 2, 2, 0}, 4, 4, []uint32{0, 2, 2, 2, 10}, [4]float64{0, 0, 2, 2}},
		{"triangle", []float64{1.2, 0.7, 6.6, 2.3, 2.9, 5.8}, 8, 7, []uint32{8, 1, 6, 3, 4, 4, 4, 2, 5, 1, 18}, [4]float64{1, 1, 5, 4}},
		// Reaching outside the frame on every side fills it.
		{"clipped", []float64{-3, -2, 5.5, -1, 4, 9.7, -1.5, 6}, 5, 6, []uint32{0, 30}, [4]float64{0, 0, 5, 6}},
		// Repeated and nearly repeated points (0/0 slope in maskApi.c):
		// pixels x 1..3, y 1..3.
		{"duplicates", []float64{1, 1, 1, 1, 4.02, 1, 4, 4, 1, 4, 1, 4.01}, 6, 6, []uint32{7, 3, 3, 3, 3, 3, 14}, [4]float64{1, 1, 3, 3}},
		{"no points", nil, 3, 2, []uint32{6}, [4]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := MaskFromPolygon(tc.xy, tc.w, tc.h)
			require.NoError(t, err)
			require.Equal(t, tc.want, m.Counts)
			require.Equal(t, tc.bbox, m.BBox())
		})
	}
	_, err := MaskFromPolygon([]float64{0, 0, math.NaN(), 1, 2, 2}, 4, 4)
	require.Error(t, err)
	_, err = MaskFromPolygon([]float64{0, 0, 1e9, 1, 2, 2}, 4, 4)
	require.Error(t, err)
	// Within the coordinate bound but 2*5*4e6 upsampled points long.
	_, err = MaskFromPolygon([]float64{0, 0, 4e6, 0, 0, 1}, 4, 4)
	require.ErrorContains(t, err, "longer than")
}

func TestMaskFromBoxMatchesPixels(t *testing.T) {
	// Box x 2..5, y 1..5 in a 6x6 frame: pixels x 2..4, y 1..4.
	m, err := MaskFromBox(2, 1, 3, 4, 6, 6)
	require.NoError(t, err)
	require.Equal(t, []uint32{13, 4, 2, 4, 2, 4, 7}, m.Counts)
	require.Equal(t, 12, m.Area())
	px := m.Decode(nil)
	for y := range 6 {
		for x := range 6 {
			want := byte(0)
			if x >= 2 && x <= 4 && y >= 1 && y <= 4 {
				want = 1
			}
			require.Equal(t, want, px[y*6+x], "pixel %d,%d", x, y)
		}
	}
}

func TestMaskIoUMerge(t *testing.T) {
	a, err := MaskFromPolygon([]float64{1, 1, 1, 1, 4.02, 1, 4, 4, 1, 4, 1, 4.01}, 6, 6) // x 1..3, y 1..3: 9 px
	require.NoError(t, err)
	b, err := MaskFromBox(2, 1, 3, 4, 6, 6) // x 2..4, y 1..4: 12 px
	require.NoError(t, err)
	// Overlap x 2..3, y 1..3 = 6 px; union 9+12-6 = 15.
	require.Equal(t, 0.4, MaskIoU(a, b, false))
	require.Equal(t, 0.4, MaskIoU(b, a, false))
	// Crowd: over the detection's own area, 6/9.
	require.Equal(t, 6.0/9, MaskIoU(a, b, true))
	require.Equal(t, 6.0/12, MaskIoU(b, a, true))
	require.Equal(t, 1.0, MaskIoU(a, a, false))

	u := MergeMasks(a, b)
	require.Equal(t, []uint32{7, 3, 3, 4, 2, 4, 2, 4, 7}, u.Counts)
	require.Equal(t, 15, u.Area())
	i := IntersectMasks(a, b)
	require.Equal(t, []uint32{13, 3, 3, 3, 14}, i.Counts)
	require.Equal(t, 6, i.Area())
	require.Equal(t, a.Counts, MergeMasks(a).Counts)
	require.Equal(t, Mask{}, MergeMasks())

	// Disjoint boxes: 0. Different sizes with overlapping boxes: -1.
	c, err := MaskFromBox(0, 0, 1, 1, 6, 6)
	require.NoError(t, err)
	require.Zero(t, MaskIoU(b, c, false))
	d, err := MaskFromBox(2, 1, 3, 4, 7, 6)
	require.NoError(t, err)
	require.Equal(t, -1.0, MaskIoU(b, d, false))
	require.Equal(t, Mask{}, MergeMasks(b, d))

	// Runs that do not cover the frame: maskApi.c would loop forever.
	short := Mask{Width: 6, Height: 6, Counts: []uint32{13, 4, 2}}
	require.Error(t, short.Valid())
	require.NoError(t, b.Valid())
	require.Equal(t, -1.0, MaskIoU(short, b, false))
	require.Equal(t, Mask{}, MergeMasks(short, b))

	// The union matches a pixel-wise OR of the decoded masks.
	pa, pb := a.Decode(nil), b.Decode(nil)
	for k := range pa {
		pa[k] |= pb[k]
	}
	require.Equal(t, EncodeMask(pa, 6, 6).Counts, u.Counts)
}

func TestCOCOBoxIoU(t *testing.T) {
	a := [4]float64{0, 0, 10, 10}
	b := [4]float64{5, 0, 10, 10}
	require.InDelta(t, 50.0/150, BoxIoU(a, b, false), 1e-15)
	require.InDelta(t, 0.5, BoxIoU(a, b, true), 1e-15) // 50 / dt area 100
	require.Zero(t, BoxIoU(a, [4]float64{10, 0, 5, 5}, false))
}

func FuzzRLEString(f *testing.F) {
	for _, s := range []string{"", "02208", ":X1d0F", "8162N10N1O=", "0PeQ33PgUeR22QdhWmM", "0X", "o", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := MaskFromCOCOString(s, 16, 16)
		if err != nil {
			return
		}
		// Every accepted string re-encodes to a string that decodes to the
		// same counts (the encoding is not unique: '0'-padded values).
		again, err := MaskFromCOCOString(m.COCOString(), 16, 16)
		require.NoError(t, err)
		require.Equal(t, len(m.Counts), len(again.Counts))
		for i := range m.Counts {
			require.Equal(t, m.Counts[i], again.Counts[i])
		}
		_ = m.BBox()
		_ = MaskIoU(m, m, false)
	})
}
