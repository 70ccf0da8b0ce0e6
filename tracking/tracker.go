package tracking

import (
	"cmp"
	"time"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
)

// Mode selects how detections are associated with tracks.
type Mode string

// Modes.
const (
	// ModeDeepSORT matches confirmed tracks by appearance first (a cascade
	// by time since update, gated by motion), then the rest by IoU.
	ModeDeepSORT Mode = "deepsort"
	// ModeSORT matches every track by IoU only, with no embeddings.
	ModeSORT Mode = "sort"
)

// Options configure a Tracker; Deep SORT's defaults apply to zero fields.
type Options struct {
	Mode Mode
	// MaxAge is how many frames a track may miss before it is deleted (30).
	MaxAge int
	// NInit is how many consecutive hits confirm a track (3).
	NInit int
	// MaxIoUDistance is the largest 1-IoU accepted in IoU matching (0.7).
	MaxIoUDistance float64
	// MaxCosineDistance is the largest appearance distance accepted (0.2).
	MaxCosineDistance float64
	// NNBudget is how many embeddings each track's gallery keeps (100).
	NNBudget int
	// ScoreThreshold splits detections: those scoring at least this are
	// matched first and start tracks; those below it but at least
	// LowScoreThreshold only extend tracks left unmatched, in a second
	// ByteTrack-style IoU pass. LowScoreThreshold 0 turns the pass off.
	ScoreThreshold, LowScoreThreshold float32
}

// OptionsFromConfig makes Options from the config's tracker section and the
// detector's score threshold.
func OptionsFromConfig(c config.Tracker, scoreThreshold float64) Options {
	return Options{
		Mode: Mode(c.Mode), MaxAge: c.MaxAge, NInit: c.NInit,
		MaxIoUDistance: c.MaxIoUDistance, MaxCosineDistance: c.MaxCosineDistance, NNBudget: c.NNBudget,
		ScoreThreshold: float32(scoreThreshold), LowScoreThreshold: float32(c.LowScoreThreshold),
	}
}

func (o *Options) applyDefaults() {
	o.Mode = cmp.Or(o.Mode, ModeDeepSORT)
	o.MaxAge = cmp.Or(o.MaxAge, 30)
	o.NInit = cmp.Or(o.NInit, 3)
	o.MaxIoUDistance = cmp.Or(o.MaxIoUDistance, 0.7)
	o.MaxCosineDistance = cmp.Or(o.MaxCosineDistance, 0.2)
	o.NNBudget = cmp.Or(o.NNBudget, 100)
}

// Event is a track's start or end (frame.TrackEvent).
type Event = frame.TrackEvent

// Event kinds.
const (
	EventStarted = "started"
	EventEnded   = "ended"
)

// track is one identity in the Tracker.
type track struct {
	id          uint64
	kf          KalmanState
	state       frame.TrackState
	hits, age   int
	tsu         int // frames since the last match
	class       int
	label       string
	scoreSum    float64
	first, last time.Duration
	// gallery holds up to NNBudget L2-normalised embeddings, a ring.
	gallery [][]float32
	next    int
}

// Tracker follows the objects of one stream: Deep SORT (Wojke et al. 2017)
// with a Kalman filter, a matching cascade on appearance and IoU matching,
// plus a ByteTrack-style pass on low-score detections, or IoU-only SORT.
// Track IDs start at 1 and are never reused. A Tracker is owned by one
// goroutine (the stream's).
type Tracker struct {
	o       Options
	tracks  []*track
	nextID  uint64
	assign  Assigner
	cost    []float64
	matches []Match
	events  []Event
}

// New makes a Tracker.
func New(o Options) *Tracker {
	o.applyDefaults()
	return &Tracker{o: o, nextID: 1}
}

// measurement converts a box to (cx, cy, aspect, height).
func measurement(b frame.Box) Measurement {
	w, h := float64(b.W()), float64(b.H())
	return Measurement{float64(b.X1) + w/2, float64(b.Y1) + h/2, w / max(h, 1e-6), h}
}

