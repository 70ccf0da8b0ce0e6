// Package prep turns decoded frames into model input tensors: letterbox or
// plain resize, interpolation, colour order, (x - mean) / std, NCHW or
// NHWC, and the quantized uint8 form, in one pass from the frame's planes
// into the batch tensor. The Transform it returns maps model-input
// coordinates back to source pixels for the output decoders.
package prep

import "github.com/vigil-video/vigil/frame"

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
