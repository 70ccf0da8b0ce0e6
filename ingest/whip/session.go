package whip

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/h264"
	"github.com/vigil-video/vigil/ingest/vp8"
)

// session is one publisher's PeerConnection. Its goroutines: pion's OnTrack
// handlers (which read the tracks), a watchdog, and a closer that tears the
// connection down and reports to the server's WaitGroup.
type session struct {
	srv         *Server
	id          string
	streamID    string
	token       string
	readTimeout time.Duration
	sink        Sink
	pc          *webrtc.PeerConnection

	started chan struct{} // closed once the session is installed
	closing chan struct{} // closed by close
	done    chan struct{} // closed when every goroutine of the session ended

	closeOnce sync.Once
	reason    string // why the session ended, set in close

	mu       sync.Mutex // guards isClosed, hasVideo and the WaitGroup's Add
	isClosed bool
	hasVideo bool
	wg       sync.WaitGroup

	lastRecv  atomic.Int64 // unix nanoseconds of the last packet (or the start)
	keyWanted atomic.Bool  // the receiver asked for a key frame (its decoder broke)
}

func newSession(srv *Server, streamID string, opts StreamOptions, sink Sink, pc *webrtc.PeerConnection) *session {
	ss := &session{
		srv: srv, id: newID(), streamID: streamID, token: opts.Token, readTimeout: opts.ReadTimeout,
		sink: sink, pc: pc,
		started: make(chan struct{}), closing: make(chan struct{}), done: make(chan struct{}),
	}
	ss.lastRecv.Store(time.Now().UnixNano())
	// Handlers go in before the offer is applied: media may flow as soon as
	// ICE connects, before the answer has left.
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		ss.mu.Lock()
		if ss.isClosed {
			ss.mu.Unlock()
			return
		}
		ss.wg.Add(1)
		ss.mu.Unlock()
		defer ss.wg.Done()
		ss.readTrack(tr)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateClosed:
			ss.close("connection " + st.String())
		}
	})
	return ss
}

// abort tears down a session that was never installed.
func (ss *session) abort() {
	ss.mu.Lock()
	ss.isClosed = true
	ss.mu.Unlock()
	ss.closeOnce.Do(func() { close(ss.closing) })
	_ = ss.pc.Close()
	ss.wg.Wait()
	close(ss.done)
}

// start runs the installed session; the server's WaitGroup was incremented
// for it.
func (ss *session) start() {
	ss.wg.Add(1)
	go ss.watch()
	go func() {
		defer ss.srv.wg.Done()
		<-ss.closing
		ss.unregister() // in case close ran before the session was installed
		_ = ss.pc.Close()
		ss.wg.Wait()
		close(ss.done)
		ss.srv.log.Load().Info("WHIP session ended", "stream", ss.streamID, "session", ss.id, "reason", ss.reason)
	}()
	close(ss.started)
}

// close ends the session without waiting; done closes when it has ended.
func (ss *session) close(reason string) {
	ss.closeOnce.Do(func() {
		ss.mu.Lock()
		ss.isClosed = true
		ss.mu.Unlock()
		ss.reason = reason
		ss.unregister()
		close(ss.closing)
	})
}

func (ss *session) unregister() {
	s := ss.srv
	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	if st := s.streams[ss.streamID]; st != nil && st.current == ss {
		st.current = nil
	}
	s.mu.Unlock()
}

// watch ends the session when no media arrived for the read timeout,
// including a publisher that never connects.
func (ss *session) watch() {
	defer ss.wg.Done()
	tick := time.NewTicker(min(max(ss.readTimeout/4, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ss.closing:
			return
		case now := <-tick.C:
			if now.Sub(time.Unix(0, ss.lastRecv.Load())) > ss.readTimeout {
				ss.sink.Stalled()
				ss.close("no media for " + ss.readTimeout.String())
				return
			}
		}
	}
}

// depacketizer adapts the H.264 and VP8 depacketizers.
type depacketizer interface {
	push(p *rtp.Packet, emit func(data []byte, ts uint32, key bool)) (lost int, damaged uint64)
}

type h264Dep struct{ d h264.Depacketizer }

func (h *h264Dep) push(p *rtp.Packet, emit func([]byte, uint32, bool)) (int, uint64) {
	lost := h.d.Push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload, func(au h264.AccessUnit) {
		emit(au.Data, au.Timestamp, au.KeyFrame)
	})
	return lost, h.d.Stats().Damaged
}

