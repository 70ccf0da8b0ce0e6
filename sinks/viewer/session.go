package viewer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

const (
	// videoQueue is how many access units wait for a viewer (about 2 s at
	// 15 fps) before it loses them.
	videoQueue = 32
	// overlayQueue is how many data channel messages wait for a viewer.
	overlayQueue = 16
	// maxBuffered is how many bytes the data channel may hold unsent before
	// overlay messages are dropped for that viewer.
	maxBuffered = 1 << 20
	// rtpMTU bounds the RTP payloads.
	rtpMTU = 1200
	// dataChannelLabel is the label of the page's data channel.
	dataChannelLabel = "vigil"
)

// session is one viewer of one stream.
type session struct {
	h       *Hub
	f       *feed
	id      string
	info    StreamInfo
	pc      *webrtc.PeerConnection
	track   *webrtc.TrackLocalStaticRTP
	video   chan accessUnit
	overlay chan []byte

	dc        atomic.Pointer[webrtc.DataChannel] // set once hello is sent
	connected atomic.Bool
	lost      atomic.Bool // an access unit was dropped: skip to a key frame

	done      chan struct{}
	closeOnce sync.Once
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errors of newSession, mapped to HTTP codes by the handler.
var (
	errNoVideo = errors.New("offer cannot receive H.264 video")
	errClosed  = errors.New("viewer closed")
	errFull    = errors.New("too many viewers")
)

// newSession answers offer and starts the session.
func (h *Hub) newSession(ctx context.Context, stream string, info StreamInfo, offer string) (*session, string, error) {
	f := h.feed(stream)
	if n := len(f.list()); n >= h.opts.MaxViewers {
		return nil, "", fmt.Errorf("%w: stream %s has %d (viewer.max_viewers)", errFull, stream, n)
	}
	pc, err := h.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("creating peer connection: %w", err)
	}
	s := &session{
		h: h, f: f, id: newSessionID(), info: info, pc: pc,
		video:   make(chan accessUnit, videoQueue),
		overlay: make(chan []byte, overlayQueue),
		done:    make(chan struct{}),
	}
	fail := func(err error) (*session, string, error) {
		_ = pc.Close()
		return nil, "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("applying offer: %w", err))
	}
	s.track, err = webrtc.NewTrackLocalStaticRTP(videoCodec, "video", "vigil-"+stream)
	if err != nil {
		return fail(fmt.Errorf("creating video track: %w", err))
	}
	sender, err := pc.AddTrack(s.track)
	if err != nil {
		return fail(fmt.Errorf("adding video track: %w", err))
	}
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != dataChannelLabel {
			_ = dc.Close()
			return
		}
		dc.OnOpen(func() { s.opened(dc) })
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		h.log.Debug("viewer connection", "stream", stream, "session", s.id, "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.connected.Store(true)
			f.requestKey()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			// A viewer that went away (DTLS closed, or ICE failed after
			// silence). Not on this callback's goroutine: close waits for
			// pion, and a close of our own lands here too (then it is a
			// no-op).
			go s.close("connection " + st.String())
		}
	})
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("creating answer: %w", err))
	}
	if !strings.Contains(answer.SDP, "H264/90000") {
		return fail(errNoVideo)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("setting answer: %w", err))
	}
	t := time.NewTimer(h.opts.GatherTimeout)
	select {
	case <-gathered:
	case <-t.C: // answer with the candidates gathered so far
	case <-ctx.Done():
		t.Stop()
		return fail(fmt.Errorf("viewer went away: %w", ctx.Err()))
	}
	t.Stop()

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fail(errClosed)
	}
	h.sessions[s.id] = s
	h.wg.Add(2)
	h.mu.Unlock()
	f.add(s)
	go func() {
		defer h.wg.Done()
		s.write()
	}()
	go func() {
		defer h.wg.Done()
		s.readRTCP(sender)
	}()
	h.log.Info("viewer connected", "stream", stream, "session", s.id)
	return s, pc.LocalDescription().SDP, nil
}

// opened sends the hello message and lets overlay messages through.
func (s *session) opened(dc *webrtc.DataChannel) {
	f := s.f
	f.mu.Lock()
	w, hgt := f.width, f.height
	f.mu.Unlock()
	models := s.info.Models
	if models == nil {
		models = []ModelInfo{}
	}
	hello := helloMessage{
		Type: "hello", Stream: f.id, Width: w, Height: hgt, InferFPS: s.info.InferFPS,
		ClockRate: ClockRate, Video: f.videoMode(), Models: models,
	}
	if err := dc.SendText(string(marshal(hello))); err != nil {
		return
	}
	s.dc.Store(dc)
}

// queueVideo and queueOverlay hand the writer a message without blocking;
// false means the viewer's queue is full and the message is lost.
func (s *session) queueVideo(au accessUnit) bool {
	select {
	case s.video <- au:
		return true
	default:
		s.lost.Store(true)
		return false
	}
}

func (s *session) queueOverlay(msg []byte) bool {
	select {
	case s.overlay <- msg:
		return true
	default:
		return false
	}
}

// write sends the queued video and overlay messages until the session
// closes.
func (s *session) write() {
	var (
		pay     codecs.H264Payloader
		seq     = uint16(time.Now().UnixNano())
		needKey = true
	)
	for {
		select {
		case <-s.done:
			return
		case au := <-s.video:
			if s.lost.Swap(false) || !s.connected.Load() {
				needKey = true
			}
			if !s.connected.Load() || (needKey && !au.key) {
				continue
			}
			needKey = false
			payloads := pay.Payload(rtpMTU, au.data)
			ts := RTPTimestamp(au.pts)
			for i, p := range payloads {
				pkt := rtp.Packet{
					Header:  rtp.Header{Version: 2, Marker: i == len(payloads)-1, SequenceNumber: seq, Timestamp: ts},
					Payload: p,
				}
				seq++
				if err := s.track.WriteRTP(&pkt); err != nil {
					s.h.metrics.errors.WithLabelValues("write_rtp").Inc()
					break
				}
			}
		case msg := <-s.overlay:
			dc := s.dc.Load()
			if dc == nil {
				continue // not open yet
			}
			if dc.BufferedAmount() > maxBuffered {
				s.f.droppedOverlay.Add(1)
				s.h.metrics.droppedOverlay.WithLabelValues(s.f.id).Inc()
				continue
			}
			if err := dc.SendText(string(msg)); err != nil {
				s.h.metrics.errors.WithLabelValues("send_overlay").Inc()
			}
		}
	}
}

// readRTCP reads the browser's RTCP, which the interceptors need, and
// turns its key frame requests (PLI, FIR) into the stream's.
func (s *session) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.lost.Store(true)
				s.f.requestKey()
			}
		}
	}
}

// close ends the session once; it may be called from any goroutine but
// not from the writer.
func (s *session) close(reason string) {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.pc.Close()
		s.h.mu.Lock()
		delete(s.h.sessions, s.id)
		s.h.mu.Unlock()
		s.f.remove(s)
		s.h.log.Info("viewer disconnected", "stream", s.f.id, "session", s.id, "reason", reason)
	})
}
