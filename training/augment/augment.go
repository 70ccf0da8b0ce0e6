// Package augment turns a labelled dataset.Sample into a training input of
// the network's size: a random geometric change (horizontal flip, zoom,
// crop, shift, small rotation, then letterbox to the output size) applied
// consistently to the picture, boxes, keypoints, instance masks and the
// class map, followed by random photometric changes (brightness, contrast,
// saturation, hue, sensor noise, blur) and JPEG re-compression. Letterbox
// is the same geometry without randomness, for validation, and its
// Transform maps predictions back to the original picture.
//
// A sample enters with its picture in source pixels; a new sample leaves,
// with fresh pixels and labels (the input is never modified), and the
// Transform from the old coordinates to the new. All randomness comes from
// the *rand.Rand the caller passes, so the same seed gives the same
// output. The package does no I/O and starts no goroutines.
//
// How labels follow the geometry:
//   - One affine map moves everything. The picture is sampled bilinearly;
//     instance masks and the segmentation map take the nearest source pixel,
//     so class ids are never blended. Padding is Config.Pad grey in the
//     picture and 0 (background) in the class map.
//   - An object with a mask gets as its box the extent of its source mask
//     mapped exactly (pixel squares, not samples), clipped to the picture:
//     tight under rotation, and not shrunk when nearest sampling drops a
//     limb thinner than an output pixel (the new mask's extent then lies
//     a pixel or two inside the box). One without a mask gets the rectangle
//     around its mapped corners, clipped, which a rotation loosens.
//   - An object with nothing left in the picture is dropped. One whose
//     visible part is under Config.MinVisible of what the map would show of
//     it unclipped (mask area, else box area), or whose box is thinner than
//     Config.MinSide pixels, is kept with Ignore set: neither a positive nor
//     a negative for the trainer. (A mask too thin to cover any output
//     pixel centre comes out empty: its object keeps its box and, having
//     no visible area, becomes Ignore whenever MinVisible > 0.)
//   - Keypoints move with the map; one pushed outside the picture gets
//     Score 0. A flip swaps COCO's left and right keypoints; a sample whose
//     keypoints are not COCO's 17 is never flipped.
package augment

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"

	"github.com/vigil-video/vigil/training/dataset"
)

// maxSide bounds the output size, so a bad argument cannot ask for a huge
// allocation.
const maxSide = 8192

// DefaultPad is the grey of letterbox padding (YOLOX and Ultralytics use
// 114).
const DefaultPad = 114

