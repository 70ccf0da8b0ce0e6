package tracking

import (
	"cmp"
	"math"
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

// Appearance selects how a track remembers what it looks like.
type Appearance string

// Appearance models.
const (
	// AppearanceGallery keeps the track's last NNBudget embeddings; the
	// distance to a detection is the smallest over them (Deep SORT).
	AppearanceGallery Appearance = "gallery"
	// AppearanceEMA keeps one exponentially smoothed embedding per track
	// (StrongSORT's EMA bank): e = a*e + (1-a)*new, re-normalised.
	AppearanceEMA Appearance = "ema"
)

// Options configure a Tracker; Deep SORT's defaults apply to zero fields.
type Options struct {
	Mode Mode
	// Appearance is the appearance memory in Deep SORT mode (gallery).
	Appearance Appearance
	// EMAAlpha is the weight of the old embedding in AppearanceEMA (0.9).
	EMAAlpha float64
	// IoUAppearanceGate makes IoU matching refuse a track and a detection
	// that both have embeddings whose cosine distance exceeds
	// MaxCosineDistance. Deep SORT's IoU matching ignores appearance, which
	// lets a box that overlaps another person's track take it over (and
	// pollute its appearance); on crowded synth scenes the gate halves the
	// identity switches, but with a re-ID model whose distances for one
	// person often exceed MaxCosineDistance it cuts tracks instead.
	IoUAppearanceGate bool
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
	// ScoreThreshold splits detections: those scoring at least this (and
	// not marked Low) are matched first and start tracks; the others
	// scoring at least LowScoreThreshold only extend tracks left unmatched,
	// in a second ByteTrack-style IoU pass. LowScoreThreshold 0 turns the
	// pass off.
	ScoreThreshold, LowScoreThreshold float32
	// StepInterval is the time step the Kalman filter's noise model was
	// tuned for: Deep SORT's, one frame of a 30 fps video (1/30 s). Each
	// Update predicts one step per StepInterval of stream time since the
	// previous one (1 to 30), so a stream analysed at 5 fps, or one
	// that drops frames, keeps a motion model that fits it. Negative
	// predicts one step per Update whatever the time.
	StepInterval time.Duration
	// MatMul computes the appearance distances' matrix products: nil means
	// OpenBLAS when built with cgo, else [GonumMatMul].
	MatMul MatMul
}

// OptionsFromConfig makes Options from the config's tracker section.
// Detections below their model's score threshold reach the tracker marked
// Low (see frame.Detection), so the tracker's own ScoreThreshold is 0.
func OptionsFromConfig(c config.Tracker) Options {
	return Options{
		Mode: Mode(c.Mode), Appearance: Appearance(c.Appearance), EMAAlpha: c.EMAAlpha, IoUAppearanceGate: c.IoUAppearanceGate,
		MaxAge: c.MaxAge, NInit: c.NInit,
		MaxIoUDistance: c.MaxIoUDistance, MaxCosineDistance: c.MaxCosineDistance, NNBudget: c.NNBudget,
		LowScoreThreshold: float32(c.LowScoreThreshold),
	}
}

func (o *Options) applyDefaults() {
	o.Mode = cmp.Or(o.Mode, ModeDeepSORT)
	o.Appearance = cmp.Or(o.Appearance, AppearanceGallery)
	o.EMAAlpha = cmp.Or(o.EMAAlpha, 0.9)
	o.MaxAge = cmp.Or(o.MaxAge, 30)
	o.NInit = cmp.Or(o.NInit, 3)
	o.MaxIoUDistance = cmp.Or(o.MaxIoUDistance, 0.7)
	o.MaxCosineDistance = cmp.Or(o.MaxCosineDistance, 0.2)
	o.NNBudget = cmp.Or(o.NNBudget, 100)
	o.StepInterval = cmp.Or(o.StepInterval, time.Second/30)
	if o.Appearance == AppearanceEMA {
		o.NNBudget = 1
	}
}

// Event is a track's start or end (frame.TrackEvent).
type Event = frame.TrackEvent

// Event kinds.
const (
	EventStarted = "started"
	EventEnded   = "ended"
)

// maxSteps bounds the Kalman steps of one Update (a long gap in a stream
// must not extrapolate tracks across the picture).
const maxSteps = 30

// lowPassMaxIoUDistance is ByteTrack's gate for its second association.
const lowPassMaxIoUDistance = 0.5

// track is one identity in the Tracker.
type track struct {
	id          uint64
	kf          KalmanState
	pred        frame.Box // the predicted box of this frame
	state       frame.TrackState
	hits, age   int
	tsu         int // frames since the last match
	class       int
	label       string
	scoreSum    float64
	first, last time.Duration
	// feats holds nfeat L2-normalised embeddings of dim values, one after
	// the other: a ring of NNBudget (gallery) or one smoothed vector (EMA).
	feats      []float32
	nfeat, dim int
	next       int
}

// Tracker follows the objects of one stream: Deep SORT (Wojke et al. 2017)
// with a Kalman filter, a matching cascade on appearance and IoU matching,
// plus a ByteTrack-style pass on low-score detections, or IoU-only SORT.
// Track IDs start at 1 and are never reused. A Tracker is owned by one
// goroutine (the stream's); it reuses its buffers, so a long run's memory
// stays flat.
type Tracker struct {
	o          Options
	tracks     []*track
	nextID     uint64
	lastPTS    time.Duration
	started    bool
	assign     Assigner
	cosineDist *CosineDistance

	// Scratch, reused by every Update.
	cost      []float64
	matches   []Match
	events    []Event
	out       []frame.Track
	meas      []Measurement
	high, low []int
	rows      []int
	matched   []int
	left      []int
	used      []bool
	gate      []float64
	colMeas   []Measurement
	sel       []int
	selFeat   []float32
	dist      []float64
	app       []float64
}

// New makes a Tracker.
func New(o Options) *Tracker {
	o.applyDefaults()
	return &Tracker{o: o, nextID: 1, cosineDist: NewCosineDistance(o.MatMul)}
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
	steps := t.steps(pts)
	for _, tr := range t.tracks {
		for range steps {
			tr.kf.Predict()
		}
		tr.pred = tr.box()
		tr.age++
		tr.tsu++
	}
	t.high, t.low, t.meas = t.high[:0], t.low[:0], t.meas[:0]
	for i, d := range dets {
		t.meas = append(t.meas, measurement(d.Box))
		switch {
		case !d.Low && d.Score >= t.o.ScoreThreshold:
			t.high = append(t.high, i)
		case t.o.LowScoreThreshold > 0 && d.Score >= t.o.LowScoreThreshold:
			t.low = append(t.low, i)
		}
	}

	t.matched = t.matched[:0] // detection of each track, -1 if none
	for range t.tracks {
		t.matched = append(t.matched, -1)
	}
	unmatched := t.high
	if t.o.Mode != ModeSORT {
		// Matching cascade: confirmed tracks, the most recently seen first.
		for level := 1; level <= t.o.MaxAge && len(unmatched) > 0; level++ {
			t.rows = t.rows[:0]
			for i, tr := range t.tracks {
				if tr.state == frame.TrackConfirmed && tr.tsu == level {
					t.rows = append(t.rows, i)
				}
			}
			unmatched = t.match(t.rows, unmatched, dets, t.appearanceCosts, t.o.MaxCosineDistance)
		}
	}
	// IoU matching: every track in SORT mode; in Deep SORT mode the
	// unconfirmed tracks and those missed only in the previous frame.
	t.rows = t.rows[:0]
	for i, tr := range t.tracks {
		if t.matched[i] < 0 && (t.o.Mode == ModeSORT || tr.state != frame.TrackConfirmed || tr.tsu == 1) {
			t.rows = append(t.rows, i)
		}
	}
	unmatched = t.match(t.rows, unmatched, dets, t.iouCosts, t.o.MaxIoUDistance)
	if len(t.low) > 0 {
		// ByteTrack: low-score detections may extend confirmed tracks
		// left unmatched.
		t.rows = t.rows[:0]
		for i, tr := range t.tracks {
			if t.matched[i] < 0 && tr.state == frame.TrackConfirmed {
				t.rows = append(t.rows, i)
			}
		}
		t.match(t.rows, t.low, dets, t.iouCosts, lowPassMaxIoUDistance)
	}

	for i, tr := range t.tracks {
		if j := t.matched[i]; j >= 0 {
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

	t.out = t.out[:0]
	for _, tr := range t.tracks {
		t.out = append(t.out, frame.Track{ID: tr.id, State: tr.state, Box: tr.box(), Class: tr.class, Hits: tr.hits, Age: tr.age, TimeSinceUpdate: tr.tsu})
	}
	return t.out, t.events
}

// steps is how many Kalman steps lead from the previous Update to pts.
func (t *Tracker) steps(pts time.Duration) int {
	prev, started := t.lastPTS, t.started
	t.lastPTS, t.started = pts, true
	if t.o.StepInterval < 0 || !started || pts <= prev {
		return 1
	}
	n := int((pts - prev + t.o.StepInterval/2) / t.o.StepInterval)
	return min(max(n, 1), maxSteps)
}

// Flush ends every confirmed track (at the end of a stream) and returns
// their events, valid until the next call.
func (t *Tracker) Flush() []Event {
	t.events = t.events[:0]
	for _, tr := range t.tracks {
		if tr.state == frame.TrackConfirmed {
			t.events = append(t.events, tr.event(EventEnded))
		}
	}
	clear(t.tracks)
	t.tracks = t.tracks[:0]
	return t.events
}

// match assigns the detections cols to the tracks rows by the cost matrix
// that costs fills into t.cost (gated at maxCost), records the pairs in
// t.matched, and returns the detections left, in a buffer reused by the
// next match (cols may be that buffer).
func (t *Tracker) match(rows, cols []int, dets []frame.Detection, costs func(rows, cols []int, dets []frame.Detection), maxCost float64) []int {
	if len(rows) == 0 || len(cols) == 0 {
		return cols
	}
	t.cost = t.cost[:0]
	for range len(rows) * len(cols) {
		t.cost = append(t.cost, math.Inf(1))
	}
	costs(rows, cols, dets)
	var err error
	t.matches, err = t.assign.Solve(t.matches[:0], t.cost, len(rows), len(cols), maxCost)
	if err != nil {
		return cols
	}
	t.used = t.used[:0]
	for range cols {
		t.used = append(t.used, false)
	}
	for _, m := range t.matches {
		t.matched[rows[m.Row]] = cols[m.Col]
		t.used[m.Col] = true
	}
	// Compact in place: cols is t.high, t.low or t.left.
	left := cols[:0]
	for k, c := range cols {
		if !t.used[k] {
			left = append(left, c)
		}
	}
	return left
}

// appearanceCosts fills t.cost with the smallest cosine distance between
// each detection's embedding and each track's embeddings, for the pairs
// the motion model admits (Mahalanobis distance within the chi-square 0.95
// gate); the rest stay +Inf. The gate goes first, so the matrix products
// run only for admissible pairs: in a scene of 50 well-separated people
// that is about one pair per track instead of 50.
func (t *Tracker) appearanceCosts(rows, cols []int, dets []frame.Detection) {
	nc := len(cols)
	t.colMeas = t.colMeas[:0]
	for _, c := range cols {
		t.colMeas = append(t.colMeas, t.meas[c])
	}
	for i, r := range rows {
		tr := t.tracks[r]
		if tr.nfeat == 0 {
			continue
		}
		t.gate = tr.kf.GatingDistances(t.gate[:0], t.colMeas, false)
		t.sel = t.sel[:0]
		for k, g := range t.gate {
			if g <= Chi2Inv95[4] {
				t.sel = append(t.sel, k)
			}
		}
		t.cosine(tr, cols, dets, t.cost[i*nc:(i+1)*nc])
	}
}

// cosine sets row[k], for each k in t.sel, to the smallest cosine distance
// between the embedding of dets[cols[k]] and tr's embeddings, leaving the
// entries of detections without a comparable embedding as they are.
func (t *Tracker) cosine(tr *track, cols []int, dets []frame.Detection, row []float64) {
	if tr.nfeat == 0 {
		return
	}
	t.selFeat = t.selFeat[:0]
	sel := t.sel[:0]
	for _, k := range t.sel {
		if e := dets[cols[k]].Embedding; len(e) == tr.dim {
			sel = append(sel, k)
			t.selFeat = append(t.selFeat, e...)
		}
	}
	if len(sel) == 0 {
		return
	}
	counts := [1]int{tr.nfeat}
	var err error
	t.dist, err = t.cosineDist.Compute(t.dist, tr.feats[:tr.nfeat*tr.dim], counts[:], t.selFeat, len(sel), tr.dim)
	if err != nil {
		return // sizes are consistent by construction
	}
	for s, k := range sel {
		row[k] = t.dist[s]
	}
}

// iouCosts fills t.cost with 1 - IoU of each track's predicted box and each
// detection. In Deep SORT mode only tracks updated in the previous frame
// take part. With IoUAppearanceGate, an admissible pair whose appearance
// differs by more than MaxCosineDistance is gated.
func (t *Tracker) iouCosts(rows, cols []int, dets []frame.Detection) {
	nc := len(cols)
	for i, r := range rows {
		tr := t.tracks[r]
		if tr.tsu > 1 && t.o.Mode != ModeSORT {
			continue
		}
		row := t.cost[i*nc : (i+1)*nc]
		t.sel = t.sel[:0]
		for k, c := range cols {
			row[k] = 1 - float64(tr.pred.IoU(dets[c].Box))
			if row[k] <= t.o.MaxIoUDistance {
				t.sel = append(t.sel, k)
			}
		}
		if !t.o.IoUAppearanceGate || tr.nfeat == 0 || len(t.sel) == 0 {
			continue
		}
		t.app = t.app[:0]
		for range cols {
			t.app = append(t.app, -1) // no comparable embedding
		}
		t.cosine(tr, cols, dets, t.app)
		for k, d := range t.app {
			if d > t.o.MaxCosineDistance || math.IsNaN(d) {
				row[k] = math.Inf(1)
			}
		}
	}
}

// hit updates tr with its matched detection d.
func (t *Tracker) hit(tr *track, d *frame.Detection, pts time.Duration) {
	_ = tr.kf.Update(measurement(d.Box)) // a failed update keeps the prediction
	tr.hits++
	tr.tsu = 0
	tr.scoreSum += float64(d.Score)
	tr.last = pts
	if !d.Low && d.Score >= t.o.ScoreThreshold {
		// A low-score detection is usually a partly hidden object whose
		// crop shows its neighbours: its look would pollute the track's.
		t.addFeature(tr, d.Embedding)
	}
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
	tr.pred = tr.box()
	t.nextID++
	t.addFeature(tr, d.Embedding)
	if t.o.NInit <= 1 {
		tr.state = frame.TrackConfirmed
		t.events = append(t.events, tr.event(EventStarted))
		d.TrackID = tr.id
	}
	t.tracks = append(t.tracks, tr)
}

// addFeature adds e to the track's appearance: into the gallery ring
// (replacing the oldest once it holds NNBudget), or into the EMA.
// Embeddings of another length than the track's first are ignored.
func (t *Tracker) addFeature(tr *track, e []float32) {
	if len(e) == 0 || t.o.Mode == ModeSORT {
		return
	}
	if tr.dim == 0 {
		tr.dim = len(e)
		tr.feats = make([]float32, 0, t.o.NNBudget*len(e))
	}
	if len(e) != tr.dim {
		return
	}
	switch {
	case t.o.Appearance == AppearanceEMA && tr.nfeat == 1:
		a := float32(t.o.EMAAlpha)
		for k, v := range e {
			tr.feats[k] = a*tr.feats[k] + (1-a)*v
		}
		NormalizeL2(tr.feats)
	case tr.nfeat < t.o.NNBudget:
		tr.feats = append(tr.feats, e...)
		tr.nfeat++
	default:
		copy(tr.feats[tr.next*tr.dim:], e)
		tr.next = (tr.next + 1) % t.o.NNBudget
	}
}

func (tr *track) event(k string) Event {
	return Event{
		Kind: k, TrackID: tr.id, Class: tr.class, Label: tr.label, First: tr.first, Last: tr.last,
		Frames: tr.hits, MeanScore: float32(tr.scoreSum / float64(max(tr.hits, 1))),
	}
}
