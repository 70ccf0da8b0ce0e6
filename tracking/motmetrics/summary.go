package motmetrics

import (
	"math"
	"slices"
)

// Summary describes a tracker's output when there is no ground truth.
type Summary struct {
	// Tracks is the number of identities; Frames the number of frames
	// holding at least one.
	Tracks int `json:"tracks"`
	Frames int `json:"frames"`
	// MeanLength and MedianLength are in frames per track; ShortTracks
	// counts tracks seen in fewer than 5 frames.
	MeanLength   float64 `json:"mean_length"`
	MedianLength float64 `json:"median_length"`
	ShortTracks  int     `json:"short_tracks"`
	// SuspectedSwitches counts identity hand-overs: a track that starts,
	// within SwitchWindow frames after another track's last frame, where
	// that one ended (see [Summarize]). Each is most likely one object
	// that went on under a new identity.
	SuspectedSwitches int `json:"suspected_switches"`
	SwitchWindow      int `json:"switch_window"`
	// Jumps counts a track moving, between two appearances at most two
	// frames apart, by more than its own height with the boxes not
	// overlapping: most likely the identity passed to another object.
	Jumps int `json:"jumps"`
}

// Summarize describes res, a tracker's output, without ground truth. Its
// identity checks count jumps (see Summary) and hand-overs: a track B is a suspected switch when it starts at most
// window frames (counted over the frames present in res) after a track A
// was last seen, and A's last box and B's first box overlap (IoU >= 0.3) or
// their centres lie closer than half the boxes' mean height. Each ended
// track is matched at most once, to the first track that qualifies. A
// window <= 0 means 10.
func Summarize(res Sequence, window int) Summary {
	if window <= 0 {
		window = 10
	}
	frames := res.Frames()
	type span struct {
		first, last   int // indices into frames
		firstB, lastB Box
		n             int
	}
	tracks := map[int]*span{}
	jumps := 0
	for i, f := range frames {
		for _, o := range res.Frame(f) {
			t, ok := tracks[o.ID]
			if !ok {
				t = &span{first: i, firstB: o.Box}
				tracks[o.ID] = t
			}
			if ok && i-t.last <= 2 && jumped(t.lastB, o.Box) {
				jumps++
			}
			t.last, t.lastB = i, o.Box
			t.n++
		}
	}
	s := Summary{Tracks: len(tracks), Frames: len(frames), SwitchWindow: window, Jumps: jumps}
	if len(tracks) == 0 {
		return s
	}
	ids := make([]int, 0, len(tracks))
	lengths := make([]int, 0, len(tracks))
	total := 0
	for id, t := range tracks {
		ids = append(ids, id)
		lengths = append(lengths, t.n)
		total += t.n
		if t.n < 5 {
			s.ShortTracks++
		}
	}
	slices.Sort(lengths)
	s.MeanLength = float64(total) / float64(len(tracks))
	if m := len(lengths); m%2 == 1 {
		s.MedianLength = float64(lengths[m/2])
	} else {
		s.MedianLength = float64(lengths[m/2-1]+lengths[m/2]) / 2
	}
	// New tracks in order of their start, each looking for a track that
	// ended shortly before, where it starts.
	slices.SortFunc(ids, func(a, b int) int {
		if c := tracks[a].first - tracks[b].first; c != 0 {
			return c
		}
		return a - b
	})
	claimed := map[int]bool{}
	for _, b := range ids {
		tb := tracks[b]
		best, bestGap := -1, math.MaxInt
		for _, a := range ids {
			ta := tracks[a]
			gap := tb.first - ta.last
			if a == b || claimed[a] || gap <= 0 || gap > window || !near(ta.lastB, tb.firstB) {
				continue
			}
			if gap < bestGap {
				best, bestGap = a, gap
			}
		}
		if best >= 0 {
			claimed[best] = true
			s.SuspectedSwitches++
		}
	}
	return s
}

// jumped reports whether b is too far from a for one object's motion.
func jumped(a, b Box) bool {
	if trackEvalIoU(a, b) > 0 {
		return false
	}
	dx := (a.X + a.W/2) - (b.X + b.W/2)
	dy := (a.Y + a.H/2) - (b.Y + b.H/2)
	return math.Hypot(dx, dy) > max(a.H, b.H)
}

// near reports whether two boxes plausibly show the same object.
func near(a, b Box) bool {
	if trackEvalIoU(a, b) >= 0.3 {
		return true
	}
	dx := (a.X + a.W/2) - (b.X + b.W/2)
	dy := (a.Y + a.H/2) - (b.Y + b.H/2)
	return math.Hypot(dx, dy) < (a.H+b.H)/4
}
