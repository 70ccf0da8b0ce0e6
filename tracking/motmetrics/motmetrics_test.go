package motmetrics

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/internal/shareddata"
)

func loadPair(tb testing.TB, seq string) (gt, res Sequence) {
	tb.Helper()
	gtPath := shareddata.Path(tb, filepath.Join("mot", seq, "gt.txt"))
	resPath := shareddata.Path(tb, filepath.Join("mot", seq, "test.txt"))
	gt, err := ReadMOT(gtPath)
	require.NoError(tb, err)
	res, err = ReadMOT(resPath)
	require.NoError(tb, err)
	return gt, res
}

// The CLEAR and identity values are py-motmetrics' (shared/data/README.md
// for TUD-Campus; its test_metrics.py expectations for TUD-Stadtmitte).
// The HOTA values were produced by running
//
//	/usr/bin/python3 testdata/hota_reference.py gt.txt test.txt
//
// (a port of TrackEval's hota.py, NumPy 1.24.2, SciPy 1.10.1, Debian 12)
// on each sequence's files in shared/data/mot.
func TestEvaluateReference(t *testing.T) {
	for _, tc := range []struct {
		seq                                string
		idf1, idp, idr, recall, precision  float64
		gt, mt, pt, ml, fp, fn, idsw, frag int
		mota, motp                         float64
		hota, deta, assa, loca             float64
	}{
		{
			seq: "TUD-Campus", idf1: 0.557659, idp: 0.729730, idr: 0.451253, recall: 0.582173, precision: 0.941441,
			gt: 8, mt: 1, pt: 6, ml: 1, fp: 13, fn: 150, idsw: 7, frag: 7, mota: 0.526462, motp: 0.277201,
			hota: 0.39139743784511377, deta: 0.41804703014276301, assa: 0.36912068120832836, loca: 0.77005222702217202,
		},
		{
			seq: "TUD-Stadtmitte", idf1: 0.644619, idp: 0.819760, idr: 0.531142, recall: 0.608997, precision: 0.939920,
			gt: 10, mt: 5, pt: 4, ml: 1, fp: 45, fn: 452, idsw: 7, frag: 6, mota: 0.564014, motp: 0.345904,
			hota: 0.39784901699278769, deta: 0.39226757236931659, assa: 0.40884075181129964, loca: 0.73752117717806198,
		},
	} {
		t.Run(tc.seq, func(t *testing.T) {
			gt, res := loadPair(t, tc.seq)
			r, err := Evaluate(gt, res, Options{})
			require.NoError(t, err)
			require.Equal(t, []int{tc.gt, tc.mt, tc.pt, tc.ml, tc.fp, tc.fn, tc.idsw, tc.frag},
				[]int{r.GT, r.MT, r.PT, r.ML, r.FP, r.FN, r.IDSW, r.Frag})
			for _, c := range []struct {
				name      string
				want, got float64
			}{
				{"idf1", tc.idf1, r.IDF1}, {"idp", tc.idp, r.IDP}, {"idr", tc.idr, r.IDR},
				{"recall", tc.recall, r.Recall}, {"precision", tc.precision, r.Precision},
				{"mota", tc.mota, r.MOTA}, {"motp", tc.motp, r.MOTP},
			} {
				require.InDelta(t, c.want, c.got, 1e-6, c.name)
			}
			for _, c := range []struct {
				name      string
				want, got float64
			}{
				{"hota", tc.hota, r.HOTA}, {"deta", tc.deta, r.DetA}, {"assa", tc.assa, r.AssA}, {"loca", tc.loca, r.LocA},
			} {
				require.InDelta(t, c.want, c.got, 1e-12, c.name)
			}
		})
	}
}

func TestResultJSONKeys(t *testing.T) {
	b, err := json.Marshal(Result{})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	keys := strings.Fields("idf1 idp idr recall precision gt mt pt ml fp fn idsw frag mota motp hota deta assa")
	require.Len(t, m, len(keys))
	for _, k := range keys {
		require.Contains(t, m, k)
	}
}

func box(x float64) Box { return Box{X: x, Y: 10, W: 20, H: 40} }

