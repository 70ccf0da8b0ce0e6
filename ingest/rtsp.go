package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vigil-video/vigil/ingest/rtpseq"
	"io"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/deepch/vdk/av"
	"github.com/deepch/vdk/codec/h264parser"
	"github.com/deepch/vdk/codec/h265parser"
	"github.com/deepch/vdk/format/rtsp/sdp"
	"github.com/deepch/vdk/format/rtspv2"

	"github.com/vigil-video/vigil/frame"
)

func init() {
	Register("rtsp", openRTSP)
	Register("rtsps", openRTSP)
}

// ErrStalled is returned by a live source that received no packet for its
// read timeout; the pipeline then reconnects it.
var ErrStalled = errors.New("stalled")

// defaultReadTimeout is Options.ReadTimeout's default.
const defaultReadTimeout = 10 * time.Second

// RTSP transports, as Options.Transport names them.
const (
	transportAuto = "auto"
	transportTCP  = "tcp"
	transportUDP  = "udp"
)

// RTSP client libraries, as the rtsp_client query parameter names them.
const (
	clientGortsplib = "gortsplib"
	clientVDK       = "vdk"
)

// RTSPSource reads H.264 or H.265 video from an RTSP camera or server
// (rtsp:// or rtsps://, RFC 2326) and emits it as packets.
//
// It has two RTSP clients behind the same Source:
//   - bluenviron/gortsplib (the default): TCP, UDP, and auto (UDP first, TCP
//     when no UDP packet arrives); RTP loss from sequence numbers; dialing
//     that honours ctx.
//   - deepch/vdk rtspv2, chosen with the query parameter rtsp_client=vdk
//     (removed before dialing): TCP only. vdk depacketizes in a goroutine of
//     its own without bounds checks, so a server that sends malformed RTP
//     makes it panic and brings the whole process down (see
//     TestRTSPGarbageServer); that is why it is not the default.
//
// Basic and Digest credentials come from the URL's userinfo and never
// appear in the errors Run returns. A source is used by one Run at a time.
type RTSPSource struct {
	streamID    string
	client      string // clientGortsplib or clientVDK
	rawURL      string
	transport   string
	readTimeout time.Duration
}

func openRTSP(streamID string, u *url.URL, opts Options) (Source, error) {
	if u.Host == "" {
		return nil, errors.New("RTSP URL has no host")
	}
	transport := strings.ToLower(opts.Transport)
	switch transport {
	case "":
		transport = transportAuto
	case transportAuto, transportTCP, transportUDP:
	default:
		return nil, fmt.Errorf("RTSP transport %q: must be tcp, udp or auto", opts.Transport)
	}
	rt := opts.ReadTimeout
	if rt <= 0 {
		rt = defaultReadTimeout
	}
	client := clientGortsplib
	if q := u.Query(); q.Has("rtsp_client") {
		client = strings.ToLower(q.Get("rtsp_client"))
		if client != clientGortsplib && client != clientVDK {
			return nil, fmt.Errorf("query parameter rtsp_client: %q must be gortsplib or vdk", client)
		}
		// Drop only this parameter: some cameras care about the order
		// of the others, which q.Encode would sort.
		var keep []string
		for kv := range strings.SplitSeq(u.RawQuery, "&") {
			if k, _, _ := strings.Cut(kv, "="); k != "rtsp_client" && kv != "" {
				keep = append(keep, kv)
			}
		}
		cp := *u
		cp.RawQuery = strings.Join(keep, "&")
		u = &cp
	}
	if client == clientVDK {
		switch transport {
		case transportUDP:
			return nil, errors.New("RTSP transport udp: the vdk client reads over TCP only")
		case transportAuto:
			transport = transportTCP
		}
	}
	return &RTSPSource{streamID: streamID, client: client, rawURL: u.String(), transport: transport, readTimeout: rt}, nil
}

// Live reports true: a camera runs on its own clock.
func (s *RTSPSource) Live() bool { return true }

// Transport returns the media transport the source uses: tcp, udp or auto.
func (s *RTSPSource) Transport() string { return s.transport }

// Client returns the RTSP client library the source uses: gortsplib or vdk.
func (s *RTSPSource) Client() string { return s.client }

// Run connects, announces the codec with out.Params, and emits packets until
// ctx ends, the session ends (an error), no packet arrives for the read
// timeout (ErrStalled, counted as EventStall), or out returns an error.
// Errors name the URL with its password redacted.
func (s *RTSPSource) Run(ctx context.Context, out Output) error {
	var err error
	if s.client == clientVDK {
		err = s.runVDK(ctx, out)
	} else {
		err = s.runGortsplib(ctx, out)
	}
	if err == nil || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	return redactErr(fmt.Errorf("reading %s: %w", s.rawURL, err), s.rawURL)
}