// box converts a track's state back to a box.
func (t *track) box() frame.Box {
	cx, cy, a, h := t.kf.Mean[0], t.kf.Mean[1], t.kf.Mean[2], t.kf.Mean[3]
	w := a * h
	return frame.Box{X1: float32(cx - w/2), Y1: float32(cy - h/2), X2: float32(cx + w/2), Y2: float32(cy + h/2)}
}

// Update advances every track by one frame and associates dets (the
// frame's detections at time pts) with them. It sets the TrackID of each
// detection matched to a confirmed track, and returns the live tracks and
// the events of this frame; both are valid until the next Update.
func (t *Tracker) Update(dets []frame.Detection, pts time.Duration) ([]frame.Track, []Event) {
	t.events = t.events[:0]
	for _, tr := range t.tracks {
		tr.kf.Predict()
		tr.age++
		tr.tsu++
	}
	var high, low []int
	for i, d := range dets {
		switch {
		case d.Score >= t.o.ScoreThreshold:
			high = append(high, i)
		case t.o.LowScoreThreshold > 0 && d.Score >= t.o.LowScoreThreshold:
			low = append(low, i)
		}
	}

	matched := make([]int, len(t.tracks)) // detection of each track, -1 if none
	for i := range matched {
		matched[i] = -1
	}
	unmatched := high
	var iouTracks []int
	if t.o.Mode == ModeSORT {
		for i := range t.tracks {
			iouTracks = append(iouTracks, i)
		}
	} else {
		// Matching cascade: confirmed tracks, the most recently seen first.
		for level := 1; level <= t.o.MaxAge && len(unmatched) > 0; level++ {
			var rows []int
			for i, tr := range t.tracks {
				if tr.state == frame.TrackConfirmed && tr.tsu == level {
					rows = append(rows, i)
				}
			}
			if len(rows) > 0 {
				unmatched = t.match(rows, unmatched, dets, matched, t.appearanceCost, t.o.MaxCosineDistance)
			}
		}
		// IoU matching for unconfirmed tracks and those just missed.
		for i, tr := range t.tracks {
			if matched[i] < 0 && (tr.state != frame.TrackConfirmed || tr.tsu == 1) {
				iouTracks = append(iouTracks, i)
			}
		}
	}
	unmatched = t.match(iouTracks, unmatched, dets, matched, t.iouCost, t.o.MaxIoUDistance)
	if len(low) > 0 {
		// ByteTrack: low-score detections may extend tracks left unmatched.
		var rows []int
		for i, tr := range t.tracks {
			if matched[i] < 0 && tr.state == frame.TrackConfirmed {
				rows = append(rows, i)
			}
		}
		t.match(rows, low, dets, matched, t.iouCost, 0.5)
	}

	for i, tr := range t.tracks {
		if j := matched[i]; j >= 0 {
			t.hit(tr, &dets[j], pts)
		} else if tr.state == frame.TrackTentative || tr.tsu > t.o.MaxAge {
			if tr.state == frame.TrackConfirmed {
				t.events = append(t.events, tr.event(EventEnded))
			}
			tr.state = frame.TrackDeleted
		}
	}
	for _, j := range unmatched {
		t.start(&dets[j], pts)
	}
	live := t.tracks[:0]
	for _, tr := range t.tracks {
		if tr.state != frame.TrackDeleted {
			live = append(live, tr)
		}
	}
	clear(t.tracks[len(live):])
	t.tracks = live

	out := make([]frame.Track, len(t.tracks))
	for i, tr := range t.tracks {
		out[i] = frame.Track{ID: tr.id, State: tr.state, Box: tr.box(), Class: tr.class, Hits: tr.hits, Age: tr.age, TimeSinceUpdate: tr.tsu}
	}
	return out, t.events
}

// Flush ends every confirmed track (at the end of a stream) and returns
// their events.
func (t *Tracker) Flush() []Event {
	t.events = t.events[:0]
	for _, tr := range t.tracks {
		if tr.state == frame.TrackConfirmed {
			t.events = append(t.events, tr.event(EventEnded))
		}
	}
	t.tracks = nil
	return t.events
}