func TestEvaluateSynthetic(t *testing.T) {
	t.Run("perfect", func(t *testing.T) {
		var gt, res Sequence
		for f := 1; f <= 10; f++ {
			for id := 1; id <= 3; id++ {
				gt.Add(f, Object{ID: id, Box: box(float64(100*id + f))})
				res.Add(f, Object{ID: id + 50, Box: box(float64(100*id + f))})
			}
		}
		r, err := Evaluate(gt, res, Options{})
		require.NoError(t, err)
		require.Equal(t, Result{IDF1: 1, IDP: 1, IDR: 1, Recall: 1, Precision: 1, GT: 3, MT: 3, MOTA: 1, HOTA: 1, DetA: 1, AssA: 1, LocA: 1}, r)
	})
	t.Run("switch and gap", func(t *testing.T) {
		// One object over 10 frames; the tracker misses frames 4-5 and
		// changes id from 7 to 8 at frame 6; it also adds one stray box.
		var gt, res Sequence
		for f := 1; f <= 10; f++ {
			gt.Add(f, Object{ID: 1, Box: box(0)})
			switch {
			case f <= 3:
				res.Add(f, Object{ID: 7, Box: box(0)})
			case f >= 6:
				res.Add(f, Object{ID: 8, Box: box(0)})
			}
		}
		res.Add(2, Object{ID: 9, Box: box(500)})
		r, err := Evaluate(gt, res, Options{})
		require.NoError(t, err)
		require.Equal(t, 1, r.IDSW)
		require.Equal(t, 1, r.Frag)
		require.Equal(t, 2, r.FN)
		require.Equal(t, 1, r.FP)
		require.Equal(t, 1, r.PT+r.MT)
		require.Equal(t, 1, r.MT) // 8 of 10 frames tracked
		require.InDelta(t, 1-4.0/10, r.MOTA, 1e-12)
		require.InDelta(t, 0.8, r.Recall, 1e-12)
		require.InDelta(t, 8.0/9, r.Precision, 1e-12)
		// Identity: 1 matched to 8 (5 frames): IDTP 5, IDFN 5, IDFP 4.
		require.InDelta(t, 0.5, r.IDR, 1e-12)
		require.InDelta(t, 5.0/9, r.IDP, 1e-12)
		require.InDelta(t, 10.0/19, r.IDF1, 1e-12)
		// HOTA with exact boxes: DetA = 8/(8+2+1) at every alpha; AssA =
		// (3*3/10 + 5*5/10)/8.
		require.InDelta(t, 8.0/11, r.DetA, 1e-12)
		require.InDelta(t, (0.9+2.5)/8, r.AssA, 1e-12)
		require.InDelta(t, math.Sqrt(8.0/11*(0.9+2.5)/8), r.HOTA, 1e-12)
	})
	t.Run("threshold", func(t *testing.T) {
		// IoU 1/3 (distance 2/3): unmatched at 0.5, matched at 0.7.
		var gt, res Sequence
		gt.Add(1, Object{ID: 1, Box: Box{W: 20, H: 10}})
		res.Add(1, Object{ID: 2, Box: Box{X: 10, W: 20, H: 10}})
		r, err := Evaluate(gt, res, Options{})
		require.NoError(t, err)
		require.Equal(t, 1, r.FN)
		require.Equal(t, 1, r.FP)
		r, err = Evaluate(gt, res, Options{MaxDistance: 0.7})
		require.NoError(t, err)
		require.Equal(t, 0, r.FN)
		require.InDelta(t, 2.0/3, r.MOTP, 1e-12)
	})
	t.Run("empty", func(t *testing.T) {
		r, err := Evaluate(Sequence{}, Sequence{}, Options{})
		require.NoError(t, err)
		_, err = json.Marshal(r)
		require.NoError(t, err)
	})
	t.Run("ignored gt", func(t *testing.T) {
		var gt, res Sequence
		gt.Add(1, Object{ID: 1, Box: box(0), Ignored: true})
		res.Add(1, Object{ID: 1, Box: box(0)})
		r, err := Evaluate(gt, res, Options{})
		require.NoError(t, err)
		require.Equal(t, 0, r.FN)     // py-motmetrics keeps it
		require.Equal(t, 0.0, r.DetA) // TrackEval drops it: the box is a false positive
	})
	t.Run("duplicate id", func(t *testing.T) {
		var gt Sequence
		gt.Add(3, Object{ID: 1})
		gt.Add(3, Object{ID: 1})
		_, err := Evaluate(gt, Sequence{}, Options{})
		require.ErrorContains(t, err, "frame 3: id 1 occurs twice")
	})
}

