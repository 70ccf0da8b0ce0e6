package ingest

import (
	"context"
	"time"
)

// maxLag is how late a real-time item may be before pacing restarts from
// now: a stalled consumer then gets items at the normal rate again instead
// of a burst that makes up for the stall.
const maxLag = time.Second

// pacer releases items at their presentation times, counted from the moment
// it was made, so that pacing does not drift. It is not safe for concurrent
// use.
type pacer struct {
	start time.Time
	timer *time.Timer
}

func newPacer() *pacer { return &pacer{start: time.Now()} }

// wait blocks until pts is due or ctx ends.
func (p *pacer) wait(ctx context.Context, pts time.Duration) error {
	wait := time.Until(p.start.Add(pts))
	if -wait > maxLag {
		p.start = p.start.Add(-wait)
		return nil
	}
	if wait <= 0 {
		return nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(wait)
	} else {
		p.timer.Reset(wait)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.timer.C:
		return nil
	}
}

// stop frees the timer.
func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}