type vp8Dep struct{ d vp8.Depacketizer }

func (v *vp8Dep) push(p *rtp.Packet, emit func([]byte, uint32, bool)) (int, uint64) {
	lost := v.d.Push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload, func(f vp8.Frame) {
		emit(f.Data, f.Timestamp, f.KeyFrame)
	})
	return lost, v.d.Stats().Damaged
}

// readTrack reads one track until the connection closes. Only the first
// video track of a session is used; others are drained.
func (ss *session) readTrack(tr *webrtc.TrackRemote) {
	select {
	case <-ss.started:
	case <-ss.closing:
		return
	}
	buf := make([]byte, 1<<16)
	ss.mu.Lock()
	use := tr.Kind() == webrtc.RTPCodecTypeVideo && !ss.hasVideo
	ss.hasVideo = ss.hasVideo || use
	ss.mu.Unlock()
	if !use {
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
	}

	var (
		codec    frame.Codec
		dep      depacketizer
		damaged  uint64
		needKey  = true
		lastPLI  time.Time
		first    = true
		lastTS   uint32
		extTS    int64
		pkt      rtp.Packet
		out      frame.Packet
		ssrc     = uint32(tr.SSRC())
		interval = ss.srv.cfg.KeyFrameInterval
	)
	requestKey := func(force bool) {
		now := time.Now()
		if !force && now.Sub(lastPLI) < interval {
			return
		}
		lastPLI = now
		_ = ss.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
	emit := func(data []byte, ts uint32, key bool) {
		select {
		case <-ss.closing:
			// Replaced or ended: a newer session may already deliver.
			return
		default:
		}
		if needKey && !key {
			requestKey(false)
			return
		}
		needKey = false
		if first {
			first, lastTS = false, ts
		}
		extTS += int64(int32(ts - lastTS))
		lastTS = ts
		pts := time.Duration(extTS/90000)*time.Second + time.Duration(extTS%90000)*time.Second/90000
		out = frame.Packet{StreamID: ss.streamID, Codec: codec, Data: data, PTS: pts, DTS: pts, KeyFrame: key, Arrival: time.Now()}
		ss.sink.Packet(&out)
	}
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		ss.lastRecv.Store(time.Now().UnixNano())
		if ss.keyWanted.Swap(false) {
			requestKey(false)
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		c := codecOf(tr.Codec().MimeType)
		if c != codec {
			// The first packet, or the publisher switched payload type to
			// another codec: start over with a new depacketizer.
			codec = c
			switch c {
			case frame.CodecH264:
				dep = &h264Dep{}
			case frame.CodecVP8:
				dep = &vp8Dep{}
			default:
				dep = nil
			}
			damaged, needKey, first, extTS = 0, true, true, 0
			if dep != nil {
				ss.sink.Params(frame.CodecParams{Codec: c})
				requestKey(true)
			}
		}
		if dep == nil {
			continue
		}
		lost, dmg := dep.push(&pkt, emit)
		if lost > 0 {
			// Whatever was lost, later pictures may reference it.
			ss.sink.Lost(uint64(lost))
			needKey = true
			requestKey(false)
		}
		if dmg != damaged {
			// An access unit was dropped: the pictures that follow miss a
			// reference until the next key frame.
			damaged = dmg
			needKey = true
			requestKey(false)
		}
	}
}

func codecOf(mime string) frame.Codec {
	switch {
	case equalFold(mime, webrtc.MimeTypeH264):
		return frame.CodecH264
	case equalFold(mime, webrtc.MimeTypeVP8):
		return frame.CodecVP8
	}
	return frame.CodecUnknown
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
