package dataset

import (
	"fmt"
	"image"
	"runtime"
	"sync"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
)

// SynthOptions describe the generated scenes of a SynthSource.
type SynthOptions struct {
	// Params describe the scene (domain, objects, size, distractors,
	// texture, JPEG...). Params.Seed is the first sequence's seed.
	Params synth.Params
	// Sequences is the number of scenes, with seeds Params.Seed,
	// Params.Seed+1, ... It defaults to 1.
	Sequences int
	// Frames is the number of frames kept from each scene. It defaults
	// to 100.
	Frames int
	// Skip is the number of frames stepped over before the first kept
	// one. It defaults to 0.
	Skip int
	// Stride is the number of scene frames from one kept frame to the
	// next; 1 (the default) keeps every frame.
	Stride int
	// Width and Height are the size of the samples; the scene is rendered
	// at the Params' size and shrunk (area average; masks sampled at pixel
	// centres; boxes and keypoints scaled). 0 (the default) keeps the
	// Params' size.
	Width, Height int
	// MinVisible marks an object Ignore when the fraction of it that shows
	// (inside the picture and not hidden) is below it. It defaults to 0.1.
	MinVisible float64
	// MinBoxSize marks an object Ignore when its visible box, at the
	// sample size, is narrower or lower than this many pixels. It defaults
	// to 4.
	MinBoxSize float32
	// Workers is how many scenes render at once. It defaults to
	// GOMAXPROCS.
	Workers int
	// Progress, when not nil, is called after each rendered sample with
	// the number done and the total; never from two goroutines at once.
	Progress func(done, total int)
}

// SynthStats are the costs of rendering a SynthSource, summed over its
// samples (so over the workers).
type SynthStats struct {
	Samples int
	// Render is the time spent drawing, converting to RGB and shrinking;
	// Label the time spent on truth, masks and segmentation.
	Render, Label time.Duration
	// Wall is the elapsed time of NewSynthSource.
	Wall time.Duration
}

// PerSample returns the mean render+label time of one sample.
func (s SynthStats) PerSample() time.Duration {
	if s.Samples == 0 {
		return 0
	}
	return (s.Render + s.Label) / time.Duration(s.Samples)
}

// SynthSource holds labelled frames of generated scenes, rendered once at
// construction and kept in memory. Each seed is one Sequence; Object.TrackID
// is the synth object ID. It is safe for concurrent use.
type SynthSource struct {
	samples []Sample
	stats   SynthStats
}

