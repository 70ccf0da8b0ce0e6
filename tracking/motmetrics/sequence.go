// Package motmetrics scores multi-object tracking output against ground
// truth: CLEAR MOT (MOTA, MOTP, FP, FN, ID switches, fragmentations,
// MT/PT/ML) and the identity metrics (IDF1, IDP, IDR) computed exactly as
// py-motmetrics computes them with IoU matching, and HOTA (DetA, AssA, LocA)
// exactly as TrackEval's hota.py defines it.
//
// Sequences come from MOTChallenge text files (ReadMOT) or are built in
// memory (Sequence.Add). The package does no I/O besides ReadMOT and starts
// no goroutines.
//
// References:
//   - py-motmetrics, https://github.com/cheind/py-motmetrics (mot.py,
//     metrics.py, io.py, utils.compare_to_groundtruth)
//   - TrackEval, https://github.com/JonathonLuiten/TrackEval
//     (trackeval/metrics/hota.py)
//   - Bernardin and Stiefelhagen, "Evaluating multiple object tracking
//     performance: the CLEAR MOT metrics", 2008.
//   - Luiten et al., "HOTA: A Higher Order Metric for Evaluating
//     Multi-Object Tracking", IJCV 2021.
package motmetrics

import (
	"fmt"
	"sort"
)

// Box is an axis-aligned box given by its top-left corner and size, in
// pixels, as MOTChallenge files give it.
type Box struct {
	X, Y, W, H float64
}

// Object is one ground-truth object or one tracker hypothesis in one frame.
type Object struct {
	// ID is the track identity; it is unique within a frame.
	ID int
	// Box is where the object is.
	Box Box
	// Conf is the MOTChallenge confidence column (informational; for
	// tracker output the usual value is -1 or a score).
	Conf float64
	// Ignored marks a ground-truth object whose MOTChallenge "consider"
	// flag (the conf column) is 0. TrackEval drops such objects before
	// computing HOTA; py-motmetrics' loadtxt keeps them, so the CLEAR and
	// identity metrics count them. It has no effect on tracker output.
	Ignored bool
}

// Sequence holds the objects of a video sequence by frame number. The zero
// value is an empty sequence ready to use. It is not safe for concurrent
// mutation.
type Sequence struct {
	frames map[int][]Object
}

// Add appends o to frame.
func (s *Sequence) Add(frame int, o Object) {
	if s.frames == nil {
		s.frames = make(map[int][]Object)
	}
	s.frames[frame] = append(s.frames[frame], o)
}

// Frame returns the objects of frame in the order they were added. The
// slice is shared with the sequence.
func (s *Sequence) Frame(frame int) []Object { return s.frames[frame] }

// Frames returns the numbers of the frames holding at least one object, in
// increasing order.
func (s *Sequence) Frames() []int {
	fs := make([]int, 0, len(s.frames))
	for f, objs := range s.frames {
		if len(objs) > 0 {
			fs = append(fs, f)
		}
	}
	sort.Ints(fs)
	return fs
}

// Len returns the number of objects over all frames.
func (s *Sequence) Len() int {
	n := 0
	for _, objs := range s.frames {
		n += len(objs)
	}
	return n
}

// validate reports a frame in which an ID occurs twice: neither metric is
// defined for it (TrackEval rejects it too).
func (s *Sequence) validate() error {
	for _, f := range s.Frames() {
		seen := make(map[int]struct{}, len(s.frames[f]))
		for _, o := range s.frames[f] {
			if _, dup := seen[o.ID]; dup {
				return fmt.Errorf("frame %d: id %d occurs twice", f, o.ID)
			}
			seen[o.ID] = struct{}{}
		}
	}
	return nil
}
