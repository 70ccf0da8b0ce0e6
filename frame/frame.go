// Package frame holds the leaf types that every other Vigil package shares:
// compressed access units (Packet), decoded pictures (Frame), and what the
// analysis makes of them (Detection, Keypoints, Mask, Track, Result).
//
// Data enters as a Packet from an ingest source, becomes a Frame in the
// decoder (or straight from a synthetic source), and leaves as a Result to the
// sinks. This package imports nothing from the module.
package frame

import (
	"sync/atomic"
	"time"
)

// PixelFormat is the memory layout of a Frame's planes.
type PixelFormat uint8

// Pixel formats a Frame can carry.
const (
	PixelFormatUnknown PixelFormat = iota
	// PixelFormatYUV420P is planar 8-bit Y, U, V with chroma halved in both
	// directions (what H.264 and H.265 decoders emit for 8-bit 4:2:0).
	PixelFormatYUV420P
	// PixelFormatYUVJ420P is YUV420P with full-range samples (JPEG, some cameras).
	PixelFormatYUVJ420P
	// PixelFormatRGB24 is packed R, G, B in one plane.
	PixelFormatRGB24
	// PixelFormatGray8 is one plane of 8-bit luma.
	PixelFormatGray8
)

// String returns the FFmpeg-style name of the format.
func (p PixelFormat) String() string {
	switch p {
	case PixelFormatYUV420P:
		return "yuv420p"
	case PixelFormatYUVJ420P:
		return "yuvj420p"
	case PixelFormatRGB24:
		return "rgb24"
	case PixelFormatGray8:
		return "gray"
	default:
		return "unknown"
	}
}

// Frame is one decoded picture of a stream.
//
// Frames usually come from a pool: the owner calls Release when it no longer
// needs the pixels, and must not touch the planes afterwards. A Frame is not
// safe for concurrent mutation; hand it from one goroutine to the next.
type Frame struct {
	// StreamID names the stream the frame belongs to.
	StreamID string
	// Seq is the 0-based position of the frame in source order, counting every
	// decoded frame of the stream (not only the analysed ones).
	Seq uint64
	// PTS is the presentation time from the container or RTP clock, relative to
	// the start of the stream.
	PTS time.Duration
	// Arrival is the wall-clock time the frame's data reached Vigil.
	Arrival time.Time
	// KeyFrame reports whether the frame was coded as an IDR/intra picture.
	KeyFrame bool

	// Width and Height are the visible size in pixels.
	Width, Height int
	// Format says how Planes are laid out.
	Format PixelFormat
	// Planes hold the pixel data; unused planes are nil.
	Planes [3][]byte
	// Strides are the byte lengths of one row of each plane.
	Strides [3]int

	release func(*Frame)
	refs    atomic.Int32
}

// SetRelease installs the function that returns the frame to its pool and
// resets its reference count to one. Pools call it when they hand a frame out.
func (f *Frame) SetRelease(fn func(*Frame)) {
	f.release = fn
	f.refs.Store(1)
}

// Retain adds a reference, for a frame handed to more than one consumer.
// Each Retain needs a matching Release.
func (f *Frame) Retain() { f.refs.Add(1) }

// Release drops a reference; the last one returns the frame to its pool.
// Release on a frame without a pool does nothing.
func (f *Frame) Release() {
	if f == nil || f.release == nil {
		return
	}
	if f.refs.Add(-1) == 0 {
		f.release(f)
	}
}

// Codec identifies the compression of a Packet.
type Codec uint8

// Codecs Vigil knows by name.
const (
	CodecUnknown Codec = iota
	CodecH264
	CodecH265
	CodecVP8
	CodecMJPEG
)

// String returns the codec's common name.
func (c Codec) String() string {
	switch c {
	case CodecH264:
		return "h264"
	case CodecH265:
		return "h265"
	case CodecVP8:
		return "vp8"
	case CodecMJPEG:
		return "mjpeg"
	default:
		return "unknown"
	}
}

// CodecParams describe a compressed stream well enough to open a decoder.
type CodecParams struct {
	Codec Codec
	// Width and Height are the coded picture size, when known (0 otherwise).
	Width, Height int
	// Extradata is the codec configuration: an avcC/hvcC record or Annex-B
	// parameter sets (SPS/PPS/VPS). May be empty when parameter sets travel
	// in-band.
	Extradata []byte
	// FrameRate is the nominal rate in frames per second, 0 when unknown.
	FrameRate float64
}

