// Package decode turns compressed video into pictures with FFmpeg's
// libavcodec and reads video files with libavformat, both through cgo.
//
// Packets (frame.Packet: H.264 or H.265 access units, Annex-B or
// length-prefixed as the container stores them, plus VP8 and MJPEG) enter a
// Decoder, opened from the stream's frame.CodecParams. Pictures leave as
// pooled *frame.Frame values in 8-bit 4:2:0 (YUV420P, or YUVJ420P for
// full-range video) whose planes point straight at libavcodec's buffers; the
// receiver calls Release to hand them back. A Demuxer reads the best video
// stream of a file (MP4, MKV, anything libavformat opens) as packets.
//
// Builds without cgo compile, but NewDecoder and OpenFile then return
// ErrNeedsCgo.
package decode

import (
	"errors"
	"time"

	"github.com/vigil-video/vigil/frame"
)

// ErrCorruptPacket marks a packet that libavcodec could not decode. The
// decoder then drops packets until the next key frame.
var ErrCorruptPacket = errors.New("corrupt packet")

// ErrNeedsCgo is returned by NewDecoder and OpenFile in builds without cgo.
var ErrNeedsCgo = errors.New("H.264/H.265 decoding needs a build with cgo and libavcodec (CGO_ENABLED=1)")

// ErrClosed is returned by the methods of a closed Decoder or Demuxer.
var ErrClosed = errors.New("decoder or demuxer closed")

// ErrUnsupportedCodec is returned by NewDecoder for a codec it cannot map to
// libavcodec.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// Config describes a Decoder. Zero values select the defaults given in the
// field comments.
type Config struct {
	// StreamID names the stream in errors and in the frames' StreamID.
	StreamID string
	// Params is the codec of the packets, usually from the source.
	Params frame.CodecParams
	// Threads is the number of decoding threads (frame and slice threading).
	// It defaults to 0, which lets libavcodec choose: one per CPU plus one,
	// as the ffmpeg command does.
	Threads int
	// KeyframesOnly makes libavcodec skip every picture but key frames
	// (AVDISCARD_NONKEY), which costs a fraction of full decoding.
	KeyframesOnly bool
	// PoolSize is the number of output frames the receivers are expected to
	// hold at once. When they hold more, the pool makes more frames and keeps
	// them for reuse (counted in Stats.PoolGrowths). It defaults to 8.
	PoolSize int
	// MaxPixels bounds the picture size (width x height) the decoder
	// accepts, so that a damaged or hostile stream cannot make it allocate
	// gigabytes. It defaults to 7680x4320 (8K).
	MaxPixels int
}

// Stats counts what a Decoder did since it was opened.
type Stats struct {
	// Packets is the number of packets passed to Decode.
	Packets uint64
	// Frames is the number of frames emitted.
	Frames uint64
	// CorruptPackets is the number of packets libavcodec rejected.
	CorruptPackets uint64
	// CorruptFrames is the number of frames emitted with concealed errors
	// (damaged slices or missing references).
	CorruptFrames uint64
	// DroppedPackets is the number of packets dropped while waiting for a
	// key frame after an error.
	DroppedPackets uint64
	// EmptyPackets is the number of zero-length packets, which are ignored.
	EmptyPackets uint64
	// ConvertedFrames is the number of frames converted to 4:2:0 with
	// libswscale because the decoder produced another pixel format.
	ConvertedFrames uint64
	// PoolGrowths is the number of frames made beyond Config.PoolSize.
	PoolGrowths uint64
}

// Result is what DecodeFile measured.
type Result struct {
	// Frames is the number of frames decoded.
	Frames uint64
	// Elapsed is the wall time from opening the file to the last frame.
	Elapsed time.Duration
	// Stats are the decoder's counters.
	Stats Stats
}

// FPS returns the decoding rate in frames per second.
func (r Result) FPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Frames) / r.Elapsed.Seconds()
}
