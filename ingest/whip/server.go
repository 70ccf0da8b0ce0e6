// Package whip receives WebRTC video from publishers over WHIP (RFC 9725),
// on pion/webrtc.
//
// A publisher POSTs an SDP offer to /whip/{stream} and gets the SDP answer;
// DELETE on the returned Location ends its session. The stream must have
// been attached with Server.Attach by its consumer (the whip:// source of
// package ingest); media then leaves through the consumer's Sink as Annex-B
// H.264 access units or VP8 frames (frame.Packet), with codec parameters
// first and lost-packet counts. One publisher per stream at a time: a new
// one replaces the old.
package whip

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/wish"
)

// MaxOfferSize bounds the SDP offer a publisher may POST.
const MaxOfferSize = wish.MaxOfferSize

// Errors of Attach.
var (
	// ErrAttached is returned when the stream already has a consumer.
	ErrAttached = errors.New("WHIP stream already attached")
	// ErrClosed is returned once the server is closed.
	ErrClosed = errors.New("WHIP server closed")
)

// Sink receives one stream's media. Its methods are called from the
// sessions' goroutines, possibly concurrently (Stalled comes from a
// watchdog), and must not block. Params, Packet and Lost of one session come
// one at a time and in order. A replaced session is closed as its
// successor is installed, so at most a packet already in flight follows the
// successor's Params.
type Sink interface {
	// Params announces the codec of the packets that follow; it is called
	// when a publisher's video track starts.
	Params(p frame.CodecParams)
	// Packet delivers one access unit (H.264 in Annex-B form, or a VP8
	// frame). p and p.Data are only valid during the call.
	Packet(p *frame.Packet)
	// Lost counts RTP packets missing from the sequence numbers.
	Lost(n uint64)
	// Stalled says that a session received nothing for the stream's read
	// timeout and was ended.
	Stalled()
}

// StreamOptions are a stream's settings.
type StreamOptions struct {
	// Token is the Bearer token publishers must present; empty accepts any.
	Token string
	// ReadTimeout ends a session that receives no media for this long. It
	// defaults to 10 seconds.
	ReadTimeout time.Duration
}

// Config configures a Server. Zero values select the defaults given in the
// field comments.
type Config struct {
	// Logger receives session starts and ends. It defaults to slog.Default().
	Logger *slog.Logger
	// GatherTimeout bounds ICE candidate gathering before the answer is
	// sent. It defaults to 5 seconds.
	GatherTimeout time.Duration
	// KeyFrameInterval is the shortest time between two key frame requests
	// (RTCP PLI) to a publisher. It defaults to 1 second.
	KeyFrameInterval time.Duration
	// InterfaceFilter, if set, limits the network interfaces ICE gathers
	// candidates on (by name).
	InterfaceFilter func(name string) bool
	// IPFilter, if set, limits the local addresses ICE gathers candidates on.
	IPFilter func(ip net.IP) bool
	// NAT1To1IPs, if set, are the public addresses announced in host
	// candidates instead of the local ones.
	NAT1To1IPs []string
	// ICEUDPPortMin and ICEUDPPortMax, if set, bound the local UDP ports.
	ICEUDPPortMin, ICEUDPPortMax uint16
}

// Server is a WHIP endpoint and the registry of the streams it accepts. It
// is safe for concurrent use.
type Server struct {
	cfg Config
	log atomic.Pointer[slog.Logger]
	api *webrtc.API

	mu       sync.Mutex
	closed   bool
	streams  map[string]*stream
	sessions map[string]*session
	wg       sync.WaitGroup // every session's goroutines
}

// stream is an attached stream; its fields are guarded by Server.mu.
type stream struct {
	id      string
	opts    StreamOptions
	sink    Sink
	current *session
}

// Default is the server the whip:// source attaches to and `vigil serve`
// mounts under /whip/.
var Default = NewServer(Config{})

// NewServer returns a Server with cfg's defaults filled in.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = 5 * time.Second
	}
	if cfg.KeyFrameInterval <= 0 {
		cfg.KeyFrameInterval = time.Second
	}
	s := &Server{
		cfg:      cfg,
		streams:  map[string]*stream{},
		sessions: map[string]*session{},
	}
	s.log.Store(cfg.Logger)
	s.api = newAPI(cfg)
	return s
}