// redactedError hides credentials in a message while keeping the error chain
// for errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr hides rawURL's credentials in err's message. It also cuts an
// io.EOF out of the chain: for a camera, EOF is a closed connection, not the
// end of the stream, and the pipeline must reconnect rather than stop.
func redactErr(err error, rawURL string) error {
	e := &redactedError{msg: RedactError(err.Error(), rawURL), err: err}
	if errors.Is(err, io.EOF) {
		e.err = nil
	}
	return e
}

func (s *RTSPSource) stallError() error {
	return fmt.Errorf("%w: no packet for %s", ErrStalled, s.readTimeout)
}

// stallCheckEvery is how often the stall watchdog looks at the time of the
// last packet: a quarter of the read timeout, so that a stall is noticed
// within 1.25 read timeouts without a timer reset per packet.
func (s *RTSPSource) stallCheckEvery() time.Duration {
	return max(s.readTimeout/4, 5*time.Millisecond)
}

type vdkDial struct {
	c   *rtspv2.RTSPClient
	err error
}

// dialVDK runs vdk's blocking Dial, which takes no context, so that a
// cancelled ctx returns at once; a dial still in flight then finishes (within
// its timeouts) and is closed in the background.
func dialVDK(ctx context.Context, opts rtspv2.RTSPClientOptions) (*rtspv2.RTSPClient, error) {
	ch := make(chan vdkDial, 1)
	go func() {
		c, err := rtspv2.Dial(opts)
		ch <- vdkDial{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				closeVDK(r.c, false)
			}
		}()
		return nil, ctx.Err()
	}
}

// closeVDK closes the client and, unless its reader already said so, waits
// (briefly) for the reader goroutine to end: vdk signals
// SignalStreamRTPStop as the goroutine's last act.
func closeVDK(c *rtspv2.RTSPClient, stopped bool) {
	c.Close()
	if stopped {
		return
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case sig := <-c.Signals:
			if sig == rtspv2.SignalStreamRTPStop {
				return
			}
		case <-t.C:
			return
		}
	}
}

// runVDK reads over RTSP-over-TCP with deepch/vdk.
//
// vdk updates its CodecData on its own goroutine without a lock, so reading
// it races with a parameter-set change. Instead the parameter sets come from
// the SDP (vdk writes SDPRaw before that goroutine starts) and from the raw
// RTP packets vdk hands over on OutgoingProxyQueue.
func (s *RTSPSource) runVDK(ctx context.Context, out Output) error {
	c, err := dialVDK(ctx, rtspv2.RTSPClientOptions{
		URL:          s.rawURL,
		DisableAudio: true,
		DialTimeout:  s.readTimeout,
		// Longer than the read timeout, so that a stall is seen (and
		// counted) by the watchdog below rather than as a read error.
		ReadWriteTimeout: 2 * s.readTimeout,
		// The raw RTP packets carry the sequence numbers that vdk checks
		// but does not report, and the in-band parameter sets.
		OutgoingProxy: true,
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) && strings.Contains(s.rawURL, "@") {
			// vdk does not report a rejected Authorization; servers that
			// reject it (gortsplib, mediamtx) close the connection.
			return fmt.Errorf("dialing: server closed the connection (wrong credentials?): %w", err)
		}
		return fmt.Errorf("dialing: %w", err)
	}
	stopped := false
	defer func() { closeVDK(c, stopped) }()

	ps := paramSetsFromSDP(c.SDPRaw)
	if ps.codec == frame.CodecUnknown {
		return errors.New("no H.264 or H.265 video in the session description")
	}
	haveParams := false
	announce := func() error {
		p, ok := ps.params()
		if !ok {
			return nil
		}
		ps.changed, haveParams = false, true
		return out.Params(p)
	}
	if err := announce(); err != nil {
		return err
	}

	var (
		tick = time.NewTicker(s.stallCheckEvery())
		last = time.Now()
		pts  ptsUnwrapper
		loss rtpseq.Tracker
		pkt  = frame.Packet{StreamID: s.streamID, Codec: ps.codec}
	)
	defer tick.Stop()
	onRaw := func(raw []byte) {
		payload, seq, ok := interleavedRTP(raw)
		if !ok {
			return
		}
		if n := uint64(loss.Observe(seq).Lost); n > 0 {
			out.Count(EventPacketsLost, n)
		}
		ps.observe(payload)
	}
	onStop := func() error {
		stopped = true
		if time.Since(last) >= s.readTimeout {
			out.Count(EventStall, 1)
			return s.stallError()
		}
		// vdk keeps the reason to itself (it only prints it in debug mode).
		return errors.New("RTSP session ended (connection closed, timed out, or out of sync)")
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if now.Sub(last) >= s.readTimeout {
				out.Count(EventStall, 1)
				return s.stallError()
			}
		case sig := <-c.Signals:
			// SignalCodecUpdate is ignored: the raw packets tell us.
			if sig == rtspv2.SignalStreamRTPStop {
				return onStop()
			}
		case raw := <-c.OutgoingProxyQueue:
			onRaw(*raw)
		case p := <-c.OutgoingPacketQueue:
			now := time.Now()
			last = now
			// vdk queues each raw RTP packet before it depacketizes it;
			// select picks among ready cases at random, so take the raw
			// packets (and any new parameter sets) first.
			for drained := false; !drained; {
				select {
				case raw := <-c.OutgoingProxyQueue:
					onRaw(*raw)
				default:
					drained = true
				}
			}
			if ps.changed {
				if err := announce(); err != nil {
					return err
				}
			}
			if !haveParams || len(p.Data) < 5 {
				continue // nothing decodable before the parameter sets
			}
			pkt.Data = p.Data
			pkt.PTS = pts.unwrap(p.Time)
			pkt.DTS = pkt.PTS // RTP carries no decoding time
			pkt.KeyFrame = isKeyNALU(ps.codec, p.Data[4])
			pkt.Arrival = now
			if err := out.Packet(&pkt); err != nil {
				return err
			}
		}
	}
}

