//go:build cgo

package decode

/*
#cgo pkg-config: libavcodec libavutil libswscale
#include <errno.h>
#include <string.h>
#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>

static int vg_open(AVCodecContext **out, int codec_id, const uint8_t *extra, int extra_size, int threads, int keyonly, int64_t max_pixels) {
	const AVCodec *codec = avcodec_find_decoder(codec_id);
	if (!codec) return AVERROR_DECODER_NOT_FOUND;
	AVCodecContext *c = avcodec_alloc_context3(codec);
	if (!c) return AVERROR(ENOMEM);
	if (extra_size > 0) {
		// libavcodec owns and frees extradata, so it must come from av_malloc,
		// padded for the bitstream readers.
		c->extradata = av_mallocz(extra_size + AV_INPUT_BUFFER_PADDING_SIZE);
		if (!c->extradata) {
			avcodec_free_context(&c);
			return AVERROR(ENOMEM);
		}
		memcpy(c->extradata, extra, extra_size);
		c->extradata_size = extra_size;
	}
	// Timestamps travel through libavcodec as nanoseconds.
	c->pkt_timebase = (AVRational){1, 1000000000};
	c->thread_count = threads;
	c->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
	// Conceal damage and go on rather than fail whole packets.
	c->err_recognition &= ~AV_EF_EXPLODE;
	if (keyonly) c->skip_frame = AVDISCARD_NONKEY;
	c->max_pixels = max_pixels;
	int ret = avcodec_open2(c, codec, NULL);
	if (ret < 0) {
		avcodec_free_context(&c);
		return ret;
	}
	*out = c;
	return 0;
}

// vg_send sends pkt. With data set, it first points pkt at data for the
// duration of the call only: pkt then has no buffer, so avcodec_send_packet
// copies the bytes into a padded, refcounted one before it returns, and data
// may be Go memory. Without data, pkt is a refcounted packet from libavformat.
static int vg_send(AVCodecContext *c, AVPacket *pkt, uint8_t *data, int size, int64_t pts, int64_t dts, int key) {
	if (data) {
		pkt->data = data;
		pkt->size = size;
	}
	pkt->pts = pts;
	pkt->dts = dts;
	pkt->flags = key ? AV_PKT_FLAG_KEY : 0;
	int ret = avcodec_send_packet(c, pkt);
	if (data) {
		pkt->data = NULL;
		pkt->size = 0;
	}
	return ret;
}

static int vg_is_eagain(int ret) { return ret == AVERROR(EAGAIN); }
static int vg_is_eof(int ret) { return ret == AVERROR_EOF; }

static int vg_key_frame(const AVFrame *f) {
#ifdef AV_FRAME_FLAG_KEY
	return (f->flags & AV_FRAME_FLAG_KEY) != 0;
#else
	return f->key_frame;
#endif
}

static int vg_corrupt(const AVFrame *f) {
	return f->decode_error_flags != 0 || (f->flags & AV_FRAME_FLAG_CORRUPT) != 0;
}

static int vg_full_range(const AVFrame *f) {
	switch (f->format) {
	case AV_PIX_FMT_YUVJ420P:
	case AV_PIX_FMT_YUVJ422P:
	case AV_PIX_FMT_YUVJ444P:
	case AV_PIX_FMT_YUVJ440P:
	case AV_PIX_FMT_YUVJ411P:
		return 1;
	}
	return f->color_range == AVCOL_RANGE_JPEG;
}

// vg_convert writes src into dst as dst_fmt, allocating dst's buffers.
static int vg_convert(struct SwsContext **sws, AVFrame *dst, const AVFrame *src, int dst_fmt) {
	*sws = sws_getCachedContext(*sws, src->width, src->height, src->format,
		src->width, src->height, dst_fmt, SWS_BILINEAR, NULL, NULL, NULL);
	if (!*sws) return AVERROR(EINVAL);
	av_frame_unref(dst);
	dst->format = dst_fmt;
	dst->width = src->width;
	dst->height = src->height;
	int ret = av_frame_get_buffer(dst, 0);
	if (ret < 0) return ret;
	ret = av_frame_copy_props(dst, src);
	if (ret < 0) return ret;
	ret = sws_scale(*sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, dst->data, dst->linesize);
	return ret < 0 ? ret : 0;
}

static void vg_quiet(void) { av_log_set_level(AV_LOG_QUIET); }
*/
import "C"

import (
	"cmp"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vigil-video/vigil/frame"
)

const noPTS = math.MinInt64 // AV_NOPTS_VALUE

// arrivalSlots bounds how many packets may be inside libavcodec (frame
// threads plus reordering) while their arrival times are still known.
const arrivalSlots = 64

