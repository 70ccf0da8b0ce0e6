// Package hardframe mines hard frames from live streams for retraining: the
// frames where the models struggle, kept with the pre-labels they gave.
//
// A Miner is a pipeline.FrameObserver. Each analysed frame enters through
// ObserveFrame on its stream's analyze goroutine, which keeps the stream's
// last few frames in a ring (retained, released when they leave it) and runs
// the cheap miners there:
//
//   - band: a detection scoring within a band around the score threshold;
//   - flicker: a detection with no match in the neighbouring analysed
//     frames, or an object absent for a few frames between two matches (Jin
//     et al., "Unsupervised Hard Example Mining from Videos for Improved
//     Object Detection", ECCV 2018);
//   - track_gap: a confirmed track missed for a few frames and found again;
//     the gap's frames are labelled with the track's box interpolated
//     across the gap;
//   - quant_disagreement: every N-th frame is checked against the detector's
//     other variant (fp32 beside int8), later, on the worker;
//   - random: a control sample.
//
// A frame leaves the ring once no miner can still pick it; if one did, and
// the stream's token bucket (over stream time) has a token, it goes through a bounded queue
// (full: dropped and counted) to the Miner's one worker goroutine, which runs
// the variant check, drops near-duplicates of the stream's recent kept frames
// (a 64-bit dHash of the luma), converts the frame to RGB and Puts it in the
// hard-frame store (training/store) with its pre-labels, the miners and
// reasons, the stream, capture time, frame number and model. Frames leave as
// store entries; Close drains the queue and releases every frame.
package hardframe

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/training/store"
)

// VariantRunner runs another variant of a served detector on one frame
// (inference.Engine.RunVariant): model is the name or bundle name the
// frame's result names, variant "" the one not serving.
type VariantRunner interface {
	RunVariant(ctx context.Context, model, variant string, f *frame.Frame) ([]frame.Detection, error)
}

