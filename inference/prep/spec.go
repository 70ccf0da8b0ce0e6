// Package prep turns decoded frames into model input tensors: letterbox or
// plain resize, interpolation, colour order, (x - mean) / std, NCHW or
// NHWC, and the quantized uint8 form, in one pass from the frame's planes
// into the batch tensor. The Transform it returns maps model-input
// coordinates back to source pixels for the output decoders.
package prep

import (
	"fmt"
	"math"

	"github.com/vigil-video/vigil/frame"
)

// Layout is the order of a tensor's axes.
type Layout string

// Layouts.
const (
	NCHW Layout = "nchw"
	NHWC Layout = "nhwc"
)

// Resize says how a frame is fitted to the model's input size.
type Resize string

// Resize modes.
const (
	// Letterbox scales by one factor that fits the whole frame and pads the
	// rest with Spec.Pad.
	Letterbox Resize = "letterbox"
	// Stretch scales width and height independently to fill the input.
	Stretch Resize = "stretch"
)

// Interp is the interpolation of a resize.
type Interp string

// Interpolations.
const (
	Bilinear Interp = "bilinear"
	Nearest  Interp = "nearest"
	Bicubic  Interp = "bicubic"
)

// Color is the channel order a model expects.
type Color string

// Colour orders.
const (
	RGB Color = "rgb"
	BGR Color = "bgr"
)

// Align places a letterboxed picture inside the padded input.
type Align string

// Alignments.
const (
	// Center pads equally on both sides (Ultralytics, most exporters).
	Center Align = "center"
	// TopLeft pads only right and bottom (YOLOX).
	TopLeft Align = "topleft"
)

// Spec is a model's input: its size and how pixels become values.
// Channel values start as 0..255 in Color order, become (x - Mean) / Std,
// and, for a quantized input, round(v/Scale) + ZeroPoint clamped to uint8.
type Spec struct {
	Width, Height int
	Layout        Layout
	Color         Color
	Resize        Resize
	Interp        Interp
	Align         Align
	// Mean and Std apply per channel in Color order; Std 0 means 1.
	Mean, Std [3]float32
	// Pad is the 0..255 value of letterbox padding, before Mean and Std.
	Pad float32
}

// Transform maps between model-input and source pixel coordinates:
// input = source*Scale + Pad, per axis.
type Transform struct {
	ScaleX, ScaleY float32
	PadX, PadY     float32
	// SrcW and SrcH are the source frame's size, for clipping.
	SrcW, SrcH int
}

// ToSource maps a point in model-input pixels to source pixels.
func (t Transform) ToSource(x, y float32) (float32, float32) {
	return (x - t.PadX) / t.ScaleX, (y - t.PadY) / t.ScaleY
}

// Box maps a box in model-input pixels to source pixels, clipped to the
// source frame.
func (t Transform) Box(b frame.Box) frame.Box {
	x1, y1 := t.ToSource(b.X1, b.Y1)
	x2, y2 := t.ToSource(b.X2, b.Y2)
	w, h := float32(t.SrcW), float32(t.SrcH)
	return frame.Box{X1: clamp(x1, 0, w), Y1: clamp(y1, 0, h), X2: clamp(x2, 0, w), Y2: clamp(y2, 0, h)}
}

func clamp(v, lo, hi float32) float32 {
	return max(lo, min(v, hi))
}

// ToInput maps a point in source pixels to model-input pixels, the inverse
// of ToSource.
func (t Transform) ToInput(x, y float32) (float32, float32) {
	return x*t.ScaleX + t.PadX, y*t.ScaleY + t.PadY
}

// Validate reports the first problem of a Spec, naming the field. Empty
// Interp means Bilinear and empty Align means Center; Layout, Color and
// Resize must be set.
func (s Spec) Validate() error {
	switch {
	case s.Width <= 0:
		return fmt.Errorf("prep: width must be > 0, got %d", s.Width)
	case s.Height <= 0:
		return fmt.Errorf("prep: height must be > 0, got %d", s.Height)
	case s.Width > maxSide || s.Height > maxSide:
		return fmt.Errorf("prep: input size %dx%d is larger than %d", s.Width, s.Height, maxSide)
	case s.Layout != NCHW && s.Layout != NHWC:
		return fmt.Errorf("prep: layout must be %s or %s, got %q", NCHW, NHWC, s.Layout)
	case s.Color != RGB && s.Color != BGR:
		return fmt.Errorf("prep: color must be %s or %s, got %q", RGB, BGR, s.Color)
	case s.Resize != Letterbox && s.Resize != Stretch:
		return fmt.Errorf("prep: resize must be %s or %s, got %q", Letterbox, Stretch, s.Resize)
	case s.Interp != "" && s.Interp != Bilinear && s.Interp != Nearest && s.Interp != Bicubic:
		return fmt.Errorf("prep: interp must be %s, %s or %s, got %q", Bilinear, Nearest, Bicubic, s.Interp)
	case s.Align != "" && s.Align != Center && s.Align != TopLeft:
		return fmt.Errorf("prep: align must be %s or %s, got %q", Center, TopLeft, s.Align)
	case !finite(s.Pad):
		return fmt.Errorf("prep: pad must be finite, got %v", s.Pad)
	}
	for c := range 3 {
		if !finite(s.Mean[c]) {
			return fmt.Errorf("prep: mean[%d] must be finite, got %v", c, s.Mean[c])
		}
		if !finite(s.Std[c]) || s.Std[c] < 0 {
			return fmt.Errorf("prep: std[%d] must be >= 0 and finite (0 means 1), got %v", c, s.Std[c])
		}
	}
	return nil
}

// maxSide bounds the input's width and height so that sizes multiply
// without overflow.
const maxSide = 1 << 15

func finite(v float32) bool {
	return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
}
