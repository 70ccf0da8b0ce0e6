package tracking

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKalmanMatchesReference checks a few initiate/predict/update steps
// against values printed by testdata/kalman_ref.py, a numpy port of Deep
// SORT's kalman_filter.py (run with /usr/bin/python3, numpy 1.24.2).
func TestKalmanMatchesReference(t *testing.T) {
	meas := []Measurement{
		{100, 200, 0.5, 80},
		{104, 203, 0.52, 82},
		{109, 205, 0.49, 81},
		{113.5, 209, 0.5, 84},
	}
	wantGate := []float64{0.27888510737764566, 0.3690728578137655, 0.4053657429023186}
	wantMean := [8]float64{115.89211303972058, 210.26174778899315, 0.50008983359334, 84.11875343001817, 3.165450726983697, 2.026504945581274, -1.1003736589735876e-10, 0.7563243129506891}
	var wantCov [8][8]float64
	for i := 0; i < 4; i++ {
		wantCov[i][i] = 47.08343961143455
		wantCov[i+4][i+4] = 8.696553809489203
		wantCov[i][i+4] = 12.76350993851836
		wantCov[i+4][i] = 12.76350993851836
	}
	wantCov[2][2] = 0.00047310687166241146
	wantCov[6][6] = 4.999999569414196e-10
	wantCov[2][6], wantCov[6][2] = 9.674752144306827e-10, 9.674752144306827e-10

	s := Initiate(meas[0])
	for i, m := range meas[1:] {
		s.Predict()
		require.InEpsilon(t, wantGate[i], s.GatingDistance(m, false), 1e-9, "step %d", i)
		require.NoError(t, s.Update(m))
	}
	s.Predict()
	for i := range wantMean {
		require.InDelta(t, wantMean[i], s.Mean[i], 1e-9*math.Max(1, math.Abs(wantMean[i])), "mean[%d]", i)
		for j := range wantCov[i] {
			require.InDelta(t, wantCov[i][j], s.Cov[i][j], 1e-9*math.Max(1e-3, math.Abs(wantCov[i][j])), "cov[%d][%d]", i, j)
		}
	}
}

func TestKalmanInitiate(t *testing.T) {
	s := Initiate(Measurement{10, 20, 0.5, 40})
	require.Equal(t, [8]float64{10, 20, 0.5, 40, 0, 0, 0, 0}, s.Mean)
	require.InDelta(t, 16.0, s.Cov[0][0], 1e-12) // (2/20*40)^2
	require.InDelta(t, 6.25, s.Cov[4][4], 1e-12) // (10/160*40)^2
	require.InDelta(t, 1e-4, s.Cov[2][2], 1e-18)
	require.Zero(t, s.Cov[0][1])
}

func TestKalmanGatingDistanceOfPrediction(t *testing.T) {
	s := Initiate(Measurement{50, 60, 0.7, 120})
	require.NoError(t, s.Update(Measurement{52, 61, 0.7, 121}))
	s.Predict()
	pm, _ := s.Project()
	require.InDelta(t, 0, s.GatingDistance(pm, false), 1e-12)
	require.InDelta(t, 0, s.GatingDistance(pm, true), 1e-12)
	far := pm
	far[0] += 500
	require.Greater(t, s.GatingDistance(far, false), Chi2Inv95[4])
	require.Greater(t, s.GatingDistance(far, true), Chi2Inv95[2])

	// Position-only ignores a and h.
	odd := pm
	odd[2] += 5
	odd[3] += 100
	require.InDelta(t, 0, s.GatingDistance(odd, true), 1e-12)
	require.Greater(t, s.GatingDistance(odd, false), Chi2Inv95[4])

	ds := s.GatingDistances(nil, []Measurement{pm, far}, false)
	require.Len(t, ds, 2)
	require.Equal(t, s.GatingDistance(far, false), ds[1])
}

func TestKalmanStaysPositiveDefinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := Initiate(Measurement{300, 200, 0.45, 150})
	truth := Measurement{300, 200, 0.45, 150}
	for step := 0; step < 1000; step++ {
		truth[0] += 2
		truth[1] -= 1
		truth[3] = 150 + 20*math.Sin(float64(step)/50)
		s.Predict()
		if step%7 == 3 { // missed detections now and then
			continue
		}
		z := truth
		z[0] += rng.NormFloat64() * 3
		z[1] += rng.NormFloat64() * 3
		z[2] += rng.NormFloat64() * 0.01
		z[3] += rng.NormFloat64() * 3
		require.NoError(t, s.Update(z), "step %d", step)
		for i := 0; i < 8; i++ {
			for j := 0; j < 8; j++ {
				require.Equal(t, s.Cov[i][j], s.Cov[j][i])
			}
		}
		// Cholesky of the full 8x8 covariance must succeed.
		require.True(t, isPD8(s.Cov), "step %d", step)
	}
	require.InDelta(t, truth[0], s.Mean[0], 20)
	require.InDelta(t, 2, s.Mean[4], 2)
}

func TestKalmanRejectsNonFinite(t *testing.T) {
	s := Initiate(Measurement{1, 2, 0.5, 10})
	before := s
	s.Cov[0][0] = math.NaN()
	require.ErrorIs(t, s.Update(Measurement{1, 2, 0.5, 10}), ErrNotPositiveDefinite)
	require.True(t, math.IsInf(s.GatingDistance(Measurement{1, 2, 0.5, 10}, false), 1))
	s = before
	require.True(t, math.IsInf(s.GatingDistance(Measurement{math.NaN(), 2, 0.5, 10}, false), 1))
}

func TestKalmanNoAllocs(t *testing.T) {
	s := Initiate(Measurement{100, 100, 0.5, 50})
	ms := []Measurement{{101, 100, 0.5, 50}, {120, 90, 0.5, 55}}
	dst := make([]float64, 0, len(ms))
	allocs := testing.AllocsPerRun(100, func() {
		s.Predict()
		_ = s.Update(Measurement{101, 100, 0.5, 50})
		_ = s.GatingDistance(ms[0], false)
		dst = s.GatingDistances(dst[:0], ms, true)
	})
	require.Zero(t, allocs)
}

func BenchmarkKalmanPredictUpdate(b *testing.B) {
	s := Initiate(Measurement{100, 100, 0.5, 50})
	b.ReportAllocs()
	for b.Loop() {
		s.Predict()
		_ = s.Update(Measurement{101, 100, 0.5, 50})
	}
}

func isPD8(p [8][8]float64) bool {
	var l [8][8]float64
	for j := 0; j < 8; j++ {
		d := p[j][j]
		for k := 0; k < j; k++ {
			d -= l[j][k] * l[j][k]
		}
		if !(d > 0) {
			return false
		}
		l[j][j] = math.Sqrt(d)
		for i := j + 1; i < 8; i++ {
			v := p[i][j]
			for k := 0; k < j; k++ {
				v -= l[i][k] * l[j][k]
			}
			l[i][j] = v / l[j][j]
		}
	}
	return true
}
