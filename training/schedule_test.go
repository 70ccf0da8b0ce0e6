package training

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchedules(t *testing.T) {
	cos := Schedule{Kind: "cosine", Warmup: 10, Floor: 0.01}
	require.NoError(t, cos.Validate())
	require.InDelta(t, 0.1/11, cos.Rate(0.1, 0, 110), 1e-12, "warm-up starts low")
	require.InDelta(t, 0.1, cos.Rate(0.1, 10, 110), 1e-12, "peak after warm-up")
	require.InDelta(t, 0.1*(0.01+0.99*0.5), cos.Rate(0.1, 60, 110), 1e-12, "half way")
	require.InDelta(t, 0.001, cos.Rate(0.1, 110, 110), 1e-12, "ends at the floor")
	for s := 11; s < 110; s++ {
		require.LessOrEqual(t, cos.Rate(0.1, s, 110), cos.Rate(0.1, s-1, 110))
	}
	st := Schedule{Kind: "step", Every: 100, Gamma: 0.1}
	require.InDelta(t, 1.0, st.Rate(1, 99, 1000), 1e-12)
	require.InDelta(t, 0.01, st.Rate(1, 250, 1000), 1e-12)
	cy := Schedule{Kind: "cyclic", Every: 10, Gamma: 0.5, Floor: 0.1}
	require.InDelta(t, 0.1, cy.Rate(1, 0, 100), 1e-12)
	require.InDelta(t, 1.0, cy.Rate(1, 5, 100), 1e-12, "first peak")
	require.InDelta(t, 0.5, cy.Rate(1, 15, 100), 1e-12, "second peak decayed")
	require.Error(t, Schedule{Kind: "linear"}.Validate())
	require.Error(t, Schedule{Kind: "step"}.Validate())
}