// paramSets are a stream's latest parameter sets, from the SDP and in-band.
// It is not safe for concurrent use.
type paramSets struct {
	codec         frame.Codec
	vps, sps, pps []byte
	changed       bool
}

// paramSetsFromSDP reads the codec and sprop parameter sets of the first
// H.264 or H.265 video media (RFC 6184 8.1, RFC 7798 7.1).
func paramSetsFromSDP(raw []byte) *paramSets {
	ps := &paramSets{}
	_, medias := sdp.Parse(string(raw))
	for _, m := range medias {
		if m.AVType != rtspv2.VIDEO {
			continue
		}
		switch m.Type {
		case av.H264:
			ps.codec = frame.CodecH264
			if len(m.SpropParameterSets) > 1 {
				ps.sps, ps.pps = m.SpropParameterSets[0], m.SpropParameterSets[1]
			}
		case av.H265:
			ps.codec = frame.CodecH265
			ps.vps, ps.sps, ps.pps = m.SpropVPS, m.SpropSPS, m.SpropPPS
		default:
			continue
		}
		ps.changed = true
		return ps
	}
	return ps
}

// observe looks for parameter sets in an RTP payload: a single NAL unit, or
// an aggregation packet (H.264 STAP-A, RFC 6184 5.7.1; H.265 AP, RFC 7798
// 4.4.2). Parameter sets fit one packet in practice, so fragments are not
// reassembled.
func (ps *paramSets) observe(payload []byte) {
	if len(payload) < 2 {
		return
	}
	typ, hdr := ps.naluType(payload), 1
	if ps.codec == frame.CodecH265 {
		hdr = 2
	}
	if ps.codec == frame.CodecH264 && typ != 24 || ps.codec == frame.CodecH265 && typ != 48 {
		ps.nalu(payload)
		return
	}
	for b := payload[hdr:]; len(b) >= 2; {
		n := int(b[0])<<8 | int(b[1])
		if n == 0 || 2+n > len(b) {
			return
		}
		ps.nalu(b[2 : 2+n])
		b = b[2+n:]
	}
}

func (ps *paramSets) naluType(nalu []byte) byte {
	if ps.codec == frame.CodecH265 {
		return (nalu[0] >> 1) & 0x3f
	}
	return nalu[0] & 0x1f
}

// nalu records nalu if it is a parameter set that differs from the last.
func (ps *paramSets) nalu(nalu []byte) {
	if len(nalu) < 2 {
		return
	}
	var dst *[]byte
	switch t := ps.naluType(nalu); {
	case ps.codec == frame.CodecH264 && t == 7, ps.codec == frame.CodecH265 && t == 33:
		dst = &ps.sps
	case ps.codec == frame.CodecH264 && t == 8, ps.codec == frame.CodecH265 && t == 34:
		dst = &ps.pps
	case ps.codec == frame.CodecH265 && t == 32:
		dst = &ps.vps
	default:
		return
	}
	if !bytes.Equal(*dst, nalu) {
		*dst = bytes.Clone(nalu)
		ps.changed = true
	}
}

