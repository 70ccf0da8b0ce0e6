package training

import (
	"fmt"
	"math"
)

// Schedule gives the learning rate of each step.
type Schedule struct {
	// Kind is cosine (linear warm-up, then cosine decay to Floor x the base
	// rate), step (multiply by Gamma every Every steps after warm-up) or
	// cyclic (triangular cycles of Every steps between Floor x and 1 x the
	// base rate, whose peak decays by Gamma each cycle).
	Kind string
	// Warmup is how many steps the rate rises linearly from 0.
	Warmup int
	// Every and Gamma shape the step and cyclic schedules.
	Every int
	Gamma float64
	// Floor is the lowest rate, as a fraction of the base rate.
	Floor float64
}

// Validate reports a schedule that cannot run.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "cosine":
	case "step", "cyclic":
		if s.Every < 1 {
			return fmt.Errorf("schedule %s: every must be >= 1, got %d", s.Kind, s.Every)
		}
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			return fmt.Errorf("schedule %s: gamma must be in (0, 1], got %g", s.Kind, s.Gamma)
		}
	default:
		return fmt.Errorf("schedule: kind must be cosine, step or cyclic, got %q", s.Kind)
	}
	if s.Warmup < 0 || s.Floor < 0 || s.Floor > 1 {
		return fmt.Errorf("schedule: warmup %d must be >= 0 and floor %g in [0, 1]", s.Warmup, s.Floor)
	}
	return nil
}

// Rate is the learning rate at step (0-based) of total, for base rate lr.
func (s Schedule) Rate(lr float64, step, total int) float64 {
	if step < s.Warmup {
		return lr * float64(step+1) / float64(s.Warmup+1)
	}
	t := step - s.Warmup
	switch s.Kind {
	case "step":
		return lr * math.Pow(s.Gamma, float64(t/s.Every))
	case "cyclic":
		cycle, pos := t/s.Every, float64(t%s.Every)/float64(s.Every)
		peak := lr * math.Pow(s.Gamma, float64(cycle))
		tri := 1 - math.Abs(2*pos-1) // 0 -> 1 -> 0
		return lr*s.Floor + (peak-lr*s.Floor)*tri
	default: // cosine
		n := max(total-s.Warmup, 1)
		frac := min(float64(t)/float64(n), 1)
		return lr * (s.Floor + (1-s.Floor)*0.5*(1+math.Cos(math.Pi*frac)))
	}
}
