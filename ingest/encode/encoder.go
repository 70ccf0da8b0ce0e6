//go:build cgo

package encode

/*
#cgo pkg-config: libavcodec libavutil
#include <errno.h>
#include <string.h>
#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>

// ve_open opens libx264 for low-latency streaming to browsers.
static int ve_open(AVCodecContext **out, int w, int h, int full, int fps_num, int fps_den,
		int64_t bitrate, int vbv, int gop, int threads) {
	const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
	if (!codec) return AVERROR_ENCODER_NOT_FOUND;
	AVCodecContext *c = avcodec_alloc_context3(codec);
	if (!c) return AVERROR(ENOMEM);
	c->width = w;
	c->height = h;
	c->pix_fmt = full ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
	c->color_range = full ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
	// Timestamps travel through libavcodec as nanoseconds, as in the decoder.
	c->time_base = (AVRational){1, 1000000000};
	c->framerate = (AVRational){fps_num, fps_den};
	// ABR held to the bitrate by the VBV: bursts stay within vbv bits.
	c->bit_rate = bitrate;
	c->rc_max_rate = bitrate;
	c->rc_buffer_size = vbv;
	c->gop_size = gop;
	c->max_b_frames = 0;
	c->thread_count = threads;
	// Slice threads add no delay; libavcodec's default (frame and slice)
	// would make libx264 use frame threads, a frame of latency per thread.
	c->thread_type = FF_THREAD_SLICE;
	// No AV_CODEC_FLAG_GLOBAL_HEADER: SPS and PPS stay in-band.
	int ret;
	if ((ret = av_opt_set(c->priv_data, "preset", "ultrafast", 0)) < 0 ||
	    (ret = av_opt_set(c->priv_data, "tune", "zerolatency", 0)) < 0 ||
	    (ret = av_opt_set(c->priv_data, "profile", "baseline", 0)) < 0 ||
	    (ret = av_opt_set_int(c->priv_data, "forced-idr", 1, 0)) < 0 ||
	    (ret = av_opt_set(c->priv_data, "x264-params", "repeat-headers=1:scenecut=0:open-gop=0", 0)) < 0) {
		avcodec_free_context(&c);
		return ret;
	}
	ret = avcodec_open2(c, codec, NULL);
	if (ret < 0) {
		avcodec_free_context(&c);
		return ret;
	}
	*out = c;
	return 0;
}

// ve_frame allocates the frame that carries pictures into libavcodec.
static int ve_frame(AVFrame **out, int w, int h) {
	AVFrame *f = av_frame_alloc();
	if (!f) return AVERROR(ENOMEM);
	f->format = AV_PIX_FMT_YUV420P;
	f->width = w;
	f->height = h;
	int ret = av_frame_get_buffer(f, 0);
	if (ret < 0) {
		av_frame_free(&f);
		return ret;
	}
	*out = f;
	return 0;
}

// ve_send copies a picture (Go memory, read during the call only) into f and
// sends it. libx264 copies the picture into its own buffers while it encodes
// it, so f is writable again by the next call and nothing is allocated.
static int ve_send(AVCodecContext *c, AVFrame *f, const uint8_t *y, const uint8_t *u, const uint8_t *v,
		int sy, int su, int sv, int64_t pts, int key) {
	int ret = av_frame_make_writable(f);
	if (ret < 0) return ret;
	int w = f->width, h = f->height, cw = (w + 1) / 2, ch = (h + 1) / 2;
	for (int i = 0; i < h; i++) memcpy(f->data[0] + (size_t)i * f->linesize[0], y + (size_t)i * sy, w);
	for (int i = 0; i < ch; i++) {
		memcpy(f->data[1] + (size_t)i * f->linesize[1], u + (size_t)i * su, cw);
		memcpy(f->data[2] + (size_t)i * f->linesize[2], v + (size_t)i * sv, cw);
	}
	f->format = c->pix_fmt;
	f->color_range = c->color_range;
	f->pts = pts;
	// With forced-idr, an I picture is an IDR with SPS and PPS in front.
	f->pict_type = key ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
	return avcodec_send_frame(c, f);
}

static int ve_is_eagain(int ret) { return ret == AVERROR(EAGAIN); }
static int ve_is_eof(int ret) { return ret == AVERROR_EOF; }
static int ve_key(const AVPacket *p) { return (p->flags & AV_PKT_FLAG_KEY) != 0; }
static void ve_quiet(void) { av_log_set_level(AV_LOG_QUIET); }
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vigil-video/vigil/frame"
)

// arrivalSlots bounds how many frames may be inside libx264 while their
// arrival times are still known; with zerolatency it holds none.
const arrivalSlots = 16

var quietOnce sync.Once

// quietLibav silences libav's log (libx264 prints its settings at open).
// Errors reach callers as wrapped errors.
func quietLibav() { quietOnce.Do(func() { C.ve_quiet() }) }

// Encoder encodes one stream's frames into H.264 access units with libx264.
//
// Encode and Close are called from one goroutine; ForceKeyFrame may be
// called from any goroutine at any time.
type Encoder struct {
	cfg     Config
	ctx     *C.AVCodecContext
	av      *C.AVFrame
	pkt     *C.AVPacket
	full    bool // ctx was opened for full-range (YUVJ420P) input
	out     frame.Packet
	buf     []byte
	closed  bool
	wantKey atomic.Bool

	arrivals    [arrivalSlots]arrival
	arrivalNext int
}

type arrival struct {
	pts int64
	at  time.Time
}

// NewH264 opens a libx264 encoder for frames of cfg's size.
func NewH264(cfg Config) (*Encoder, error) {
	quietLibav()
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Encoder{cfg: cfg}
	if err := e.open(false); err != nil {
		return nil, err
	}
	if ret := C.ve_frame(&e.av, C.int(cfg.Width), C.int(cfg.Height)); ret < 0 {
		e.Close()
		return nil, fmt.Errorf("allocating %dx%d encoder frame: %s", cfg.Width, cfg.Height, avErr(ret))
	}
	e.pkt = C.av_packet_alloc()
	if e.pkt == nil {
		e.Close()
		return nil, fmt.Errorf("opening %dx%d H.264 encoder: out of memory", cfg.Width, cfg.Height)
	}
	return e, nil
}

// open (re)opens libx264 for limited- or full-range input.
func (e *Encoder) open(full bool) error {
	if e.ctx != nil {
		C.avcodec_free_context(&e.ctx)
	}
	c := e.cfg
	q := C.av_d2q(C.double(c.FPS), 1_000_000)
	fl := C.int(0)
	if full {
		fl = 1
	}
	vbv := int(math.Round(float64(c.Bitrate) * vbvSeconds))
	ret := C.ve_open(&e.ctx, C.int(c.Width), C.int(c.Height), fl, q.num, q.den,
		C.int64_t(c.Bitrate), C.int(vbv), C.int(c.keyFrames()), C.int(c.Threads))
	if ret < 0 {
		return fmt.Errorf("opening %dx%d libx264 encoder at %d bit/s: %s", c.Width, c.Height, c.Bitrate, avErr(ret))
	}
	e.full = full
	return nil
}

// Config returns the encoder's configuration with its defaults filled in.
func (e *Encoder) Config() Config { return e.cfg }

// ForceKeyFrame makes the next encoded frame an IDR with SPS and PPS, for a
// viewer that joined or lost packets. It is safe to call from any goroutine.
func (e *Encoder) ForceKeyFrame() { e.wantKey.Store(true) }

// Encode encodes one YUV420P or YUVJ420P frame of the configured size and
// calls emit for every access unit it produces; with libx264's zerolatency
// tuning that is one per frame, before Encode returns. The access unit is
// Annex-B with PTS and DTS set to f.PTS, Arrival to f.Arrival and KeyFrame
// set on IDR frames, which carry SPS and PPS. p and p.Data are valid only
// during emit: copy what must outlive it. f is not retained.
//
// A switch between limited (YUV420P) and full range (YUVJ420P) reopens
// libx264, so the frame after it is an IDR that signals the new range.
func (e *Encoder) Encode(f *frame.Frame, emit func(p *frame.Packet)) error {
	if e.closed {
		return ErrClosed
	}
	if f == nil {
		return fmt.Errorf("encoding: nil frame")
	}
	c := e.cfg
	if f.Format != frame.PixelFormatYUV420P && f.Format != frame.PixelFormatYUVJ420P {
		return fmt.Errorf("encoding frame %d of %s: pixel format %s is not yuv420p or yuvj420p", f.Seq, f.StreamID, f.Format)
	}
	if f.Width != c.Width || f.Height != c.Height {
		return fmt.Errorf("encoding frame %d of %s: frame is %dx%d, encoder was opened for %dx%d",
			f.Seq, f.StreamID, f.Width, f.Height, c.Width, c.Height)
	}
	cw, ch := (c.Width+1)/2, (c.Height+1)/2
	if f.Strides[0] < c.Width || f.Strides[1] < cw || f.Strides[2] < cw ||
		len(f.Planes[0]) < (c.Height-1)*f.Strides[0]+c.Width ||
		len(f.Planes[1]) < (ch-1)*f.Strides[1]+cw || len(f.Planes[2]) < (ch-1)*f.Strides[2]+cw {
		return fmt.Errorf("encoding frame %d of %s: planes or strides %v too small for %dx%d",
			f.Seq, f.StreamID, f.Strides, c.Width, c.Height)
	}
	if full := f.Format == frame.PixelFormatYUVJ420P; full != e.full {
		if err := e.open(full); err != nil {
			return fmt.Errorf("encoding frame %d of %s: %w", f.Seq, f.StreamID, err)
		}
	}

	e.arrivals[e.arrivalNext] = arrival{pts: int64(f.PTS), at: f.Arrival}
	e.arrivalNext = (e.arrivalNext + 1) % arrivalSlots
	key := C.int(0)
	if e.wantKey.Swap(false) {
		key = 1
	}
	ret := C.ve_send(e.ctx, e.av,
		(*C.uint8_t)(unsafe.Pointer(&f.Planes[0][0])),
		(*C.uint8_t)(unsafe.Pointer(&f.Planes[1][0])),
		(*C.uint8_t)(unsafe.Pointer(&f.Planes[2][0])),
		C.int(f.Strides[0]), C.int(f.Strides[1]), C.int(f.Strides[2]), C.int64_t(f.PTS), key)
	if ret < 0 {
		if key != 0 {
			e.wantKey.Store(true)
		}
		return fmt.Errorf("encoding frame %d of %s: %s", f.Seq, f.StreamID, avErr(ret))
	}
	for {
		ret := C.avcodec_receive_packet(e.ctx, e.pkt)
		if C.ve_is_eagain(ret) != 0 || C.ve_is_eof(ret) != 0 {
			return nil
		}
		if ret < 0 {
			return fmt.Errorf("encoding frame %d of %s: %s", f.Seq, f.StreamID, avErr(ret))
		}
		e.emit(f.StreamID, emit)
	}
}

// emit hands the packet in e.pkt to fn through the reused e.out and e.buf.
func (e *Encoder) emit(streamID string, fn func(*frame.Packet)) {
	pkt := e.pkt
	defer C.av_packet_unref(pkt)
	if pkt.size <= 0 || pkt.data == nil {
		return
	}
	e.buf = append(e.buf[:0], unsafe.Slice((*byte)(unsafe.Pointer(pkt.data)), int(pkt.size))...)
	pts := int64(pkt.pts)
	p := &e.out
	*p = frame.Packet{
		StreamID: streamID,
		Codec:    frame.CodecH264,
		Data:     e.buf,
		PTS:      time.Duration(pts),
		DTS:      time.Duration(pts), // no B-frames: decoding order is presentation order
		KeyFrame: C.ve_key(pkt) != 0,
	}
	// Newest first: a repeated or reset PTS matches the frame just sent.
	for i := range arrivalSlots {
		a := &e.arrivals[(e.arrivalNext-1-i+arrivalSlots)%arrivalSlots]
		if a.pts == pts {
			p.Arrival = a.at
			break
		}
	}
	fn(p)
}

// Close frees the encoder. It may be called more than once.
func (e *Encoder) Close() {
	if e.closed {
		return
	}
	e.closed = true
	if e.ctx != nil {
		C.avcodec_free_context(&e.ctx)
	}
	if e.av != nil {
		C.av_frame_free(&e.av)
	}
	if e.pkt != nil {
		C.av_packet_free(&e.pkt)
	}
	e.buf = nil
}

// avErr returns libav's message for an error code.
func avErr(code C.int) string {
	var buf [C.AV_ERROR_MAX_STRING_SIZE]C.char
	if C.av_strerror(code, &buf[0], C.size_t(len(buf))) < 0 {
		return fmt.Sprintf("libav error %d", int(code))
	}
	return C.GoString(&buf[0])
}