var quietOnce sync.Once

// quietLibav silences libav's log: damaged input would otherwise print a line
// per slice on stderr. Errors reach callers as counted, wrapped errors.
func quietLibav() { quietOnce.Do(func() { C.vg_quiet() }) }

// Decoder decodes one stream's packets into pooled frames with libavcodec.
//
// Decode, Flush, Stats and Close are called from one goroutine (Stats may also
// be called from others); the frames it emits may be released from any
// goroutine, before or after Close.
type Decoder struct {
	cfg  Config
	ctx  *C.AVCodecContext
	pkt  *C.AVPacket
	tmp  *C.AVFrame
	sws  *C.struct_SwsContext
	pool *framePool

	waitKey  bool
	seq      uint64
	lastPTS  time.Duration
	frameDur time.Duration
	closed   bool

	// arrivals maps packet PTS to arrival time for frames that come out
	// later; a fixed ring so that nothing is allocated per packet.
	arrivals    [arrivalSlots]arrival
	arrivalNext int

	packets, frames, corruptPackets, corruptFrames atomic.Uint64
	dropped, empty, converted                      atomic.Uint64
}

type arrival struct {
	pts int64
	at  time.Time
}

// NewDecoder opens a libavcodec decoder for cfg.Params.
func NewDecoder(cfg Config) (*Decoder, error) {
	quietLibav()
	var id C.int
	switch cfg.Params.Codec {
	case frame.CodecH264:
		id = C.AV_CODEC_ID_H264
	case frame.CodecH265:
		id = C.AV_CODEC_ID_HEVC
	case frame.CodecVP8:
		id = C.AV_CODEC_ID_VP8
	case frame.CodecMJPEG:
		id = C.AV_CODEC_ID_MJPEG
	default:
		return nil, fmt.Errorf("stream %s: %w %s", cfg.StreamID, ErrUnsupportedCodec, cfg.Params.Codec)
	}
	if cfg.Threads < 0 {
		return nil, fmt.Errorf("stream %s: threads is %d, must be 0 (auto) or more", cfg.StreamID, cfg.Threads)
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 8
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = 7680 * 4320
	}
	var extra *C.uint8_t
	if len(cfg.Params.Extradata) > 0 {
		extra = (*C.uint8_t)(unsafe.Pointer(&cfg.Params.Extradata[0]))
	}
	keyonly := C.int(0)
	if cfg.KeyframesOnly {
		keyonly = 1
	}
	d := &Decoder{cfg: cfg}
	if ret := C.vg_open(&d.ctx, id, extra, C.int(len(cfg.Params.Extradata)), C.int(cfg.Threads), keyonly, C.int64_t(cfg.MaxPixels)); ret < 0 {
		return nil, fmt.Errorf("opening %s decoder for %s: %s", cfg.Params.Codec, cfg.StreamID, avErr(ret))
	}
	d.pkt = C.av_packet_alloc()
	d.tmp = C.av_frame_alloc()
	if d.pkt == nil || d.tmp == nil {
		d.Close()
		return nil, fmt.Errorf("opening %s decoder for %s: out of memory", cfg.Params.Codec, cfg.StreamID)
	}
	d.pool = newFramePool(cfg.PoolSize)
	if cfg.Params.FrameRate > 0 {
		d.frameDur = time.Duration(float64(time.Second) / cfg.Params.FrameRate)
	}
	return d, nil
}

// Decode sends one packet to libavcodec and calls emit for every frame that
// becomes ready (with frame threading, frames come out a few packets late).
// emit owns the frame and must Release it.
//
// A packet libavcodec rejects gives an error wrapping ErrCorruptPacket (with
// frame threading, the damaged packet may be one of the few sent before p).
// The decoder then drains and resets libavcodec and drops packets until the
// next key frame, so that no picture built on damaged references comes out.
// Damage that libavcodec conceals is not an error; such frames are counted
// in Stats.CorruptFrames. Zero-length packets are ignored.
func (d *Decoder) Decode(p *frame.Packet, emit func(*frame.Frame)) error {
	var data *C.uint8_t
	if len(p.Data) > 0 {
		data = (*C.uint8_t)(unsafe.Pointer(&p.Data[0]))
	}
	return d.decode(d.pkt, data, len(p.Data), p.PTS, p.DTS, p.KeyFrame, p.Arrival, emit)
}