// Options configure a Miner.
type Options struct {
	// Config is the hard_frames section, with its defaults applied
	// (config.Config.ApplyDefaults or config.Parse): the store's folder and
	// bound, the miners that run and their policies.
	Config config.HardFrames
	// Classes, when not nil, names the detector's classes for a new store;
	// objects of other classes are then left out of the pre-labels.
	// An existing store keeps its own.
	Classes []string
	// Variants runs the other variant for quant_disagreement; nil turns
	// that miner off.
	Variants VariantRunner
	// Seed seeds the random miner, so a replayed stream keeps the same
	// frames. It defaults to 1.
	Seed uint64
	// IdleTimeout is how long a stream may send no frame before its ring
	// is flushed and its state dropped (a stream that ended or was
	// removed). It defaults to 30 seconds.
	IdleTimeout time.Duration
	// Registerer receives the miner's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// minerID indexes the miners in order of precedence: a frame several
// miners pick is stored once, under the first.
type minerID uint8

const (
	mTrackGap minerID = iota
	mQuant
	mFlicker
	mBand
	mRandom
	numMiners
)

var minerNames = [numMiners]string{
	config.MinerTrackGap, config.MinerQuantDisagreement, config.MinerFlicker, config.MinerBand, config.MinerRandom,
}

// Reasons a picked frame is not stored, the reason label of
// vigil_hardframe_frames_skipped_total.
const (
	SkipRateLimit = "rate_limit" // the stream's token bucket was empty
	SkipDuplicate = "duplicate"  // near-duplicate of a recent kept frame
	SkipQueueFull = "queue_full" // the worker's queue was full
	SkipShutdown  = "shutdown"   // Close's deadline passed first
)

// hit is one miner's reason to keep a frame, formatted only if it is kept.
type hit struct {
	miner minerID
	gap   bool // flicker: an absence rather than an isolated detection
	count int  // band: detections in the band; gaps: frames missed
	score float32
	label string
	track uint64
	f1    float64 // quant
	other int     // quant: the other variant's detections
}

// slot is one analysed frame in a stream's ring.
type slot struct {
	n     uint64 // analysed-frame index in the stream
	f     *frame.Frame
	r     *frame.Result
	dets  []frame.Detection // r.Detections without keypoint models' (Aux)
	hits  []hit
	extra []store.Object // interpolated track boxes
	quant bool           // due for the variant check
}

// trackSeen is where a track was last matched.
type trackSeen struct {
	n     uint64
	box   frame.Box
	class int
	label string
	score float32
}

// streamState is one stream's mining state. The analyze goroutine and
// Close use the fields under mu; hashes belong to the worker.
type streamState struct {
	id string

	mu       sync.Mutex
	closed   bool
	lastSeen time.Time
	n        uint64
	ring     []slot
	rng      *rand.Rand
	tracks   map[uint64]trackSeen
	bucket   bucket

	hashes []uint64 // worker's: hashes of recent kept frames, a ring
	next   int
}

// job is a picked frame on its way to the worker, which releases f.
type job struct {
	st    *streamState
	f     *frame.Frame
	r     *frame.Result
	hits  []hit
	extra []store.Object
	quant bool
}

// dedupWindow is how many recent kept frames of a stream dedup compares with.
const dedupWindow = 64

// Miner mines hard frames into a store. ObserveFrame is safe for concurrent
// use by the streams' goroutines; Close must be called once, after which
// ObserveFrame does nothing.
type Miner struct {
	opts    Options
	cfg     config.HardFrames
	enabled [numMiners]bool
	ringLen int
	store   *store.Store
	log     *slog.Logger
	m       *metrics
	queue   chan job
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex
	closed  bool
	streams map[string]*streamState

	closeOnce sync.Once
	closeErr  error

	// Owned by the worker.
	rgba    *image.RGBA
	lastLog time.Time
}

// New checks the options, opens the store in Config.Dir (creating it, or
// recovering one a crashed writer left) and starts the worker.
func New(opts Options) (*Miner, error) {
	c := opts.Config
	if err := check(c); err != nil {
		return nil, fmt.Errorf("starting hard-frame miner: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	m := &Miner{
		opts: opts, cfg: c, log: opts.Logger.With("sink", "hardframe"),
		queue: make(chan job, c.QueueSize), done: make(chan struct{}),
		streams: map[string]*streamState{},
	}
	for i, name := range minerNames {
		m.enabled[i] = slices.Contains(c.Miners, name)
	}
	if opts.Variants == nil {
		m.enabled[mQuant] = false
	}
	m.ringLen = max(2*c.Flicker.Window+1, c.Flicker.MaxGap+2, c.TrackGap.Max+2)
	sopts := store.Options{MaxBytes: int64(c.MaxMB) << 20, Classes: opts.Classes}
	var err error
	if _, statErr := os.Stat(filepath.Join(c.Dir, "manifest.json")); statErr == nil {
		m.store, err = store.Open(c.Dir, sopts)
	} else {
		m.store, err = store.Create(c.Dir, sopts)
	}
	if err != nil {
		return nil, fmt.Errorf("starting hard-frame miner: %w", err)
	}
	if rec := m.store.Recovery(); len(rec.Temp)+len(rec.Orphans)+len(rec.Missing) > 0 {
		m.log.Warn("hard-frame store recovered from an interrupted write", "dir", c.Dir,
			"temp_removed", len(rec.Temp), "orphans_removed", len(rec.Orphans), "missing", len(rec.Missing))
	}
	if m.m, err = newMetrics(opts.Registerer, m.store); err != nil {
		m.store.Close()
		return nil, fmt.Errorf("starting hard-frame miner: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.run(ctx)
	return m, nil
}

// check rejects the settings the miner cannot run with, naming the key.
func check(c config.HardFrames) error {
	var errs []error
	add := func(ok bool, key, msg string, v any) {
		if !ok {
			errs = append(errs, fmt.Errorf("hard_frames.%s: %s, got %v", key, msg, v))
		}
	}
	add(c.Dir != "", "dir", "required", `""`)
	add(c.MaxMB >= 1, "max_mb", "must be >= 1", c.MaxMB)
	for i, name := range c.Miners {
		add(slices.Contains(minerNames[:], name), fmt.Sprintf("miners[%d]", i), "unknown miner", fmt.Sprintf("%q", name))
	}
	add(c.Band.Low >= 0 && c.Band.Low < c.Band.High && c.Band.High <= 1, "band", "must have 0 <= low < high <= 1", fmt.Sprintf("[%g, %g)", c.Band.Low, c.Band.High))
	add(c.Flicker.Window >= 1 && c.Flicker.Window <= 8, "flicker.window", "must be in [1, 8]", c.Flicker.Window)
	add(c.Flicker.MaxGap >= 1 && c.Flicker.MaxGap <= 8, "flicker.max_gap", "must be in [1, 8]", c.Flicker.MaxGap)
	add(c.Flicker.MinIoU > 0 && c.Flicker.MinIoU <= 1, "flicker.min_iou", "must be in (0, 1]", c.Flicker.MinIoU)
	add(c.TrackGap.Min >= 1 && c.TrackGap.Min <= c.TrackGap.Max && c.TrackGap.Max <= 8, "track_gap", "must have 1 <= min <= max <= 8", fmt.Sprintf("min %d, max %d", c.TrackGap.Min, c.TrackGap.Max))
	add(c.QuantDisagreement.Every >= 1, "quant_disagreement.every", "must be >= 1", c.QuantDisagreement.Every)
	add(c.QuantDisagreement.MinIoU > 0 && c.QuantDisagreement.MinIoU <= 1, "quant_disagreement.min_iou", "must be in (0, 1]", c.QuantDisagreement.MinIoU)
	add(c.QuantDisagreement.MinF1 > 0 && c.QuantDisagreement.MinF1 <= 1, "quant_disagreement.min_f1", "must be in (0, 1]", c.QuantDisagreement.MinF1)
	add(c.Random.Rate >= 0 && c.Random.Rate <= 1, "random.rate", "must be in [0, 1]", c.Random.Rate)
	add(c.PerStreamPerMinute >= 0, "per_stream_per_minute", "must be >= 0", c.PerStreamPerMinute)
	add(c.Burst >= 1, "burst", "must be >= 1", c.Burst)
	add(c.DedupHamming >= -1 && c.DedupHamming <= 64, "dedup_hamming", "must be in [-1, 64]", c.DedupHamming)
	add(c.QueueSize >= 1, "queue_size", "must be >= 1", c.QueueSize)
	return errors.Join(errs...)
}

// Store returns the store the miner writes to (for its stats; Put is the
// miner's).
func (m *Miner) Store() *store.Store { return m.store }

// ObserveFrame implements pipeline.FrameObserver: it puts f (retained) in
// its stream's ring, runs the cheap miners and hands the frame leaving the
// ring to the worker if a miner picked it. It never blocks.
func (m *Miner) ObserveFrame(r *frame.Result, f *frame.Frame) {
	if r == nil || f == nil || r.EndOfStream {
		return
	}
	st := m.stream(r.StreamID)
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	st.lastSeen = time.Now()
	n := st.n
	st.n++
	s := &st.ring[n%uint64(len(st.ring))]
	if s.f != nil {
		m.retire(st, s)
	}
	f.Retain()
	s.n, s.f, s.r, s.quant = n, f, r, false
	s.dets, s.hits, s.extra = s.dets[:0], s.hits[:0], s.extra[:0]
	for _, d := range r.Detections {
		if !d.Aux {
			s.dets = append(s.dets, d)
		}
	}
	m.mine(st, s)
}

// stream returns the state of stream id, making it on first sight; nil
// once the miner is closed.
func (m *Miner) stream(id string) *streamState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	st := m.streams[id]
	if st == nil {
		seed := m.opts.Seed
		for _, c := range []byte(id) {
			seed = seed*1099511628211 + uint64(c) // FNV-style mix: one sequence per stream
		}
		st = &streamState{
			id: id, ring: make([]slot, m.ringLen),
			rng:    rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
			tracks: map[uint64]trackSeen{},
			bucket: newBucket(m.cfg.PerStreamPerMinute, m.cfg.Burst),
		}
		m.streams[id] = st
	}
	return st
}

// at returns the ring slot of analysed frame k, which must be one of the
// last len(ring).
func (st *streamState) at(k uint64) *slot { return &st.ring[k%uint64(len(st.ring))] }

// mine runs the ring's miners for the newest frame s (index s.n): those
// that judge s alone, and those that judge earlier frames by it.
func (m *Miner) mine(st *streamState, s *slot) {
	c, n := &m.cfg, s.n
	if m.enabled[mBand] {
		h := hit{miner: mBand, score: float32(math.Inf(1))}
		for i := range s.dets {
			d := &s.dets[i]
			if float64(d.Score) >= c.Band.Low && float64(d.Score) < c.Band.High {
				h.count++
				if d.Score < h.score {
					h.score, h.label = d.Score, d.Label
				}
			}
		}
		if h.count > 0 {
			s.hits = append(s.hits, h)
		}
	}
	if m.enabled[mRandom] && c.Random.Rate > 0 && st.rng.Float64() < c.Random.Rate {
		s.hits = append(s.hits, hit{miner: mRandom})
	}
	if m.enabled[mQuant] && s.r.Model != "" && (n+1)%uint64(c.QuantDisagreement.Every) == 0 {
		s.quant = true
	}
	if m.enabled[mFlicker] {
		m.flicker(st, s)
	}
	if m.enabled[mTrackGap] {
		m.trackGap(st, s)
	}
}

// flicker picks frame n-W when one of its detections matches nothing in
// the W frames on either side, and the frames of an absence of 1..MaxGap
// frames that ends with frame n.
func (m *Miner) flicker(st *streamState, s *slot) {
	c, n := m.cfg.Flicker, s.n
	iou := float32(c.MinIoU)
	if w := uint64(c.Window); n >= 2*w {
		mid := st.at(n - w)
		for i := range mid.dets {
			d := &mid.dets[i]
			isolated := true
			for k := n - 2*w; k <= n && isolated; k++ {
				if k != mid.n && matchesAny(d, st.at(k).dets, iou) {
					isolated = false
				}
			}
			if isolated {
				mid.hits = append(mid.hits, hit{miner: mFlicker, score: d.Score, label: d.Label, track: d.TrackID})
			}
		}
	}
	for i := range s.dets {
		d := &s.dets[i]
		for dist := uint64(1); dist <= uint64(c.MaxGap)+1 && dist <= n; dist++ {
			if !matchesAny(d, st.at(n-dist).dets, iou) {
				continue
			}
			for k := n - dist + 1; k < n; k++ {
				g := st.at(k)
				g.hits = append(g.hits, hit{miner: mFlicker, gap: true, count: int(dist - 1), score: d.Score, label: d.Label, track: d.TrackID})
			}
			break
		}
	}
}

// trackGap labels the frames a confirmed track missed, when it returns in
// frame n after Min..Max of them, with its box interpolated linearly
// between the frames before and after the gap.
func (m *Miner) trackGap(st *streamState, s *slot) {
	c, n := m.cfg.TrackGap, s.n
	for i := range s.dets {
		d := &s.dets[i]
		if d.TrackID == 0 {
			continue
		}
		if prev, ok := st.tracks[d.TrackID]; ok && prev.n < n {
			if g := int(n - prev.n - 1); g >= c.Min && g <= c.Max {
				for k := 1; k <= g; k++ {
					sl := st.at(prev.n + uint64(k))
					sl.hits = append(sl.hits, hit{miner: mTrackGap, count: g, label: d.Label, track: d.TrackID})
					sl.extra = append(sl.extra, store.Object{
						Box:   lerpBox(prev.box, d.Box, float32(k)/float32(g+1)),
						Class: d.Class, Label: d.Label, Score: min(prev.score, d.Score), TrackID: d.TrackID,
					})
				}
			}
		}
		st.tracks[d.TrackID] = trackSeen{n: n, box: d.Box, class: d.Class, label: d.Label, score: d.Score}
	}
	if n%16 == 0 {
		for id, t := range st.tracks {
			if t.n+uint64(c.Max)+1 < n {
				delete(st.tracks, id)
			}
		}
	}
}

// retire hands the frame leaving the ring to the worker if a miner picked
// it and the stream has a token (which the worker gives back if it does
// not store the frame), and releases it otherwise. st.mu is held.
func (m *Miner) retire(st *streamState, s *slot) {
	if len(s.hits) > 0 || s.quant {
		m.countCandidates(s.hits)
		switch {
		case !st.bucket.take(s.r.PTS):
			if len(s.hits) > 0 {
				m.m.skipped[SkipRateLimit].Inc()
			}
		default:
			j := job{st: st, f: s.f, r: s.r, hits: s.hits, extra: s.extra, quant: s.quant}
			select {
			case m.queue <- j:
				// The job owns the slices now.
				s.f, s.r, s.hits, s.extra = nil, nil, nil, nil
				return
			default:
				st.bucket.refund()
				m.m.skipped[SkipQueueFull].Inc()
			}
		}
	}
	s.f.Release()
	s.f, s.r = nil, nil
}

// countCandidates counts a frame once for each miner that picked it.
func (m *Miner) countCandidates(hits []hit) {
	var seen [numMiners]bool
	for _, h := range hits {
		if !seen[h.miner] {
			seen[h.miner] = true
			m.m.candidates[h.miner].Inc()
		}
	}
}

// drain empties the ring of a stream that is closing, oldest first: the
// picked frames become jobs, the others are released. st.mu is held.
func (m *Miner) drain(st *streamState) []job {
	var jobs []job
	for k := st.n - min(st.n, uint64(len(st.ring))); k < st.n; k++ {
		s := st.at(k)
		if s.f == nil {
			continue
		}
		if len(s.hits) > 0 || s.quant {
			m.countCandidates(s.hits)
			if st.bucket.take(s.r.PTS) {
				jobs = append(jobs, job{st: st, f: s.f, r: s.r, hits: s.hits, extra: s.extra, quant: s.quant})
				s.f, s.r, s.hits, s.extra = nil, nil, nil, nil
				continue
			}
			if len(s.hits) > 0 {
				m.m.skipped[SkipRateLimit].Inc()
			}
		}
		s.f.Release()
		s.f, s.r = nil, nil
	}
	return jobs
}

// run is the worker: it stores the queued frames and flushes idle streams
// until the queue is closed.
func (m *Miner) run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(max(m.opts.IdleTimeout/2, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case j, ok := <-m.queue:
			if !ok {
				return
			}
			m.process(ctx, j)
		case <-tick.C:
			m.expire(ctx)
		}
	}
}

// expire flushes and forgets the streams idle for IdleTimeout.
func (m *Miner) expire(ctx context.Context) {
	cutoff := time.Now().Add(-m.opts.IdleTimeout)
	var idle []*streamState
	m.mu.Lock()
	for id, st := range m.streams {
		st.mu.Lock()
		if st.lastSeen.Before(cutoff) {
			idle = append(idle, st)
			delete(m.streams, id)
		}
		st.mu.Unlock()
	}
	m.mu.Unlock()
	for _, st := range idle {
		st.mu.Lock()
		st.closed = true
		jobs := m.drain(st)
		st.mu.Unlock()
		for _, j := range jobs {
			m.process(ctx, j)
		}
	}
}

// process runs the variant check of a job, then dedup and the store; it
// releases the frame, and gives the stream's token back unless the frame
// was stored.
func (m *Miner) process(ctx context.Context, j job) {
	defer j.f.Release()
	stored := false
	defer func() {
		if !stored {
			j.st.mu.Lock()
			j.st.bucket.refund()
			j.st.mu.Unlock()
		}
	}()
	if ctx.Err() != nil {
		if len(j.hits) > 0 {
			m.m.skipped[SkipShutdown].Inc()
		}
		return
	}
	if j.quant {
		if h, ok := m.checkVariant(ctx, j); ok {
			m.m.candidates[mQuant].Inc()
			j.hits = append(j.hits, h)
		}
	}
	if len(j.hits) == 0 {
		return
	}
	st := j.st
	h, hashed := dHash(j.f)
	if hashed && m.cfg.DedupHamming >= 0 {
		for _, o := range st.hashes {
			if hamming(h, o) <= m.cfg.DedupHamming {
				m.m.skipped[SkipDuplicate].Inc()
				return
			}
		}
	}
	e, err := m.entry(j)
	if err != nil {
		m.m.errors[stageConvert].Inc()
		m.logErr(err)
		return
	}
	if _, err := m.store.Put(e.Entry); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			m.m.skipped[SkipDuplicate].Inc()
			return
		}
		m.m.errors[stageStore].Inc()
		m.logErr(fmt.Errorf("storing frame %d of %s: %w", j.r.Seq, st.id, err))
		return
	}
	stored = true
	m.m.kept[e.minerID].Inc()
	if hashed {
		if len(st.hashes) < dedupWindow {
			st.hashes = append(st.hashes, h)
		} else {
			st.hashes[st.next] = h
			st.next = (st.next + 1) % dedupWindow
		}
	}
}

