// Package encode compresses decoded pictures into H.264 for WebRTC viewers,
// with libx264 through FFmpeg's libavcodec (cgo).
//
// Streams that have no compressed video a browser can play (generated synth
// scenes, H.265 cameras) are encoded once per stream, and the same access
// units go to every viewer. Frames (frame.Frame, YUV420P or YUVJ420P) enter
// Encoder.Encode; Annex-B access units (frame.Packet) leave through a
// callback, one per frame. The settings favour latency over compression:
// constrained baseline profile (what every browser decodes), no B-frames, no
// lookahead, a bounded VBV so that no frame bursts far above the bitrate, and
// SPS and PPS in front of every IDR so that a viewer can join at any key
// frame. The package starts no goroutines and does no I/O.
//
// Builds without cgo compile, but NewH264 then returns ErrUnavailable.
package encode

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrUnavailable is returned by NewH264 in builds without cgo.
var ErrUnavailable = errors.New("H.264 encoding needs a build with cgo and libavcodec with libx264 (CGO_ENABLED=1)")

// ErrClosed is returned by Encode after Close.
var ErrClosed = errors.New("encoder closed")

// Limits of the defaults and of the configuration.
const (
	defaultFPS         = 15
	defaultKeyInterval = 2 * time.Second
	minAutoBitrate     = 300_000
	maxAutoBitrate     = 8_000_000
	autoBitsPerPixel   = 0.1
	maxSide            = 8192
	// vbvSeconds is the VBV buffer in seconds of bitrate: the most a burst
	// (an IDR frame) may exceed the average by. Half a second lets an IDR
	// keep its quality at low bitrates while bounding the delay it adds on a
	// link that carries just the bitrate.
	vbvSeconds = 0.5
)

// Config describes an Encoder. Zero values select the defaults given in the
// field comments.
type Config struct {
	// Width and Height are the frame size in pixels: even numbers from 2 to
	// 8192.
	Width, Height int
	// FPS is the nominal frame rate, which rate control divides the bitrate
	// by. It defaults to 15.
	FPS float64
	// Bitrate is the target in bits per second. It defaults to about 0.1 bit
	// per pixel per frame, kept within 300 kbit/s to 8 Mbit/s (1.4 Mbit/s
	// for 1280x720 at 15 fps).
	Bitrate int
	// KeyInterval is the time between IDR frames, rounded to whole frames at
	// FPS (at least one). It defaults to 2 seconds.
	KeyInterval time.Duration
	// Threads is the number of encoding threads (slices of one frame, which
	// add no delay). It defaults to 1.
	Threads int
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Width <= 0 || c.Height <= 0 || c.Width%2 != 0 || c.Height%2 != 0 ||
		c.Width > maxSide || c.Height > maxSide:
		return c, fmt.Errorf("encoder size %dx%d: width and height must be even numbers from 2 to %d",
			c.Width, c.Height, maxSide)
	case c.FPS < 0 || math.IsNaN(c.FPS) || math.IsInf(c.FPS, 0) || c.FPS > 1000:
		return c, fmt.Errorf("encoder fps %v: must be 0 (default %d) or above 0 and at most 1000", c.FPS, defaultFPS)
	case c.Bitrate < 0:
		return c, fmt.Errorf("encoder bitrate %d: must be 0 (automatic) or more", c.Bitrate)
	case c.KeyInterval < 0:
		return c, fmt.Errorf("encoder key interval %v: must be 0 (default %v) or more", c.KeyInterval, defaultKeyInterval)
	case c.Threads < 0 || c.Threads > 64:
		return c, fmt.Errorf("encoder threads %d: must be 0 (default 1) to 64", c.Threads)
	}
	if c.FPS == 0 {
		c.FPS = defaultFPS
	}
	if c.Bitrate == 0 {
		bits := autoBitsPerPixel * float64(c.Width) * float64(c.Height) * c.FPS
		c.Bitrate = int(min(max(bits, minAutoBitrate), maxAutoBitrate))
	}
	if c.KeyInterval == 0 {
		c.KeyInterval = defaultKeyInterval
	}
	if c.Threads == 0 {
		c.Threads = 1
	}
	return c, nil
}

// keyFrames returns the IDR interval in frames.
func (c Config) keyFrames() int {
	n := math.Round(c.KeyInterval.Seconds() * c.FPS)
	return int(min(max(n, 1), 1<<20))
}