// decode sends one packet: data when set (Go memory), else pkt's own.
func (d *Decoder) decode(pkt *C.AVPacket, data *C.uint8_t, size int, pts, dts time.Duration, keyFrame bool, at time.Time, emit func(*frame.Frame)) error {
	if d.closed {
		return ErrClosed
	}
	n := d.packets.Add(1) - 1
	if size == 0 {
		// An empty packet would tell libavcodec the stream has ended.
		d.empty.Add(1)
		return nil
	}
	if d.waitKey {
		if !keyFrame {
			d.dropped.Add(1)
			return nil
		}
		d.waitKey = false
	}
	d.arrivals[d.arrivalNext] = arrival{pts: int64(pts), at: at}
	d.arrivalNext = (d.arrivalNext + 1) % arrivalSlots

	key := C.int(0)
	if keyFrame {
		key = 1
	}
	var firstErr C.int
	errs := 0
	for try := 0; ; try++ {
		ret := C.vg_send(d.ctx, pkt, data, C.int(size), C.int64_t(pts), C.int64_t(dts), key)
		if C.vg_is_eagain(ret) != 0 && try < 2 {
			// libavcodec wants its output read first.
			if err := d.receive(emit); err != 0 {
				errs++
				firstErr = cmp.Or(firstErr, err)
			}
			continue
		}
		if ret < 0 {
			errs++
			firstErr = cmp.Or(firstErr, ret)
		}
		break
	}
	if err := d.receive(emit); err != 0 {
		errs++
		firstErr = cmp.Or(firstErr, err)
	}
	if firstErr == 0 {
		return nil
	}
	// Drain what the other frame threads hold, so that their errors are
	// reported now rather than after the next key frame, and start afresh
	// at the next key frame.
	errs += d.drain(emit, &firstErr)
	d.corruptPackets.Add(uint64(errs))
	d.waitKey = true
	return fmt.Errorf("decoding packet %d of %s: %w: %s", n, d.cfg.StreamID, ErrCorruptPacket, avErr(firstErr))
}

// drain sends libavcodec the end of stream, emits the frames it still holds
// and resets it. It returns the number of decoding errors met and keeps the
// first in *first.
func (d *Decoder) drain(emit func(*frame.Frame), first *C.int) int {
	errs := 0
	if ret := C.avcodec_send_packet(d.ctx, nil); ret < 0 && C.vg_is_eof(ret) == 0 {
		errs++
		*first = cmp.Or(*first, ret)
	}
	// Each error is reported once; the bound only guards against a decoder
	// that would repeat one forever.
	for range 1 << 10 {
		err := d.receive(emit)
		if err == 0 {
			break
		}
		errs++
		*first = cmp.Or(*first, err)
	}
	C.avcodec_flush_buffers(d.ctx)
	return errs
}

// Flush drains the frames still inside libavcodec at the end of the stream
// and resets it, so that decoding can start over at a key frame.
func (d *Decoder) Flush(emit func(*frame.Frame)) error {
	if d.closed {
		return ErrClosed
	}
	var firstErr C.int
	errs := d.drain(emit, &firstErr)
	d.waitKey = false
	if firstErr != 0 {
		d.corruptPackets.Add(uint64(errs))
		return fmt.Errorf("flushing decoder of %s: %w: %s", d.cfg.StreamID, ErrCorruptPacket, avErr(firstErr))
	}
	return nil
}

// receive emits frames until libavcodec has none ready. It returns the first
// decoding error, or 0 once libavcodec wants input or has ended.
func (d *Decoder) receive(emit func(*frame.Frame)) C.int {
	for {
		ret := C.avcodec_receive_frame(d.ctx, d.tmp)
		if C.vg_is_eagain(ret) != 0 || C.vg_is_eof(ret) != 0 {
			return 0
		}
		if ret < 0 {
			return ret
		}
		if f := d.wrap(); f != nil {
			d.frames.Add(1)
			emit(f)
		}
	}
}