// Config says how strongly and how often to augment. Probabilities are in
// [0, 1]; a range [1-x, 1+x] is drawn uniformly. The zero value of a field
// turns its change off, except ScaleMin, ScaleMax, CropMin and the JPEG
// qualities, which must be set (DefaultConfig sets them).
type Config struct {
	// FlipProb is the probability of a horizontal flip. It defaults to 0.5.
	FlipProb float64 `yaml:"flip_prob"`
	// ScaleMin and ScaleMax bound the random zoom relative to the letterbox
	// fit (1 fills the output on one axis); 0 < ScaleMin <= ScaleMax <= 4.
	// They default to 0.75 and 1.25.
	ScaleMin float64 `yaml:"scale_min"`
	ScaleMax float64 `yaml:"scale_max"`
	// Translate shifts the picture by up to this fraction of the output
	// size on each axis, 0-1. It defaults to 0.1.
	Translate float64 `yaml:"translate"`
	// CropProb is the probability of a random crop: a window of the source
	// with its aspect ratio and CropMin-1 of its side, anywhere in it,
	// becomes what the letterbox fits. It defaults to 0.3.
	CropProb float64 `yaml:"crop_prob"`
	// CropMin is the smallest crop window as a fraction of the source's
	// side, in (0, 1]. It defaults to 0.5.
	CropMin float64 `yaml:"crop_min"`
	// MaxRotateDeg bounds the rotation about the output's centre, in
	// degrees, 0-45. It defaults to 5.
	MaxRotateDeg float64 `yaml:"max_rotate_deg"`
	// Brightness multiplies every channel by a factor in [1-b, 1+b], 0-1.
	// It defaults to 0.25.
	Brightness float64 `yaml:"brightness"`
	// Contrast scales the distance from the mean grey by a factor in
	// [1-c, 1+c], 0-1. It defaults to 0.25.
	Contrast float64 `yaml:"contrast"`
	// Saturation scales the distance from each pixel's grey by a factor in
	// [1-s, 1+s], 0-1. It defaults to 0.3.
	Saturation float64 `yaml:"saturation"`
	// Hue rotates the hue by up to this fraction of a full turn, 0-0.5. It
	// defaults to 0.02.
	Hue float64 `yaml:"hue"`
	// NoiseProb is the probability of adding Gaussian noise to every
	// channel. It defaults to 0.2.
	NoiseProb float64 `yaml:"noise_prob"`
	// NoiseStd bounds the noise's standard deviation, drawn in
	// [0, NoiseStd], in 0-255 levels, 0-64. It defaults to 6.
	NoiseStd float64 `yaml:"noise_std"`
	// BlurProb is the probability of a Gaussian blur. It defaults to 0.1.
	BlurProb float64 `yaml:"blur_prob"`
	// BlurMaxSigma bounds the blur's sigma in output pixels, drawn in
	// [0.5, BlurMaxSigma], 0.5-5. It defaults to 1.2.
	BlurMaxSigma float64 `yaml:"blur_max_sigma"`
	// JPEGProb is the probability of passing the output through a JPEG
	// encoder and decoder (at the output's resolution, after the other
	// changes). It defaults to 0.2.
	JPEGProb float64 `yaml:"jpeg_prob"`
	// JPEGQualityMin and JPEGQualityMax bound the quality, drawn uniformly,
	// 1-100. They default to 30 and 90.
	JPEGQualityMin int `yaml:"jpeg_quality_min"`
	JPEGQualityMax int `yaml:"jpeg_quality_max"`
	// MinVisible is the fraction of an object that must stay in the
	// picture for it to remain a positive; below it the object is marked
	// Ignore. 0-1; it defaults to 0.3.
	MinVisible float64 `yaml:"min_visible"`
	// MinSide is the smallest box side, in output pixels, of a positive;
	// a thinner object is marked Ignore. 0-64; it defaults to 2.
	MinSide float64 `yaml:"min_side"`
	// Pad is the grey of the padding, 0-255. It defaults to DefaultPad.
	Pad uint8 `yaml:"pad"`
}

// DefaultConfig returns moderate augmentation: enough variety to help a
// small detector generalise without making the pictures unlike a camera's.
func DefaultConfig() Config {
	return Config{
		FlipProb: 0.5, ScaleMin: 0.75, ScaleMax: 1.25, Translate: 0.1,
		CropProb: 0.3, CropMin: 0.5, MaxRotateDeg: 5,
		Brightness: 0.25, Contrast: 0.25, Saturation: 0.3, Hue: 0.02,
		NoiseProb: 0.2, NoiseStd: 6, BlurProb: 0.1, BlurMaxSigma: 1.2,
		JPEGProb: 0.2, JPEGQualityMin: 30, JPEGQualityMax: 90,
		MinVisible: 0.3, MinSide: 2, Pad: DefaultPad,
	}
}

// Validate reports the first field out of range, by its YAML key.
func (c Config) Validate() error {
	in := func(v, lo, hi float64) bool { return v >= lo && v <= hi } // false for NaN
	for _, p := range []struct {
		key    string
		v      float64
		lo, hi float64
	}{
		{"flip_prob", c.FlipProb, 0, 1},
		{"translate", c.Translate, 0, 1},
		{"crop_prob", c.CropProb, 0, 1},
		{"max_rotate_deg", c.MaxRotateDeg, 0, 45},
		{"brightness", c.Brightness, 0, 1},
		{"contrast", c.Contrast, 0, 1},
		{"saturation", c.Saturation, 0, 1},
		{"hue", c.Hue, 0, 0.5},
		{"noise_prob", c.NoiseProb, 0, 1},
		{"noise_std", c.NoiseStd, 0, 64},
		{"blur_prob", c.BlurProb, 0, 1},
		{"jpeg_prob", c.JPEGProb, 0, 1},
		{"min_visible", c.MinVisible, 0, 1},
		{"min_side", c.MinSide, 0, 64},
	} {
		if !in(p.v, p.lo, p.hi) {
			return fmt.Errorf("augment: %s must be in [%g, %g], got %g", p.key, p.lo, p.hi, p.v)
		}
	}
	switch {
	case !(c.ScaleMin > 0 && c.ScaleMin <= 4):
		return fmt.Errorf("augment: scale_min must be in (0, 4], got %g", c.ScaleMin)
	case !(c.ScaleMax >= c.ScaleMin && c.ScaleMax <= 4):
		return fmt.Errorf("augment: scale_max must be in [scale_min, 4] = [%g, 4], got %g", c.ScaleMin, c.ScaleMax)
	case !(c.CropMin > 0 && c.CropMin <= 1):
		return fmt.Errorf("augment: crop_min must be in (0, 1], got %g", c.CropMin)
	case c.BlurProb > 0 && !in(c.BlurMaxSigma, 0.5, 5):
		return fmt.Errorf("augment: blur_max_sigma must be in [0.5, 5], got %g", c.BlurMaxSigma)
	case c.JPEGProb > 0 && (c.JPEGQualityMin < 1 || c.JPEGQualityMin > 100):
		return fmt.Errorf("augment: jpeg_quality_min must be in [1, 100], got %d", c.JPEGQualityMin)
	case c.JPEGProb > 0 && (c.JPEGQualityMax < c.JPEGQualityMin || c.JPEGQualityMax > 100):
		return fmt.Errorf("augment: jpeg_quality_max must be in [jpeg_quality_min, 100] = [%d, 100], got %d", c.JPEGQualityMin, c.JPEGQualityMax)
	}
	return nil
}

