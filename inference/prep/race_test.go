//go:build race

package prep

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// pooled calls allocate.
const raceEnabled = true
