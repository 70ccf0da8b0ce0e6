package motmetrics

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSummarize(t *testing.T) {
	var s Sequence
	for f := 1; f <= 10; f++ { // track 1 walks right and is lost
		s.Add(f, Object{ID: 1, Box: Box{X: float64(5 * f), Y: 50, W: 20, H: 60}})
	}
	for f := 13; f <= 20; f++ { // track 2 goes on where track 1 ended
		s.Add(f, Object{ID: 2, Box: Box{X: float64(5 * f), Y: 50, W: 20, H: 60}})
	}
	for f := 12; f <= 39; f++ { // track 3 starts far away: a new object
		s.Add(f, Object{ID: 3, Box: Box{X: 500, Y: 300, W: 20, H: 60}})
	}
	for f := 40; f <= 41; f++ { // track 4 starts where track 2 ended, too late
		s.Add(f, Object{ID: 4, Box: Box{X: 100, Y: 50, W: 20, H: 60}})
	}
	sum := Summarize(s, 0)
	require.Equal(t, 4, sum.Tracks)
	require.Equal(t, 40, sum.Frames)
	require.Equal(t, 1, sum.SuspectedSwitches, "only track 2 continues another")
	require.InDelta(t, (10+8+28+2)/4.0, sum.MeanLength, 1e-9)
	require.InDelta(t, 9, sum.MedianLength, 1e-9)
	require.Equal(t, 1, sum.ShortTracks)
	require.Equal(t, 10, sum.SwitchWindow)
	require.Zero(t, sum.Jumps)

	// A window of 20 frames reaches from track 2's end to track 4.
	require.Equal(t, 2, Summarize(s, 20).SuspectedSwitches)
	require.Zero(t, Summarize(Sequence{}, 0).Tracks)

	// Track 3 taking over an object 200 pixels away is a jump.
	s.Add(40, Object{ID: 3, Box: Box{X: 300, Y: 300, W: 20, H: 60}})
	require.Equal(t, 1, Summarize(s, 0).Jumps)
}