// checkVariant runs the other variant on the job's frame and returns a
// quant_disagreement hit when the two disagree.
func (m *Miner) checkVariant(ctx context.Context, j job) (hit, bool) {
	q := m.cfg.QuantDisagreement
	m.m.quantChecks.Inc()
	other, err := m.opts.Variants.RunVariant(ctx, j.r.Model, q.Variant, j.f)
	if err != nil {
		m.m.errors[stageVariant].Inc()
		m.logErr(fmt.Errorf("checking frame %d of %s against another variant: %w", j.r.Seq, j.st.id, err))
		return hit{}, false
	}
	var served []frame.Detection
	for _, d := range j.r.Detections {
		// Low detections only reached the result through the tracker; the
		// other variant reports none.
		if !d.Aux && !d.Low {
			served = append(served, d)
		}
	}
	score, _ := f1(served, other, float32(q.MinIoU))
	if score >= q.MinF1 {
		return hit{}, false
	}
	return hit{miner: mQuant, f1: score, count: len(served), other: len(other), label: q.Variant}, true
}

// keptEntry is a store.Entry with the miner it counts for.
type keptEntry struct {
	store.Entry
	minerID minerID
}

// entry builds the store entry of a job: the picture in RGB, the result's
// detections and the interpolated boxes as pre-labels, the first miner by
// precedence and every miner's reason.
func (m *Miner) entry(j job) (keptEntry, error) {
	img, err := toRGBA(j.f, m.rgba)
	if err != nil {
		return keptEntry{}, err
	}
	m.rgba = img
	w, h := img.Rect.Dx(), img.Rect.Dy()
	slices.SortStableFunc(j.hits, func(a, b hit) int { return int(a.miner) - int(b.miner) })
	var reasons []string
	for i, x := range j.hits {
		if i == 0 || x.miner != j.hits[i-1].miner {
			reasons = append(reasons, minerNames[x.miner]+": "+m.reason(x, j.hits[i:]))
		}
	}
	classes := m.store.Classes()
	var objs []store.Object
	add := func(o store.Object) {
		if o.Class < 0 || (classes != nil && o.Class >= len(classes)) {
			return
		}
		if o, ok := clean(o, w, h); ok {
			objs = append(objs, o)
		}
	}
	for _, d := range j.r.Detections {
		if d.Aux {
			continue
		}
		add(store.Object{Box: d.Box, Class: d.Class, Label: d.Label, Score: d.Score, TrackID: d.TrackID, Keypoints: d.Keypoints, Mask: d.Mask})
	}
	for _, o := range j.extra {
		add(o)
	}
	at := j.r.Captured
	if at.IsZero() {
		at = time.Now()
	}
	return keptEntry{Entry: store.Entry{
		StreamID: j.st.id, CaptureTime: at, FrameSeq: j.r.Seq,
		Miner: minerNames[j.hits[0].miner], Reason: strings.Join(reasons, "; "),
		Model: store.Model{Name: j.r.Model, Version: j.r.ModelVersion},
		Image: img, Objects: objs,
	}, minerID: j.hits[0].miner}, nil
}

