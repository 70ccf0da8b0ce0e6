//go:build cgo

package decode

/*
#cgo pkg-config: libavformat libavcodec libavutil
#include <errno.h>
#include <stdlib.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>

static int vg_open_input(AVFormatContext **out, const char *path, int *stream) {
	AVFormatContext *fc = NULL;
	int ret = avformat_open_input(&fc, path, NULL, NULL);
	if (ret < 0) return ret;
	ret = avformat_find_stream_info(fc, NULL);
	if (ret < 0) {
		avformat_close_input(&fc);
		return ret;
	}
	ret = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (ret < 0) {
		avformat_close_input(&fc);
		return ret;
	}
	*stream = ret;
	// Only the video stream is wanted: let the demuxer skip the others.
	for (unsigned i = 0; i < fc->nb_streams; i++) {
		if ((int)i != ret) fc->streams[i]->discard = AVDISCARD_ALL;
	}
	*out = fc;
	return 0;
}

static AVStream *vg_stream(AVFormatContext *fc, int i) { return fc->streams[i]; }
static int vg_is_eof(int ret) { return ret == AVERROR_EOF; }
static int vg_stream_not_found(int ret) { return ret == AVERROR_STREAM_NOT_FOUND; }
static int64_t vg_to_ns(int64_t ts, AVRational tb) {
	return av_rescale_q(ts, tb, (AVRational){1, 1000000000});
}
*/
import "C"

import (
	"fmt"
	"io"
	"time"
	"unsafe"

	"github.com/vigil-video/vigil/frame"
)

// Demuxer reads the best video stream of a file with libavformat. The
// packets keep the container's layout (length-prefixed NAL units with avcC or
// hvcC extradata for MP4 and MKV), which a Decoder opened with Params
// accepts. A Demuxer is not safe for concurrent use.
type Demuxer struct {
	path   string
	fc     *C.AVFormatContext
	pkt    *C.AVPacket
	st     *C.AVStream
	index  C.int
	tb     C.AVRational
	start  int64 // stream start time in stream time base, or noPTS
	params frame.CodecParams
	count  int64 // packets read since the start, for timestamps that are missing
}

// OpenFile opens path and picks its best video stream.
func OpenFile(path string) (*Demuxer, error) {
	quietLibav()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	d := &Demuxer{path: path}
	ret := C.vg_open_input(&d.fc, cpath, &d.index)
	if C.vg_stream_not_found(ret) != 0 {
		return nil, fmt.Errorf("opening %s: no video stream", path)
	}
	if ret < 0 {
		if hint := mp4Hint(path); hint != "" {
			return nil, fmt.Errorf("opening %s: %s: %s", path, avErr(ret), hint)
		}
		return nil, fmt.Errorf("opening %s: %s", path, avErr(ret))
	}
	d.st = C.vg_stream(d.fc, d.index)
	d.tb = d.st.time_base
	d.start = int64(d.st.start_time)
	par := d.st.codecpar
	switch par.codec_id {
	case C.AV_CODEC_ID_H264:
		d.params.Codec = frame.CodecH264
	case C.AV_CODEC_ID_HEVC:
		d.params.Codec = frame.CodecH265
	case C.AV_CODEC_ID_VP8:
		d.params.Codec = frame.CodecVP8
	case C.AV_CODEC_ID_MJPEG:
		d.params.Codec = frame.CodecMJPEG
	default:
		name := C.GoString(C.avcodec_get_name(par.codec_id))
		d.Close()
		return nil, fmt.Errorf("opening %s: %w %s", path, ErrUnsupportedCodec, name)
	}
	d.params.Width, d.params.Height = int(par.width), int(par.height)
	if par.extradata_size > 0 && par.extradata != nil {
		d.params.Extradata = C.GoBytes(unsafe.Pointer(par.extradata), par.extradata_size)
	}
	for _, r := range []C.AVRational{d.st.avg_frame_rate, d.st.r_frame_rate} {
		if r.num > 0 && r.den > 0 {
			d.params.FrameRate = float64(r.num) / float64(r.den)
			break
		}
	}
	d.pkt = C.av_packet_alloc()
	if d.pkt == nil {
		d.Close()
		return nil, fmt.Errorf("opening %s: out of memory", path)
	}
	return d, nil
}