func TestParseMOT(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
		n             int
	}{
		{"comma", "1,1,10,20,30,40,1,-1,-1,-1\n2,1,11,20,30,40,1,-1,-1,-1\n", "", 2},
		{"spaces blank lines and extra columns", "\n1 1 10 20 30 40 -1\n\n 2,\t1, 1,2,3,4,0.5,1,1,1,1,1\n", "", 2},
		{"low confidence dropped", "1,1,10,20,30,40,-2\n1,2,10,20,30,40,nan\n", "", 0},
		{"too few fields", "1,1,10,20,30,40,1\n1,2,3\n", "x.txt:2: got 3 fields", 0},
		{"not a number", "1,1,10,abc,30,40,1\n", `x.txt:1: field 4 (y): "abc" is not a number`, 0},
		{"fractional frame", "1.5,1,10,20,30,40,1\n", `x.txt:1: frame "1.5" is not an integer`, 0},
		{"infinite box", "1,1,inf,20,30,40,1\n", "x.txt:1: field 3 (x) is +Inf", 0},
		{"duplicate", "1,1,10,20,30,40,1\n1,1,10,20,30,40,1\n", "x.txt:2: frame 1: id 1 already given on line 1", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseMOT(strings.NewReader(tc.in), "x.txt")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.n, s.Len())
		})
	}
	s, err := ParseMOT(strings.NewReader("2,7,1.5,2,3,4,0,1\n"), "gt")
	require.NoError(t, err)
	require.Equal(t, []int{2}, s.Frames())
	require.Equal(t, []Object{{ID: 7, Box: Box{1.5, 2, 3, 4}, Conf: 0, Ignored: true}}, s.Frame(2))
	_, err = ReadMOT(filepath.Join(t.TempDir(), "missing.txt"))
	require.ErrorContains(t, err, "missing.txt")
}

// bruteForce returns the minimum total cost of a full assignment.
func bruteForce(cost []float64, rows, cols int) float64 {
	best := math.Inf(1)
	used := make([]bool, cols)
	var rec func(i int, acc float64)
	if rows > cols {
		t := make([]float64, len(cost))
		for i := range rows {
			for j := range cols {
				t[j*rows+i] = cost[i*cols+j]
			}
		}
		return bruteForce(t, cols, rows)
	}
	rec = func(i int, acc float64) {
		if i == rows {
			best = math.Min(best, acc)
			return
		}
		for j := range cols {
			if !used[j] {
				used[j] = true
				rec(i+1, acc+cost[i*cols+j])
				used[j] = false
			}
		}
	}
	rec(0, 0)
	return best
}

func TestSolveLSAP(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		rows, cols := 1+rng.IntN(5), 1+rng.IntN(5)
		cost := make([]float64, rows*cols)
		for k := range cost {
			cost[k] = float64(rng.IntN(7)) - 2 // ties and negatives
		}
		ri, ci := solveLSAP(cost, rows, cols)
		require.Len(t, ri, min(rows, cols))
		sum := 0.0
		seenR, seenC := map[int]bool{}, map[int]bool{}
		for k := range ri {
			require.False(t, seenR[ri[k]] || seenC[ci[k]])
			seenR[ri[k]], seenC[ci[k]] = true, true
			if k > 0 {
				require.Less(t, ri[k-1], ri[k])
			}
			sum += cost[ri[k]*cols+ci[k]]
		}
		require.InDelta(t, bruteForce(cost, rows, cols), sum, 1e-9, "%dx%d %v", rows, cols, cost)
	}
	// Forbidden pairs: the maximum number of allowed pairs wins over cost.
	nan := math.NaN()
	ri, ci := solveWithMissing([]float64{0.1, 0.2, 0.3, nan}, 2, 2)
	require.Equal(t, []int{0, 1}, ri)
	require.Equal(t, []int{1, 0}, ci)
	ri, _ = solveWithMissing([]float64{nan, nan}, 1, 2)
	require.Empty(t, ri)
}

func FuzzReadMOT(f *testing.F) {
	f.Add([]byte("1,1,10,20,30,40,1,-1,-1,-1\n2,1,11,20,30,40,1,-1,-1,-1\n"))
	f.Add([]byte("1 2 3 4 5 6 0\n\n1,3,0,0,0,0,-1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseMOT(bytes.NewReader(data), "fuzz")
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "fuzz:"), err.Error())
			return
		}
		r, err := Evaluate(s, s, Options{})
		require.NoError(t, err)
		_, err = json.Marshal(r)
		require.NoError(t, err)
	})
}

func BenchmarkEvaluateTUDStadtmitte(b *testing.B) {
	gt, res := loadPair(b, "TUD-Stadtmitte")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(gt, res, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