// reason says in words why miner x.miner picked the frame; same holds x
// and the miner's other hits on the frame after it.
func (m *Miner) reason(x hit, same []hit) string {
	c := m.cfg
	n := 0
	for _, y := range same {
		if y.miner == x.miner {
			n++
		}
	}
	more := ""
	if n > 1 {
		more = fmt.Sprintf(" (and %d more)", n-1)
	}
	switch x.miner {
	case mBand:
		return fmt.Sprintf("%d detections scoring in [%.2f, %.2f), lowest %s %.2f", x.count, c.Band.Low, c.Band.High, x.label, x.score)
	case mFlicker:
		if x.gap {
			return fmt.Sprintf("%s%s missing for %d frames between matches%s", x.label, trackText(x.track), x.count, more)
		}
		return fmt.Sprintf("%s%s (score %.2f) with no match in the %d frames on either side%s", x.label, trackText(x.track), x.score, c.Flicker.Window, more)
	case mTrackGap:
		return fmt.Sprintf("%s%s missed for %d frames, box interpolated%s", x.label, trackText(x.track), x.count, more)
	case mQuant:
		v := x.label
		if v == "" {
			v = "the other variant"
		}
		return fmt.Sprintf("%s agrees with F1 %.2f < %.2f (%d vs %d detections)", v, x.f1, c.QuantDisagreement.MinF1, x.count, x.other)
	default:
		return fmt.Sprintf("control sample at rate %g", c.Random.Rate)
	}
}