// wrap moves the frame in d.tmp into a pooled Frame whose planes point at
// libavcodec's buffers. It returns nil for a frame it cannot describe.
func (d *Decoder) wrap() *frame.Frame {
	src := d.tmp
	if src.width <= 0 || src.height <= 0 || src.data[0] == nil {
		C.av_frame_unref(src)
		return nil
	}
	full := C.vg_full_range(src) != 0
	e := d.pool.get()
	switch src.format {
	case C.AV_PIX_FMT_YUV420P, C.AV_PIX_FMT_YUVJ420P:
		C.av_frame_move_ref(e.av, src)
	default:
		dst := C.int(C.AV_PIX_FMT_YUV420P)
		if full {
			dst = C.AV_PIX_FMT_YUVJ420P
		}
		ret := C.vg_convert(&d.sws, e.av, src, dst)
		C.av_frame_unref(src)
		if ret < 0 {
			d.pool.put(e)
			d.corruptFrames.Add(1)
			return nil
		}
		d.converted.Add(1)
	}
	av := e.av
	if av.linesize[0] <= 0 || av.linesize[1] <= 0 || av.linesize[2] <= 0 {
		d.pool.put(e)
		return nil
	}
	f := &e.f
	w, h := int(av.width), int(av.height)
	ch := (h + 1) / 2
	f.StreamID = d.cfg.StreamID
	f.Seq = d.seq
	d.seq++
	f.Width, f.Height = w, h
	f.Format = frame.PixelFormatYUV420P
	if full {
		f.Format = frame.PixelFormatYUVJ420P
	}
	for i, rows := range [3]int{h, ch, ch} {
		stride := int(av.linesize[i])
		f.Strides[i] = stride
		f.Planes[i] = unsafe.Slice((*byte)(unsafe.Pointer(av.data[i])), stride*rows)
	}
	f.KeyFrame = C.vg_key_frame(av) != 0
	if C.vg_corrupt(av) != 0 {
		d.corruptFrames.Add(1)
	}
	pts := int64(av.best_effort_timestamp)
	if pts == noPTS {
		pts = int64(av.pts)
	}
	if pts == noPTS {
		f.PTS = d.lastPTS + d.frameDur
	} else {
		f.PTS = time.Duration(pts)
	}
	d.lastPTS = f.PTS
	f.Arrival = time.Time{}
	for i := range d.arrivals {
		if d.arrivals[i].pts == pts {
			f.Arrival = d.arrivals[i].at
			break
		}
	}
	f.SetRelease(e.release)
	return f
}

// Stats returns the decoder's counters. It is safe to call from any goroutine.
func (d *Decoder) Stats() Stats {
	return Stats{
		Packets:         d.packets.Load(),
		Frames:          d.frames.Load(),
		CorruptPackets:  d.corruptPackets.Load(),
		CorruptFrames:   d.corruptFrames.Load(),
		DroppedPackets:  d.dropped.Load(),
		EmptyPackets:    d.empty.Load(),
		ConvertedFrames: d.converted.Load(),
		PoolGrowths:     d.pool.growths.Load(),
	}
}

// Close frees the decoder. Frames not yet released stay valid: they hold
// their own references to libavcodec's buffers and are freed on Release.
func (d *Decoder) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	if d.pool != nil {
		d.pool.close()
	}
	if d.ctx != nil {
		C.avcodec_free_context(&d.ctx)
	}
	if d.pkt != nil {
		C.av_packet_free(&d.pkt)
	}
	if d.tmp != nil {
		C.av_frame_free(&d.tmp)
	}
	if d.sws != nil {
		C.sws_freeContext(d.sws)
		d.sws = nil
	}
	return nil
}

// pooledFrame pairs a Frame with the AVFrame that holds its buffers.
type pooledFrame struct {
	f       frame.Frame
	av      *C.AVFrame
	pool    *framePool
	release func(*frame.Frame) // made once, so handing out allocates nothing
}

// framePool keeps released frames for reuse. get is called by the decoding
// goroutine, put by any goroutine.
type framePool struct {
	mu      sync.Mutex
	free    []*pooledFrame
	closed  bool
	growths atomic.Uint64
	made    int
	size    int
}

func newFramePool(size int) *framePool {
	p := &framePool{free: make([]*pooledFrame, 0, size), size: size}
	return p
}

func (p *framePool) get() *pooledFrame {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		e := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return e
	}
	p.made++
	if p.made > p.size {
		p.growths.Add(1)
	}
	p.mu.Unlock()
	e := &pooledFrame{av: C.av_frame_alloc(), pool: p}
	if e.av == nil {
		panic("decode: av_frame_alloc: out of memory")
	}
	e.release = func(*frame.Frame) { p.put(e) }
	return e
}

func (p *framePool) put(e *pooledFrame) {
	C.av_frame_unref(e.av)
	e.f.Planes = [3][]byte{}
	p.mu.Lock()
	if !p.closed {
		p.free = append(p.free, e)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	C.av_frame_free(&e.av)
}

func (p *framePool) close() {
	p.mu.Lock()
	p.closed = true
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, e := range free {
		C.av_frame_free(&e.av)
	}
}

// avErr returns libav's message for an error code.
func avErr(code C.int) string {
	var buf [C.AV_ERROR_MAX_STRING_SIZE]C.char
	if C.av_strerror(code, &buf[0], C.size_t(len(buf))) < 0 {
		return fmt.Sprintf("libav error %d", int(code))
	}
	return C.GoString(&buf[0])
}