// Augmenter applies a Config. It keeps scratch buffers between calls, so it
// is not safe for concurrent use: give each data-loading goroutine its own.
type Augmenter struct {
	cfg Config
	w   warper
	ph  photo
}

// New returns an Augmenter for cfg, or the error of cfg.Validate.
func New(cfg Config) (*Augmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Augmenter{cfg: cfg}, nil
}

// Config returns the configuration the Augmenter applies.
func (a *Augmenter) Config() Config { return a.cfg }

// Apply returns a randomly augmented copy of s of size outW x outH, and the
// Transform from s's coordinates to the copy's. s is not modified and the
// copy shares no memory with it. The error reports a sample that cannot be
// augmented: no picture, a mask or class map of another size than the
// picture, a corrupt mask, or a bad output size.
func (a *Augmenter) Apply(s dataset.Sample, rng *rand.Rand, outW, outH int) (dataset.Sample, Transform, error) {
	if err := check(s, outW, outH); err != nil {
		return dataset.Sample{}, Transform{}, fmt.Errorf("augmenting sample %q: %w", s.ID, err)
	}
	if rng == nil {
		return dataset.Sample{}, Transform{}, fmt.Errorf("augmenting sample %q: nil rand", s.ID)
	}
	t := a.draw(s, rng, outW, outH)
	ph := a.ph.draw(a.cfg, rng)
	out := a.w.warp(s, t, a.cfg, &ph)
	if err := a.ph.finish(out.Image, &ph, rng); err != nil {
		return dataset.Sample{}, Transform{}, fmt.Errorf("augmenting sample %q: %w", s.ID, err)
	}
	return out, t, nil
}