// params builds decoder parameters with an avcC/hvcC record, which matches
// vdk's length-prefixed packets. ok is false until the parameter sets are
// complete and parse.
func (ps *paramSets) params() (p frame.CodecParams, ok bool) {
	// vdk's SPS parsers index without bounds checks (FuzzInterleavedRTPSeq
	// found a short SPS that panics): a malformed parameter set from the
	// network is treated as absent.
	defer func() {
		if recover() != nil {
			p, ok = frame.CodecParams{}, false
		}
	}()
	switch ps.codec {
	case frame.CodecH264:
		if ps.sps == nil || ps.pps == nil {
			return p, false
		}
		cd, err := h264parser.NewCodecDataFromSPSAndPPS(ps.sps, ps.pps)
		if err != nil {
			return p, false
		}
		return frame.CodecParams{Codec: frame.CodecH264, Width: cd.Width(), Height: cd.Height(),
			Extradata: cd.AVCDecoderConfRecordBytes(), FrameRate: float64(cd.FPS())}, true
	case frame.CodecH265:
		if ps.vps == nil || ps.sps == nil || ps.pps == nil {
			return p, false
		}
		cd, err := h265parser.NewCodecDataFromVPSAndSPSAndPPS(ps.vps, ps.sps, ps.pps)
		if err != nil {
			return p, false
		}
		return frame.CodecParams{Codec: frame.CodecH265, Width: cd.Width(), Height: cd.Height(),
			Extradata: cd.AVCDecoderConfRecordBytes(), FrameRate: float64(cd.FPS())}, true
	}
	return p, false
}

// isKeyNALU reports whether a NAL unit header starts a random-access
// picture: an IDR slice for H.264 (RFC 6184), an IRAP picture (BLA, IDR,
// CRA) for H.265 (RFC 7798). vdk's own flag misses IDRs in STAP-A and H.265
// CRA pictures.
func isKeyNALU(c frame.Codec, hdr byte) bool {
	switch c {
	case frame.CodecH264:
		return hdr&0x1f == 5
	case frame.CodecH265:
		t := (hdr >> 1) & 0x3f
		return t >= 16 && t <= 21
	}
	return false
}

// rtpClock90k is the span of a 32-bit RTP timestamp at 90 kHz, the video
// clock of RFC 3551, at the millisecond resolution vdk gives.
const rtpClock90k = time.Duration(1<<32/90) * time.Millisecond

// ptsUnwrapper makes vdk's packet times (the raw RTP timestamp) relative to
// the first packet and unwraps them past 32 bits.
type ptsUnwrapper struct {
	started    bool
	base, prev time.Duration
	wraps      time.Duration
}

func (u *ptsUnwrapper) unwrap(t time.Duration) time.Duration {
	if !u.started {
		u.started, u.base, u.prev = true, t, t
	}
	switch {
	case t < u.prev-rtpClock90k/2:
		u.wraps += rtpClock90k
	case t > u.prev+rtpClock90k/2:
		// A reordered packet from before a wrap.
		return t + u.wraps - rtpClock90k - u.base
	}
	u.prev = t
	return t + u.wraps - u.base
}

// interleavedRTP returns the payload and sequence number of an RTP packet
// framed as RTSP interleaved binary data ('$', channel, 16-bit length,
// packet; RFC 2326 section 10.12; RTP header: RFC 3550 section 5.1). ok is
// false for RTCP, odd (RTCP) channels and anything that is not well-formed
// RTP version 2.
func interleavedRTP(b []byte) (payload []byte, seq uint16, ok bool) {
	if len(b) < 4+12 || b[0] != '$' || b[1]%2 != 0 || b[4]>>6 != 2 {
		return nil, 0, false
	}
	if pt := b[5] & 0x7f; pt >= 72 && pt <= 76 { // RTCP SR, RR, SDES, BYE, APP
		return nil, 0, false
	}
	rtp := b[4:]
	if n := int(binary.BigEndian.Uint16(b[2:4])); n < len(rtp) {
		rtp = rtp[:n]
	}
	if len(rtp) < 12 {
		return nil, 0, false
	}
	seq = binary.BigEndian.Uint16(rtp[2:4])
	off := 12 + 4*int(rtp[0]&0x0f)
	if rtp[0]&0x10 != 0 { // header extension
		if off+4 > len(rtp) {
			return nil, 0, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(rtp[off+2:off+4]))
	}
	end := len(rtp)
	if rtp[0]&0x20 != 0 && end > 0 { // padding
		end -= int(rtp[end-1])
	}
	if off > end {
		return nil, 0, false
	}
	return rtp[off:end], seq, true
}