// match assigns the detections cols to the tracks rows by cost (gated at
// maxCost), records the pairs in matched, and returns the detections left.
func (t *Tracker) match(rows, cols []int, dets []frame.Detection, matched []int, cost func(tr *track, d *frame.Detection) float64, maxCost float64) []int {
	if len(rows) == 0 || len(cols) == 0 {
		return cols
	}
	t.cost = t.cost[:0]
	for _, r := range rows {
		for _, c := range cols {
			t.cost = append(t.cost, cost(t.tracks[r], &dets[c]))
		}
	}
	var err error
	t.matches, err = t.assign.Solve(t.matches[:0], t.cost, len(rows), len(cols), maxCost)
	if err != nil {
		return cols
	}
	used := make([]bool, len(cols))
	for _, m := range t.matches {
		matched[rows[m.Row]] = cols[m.Col]
		used[m.Col] = true
	}
	left := cols[:0:0]
	for k, c := range cols {
		if !used[k] {
			left = append(left, c)
		}
	}
	return left
}

// gated is Deep SORT's cost for pairs the motion model rules out.
const gated = 1e5

// appearanceCost is the smallest cosine distance between the detection's
// embedding and the track's gallery, gated by the Mahalanobis distance of
// the detection to the track's predicted position.
func (t *Tracker) appearanceCost(tr *track, d *frame.Detection) float64 {
	if tr.kf.GatingDistance(measurement(d.Box), false) > Chi2Inv95[4] {
		return gated
	}
	if len(d.Embedding) == 0 || len(tr.gallery) == 0 {
		return gated
	}
	best := 2.0
	for _, g := range tr.gallery {
		if len(g) != len(d.Embedding) {
			continue
		}
		var dot float32
		for k, v := range g {
			dot += v * d.Embedding[k]
		}
		best = min(best, 1-float64(dot))
	}
	return best
}

// iouCost is 1 - IoU of the track's predicted box and the detection; only
// tracks updated in the previous frame take part, as in Deep SORT.
func (t *Tracker) iouCost(tr *track, d *frame.Detection) float64 {
	if tr.tsu > 1 && t.o.Mode != ModeSORT {
		return gated
	}
	return 1 - float64(tr.box().IoU(d.Box))
}

// hit updates tr with its matched detection d.
func (t *Tracker) hit(tr *track, d *frame.Detection, pts time.Duration) {
	_ = tr.kf.Update(measurement(d.Box)) // a failed update keeps the prediction
	tr.hits++
	tr.tsu = 0
	tr.scoreSum += float64(d.Score)
	tr.last = pts
	t.addFeature(tr, d.Embedding)
	if tr.state == frame.TrackTentative && tr.hits >= t.o.NInit {
		tr.state = frame.TrackConfirmed
		t.events = append(t.events, tr.event(EventStarted))
	}
	if tr.state == frame.TrackConfirmed {
		d.TrackID = tr.id
	}
}

// start makes a tentative track from an unmatched detection.
func (t *Tracker) start(d *frame.Detection, pts time.Duration) {
	tr := &track{
		id: t.nextID, kf: Initiate(measurement(d.Box)), state: frame.TrackTentative,
		hits: 1, age: 1, class: d.Class, label: d.Label, scoreSum: float64(d.Score), first: pts, last: pts,
	}
	t.nextID++
	t.addFeature(tr, d.Embedding)
	if t.o.NInit <= 1 {
		tr.state = frame.TrackConfirmed
		t.events = append(t.events, tr.event(EventStarted))
		d.TrackID = tr.id
	}
	t.tracks = append(t.tracks, tr)
}

// addFeature keeps e in the track's gallery, replacing the oldest one when
// the gallery holds NNBudget.
func (t *Tracker) addFeature(tr *track, e []float32) {
	if len(e) == 0 || t.o.Mode == ModeSORT {
		return
	}
	if len(tr.gallery) < t.o.NNBudget {
		tr.gallery = append(tr.gallery, append([]float32(nil), e...))
		return
	}
	copy(tr.gallery[tr.next], e)
	tr.next = (tr.next + 1) % t.o.NNBudget
}

func (tr *track) event(k string) Event {
	return Event{
		Kind: k, TrackID: tr.id, Class: tr.class, Label: tr.label, First: tr.first, Last: tr.last,
		Frames: tr.hits, MeanScore: float32(tr.scoreSum / float64(max(tr.hits, 1))),
	}
}