// draw picks the random geometry: crop window, zoom, flip, rotation and
// shift, in that order of application to source coordinates.
func (a *Augmenter) draw(s dataset.Sample, rng *rand.Rand, outW, outH int) Transform {
	c := a.cfg
	b := s.Image.Bounds()
	w, h := float64(b.Dx()), float64(b.Dy())
	uniform := func(lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

	frac, cx, cy := 1.0, w/2, h/2
	if rng.Float64() < c.CropProb {
		frac = uniform(c.CropMin, 1)
		cx = uniform(w*frac/2, w-w*frac/2)
		cy = uniform(h*frac/2, h-h*frac/2)
	}
	scale := min(float64(outW)/(w*frac), float64(outH)/(h*frac)) * uniform(c.ScaleMin, c.ScaleMax)
	flip := 1.0
	if rng.Float64() < c.FlipProb && flippable(s) {
		flip = -1
	}
	theta := uniform(-c.MaxRotateDeg, c.MaxRotateDeg) * math.Pi / 180
	tx := uniform(-c.Translate, c.Translate) * float64(outW)
	ty := uniform(-c.Translate, c.Translate) * float64(outH)

	// p' = R(theta) * diag(flip*scale, scale) * (p - centre) + outCentre + shift
	cos, sin := math.Cos(theta), math.Sin(theta)
	t := Transform{
		A: cos * flip * scale, B: -sin * scale,
		D: sin * flip * scale, E: cos * scale,
		SrcW: b.Dx(), SrcH: b.Dy(), DstW: outW, DstH: outH,
	}
	t.C = float64(outW)/2 + tx - (t.A*cx + t.B*cy)
	t.F = float64(outH)/2 + ty - (t.D*cx + t.E*cy)
	return t
}

// flippable reports whether a mirror image of s can be labelled: every
// object's keypoints are COCO's 17 (whose left and right we know) or none.
func flippable(s dataset.Sample) bool {
	for _, o := range s.Objects {
		if len(o.Keypoints) != 0 && len(o.Keypoints) != 17 {
			return false
		}
	}
	return true
}

var errNoImage = errors.New("sample has no image")

// check rejects what warp cannot handle, so that nothing later panics.
func check(s dataset.Sample, outW, outH int) error {
	if s.Image == nil || s.Image.Bounds().Empty() {
		return errNoImage
	}
	if outW <= 0 || outH <= 0 || outW > maxSide || outH > maxSide {
		return fmt.Errorf("output size %dx%d is outside 1-%d", outW, outH, maxSide)
	}
	b := s.Image.Bounds()
	if b.Dx() > maxSide*2 || b.Dy() > maxSide*2 {
		return fmt.Errorf("image size %dx%d is larger than %d", b.Dx(), b.Dy(), maxSide*2)
	}
	if g := s.Segmentation; g != nil && g.Bounds().Size() != b.Size() {
		return fmt.Errorf("segmentation is %v, image is %v", g.Bounds().Size(), b.Size())
	}
	for i, o := range s.Objects {
		if b := o.Box; !finite(b.X1) || !finite(b.Y1) || !finite(b.X2) || !finite(b.Y2) {
			return fmt.Errorf("object %d: box %v is not finite", i, b)
		}
		if o.Mask == nil {
			continue
		}
		if o.Mask.Width != b.Dx() || o.Mask.Height != b.Dy() {
			return fmt.Errorf("object %d: mask is %dx%d, image is %dx%d", i, o.Mask.Width, o.Mask.Height, b.Dx(), b.Dy())
		}
		if err := o.Mask.Valid(); err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
	}
	return nil
}

// Letterbox scales s to fit w x h keeping its aspect ratio and pads the
// rest with DefaultPad grey, centred, with no randomness: the validation
// input. The geometry is inference/prep's Letterbox with Center alignment
// (content round(W*scale) x round(H*scale) at ((w-nw)/2, (h-nh)/2) rounded
// down), so a model sees the same pixels in training and in Vigil (within
// one level; see TestLetterboxMatchesPrep). Labels move as Apply moves
// them, but none is dropped or newly ignored. The Transform maps s's
// coordinates to the result's; its Inverse maps predictions back.
func Letterbox(s dataset.Sample, w, h int) (dataset.Sample, Transform, error) {
	if err := check(s, w, h); err != nil {
		return dataset.Sample{}, Transform{}, fmt.Errorf("letterboxing sample %q: %w", s.ID, err)
	}
	t := LetterboxTransform(s.Image.Bounds().Dx(), s.Image.Bounds().Dy(), w, h)
	cfg := Config{MinVisible: 0, MinSide: 0, Pad: DefaultPad}
	var wp warper
	return wp.warp(s, t, cfg, nil), t, nil
}

// LetterboxTransform is the Transform Letterbox applies to a srcW x srcH
// picture to fit it in dstW x dstH. Its A, E, C and F are the ScaleX,
// ScaleY, PadX and PadY of the prep.Transform that inference/prep's Fill
// returns for the same sizes (Center alignment).
func LetterboxTransform(srcW, srcH, dstW, dstH int) Transform {
	scale := min(float64(dstW)/float64(srcW), float64(dstH)/float64(srcH))
	nw := max(1, min(dstW, int(math.Round(float64(srcW)*scale))))
	nh := max(1, min(dstH, int(math.Round(float64(srcH)*scale))))
	return Transform{
		A: float64(nw) / float64(srcW), C: float64((dstW - nw) / 2),
		E: float64(nh) / float64(srcH), F: float64((dstH - nh) / 2),
		SrcW: srcW, SrcH: srcH, DstW: dstW, DstH: dstH,
	}
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// newRGBA allocates an opaque picture.
func newRGBA(w, h int) *image.RGBA { return image.NewRGBA(image.Rect(0, 0, w, h)) }
