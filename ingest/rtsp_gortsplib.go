package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/vigil-video/vigil/frame"
)

// annexBStart is the 4-byte Annex-B start code put before each NAL unit.
var annexBStart = []byte{0, 0, 0, 1}

// gortsplibReader turns the RTP packets of one H.264 or H.265 media into
// Annex-B access units for an Output. Its methods run on gortsplib's reader
// goroutine; mu serialises them with the watchdog's Count.
type gortsplibReader struct {
	streamID string
	out      Output
	mu       *sync.Mutex
	codec    frame.Codec
	clock    float64
	decode   func(*rtp.Packet) ([][]byte, error)
	pts      func(*rtp.Packet) (int64, bool)
	last     *atomic.Int64 // UnixNano of the last packet
	fail     func(error)

	vps, sps, pps []byte // latest parameter sets, from the SDP or in-band
	announced     bool
	failed        bool // an Output call returned an error
	buf           []byte
	pkt           frame.Packet
}

// onRTP depacketizes one RTP packet (RFC 6184 / RFC 7798) and emits the
// access unit it completes, if any.
func (r *gortsplibReader) onRTP(p *rtp.Packet) {
	now := time.Now()
	r.last.Store(now.UnixNano())
	// The PTS decoder must see every packet: it starts on the first
	// packet of a random-access unit.
	ts, ok := r.pts(p)
	if !ok {
		return // before the first random-access unit
	}
	au, err := r.decode(p)
	if err != nil {
		return // a fragment, or a damaged one: the decoder sees the gap
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed {
		return // out said stop; Run is closing the client
	}
	if err := r.handleAU(au, ts, now); err != nil {
		r.failed = true
		r.fail(err)
	}
}

func (r *gortsplibReader) handleAU(au [][]byte, ts int64, now time.Time) error {
	// Empty NAL units carry nothing and trip mediacommon's IsRandomAccess.
	au = slices.DeleteFunc(au, func(n []byte) bool { return len(n) == 0 })
	if len(au) == 0 {
		return nil
	}
	changed := false
	for _, nalu := range au {
		var dst *[]byte
		if r.codec == frame.CodecH264 {
			switch h264.NALUType(nalu[0] & 0x1f) {
			case h264.NALUTypeSPS:
				dst = &r.sps
			case h264.NALUTypePPS:
				dst = &r.pps
			}
		} else {
			switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				dst = &r.vps
			case h265.NALUType_SPS_NUT:
				dst = &r.sps
			case h265.NALUType_PPS_NUT:
				dst = &r.pps
			}
		}
		if dst != nil && !bytes.Equal(*dst, nalu) {
			*dst = append([]byte(nil), nalu...)
			changed = true
		}
	}
	if changed || !r.announced {
		if p, ok := r.params(); ok {
			if err := r.out.Params(p); err != nil {
				return err
			}
			r.announced = true
		}
	}
	if !r.announced {
		return nil // nothing decodable before the parameter sets
	}
	r.buf = r.buf[:0]
	for _, nalu := range au {
		r.buf = append(r.buf, annexBStart...)
		r.buf = append(r.buf, nalu...)
	}
	r.pkt.StreamID = r.streamID
	r.pkt.Codec = r.codec
	r.pkt.Data = r.buf
	r.pkt.PTS = time.Duration(float64(ts) / r.clock * float64(time.Second))
	r.pkt.DTS = r.pkt.PTS
	if r.codec == frame.CodecH264 {
		r.pkt.KeyFrame = h264.IsRandomAccess(au)
	} else {
		r.pkt.KeyFrame = h265.IsRandomAccess(au)
	}
	r.pkt.Arrival = now
	return r.out.Packet(&r.pkt)
}

// params returns Annex-B parameter sets and the picture size, once all the
// parameter sets the codec needs are known.
func (r *gortsplibReader) params() (frame.CodecParams, bool) {
	p := frame.CodecParams{Codec: r.codec}
	switch r.codec {
	case frame.CodecH264:
		if r.sps == nil || r.pps == nil {
			return p, false
		}
		var sps h264.SPS
		if err := sps.Unmarshal(r.sps); err == nil {
			p.Width, p.Height = sps.Width(), sps.Height()
			p.FrameRate = sps.FPS()
		}
		p.Extradata = annexB(r.sps, r.pps)
	case frame.CodecH265:
		if r.vps == nil || r.sps == nil || r.pps == nil {
			return p, false
		}
		var sps h265.SPS
		if err := sps.Unmarshal(r.sps); err == nil {
			p.Width, p.Height = sps.Width(), sps.Height()
			p.FrameRate = sps.FPS()
		}
		p.Extradata = annexB(r.vps, r.sps, r.pps)
	}
	return p, true
}