// Packet is one compressed access unit.
type Packet struct {
	StreamID string
	Codec    Codec
	// Data holds the access unit in the layout the decoder was opened for
	// (Annex-B for RTP sources, length-prefixed for MP4 with avcC extradata).
	Data []byte
	// PTS and DTS are presentation and decoding times from the start of the stream.
	PTS, DTS time.Duration
	// KeyFrame reports whether the access unit starts a decodable picture
	// (an IDR frame or equivalent).
	KeyFrame bool
	// Arrival is the wall-clock time the packet reached Vigil.
	Arrival time.Time
}

// Box is an axis-aligned rectangle in source pixel coordinates: X1,Y1 is the
// top-left corner, X2,Y2 the bottom-right one (exclusive).
type Box struct {
	X1, Y1, X2, Y2 float32
}

// W returns the box width.
func (b Box) W() float32 { return b.X2 - b.X1 }

// H returns the box height.
func (b Box) H() float32 { return b.Y2 - b.Y1 }

// Area returns the box area, 0 for an empty or inverted box.
func (b Box) Area() float32 {
	w, h := b.W(), b.H()
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

// IoU returns the intersection over union of two boxes.
func (b Box) IoU(o Box) float32 {
	ix := min(b.X2, o.X2) - max(b.X1, o.X1)
	iy := min(b.Y2, o.Y2) - max(b.Y1, o.Y1)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	return inter / (b.Area() + o.Area() - inter)
}

// Keypoint is one named body point in source pixels with a confidence in [0,1];
// a point that is not visible has Score 0.
type Keypoint struct {
	X, Y  float32
	Score float32
}

// Keypoints is the pose of one object, in the order of the model's keypoint
// names (COCO's 17 for people).
type Keypoints []Keypoint

// Detection is one object found in a frame.
type Detection struct {
	// Box is in source pixel coordinates.
	Box Box
	// Class is the model's class index and Label its name.
	Class int
	Label string
	Score float32
	// TrackID is the tracker's identity for the object, 0 when untracked.
	TrackID uint64
	// Keypoints is nil unless a keypoint model ran.
	Keypoints Keypoints
	// Mask is nil unless a segmenter ran; it covers the whole frame.
	Mask *Mask
	// Embedding is the L2-normalised re-ID vector, nil unless an embedder ran.
	Embedding []float32
	// Low marks a detection that scored below its model's score threshold,
	// kept only for the tracker's second (low-score) pass; the pipeline
	// drops it unless it extended a track.
	Low bool
	// Aux marks a detection of a keypoint model (its persons repeat a
	// detector's), which the tracker skips.
	Aux bool
}

// TrackState is the lifecycle stage of a track.
type TrackState uint8

// Track states, as in Deep SORT.
const (
	TrackTentative TrackState = iota
	TrackConfirmed
	TrackDeleted
)

// Track is one tracked identity at a point in time.
type Track struct {
	ID    uint64
	State TrackState
	Box   Box
	Class int
	// Hits counts the frames matched so far; Age counts frames since creation.
	Hits, Age int
	// TimeSinceUpdate counts the frames since the last matched detection.
	TimeSinceUpdate int
}

// TrackEvent marks a track's start (when it is confirmed) or end (when it
// is deleted after being confirmed), with a summary of its life.
type TrackEvent struct {
	// Kind is "started" or "ended".
	Kind    string
	TrackID uint64
	Class   int
	Label   string
	// First and Last are the times of its first and last matched frames.
	First, Last time.Duration
	// Frames counts its matched frames; MeanScore is their mean score.
	Frames    int
	MeanScore float32
}

// Result is what Vigil made of one analysed frame. It owns no pooled memory,
// so sinks may keep it.
type Result struct {
	StreamID string
	// Seq is the frame's 0-based sequence number in source order.
	Seq uint64
	PTS time.Duration
	// Captured is the wall-clock arrival time of the frame's data.
	Captured time.Time
	Width    int
	Height   int
	// Model and ModelVersion name the detector that produced Detections;
	// empty when no model is configured.
	Model        string
	ModelVersion string
	Detections   []Detection
	Tracks       []Track
	// Events are the track events of this frame.
	Events []TrackEvent
	// Analysis is the wall time the models took for this frame, waiting
	// in their batchers included.
	Analysis time.Duration
	// EndOfStream marks the result a stream publishes when it ends for
	// good: no detections, Seq and PTS of its last analysed frame, and the
	// ended events of the tracks still open.
	EndOfStream bool
}

// Share returns a new Frame over the same pixels and metadata, with no
// pool: its Release does nothing, and f must stay alive while it is used.
// Benchmarks and tests use it to present one picture as several streams.
func (f *Frame) Share() *Frame {
	return &Frame{
		StreamID: f.StreamID, Seq: f.Seq, PTS: f.PTS, Arrival: f.Arrival, KeyFrame: f.KeyFrame,
		Width: f.Width, Height: f.Height, Format: f.Format, Planes: f.Planes, Strides: f.Strides,
	}
}
