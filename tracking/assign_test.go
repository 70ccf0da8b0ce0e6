package tracking

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// bruteForce returns the minimal total of gated (clamped) costs over all
// assignments of min(rows, cols) pairs.
func bruteForce(cost []float64, rows, cols int, maxCost float64) float64 {
	clamp := func(x float64) float64 {
		if !(x <= maxCost) || math.IsInf(x, -1) {
			return maxCost + gateEpsilon
		}
		return x
	}
	origCols := cols
	at := func(r, c int) float64 { return clamp(cost[r*origCols+c]) }
	if rows > cols {
		at = func(r, c int) float64 { return clamp(cost[c*origCols+r]) }
		rows, cols = cols, rows
	}
	used := make([]bool, cols)
	best := math.Inf(1)
	var rec func(r int, sum float64)
	rec = func(r int, sum float64) {
		if r == rows {
			best = math.Min(best, sum)
			return
		}
		for c := 0; c < cols; c++ {
			if !used[c] {
				used[c] = true
				rec(r+1, sum+at(r, c))
				used[c] = false
			}
		}
	}
	rec(0, 0)
	return best
}

func TestAssignerMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var a Assigner
	var matches []Match
	var ur, uc []int
	for trial := 0; trial < 3000; trial++ {
		rows, cols := 1+rng.IntN(7), 1+rng.IntN(7)
		cost := make([]float64, rows*cols)
		ties := trial%3 == 0
		for i := range cost {
			if ties {
				cost[i] = float64(rng.IntN(4)) / 4
			} else {
				cost[i] = rng.Float64()
			}
			switch rng.IntN(10) {
			case 0:
				cost[i] = math.Inf(1)
			case 1:
				cost[i] = math.NaN()
			}
		}
		maxCost := 0.3 + 0.8*rng.Float64()
		var err error
		matches, err = a.Solve(matches[:0], cost, rows, cols, maxCost)
		require.NoError(t, err)

		rowSeen := make([]bool, rows)
		colSeen := make([]bool, cols)
		sum := 0.0
		for k, m := range matches {
			require.False(t, rowSeen[m.Row])
			require.False(t, colSeen[m.Col])
			rowSeen[m.Row], colSeen[m.Col] = true, true
			c := cost[m.Row*cols+m.Col]
			require.LessOrEqual(t, c, maxCost)
			if k > 0 {
				require.Less(t, matches[k-1].Row, m.Row)
			}
			sum += c
		}
		n := min(rows, cols)
		sum += float64(n-len(matches)) * (maxCost + gateEpsilon)
		want := bruteForce(cost, rows, cols, maxCost)
		require.InDelta(t, want, sum, 1e-9, "trial %d (%dx%d) cost %v gate %v matches %v", trial, rows, cols, cost, maxCost, matches)

		ur, uc = a.Unmatched(ur[:0], uc[:0])
		require.Len(t, ur, rows-len(matches))
		require.Len(t, uc, cols-len(matches))
		for _, r := range ur {
			require.False(t, rowSeen[r])
		}
		for _, c := range uc {
			require.False(t, colSeen[c])
		}
	}
}

func TestAssignerSimple(t *testing.T) {
	var a Assigner
	// Greedy would take (0,0)=1 and then (1,1)=10; optimal is 2+2.
	cost := []float64{
		1, 2,
		2, 10,
	}
	m, err := a.Solve(nil, cost, 2, 2, 100)
	require.NoError(t, err)
	require.Equal(t, []Match{{0, 1}, {1, 0}}, m)

	// Gate drops the expensive pair.
	m, err = a.Solve(nil, cost, 2, 2, 1.5)
	require.NoError(t, err)
	require.Equal(t, []Match{{0, 0}}, m)
	ur, uc := a.Unmatched(nil, nil)
	require.Equal(t, []int{1}, ur)
	require.Equal(t, []int{1}, uc)

	// Tall matrix.
	m, err = a.Solve(nil, []float64{5, 1, 0.5}, 3, 1, 10)
	require.NoError(t, err)
	require.Equal(t, []Match{{2, 0}}, m)
	ur, uc = a.Unmatched(nil, nil)
	require.Equal(t, []int{0, 1}, ur)
	require.Empty(t, uc)
}

func TestAssignerBadInput(t *testing.T) {
	var a Assigner
	_, err := a.Solve(nil, []float64{1, 2, 3}, 2, 2, 1)
	require.Error(t, err)
	_, err = a.Solve(nil, nil, -1, 2, 1)
	require.Error(t, err)
	_, err = a.Solve(nil, []float64{1}, 1, 1, math.NaN())
	require.Error(t, err)
	m, err := a.Solve(nil, nil, 0, 5, 1)
	require.NoError(t, err)
	require.Empty(t, m)
	ur, uc := a.Unmatched(nil, nil)
	require.Empty(t, ur)
	require.Equal(t, []int{0, 1, 2, 3, 4}, uc)
	// All gated: nothing matched.
	m, err = a.Solve(nil, []float64{math.Inf(1), math.NaN(), math.Inf(-1), 9}, 2, 2, 1)
	require.NoError(t, err)
	require.Empty(t, m)
}

func randomCost(rng *rand.Rand, rows, cols int) []float64 {
	cost := make([]float64, rows*cols)
	for i := range cost {
		cost[i] = rng.Float64()
	}
	return cost
}

func TestAssignerNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cost := randomCost(rng, 60, 40)
	var a Assigner
	dst := make([]Match, 0, 60)
	ur := make([]int, 0, 60)
	uc := make([]int, 0, 60)
	allocs := testing.AllocsPerRun(20, func() {
		dst, _ = a.Solve(dst[:0], cost, 60, 40, 0.5)
		ur, uc = a.Unmatched(ur[:0], uc[:0])
	})
	require.Zero(t, allocs)
}

func benchmarkAssigner(b *testing.B, n int) {
	rng := rand.New(rand.NewPCG(5, 6))
	cost := randomCost(rng, n, n)
	var a Assigner
	dst := make([]Match, 0, n)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = a.Solve(dst[:0], cost, n, n, 0.7)
	}
}

func BenchmarkAssigner50(b *testing.B)  { benchmarkAssigner(b, 50) }
func BenchmarkAssigner100(b *testing.B) { benchmarkAssigner(b, 100) }