func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, annexBStart...)
		b = append(b, n...)
	}
	return b
}

// udpReadBufferSize is the socket receive buffer asked for UDP media.
const udpReadBufferSize = 4 << 20

// runGortsplib reads with bluenviron/gortsplib's client over TCP, UDP, or
// auto (UDP, then TCP when no UDP packet comes).
func (s *RTSPSource) runGortsplib(ctx context.Context, out Output) error {
	u, err := base.ParseURL(s.rawURL)
	if err != nil {
		return fmt.Errorf("parsing URL: %w", err)
	}
	var mu sync.Mutex
	c := &gortsplib.Client{
		Scheme: u.Scheme,
		Host:   u.Host,
		// Longer than the read timeout, so that the watchdog below sees a
		// stall first and counts it.
		ReadTimeout:  2 * s.readTimeout,
		WriteTimeout: s.readTimeout,
		OnPacketsLost: func(n uint64) {
			mu.Lock()
			out.Count(EventPacketsLost, n)
			mu.Unlock()
		},
		OnDecodeError: func(error) {}, // damaged RTP shows up as decode errors downstream
		// A key frame of a 1080p camera arrives as a burst of hundreds of
		// packets; the system's default socket buffer (often 208 KiB) loses
		// some when the reader is briefly busy. The kernel caps this at
		// net.core.rmem_max.
		UDPReadBufferSize: udpReadBufferSize,
	}
	switch s.transport {
	case transportUDP:
		p := gortsplib.ProtocolUDP
		c.Protocol = &p
	case transportTCP:
		p := gortsplib.ProtocolTCP
		c.Protocol = &p
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	// Close unblocks Describe, Setup and Play when ctx ends.
	stopClose := context.AfterFunc(ctx, c.Close)
	defer func() {
		stopClose()
		c.Close()
	}()

	desc, _, err := c.Describe(u)
	if err != nil {
		return ctxOr(ctx, fmt.Errorf("describing: %w", err))
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	failed := make(chan error, 1)
	r := &gortsplibReader{
		streamID: s.streamID, out: out, mu: &mu, last: &last,
		fail: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
	}
	var h264f *format.H264
	var h265f *format.H265
	medi := desc.FindFormat(&h264f)
	var forma format.Format
	switch {
	case medi != nil:
		dec, err := h264f.CreateDecoder()
		if err != nil {
			return fmt.Errorf("making H.264 depacketizer: %w", err)
		}
		r.codec, r.decode, forma = frame.CodecH264, dec.Decode, h264f
		r.sps, r.pps = h264f.SPS, h264f.PPS
	default:
		medi = desc.FindFormat(&h265f)
		if medi == nil {
			return errors.New("no H.264 or H.265 video in the session description")
		}
		dec, err := h265f.CreateDecoder()
		if err != nil {
			return fmt.Errorf("making H.265 depacketizer: %w", err)
		}
		r.codec, r.decode, forma = frame.CodecH265, dec.Decode, h265f
		r.vps, r.sps, r.pps = h265f.VPS, h265f.SPS, h265f.PPS
	}
	r.clock = float64(forma.ClockRate())
	r.pts = func(p *rtp.Packet) (int64, bool) { return c.PacketPTS(medi, p) }
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return ctxOr(ctx, fmt.Errorf("setting up %s: %w", r.codec, err))
	}
	c.OnPacketRTP(medi, forma, r.onRTP)
	mu.Lock()
	if p, ok := r.params(); ok {
		r.announced = true
		if err := out.Params(p); err != nil {
			mu.Unlock()
			return err
		}
	}
	mu.Unlock()
	if _, err := c.Play(nil); err != nil {
		return ctxOr(ctx, fmt.Errorf("playing: %w", err))
	}
	last.Store(time.Now().UnixNano())

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	tick := time.NewTicker(s.stallCheckEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return err
		case err := <-waitErr:
			if ctx.Err() == nil && time.Since(time.Unix(0, last.Load())) >= s.readTimeout {
				// gortsplib's own read timeout (2x ours) fired before the
				// watchdog looked, as on a loaded machine: the same stall.
				mu.Lock()
				out.Count(EventStall, 1)
				mu.Unlock()
				return s.stallError()
			}
			return ctxOr(ctx, fmt.Errorf("session ended: %w", err))
		case now := <-tick.C:
			if now.Sub(time.Unix(0, last.Load())) >= s.readTimeout {
				mu.Lock()
				out.Count(EventStall, 1)
				mu.Unlock()
				return s.stallError()
			}
		}
	}
}

// ctxOr returns ctx's error when it has ended (the error is then a result of
// closing the client), err otherwise.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
