package purego

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExp32 checks the fast exp against math.Exp over the range sigmoid
// and softmax use, to float32 precision.
func TestExp32(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88; x += 0.001 {
		want := math.Exp(float64(float32(x)))
		got := float64(exp32(float32(x)))
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	t.Logf("worst relative error %.3g", worst)
	require.Less(t, worst, 4e-7)
	require.Equal(t, float32(0), exp32(-100))
	require.True(t, math.IsInf(float64(exp32(100)), 1))
	require.True(t, math.IsNaN(float64(exp32(float32(math.NaN())))))
	require.InDelta(t, 0.5, sigmoid(0), 1e-7)
	require.Equal(t, float32(1), sigmoid(100))
	require.Equal(t, float32(0), sigmoid(-100))
}
