package tracking

import (
	"errors"
	"math"
)

// Kalman filter weights from Deep SORT (nwojke/deep_sort,
// deep_sort/kalman_filter.py): process and measurement noise are scaled by
// the box height.
const (
	stdWeightPosition = 1.0 / 20
	stdWeightVelocity = 1.0 / 160
)

// Chi2Inv95 holds the 0.95 quantile of the chi-square distribution with N
// degrees of freedom at index N (index 0 is unused). Chi2Inv95[4] is the
// usual gating threshold for a full (x, y, a, h) measurement and
// Chi2Inv95[2] for position only.
var Chi2Inv95 = [10]float64{
	0,
	3.8415,
	5.9915,
	7.8147,
	9.4877,
	11.070,
	12.592,
	14.067,
	15.507,
	16.919,
}

// ErrNotPositiveDefinite is returned when a covariance that must be
// symmetric positive definite is not, usually because of non-finite input.
var ErrNotPositiveDefinite = errors.New("tracking: covariance is not positive definite")

// Measurement is a box in Deep SORT's measurement space: centre x, centre
// y, aspect ratio (width / height) and height.
type Measurement [4]float64

// KalmanState is the state of a constant-velocity Kalman filter over
// (cx, cy, a, h, vx, vy, va, vh), as in Deep SORT. The zero value is not a
// valid state; start one with [Initiate]. All methods work in place on fixed
// size arrays and do not allocate.
type KalmanState struct {
	// Mean is the state mean.
	Mean [8]float64
	// Cov is the state covariance, symmetric positive definite.
	Cov [8][8]float64
}

// Initiate creates a track state from an unassociated measurement: the
// position is the measurement, velocities are zero and the covariance is
// diagonal and proportional to the box height.
func Initiate(m Measurement) KalmanState {
	var s KalmanState
	copy(s.Mean[:4], m[:])
	h := m[3]
	std := [8]float64{
		2 * stdWeightPosition * h,
		2 * stdWeightPosition * h,
		1e-2,
		2 * stdWeightPosition * h,
		10 * stdWeightVelocity * h,
		10 * stdWeightVelocity * h,
		1e-5,
		10 * stdWeightVelocity * h,
	}
	for i, v := range std {
		s.Cov[i][i] = v * v
	}
	return s
}

// Predict advances the state by one time step (dt = 1).
func (s *KalmanState) Predict() {
	h := s.Mean[3]
	std := [8]float64{
		stdWeightPosition * h,
		stdWeightPosition * h,
		1e-2,
		stdWeightPosition * h,
		stdWeightVelocity * h,
		stdWeightVelocity * h,
		1e-5,
		stdWeightVelocity * h,
	}
	// mean = F mean, with F = [[I, I], [0, I]].
	for i := 0; i < 4; i++ {
		s.Mean[i] += s.Mean[i+4]
	}
	// P = F P F^T + Q. First rows: (F P)[i] = P[i] + P[i+4] for i < 4.
	p := &s.Cov
	for i := 0; i < 4; i++ {
		for j := 0; j < 8; j++ {
			p[i][j] += p[i+4][j]
		}
	}
	// Then columns: (F P F^T)[.][j] = (FP)[.][j] + (FP)[.][j+4] for j < 4.
	for i := 0; i < 8; i++ {
		for j := 0; j < 4; j++ {
			p[i][j] += p[i][j+4]
		}
	}
	for i, v := range std {
		p[i][i] += v * v
	}
	symmetrize(p)
}

// Project maps the state to measurement space: it returns H mean and
// H P H^T + R, where R is the measurement noise.
func (s *KalmanState) Project() (mean Measurement, cov [4][4]float64) {
	h := s.Mean[3]
	std := [4]float64{
		stdWeightPosition * h,
		stdWeightPosition * h,
		1e-1,
		stdWeightPosition * h,
	}
	copy(mean[:], s.Mean[:4])
	for i := 0; i < 4; i++ {
		copy(cov[i][:], s.Cov[i][:4])
		cov[i][i] += std[i] * std[i]
	}
	return mean, cov
}