// SetLogger replaces the logger, for Default, which is made before the
// program's logger.
func (s *Server) SetLogger(l *slog.Logger) { s.log.Store(l) }

// Attached reports whether streamID accepts publishers.
func (s *Server) Attached(streamID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.streams[streamID]
	return ok && !s.closed
}

// h264Profiles are the H.264 profile-level-ids offered by browsers that
// Vigil accepts: constrained baseline (42e01f, 42001f), main (4d001f) and
// high (640c1f, 64001f).
var h264Profiles = []string{"42e01f", "42001f", "4d001f", "640c1f", "64001f"}

func newAPI(cfg Config) *webrtc.API {
	me := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	pt := webrtc.PayloadType(96)
	register := func(c webrtc.RTPCodecCapability) {
		c.RTCPFeedback = fb
		// Registration only fails for an unknown codec type.
		_ = me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: pt}, webrtc.RTPCodecTypeVideo)
		pt++
	}
	for _, prof := range h264Profiles {
		register(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + prof})
	}
	register(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000})

	ir := &interceptor.Registry{}
	// Receiver reports tell the publisher about loss, so that it adapts.
	_ = webrtc.ConfigureRTCPReports(ir)

	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.InterfaceFilter != nil {
		se.SetInterfaceFilter(cfg.InterfaceFilter)
	}
	if cfg.IPFilter != nil {
		se.SetIPFilter(cfg.IPFilter)
	}
	if len(cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	if cfg.ICEUDPPortMin > 0 || cfg.ICEUDPPortMax > 0 {
		_ = se.SetEphemeralUDPPortRange(cfg.ICEUDPPortMin, cfg.ICEUDPPortMax)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// Attach makes the server accept publishers for streamID and deliver their
// media to sink. detach ends the stream's session, waits for its goroutines
// and forgets the stream.
func (s *Server) Attach(streamID string, opts StreamOptions, sink Sink) (detach func(), err error) {
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 10 * time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.streams[streamID]; ok {
		return nil, fmt.Errorf("attaching %s: %w", streamID, ErrAttached)
	}
	st := &stream{id: streamID, opts: opts, sink: sink}
	s.streams[streamID] = st
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.streams[streamID] == st {
				delete(s.streams, streamID)
			}
			cur := st.current
			st.current = nil
			s.mu.Unlock()
			if cur != nil {
				cur.close("stream detached")
				<-cur.done
			}
		})
	}, nil
}

// RequestKeyFrame asks streamID's current publisher for a key frame (an RTCP
// PLI, sent with the next packet it receives and rate-limited like the
// others), for a receiver whose decoder broke. Without a publisher it does
// nothing.
func (s *Server) RequestKeyFrame(streamID string) {
	s.mu.Lock()
	var cur *session
	if st := s.streams[streamID]; st != nil {
		cur = st.current
	}
	s.mu.Unlock()
	if cur != nil {
		cur.keyWanted.Store(true)
	}
}

// Close ends every session, refuses new ones and waits for the sessions'
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.close("server closed")
	}
	s.wg.Wait()
	return nil
}

// Sessions returns the number of live sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// ServeHTTP serves the WHIP endpoint (RFC 9725 section 4):
//
//	POST    /whip/{stream}            SDP offer in, 201 with the SDP answer and Location
//	DELETE  /whip/{stream}/{session}  ends the session
//	OPTIONS                           CORS preflight
//
// The path prefix before the stream ID is ignored, so the handler can be
// mounted anywhere.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wish.Serve(w, r, "whip",
		func(stream string) { s.post(w, r, stream) },
		func(stream, session string) { s.delete(w, r, stream, session) })
}

// authorize checks the Bearer token and writes the 401 when it is wrong.
func authorize(w http.ResponseWriter, r *http.Request, token string) bool {
	if token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
	http.Error(w, "missing or wrong Bearer token", http.StatusUnauthorized)
	return false
}

