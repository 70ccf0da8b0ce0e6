package hardframe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBucket: 6 a minute with a burst of 2, in stream time.
func TestBucket(t *testing.T) {
	b := newBucket(6, 2)
	var took []time.Duration
	for pts := time.Duration(0); pts <= 30*time.Second; pts += time.Second {
		if b.take(pts) {
			took = append(took, pts)
		}
	}
	require.Equal(t, []time.Duration{0, time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second}, took)
	// A restarted source (PTS back to 0) keeps what was left.
	b = newBucket(6, 2)
	require.True(t, b.take(10*time.Minute))
	require.True(t, b.take(0))
	require.False(t, b.take(time.Second))
	require.True(t, b.take(10*time.Second))
	// No limit.
	b = newBucket(0, 1)
	for range 100 {
		require.True(t, b.take(0))
	}
}