func trackText(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf(" track %d", id)
}

// clean fits a pre-label to a w x h picture as the store requires: the box
// clipped (dropped if empty or not finite), the score in [0, 1],
// keypoints outside the picture made invisible, a mask of another size
// dropped.
func clean(o store.Object, w, h int) (store.Object, bool) {
	b := o.Box
	for _, v := range []float32{b.X1, b.Y1, b.X2, b.Y2} {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return o, false
		}
	}
	fw, fh := float32(w), float32(h)
	b = frame.Box{X1: min(max(b.X1, 0), fw), Y1: min(max(b.Y1, 0), fh), X2: min(max(b.X2, 0), fw), Y2: min(max(b.Y2, 0), fh)}
	if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
		return o, false
	}
	o.Box = b
	if !(o.Score >= 0) {
		o.Score = 0
	}
	o.Score = min(o.Score, 1)
	if o.Keypoints != nil {
		kps := slices.Clone(o.Keypoints)
		for i := range kps {
			k := &kps[i]
			if !(k.Score >= 0) {
				k.Score = 0
			}
			k.Score = min(k.Score, 1)
			if !(k.X >= 0 && k.X < fw && k.Y >= 0 && k.Y < fh) {
				k.X, k.Y, k.Score = min(max(k.X, 0), fw-1), min(max(k.Y, 0), fh-1), 0
				if math.IsNaN(float64(k.X)) || math.IsNaN(float64(k.Y)) {
					k.X, k.Y = 0, 0
				}
			}
		}
		o.Keypoints = kps
	}
	if o.Mask != nil && (o.Mask.Width != w || o.Mask.Height != h) {
		o.Mask = nil
	}
	return o, true
}