// Params returns the codec of the video stream.
func (d *Demuxer) Params() frame.CodecParams { return d.params }

// Path returns the file the demuxer reads.
func (d *Demuxer) Path() string { return d.path }

// ReadPacket fills p with the next video packet, reusing p.Data's capacity.
// Timestamps count from the stream's start; a packet without a PTS gets its
// DTS, or failing that a time from the frame rate. It returns io.EOF at the
// end of the file.
func (d *Demuxer) ReadPacket(p *frame.Packet) error {
	pts, dts, err := d.next()
	if err != nil {
		return err
	}
	defer C.av_packet_unref(d.pkt)
	n := int(d.pkt.size)
	if cap(p.Data) < n {
		p.Data = make([]byte, n, n+n/2)
	}
	p.Data = p.Data[:n]
	if n > 0 {
		copy(p.Data, unsafe.Slice((*byte)(unsafe.Pointer(d.pkt.data)), n))
	}
	p.Codec = d.params.Codec
	p.KeyFrame = d.keyFrame()
	p.PTS, p.DTS = pts, dts
	return nil
}

// next reads the next video packet into d.pkt, which the caller unrefs, and
// returns its timestamps.
func (d *Demuxer) next() (pts, dts time.Duration, err error) {
	if d.fc == nil {
		return 0, 0, ErrClosed
	}
	for {
		ret := C.av_read_frame(d.fc, d.pkt)
		if C.vg_is_eof(ret) != 0 {
			return 0, 0, io.EOF
		}
		if ret < 0 {
			return 0, 0, fmt.Errorf("reading %s: %s", d.path, avErr(ret))
		}
		if d.pkt.stream_index == d.index {
			break
		}
		C.av_packet_unref(d.pkt)
	}
	rawPTS, rawDTS := int64(d.pkt.pts), int64(d.pkt.dts)
	if rawPTS == noPTS {
		rawPTS = rawDTS
	}
	if rawDTS == noPTS {
		rawDTS = rawPTS
	}
	if rawPTS == noPTS {
		interval := 40 * time.Millisecond
		if d.params.FrameRate > 0 {
			interval = time.Duration(float64(time.Second) / d.params.FrameRate)
		}
		pts = time.Duration(d.count) * interval
		dts = pts
	} else {
		pts, dts = d.toDuration(rawPTS), d.toDuration(rawDTS)
	}
	d.count++
	return pts, dts, nil
}

func (d *Demuxer) keyFrame() bool { return d.pkt.flags&C.AV_PKT_FLAG_KEY != 0 }

func (d *Demuxer) toDuration(ts int64) time.Duration {
	if d.start != noPTS {
		ts -= d.start
	}
	return time.Duration(C.vg_to_ns(C.int64_t(ts), d.tb))
}

// SeekStart goes back to the first packet, for looping.
func (d *Demuxer) SeekStart() error {
	if d.fc == nil {
		return ErrClosed
	}
	ts := C.int64_t(0)
	if d.start != noPTS {
		ts = C.int64_t(d.start)
	}
	if ret := C.av_seek_frame(d.fc, d.index, ts, C.AVSEEK_FLAG_BACKWARD); ret < 0 {
		return fmt.Errorf("seeking to the start of %s: %s", d.path, avErr(ret))
	}
	d.count = 0
	return nil
}

// Close closes the file.
func (d *Demuxer) Close() error {
	if d.pkt != nil {
		C.av_packet_free(&d.pkt)
	}
	if d.fc != nil {
		C.avformat_close_input(&d.fc)
	}
	return nil
}

// unref drops the packet next read.
func (d *Demuxer) unref() { C.av_packet_unref(d.pkt) }