func (s *Server) lookup(streamID string) (StreamOptions, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[streamID]
	if !ok || s.closed {
		return StreamOptions{}, false
	}
	return st.opts, true
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, streamID string) {
	opts, ok := s.lookup(streamID)
	if !ok {
		http.Error(w, fmt.Sprintf("stream %q not found", streamID), http.StatusNotFound)
		return
	}
	if !authorize(w, r, opts.Token) {
		return
	}
	body, code, err := wish.ReadOffer(w, r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	if err := checkOffer(body); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errNoVideo) {
			code = http.StatusUnsupportedMediaType
		}
		http.Error(w, err.Error(), code)
		return
	}
	ss, answer, err := s.newSession(r.Context(), streamID, string(body))
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, errGone):
			code = http.StatusNotFound
		case errors.Is(err, errInternal):
			code = http.StatusInternalServerError
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whip/"+streamID+"/"+ss.id)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, streamID, sessionID string) {
	s.mu.Lock()
	ss, ok := s.sessions[sessionID]
	var token string
	if ok && ss.streamID == streamID {
		token = ss.token
	} else {
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	if !authorize(w, r, token) {
		return
	}
	ss.close("publisher ended the session")
	w.WriteHeader(http.StatusOK)
}

var (
	errNoVideo  = errors.New("offer has no H264 or VP8 video")
	errGone     = errors.New("stream detached while the offer was processed")
	errInternal = errors.New("internal error")
)

// checkOffer parses the offer and checks that it sends H.264 or VP8 video,
// before any WebRTC state is made.
func checkOffer(body []byte) error {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return fmt.Errorf("malformed SDP offer: %w", err)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "video" || m.MediaName.Port.Value == 0 {
			continue
		}
		if _, recvonly := m.Attribute("recvonly"); recvonly {
			continue
		}
		if _, inactive := m.Attribute("inactive"); inactive {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			_, enc, ok := strings.Cut(a.Value, " ")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(enc, "/")
			if strings.EqualFold(name, "H264") || strings.EqualFold(name, "VP8") {
				return nil
			}
		}
	}
	return errNoVideo
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newSession answers the offer and starts the session, replacing the
// stream's previous one.
func (s *Server) newSession(ctx context.Context, streamID, offer string) (*session, string, error) {
	s.mu.Lock()
	st, ok := s.streams[streamID]
	if !ok || s.closed {
		s.mu.Unlock()
		return nil, "", errGone
	}
	opts, sink := st.opts, st.sink
	s.mu.Unlock()

	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("%w: creating peer connection: %w", errInternal, err)
	}
	ss := newSession(s, streamID, opts, sink, pc)
	fail := func(err error) (*session, string, error) {
		ss.abort()
		return nil, "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("applying offer: %w", err))
	}
	// Only receive: a sendrecv offer gets a recvonly answer.
	video := 0
	for _, t := range pc.GetTransceivers() {
		if t.Kind() == webrtc.RTPCodecTypeVideo && t.Direction() != webrtc.RTPTransceiverDirectionInactive {
			video++
		}
	}
	if video == 0 {
		return fail(errNoVideo)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("creating answer: %w", err))
	}
	if !strings.Contains(answer.SDP, "H264/90000") && !strings.Contains(answer.SDP, "VP8/90000") {
		return fail(fmt.Errorf("%w (none of its H264 profiles is supported)", errNoVideo))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("%w: setting answer: %w", errInternal, err))
	}
	t := time.NewTimer(s.cfg.GatherTimeout)
	select {
	case <-gathered:
	case <-t.C: // answer with the candidates gathered so far
	case <-ctx.Done():
		t.Stop()
		return fail(fmt.Errorf("publisher went away: %w", ctx.Err()))
	}
	t.Stop()
	local := pc.LocalDescription()

	s.mu.Lock()
	st, ok = s.streams[streamID]
	if !ok || s.closed || st.sink != sink {
		s.mu.Unlock()
		return fail(errGone)
	}
	old := st.current
	st.current = ss
	s.sessions[ss.id] = ss
	s.wg.Add(1)
	s.mu.Unlock()

	if old != nil {
		old.close("replaced by a new publisher")
	}
	ss.start()
	s.log.Load().Info("WHIP publisher connected", "stream", streamID, "session", ss.id)
	return ss, local.SDP, nil
}
