package ingest

import (
	"github.com/vigil-video/vigil/ingest/rtpseq"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-video/vigil/frame"
)

// FuzzInterleavedRTPSeq feeds arbitrary bytes, as vdk hands over interleaved
// frames, to the RTP reader, the loss counter and the parameter-set finder.
func FuzzInterleavedRTPSeq(f *testing.F) {
	f.Add([]byte{'$', 0, 0, 12, 0x80, 96, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add([]byte{'$', 1, 0, 8, 0x80, 200, 0, 1})
	f.Add([]byte{'$', 0, 0, 12, 0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l rtpseq.Tracker
		ps264 := &paramSets{codec: frame.CodecH264}
		ps265 := &paramSets{codec: frame.CodecH265}
		for len(b) > 0 {
			if payload, seq, ok := interleavedRTP(b); ok {
				if n := l.Observe(seq).Lost; n >= rtpseq.MaxDropout {
					t.Fatalf("loss %d beyond the dropout bound", n)
				}
				ps264.observe(payload)
				ps265.observe(payload)
				ps264.params()
				ps265.params()
			}
			b = b[1:]
		}
	})
}

// nopOutput accepts everything.
type nopOutput struct{ params, packets int }

func (o *nopOutput) Params(frame.CodecParams) error { o.params++; return nil }
func (o *nopOutput) Packet(*frame.Packet) error     { o.packets++; return nil }
func (o *nopOutput) Frame(f *frame.Frame) error     { f.Release(); return nil }
func (o *nopOutput) Count(Event, uint64)            {}

// FuzzRTSPAccessUnit feeds arbitrary NAL units (as the RTP depacketizer
// hands them over from the network) to the access-unit handler, which
// parses parameter sets with mediacommon.
func FuzzRTSPAccessUnit(f *testing.F) {
	// x264 baseline SPS and PPS for 320x240, an IDR slice header, and an
	// H.265 VPS/SPS/PPS-shaped triple.
	f.Add(true, []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x01, 0x40, 0x7b, 0x20}, []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}, []byte{0x65, 0x88, 0x84})
	f.Add(false, []byte{0x40, 0x01, 0x0c, 0x01}, []byte{0x42, 0x01, 0x01, 0x01, 0x60}, []byte{0x44, 0x01, 0xc1})
	f.Fuzz(func(t *testing.T, h264 bool, a, b, c []byte) {
		var mu sync.Mutex
		var last atomic.Int64
		out := &nopOutput{}
		r := &gortsplibReader{streamID: "f", out: out, mu: &mu, last: &last, clock: 90000, codec: frame.CodecH265, fail: func(error) {}}
		if h264 {
			r.codec = frame.CodecH264
		}
		for _, au := range [][][]byte{{a, b}, {c}, {a, b, c}, {c, a}} {
			if err := r.handleAU(au, 3000, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