// logErr logs a worker error at most once a second; the metrics count
// them all.
func (m *Miner) logErr(err error) {
	if now := time.Now(); now.Sub(m.lastLog) >= time.Second {
		m.lastLog = now
		m.log.Warn("hard frame not stored", "err", err)
	}
}

// Close stops taking frames, hands the frames still in the rings that a
// miner picked to the worker, waits for it to store them until ctx ends
// (then drops the rest), and releases every frame. The store needs no
// closing: every Put was committed.
func (m *Miner) Close(ctx context.Context) error {
	m.closeOnce.Do(func() { m.closeErr = m.close(ctx) })
	return m.closeErr
}

func (m *Miner) close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	streams := m.streams
	m.streams = nil
	m.mu.Unlock()
	var jobs []job
	for _, st := range streams {
		st.mu.Lock()
		st.closed = true
		jobs = append(jobs, m.drain(st)...)
		st.mu.Unlock()
	}
	var err error
	for i, j := range jobs {
		select {
		case m.queue <- j:
			continue
		case <-ctx.Done():
		}
		for _, j := range jobs[i:] {
			j.f.Release()
			m.m.skipped[SkipShutdown].Inc()
		}
		break
	}
	close(m.queue)
	select {
	case <-m.done:
	case <-ctx.Done():
		// The worker drops what is left once its context ends.
		m.cancel()
		<-m.done
	}
	m.cancel()
	if ctx.Err() != nil {
		err = fmt.Errorf("closing hard-frame miner: frames left unstored: %w", ctx.Err())
	}
	return errors.Join(err, m.store.Close())
}