// Update corrects the state with an associated measurement. The state is
// left unchanged when the innovation covariance is not positive definite.
func (s *KalmanState) Update(m Measurement) error {
	pm, ps := s.Project()
	l := ps
	if !cholesky4(&l) {
		return ErrNotPositiveDefinite
	}
	// Kalman gain K = P H^T S^-1, i.e. S K^T = (P H^T)^T = H P. Column c of
	// K^T solves S x = (H P)[:, c].
	var kt [4][8]float64
	for c := 0; c < 8; c++ {
		var x [4]float64
		for r := 0; r < 4; r++ {
			x[r] = s.Cov[r][c]
		}
		cholSolve4(&l, &x)
		for r := 0; r < 4; r++ {
			kt[r][c] = x[r]
		}
	}
	var innov [4]float64
	for i := range innov {
		innov[i] = m[i] - pm[i]
	}
	for i := 0; i < 8; i++ {
		var d float64
		for r := 0; r < 4; r++ {
			d += kt[r][i] * innov[r]
		}
		s.Mean[i] += d
	}
	// P -= K S K^T.
	var ks [8][4]float64
	for i := 0; i < 8; i++ {
		for j := 0; j < 4; j++ {
			var d float64
			for r := 0; r < 4; r++ {
				d += kt[r][i] * ps[r][j]
			}
			ks[i][j] = d
		}
	}
	for i := 0; i < 8; i++ {
		for j := 0; j < 8; j++ {
			var d float64
			for r := 0; r < 4; r++ {
				d += ks[i][r] * kt[r][j]
			}
			s.Cov[i][j] -= d
		}
	}
	symmetrize(&s.Cov)
	return nil
}

// GatingDistance returns the squared Mahalanobis distance between the
// projected state and m. With onlyPosition only (cx, cy) are compared and
// the result should be gated with Chi2Inv95[2]; otherwise with
// Chi2Inv95[4]. It returns +Inf when the projected covariance is not
// positive definite.
func (s *KalmanState) GatingDistance(m Measurement, onlyPosition bool) float64 {
	var one [1]Measurement
	one[0] = m
	var out [1]float64
	s.GatingDistances(out[:0], one[:], onlyPosition)
	return out[0]
}

// GatingDistances appends to dst the squared Mahalanobis distance of each
// measurement to the projected state (see [KalmanState.GatingDistance]) and
// returns the extended slice. The covariance is factored once.
func (s *KalmanState) GatingDistances(dst []float64, ms []Measurement, onlyPosition bool) []float64 {
	pm, ps := s.Project()
	n := 4
	if onlyPosition {
		n = 2
		ps[0][2], ps[0][3], ps[1][2], ps[1][3] = 0, 0, 0, 0
		ps[2] = [4]float64{0, 0, 1, 0}
		ps[3] = [4]float64{0, 0, 0, 1}
	}
	l := ps
	ok := cholesky4(&l)
	for _, m := range ms {
		if !ok {
			dst = append(dst, math.Inf(1))
			continue
		}
		// Solve L z = d by forward substitution; distance is |z|^2.
		var z [4]float64
		var d2 float64
		for i := 0; i < n; i++ {
			v := m[i] - pm[i]
			for k := 0; k < i; k++ {
				v -= l[i][k] * z[k]
			}
			z[i] = v / l[i][i]
			d2 += z[i] * z[i]
		}
		if math.IsNaN(d2) {
			d2 = math.Inf(1)
		}
		dst = append(dst, d2)
	}
	return dst
}

// cholesky4 replaces a (symmetric) with its lower Cholesky factor. It
// reports false when a is not positive definite or not finite.
func cholesky4(a *[4][4]float64) bool {
	for j := 0; j < 4; j++ {
		d := a[j][j]
		for k := 0; k < j; k++ {
			d -= a[j][k] * a[j][k]
		}
		if !(d > 0) || math.IsInf(d, 0) {
			return false
		}
		d = math.Sqrt(d)
		a[j][j] = d
		for i := j + 1; i < 4; i++ {
			v := a[i][j]
			for k := 0; k < j; k++ {
				v -= a[i][k] * a[j][k]
			}
			a[i][j] = v / d
		}
		for i := 0; i < j; i++ {
			a[i][j] = 0
		}
	}
	return true
}

// cholSolve4 solves L L^T x = b in place, l being a lower Cholesky factor.
func cholSolve4(l *[4][4]float64, b *[4]float64) {
	for i := 0; i < 4; i++ {
		v := b[i]
		for k := 0; k < i; k++ {
			v -= l[i][k] * b[k]
		}
		b[i] = v / l[i][i]
	}
	for i := 3; i >= 0; i-- {
		v := b[i]
		for k := i + 1; k < 4; k++ {
			v -= l[k][i] * b[k]
		}
		b[i] = v / l[i][i]
	}
}

// symmetrize averages p with its transpose to remove rounding asymmetry.
func symmetrize(p *[8][8]float64) {
	for i := 0; i < 8; i++ {
		for j := i + 1; j < 8; j++ {
			v := 0.5 * (p[i][j] + p[j][i])
			p[i][j], p[j][i] = v, v
		}
	}
}