// NewSynthSource renders every sample the options describe. The same
// options always give the same samples.
func NewSynthSource(opts SynthOptions) (*SynthSource, error) {
	if opts.Sequences == 0 {
		opts.Sequences = 1
	}
	if opts.Frames == 0 {
		opts.Frames = 100
	}
	if opts.Stride == 0 {
		opts.Stride = 1
	}
	if opts.MinVisible == 0 {
		opts.MinVisible = 0.1
	}
	if opts.MinBoxSize == 0 {
		opts.MinBoxSize = 4
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Width == 0 && opts.Height == 0 {
		opts.Width, opts.Height = opts.Params.Width, opts.Params.Height
	}
	switch {
	case opts.Sequences < 0:
		return nil, fmt.Errorf("synth source: sequences: %d is negative", opts.Sequences)
	case opts.Frames < 0:
		return nil, fmt.Errorf("synth source: frames: %d is negative", opts.Frames)
	case opts.Stride < 0 || opts.Skip < 0:
		return nil, fmt.Errorf("synth source: stride %d, skip %d: must not be negative", opts.Stride, opts.Skip)
	case opts.Width <= 0 || opts.Height <= 0 || opts.Width > opts.Params.Width || opts.Height > opts.Params.Height:
		return nil, fmt.Errorf("synth source: width, height: %dx%d must be within the scene's %dx%d",
			opts.Width, opts.Height, opts.Params.Width, opts.Params.Height)
	}
	if err := opts.Params.Validate(); err != nil {
		return nil, fmt.Errorf("synth source: params: %w", err)
	}
	start := time.Now()
	total := opts.Sequences * opts.Frames
	src := &SynthSource{samples: make([]Sample, total)}
	var (
		mu       sync.Mutex // guards done, stats, firstErr and the Progress call
		done     int
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range min(opts.Workers, opts.Sequences) {
		wg.Go(func() {
			r := newSynthRenderer(&opts)
			for seq := range next {
				p := opts.Params
				p.Seed += uint64(seq)
				err := r.sequence(p, src.samples[seq*opts.Frames:(seq+1)*opts.Frames], func(render, label time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					done++
					src.stats.Render += render
					src.stats.Label += label
					if opts.Progress != nil {
						opts.Progress(done, total)
					}
				})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for seq := range opts.Sequences {
		next <- seq
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	src.stats.Samples = total
	src.stats.Wall = time.Since(start)
	return src, nil
}

// synthRenderer holds one worker's buffers.
type synthRenderer struct {
	opts  *SynthOptions
	f     frame.Frame
	rgb   *image.RGBA
	mask  []byte
	small []byte
}

func newSynthRenderer(opts *SynthOptions) *synthRenderer { return &synthRenderer{opts: opts} }

// sequence renders len(dst) samples of the scene p into dst.
func (r *synthRenderer) sequence(p synth.Params, dst []Sample, tick func(render, label time.Duration)) error {
	o := r.opts
	sc := synth.NewScene(p)
	for range o.Skip {
		sc.Step()
	}
	domain := p.Domain
	if domain == "" {
		domain = synth.Day
	}
	seqName := fmt.Sprintf("synth-%s-s%d", domain, p.Seed)
	for i := range dst {
		if i > 0 {
			for range o.Stride {
				sc.Step()
			}
		}
		t0 := time.Now()
		sc.Render(&r.f)
		rgb, err := synth.ToRGB(&r.f, r.rgb)
		if err != nil {
			return fmt.Errorf("synth source: %s frame %d: converting to RGB: %w", seqName, sc.Seq(), err)
		}
		r.rgb = rgb
		var img *image.RGBA
		if o.Width == p.Width && o.Height == p.Height {
			img = image.NewRGBA(rgb.Rect)
			copy(img.Pix, rgb.Pix)
		} else {
			img = resizeRGBA(rgb, o.Width, o.Height, nil)
		}
		t1 := time.Now()
		objs, seg := r.label(sc.Truth(), p)
		dst[i] = Sample{
			ID:           fmt.Sprintf("%s/%06d", seqName, sc.Seq()),
			Sequence:     seqName,
			Image:        img,
			Objects:      objs,
			Segmentation: seg,
		}
		tick(t1.Sub(t0), time.Since(t1))
	}
	return nil
}

// label turns a frame's truth into Objects at the sample size, with the
// segmentation painted from their masks.
func (r *synthRenderer) label(truth []synth.Object, p synth.Params) ([]Object, *image.Gray) {
	o := r.opts
	w, h := o.Width, o.Height
	sx, sy := float32(w)/float32(p.Width), float32(h)/float32(p.Height)
	scaled := w != p.Width || h != p.Height
	seg := image.NewGray(image.Rect(0, 0, w, h))
	objs := make([]Object, 0, len(truth))
	for _, t := range truth {
		ob := Object{
			Box: scaleBox(t.Box, sx, sy), Class: t.Class, Label: t.Label,
			TrackID: t.ID, Score: 1,
		}
		if t.Keypoints != nil {
			ob.Keypoints = make(frame.Keypoints, len(t.Keypoints))
			for k, kp := range t.Keypoints {
				ob.Keypoints[k] = frame.Keypoint{X: kp.X * sx, Y: kp.Y * sy, Score: kp.Score}
			}
		}
		if t.Mask != nil {
			m := *t.Mask
			if scaled {
				r.mask = t.Mask.Decode(r.mask)
				r.small = resampleMask(r.mask, p.Width, p.Height, w, h, r.small)
				m = frame.EncodeMask(r.small, w, h)
			}
			ob.Mask = &m
			if t.Class >= 0 && t.Class < 255 {
				paintRuns(seg, m, byte(t.Class+1))
			}
		}
		vis := (1 - float64(t.Occlusion)) * inside(t.Full, p.Width, p.Height)
		if vis < o.MinVisible || ob.Box.W() < o.MinBoxSize || ob.Box.H() < o.MinBoxSize {
			ob.Ignore = true
		}
		objs = append(objs, ob)
	}
	return objs, seg
}

// inside returns the fraction of b's area inside a w x h picture.
func inside(b frame.Box, w, h int) float64 {
	a := float64(b.Area())
	if a <= 0 {
		return 0
	}
	c := frame.Box{X1: max(b.X1, 0), Y1: max(b.Y1, 0), X2: min(b.X2, float32(w)), Y2: min(b.Y2, float32(h))}
	return float64(c.Area()) / a
}

// Len returns the number of samples.
func (s *SynthSource) Len() int { return len(s.samples) }

// At returns sample i; it shares memory with the source.
func (s *SynthSource) At(i int) (Sample, error) {
	if i < 0 || i >= len(s.samples) {
		return Sample{}, fmt.Errorf("synth source: sample %d: %w", i, ErrRange)
	}
	return s.samples[i], nil
}

// SequenceOf returns sample i's Sequence.
func (s *SynthSource) SequenceOf(i int) (string, error) {
	if i < 0 || i >= len(s.samples) {
		return "", fmt.Errorf("synth source: sample %d: %w", i, ErrRange)
	}
	return s.samples[i].Sequence, nil
}

// Stats returns the cost of rendering the samples.
func (s *SynthSource) Stats() SynthStats { return s.stats }

// paintRuns sets v under the mask's foreground runs, touching only those
// pixels (the runs go down the columns).
func paintRuns(g *image.Gray, m frame.Mask, v byte) {
	h, n := m.Height, m.Width*m.Height
	j := 0
	for k, c := range m.Counts {
		if k%2 == 1 {
			for p := j; p < j+int(c) && p < n; p++ {
				g.Pix[(p%h)*g.Stride+p/h] = v
			}
		}
		j += int(c)
	}
}
