package hardframe

import "time"

// bucket is a token bucket over stream time: it holds up to burst tokens
// and gains perMinute of them per minute of PTS. A PTS behind the latest
// adds nothing; one more than a minute behind (a restarted source)
// restarts the clock. perMinute 0 means no limit. Credit is counted in token-minutes
// (one token is a time.Minute of credit), so it adds up exactly.
type bucket struct {
	perMinute int64
	max       time.Duration // burst tokens
	credit    time.Duration
	last      time.Duration
	started   bool
}

func newBucket(perMinute, burst int) bucket {
	return bucket{perMinute: int64(perMinute), max: time.Duration(burst) * time.Minute, credit: time.Duration(burst) * time.Minute}
}

// refill brings the bucket up to stream time pts.
func (b *bucket) refill(pts time.Duration) {
	if !b.started || pts < b.last-time.Minute {
		b.started, b.last = true, pts
		return
	}
	if pts <= b.last {
		return
	}
	// Capped before multiplying, so a long gap cannot overflow.
	dt := min(pts-b.last, b.max)
	b.credit = min(b.max, b.credit+dt*time.Duration(b.perMinute))
	b.last = pts
}

// ready reports whether a token is there at pts, without taking it.
func (b *bucket) ready(pts time.Duration) bool {
	if b.perMinute == 0 {
		return true
	}
	b.refill(pts)
	return b.credit >= time.Minute
}

// refund gives back a token taken for a frame that was not stored.
func (b *bucket) refund() {
	if b.perMinute != 0 {
		b.credit = min(b.max, b.credit+time.Minute)
	}
}

// take takes a token at pts if there is one.
func (b *bucket) take(pts time.Duration) bool {
	if !b.ready(pts) {
		return false
	}
	if b.perMinute != 0 {
		b.credit -= time.Minute
	}
	return true
}
