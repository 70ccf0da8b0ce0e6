package ingest

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// testClip is an H.264 clip in memory: access units as NAL units, with the
// parameter sets of its avcC record.
type testClip struct {
	sps, pps []byte
	width    int
	height   int
	aus      [][][]byte
	pts      []time.Duration
	keys     []bool
	interval time.Duration
}

var (
	clipOnce sync.Once
	clipVal  *testClip
	clipErr  error
)

// loadClip demuxes the shared reference clip (768x576, 10 fps, GOP 20) once
// per test binary.
func loadClip(t testing.TB) *testClip {
	t.Helper()
	path := shareddata.Path(t, "video/vtest_h264.mp4")
	clipOnce.Do(func() { clipVal, clipErr = readClip(path) })
	require.NoError(t, clipErr)
	return clipVal
}

func readClip(path string) (*testClip, error) {
	dmx, err := decode.OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer dmx.Close()
	par := dmx.Params()
	c := &testClip{width: par.Width, height: par.Height, interval: frameInterval(par)}
	c.sps, c.pps, err = avcCParamSets(par.Extradata)
	if err != nil {
		return nil, err
	}
	var pkt frame.Packet
	for {
		err := dmx.ReadPacket(&pkt)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var au h264.AVCC
		if err := au.Unmarshal(pkt.Data); err != nil {
			return nil, fmt.Errorf("packet %d: %w", len(c.aus), err)
		}
		nalus := make([][]byte, len(au))
		for i, n := range au {
			nalus[i] = append([]byte(nil), n...)
		}
		c.aus = append(c.aus, nalus)
		c.pts = append(c.pts, pkt.PTS)
		c.keys = append(c.keys, pkt.KeyFrame)
	}
	return c, nil
}

// avcCParamSets returns the first SPS and PPS of an avcC record (ISO/IEC
// 14496-15 5.3.3.1), which must use 4-byte NAL lengths.
func avcCParamSets(b []byte) (sps, pps []byte, err error) {
	if len(b) < 7 || b[4]&3 != 3 {
		return nil, nil, errors.New("avcC record too short or not 4-byte lengths")
	}
	pos := 6 // after numOfSequenceParameterSets
	read := func() ([]byte, error) {
		if pos+2 > len(b) {
			return nil, errors.New("avcC truncated")
		}
		n := int(b[pos])<<8 | int(b[pos+1])
		pos += 2
		if pos+n > len(b) {
			return nil, errors.New("avcC truncated")
		}
		v := b[pos : pos+n]
		pos += n
		return v, nil
	}
	if sps, err = read(); err != nil {
		return nil, nil, err
	}
	for range int(b[5]&0x1f) - 1 {
		if _, err = read(); err != nil {
			return nil, nil, err
		}
	}
	pos++ // numOfPictureParameterSets
	pps, err = read()
	return sps, pps, err
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeUDPPair returns an even UDP port p such that p and p+1 were free, for
// the RTP and RTCP listeners.
func freeUDPPair(t testing.TB) int {
	t.Helper()
	for range 100 {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		p := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		p &^= 1
		if p < 1024 {
			continue
		}
		a, err1 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		b, err2 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		if err1 == nil && err2 == nil {
			return p
		}
	}
	t.Fatal("no free UDP port pair")
	return 0
}

// rtspTestServer is an in-process gortsplib RTSP server on 127.0.0.1. It
// serves the reference clip at /cam (paced at speed times real time, looped)
// and relays any stream published with ANNOUNCE/RECORD at its path.
type rtspTestServer struct {
	t       testing.TB
	port    int
	udpPort int
	// user and pass, when set, are required (Digest MD5) from readers.
	user, pass string
	speed      float64
	clip       *testClip
	// next, when set, replaces clip after switchAt access units, as a
	// camera whose resolution is changed mid-stream.
	next     *testClip
	switchAt int
	// waitPlay holds the feeder until the first reader plays, so that the
	// reader sees the stream from its first key frame.
	waitPlay bool
	// tcpOnly starts the server without UDP listeners, as servers behind
	// NAT or firewalls that only allow interleaved TCP.
	tcpOnly  bool
	played   chan struct{}
	playOnce sync.Once
	player   *gortsplib.ServerSession // the first reader that played

	// paused stops the feeder writing packets while connections stay open,
	// to simulate a stalled camera.
	paused atomic.Bool
	// sent counts the access units written at /cam.
	sent atomic.Uint64
	// dropEvery, when positive, skips every dropEvery-th RTP packet, which
	// leaves a gap in the sequence numbers as a lossy network does.
	dropEvery int
	rtpCount  int

	srv      *gortsplib.Server
	mu       sync.Mutex
	streams  map[string]*gortsplib.ServerStream
	pubs     map[*gortsplib.ServerSession]string
	stopFeed chan struct{}
	feedDone chan struct{}
}

// startRTSPServer starts a server; clip may be nil for a publish-only
// server.
func startRTSPServer(t testing.TB, clip *testClip, user, pass string) *rtspTestServer {
	t.Helper()
	s := &rtspTestServer{t: t, port: freePort(t), udpPort: freeUDPPair(t), user: user, pass: pass, speed: 4, clip: clip}
	require.NoError(t, s.start())
	t.Cleanup(s.close)
	return s
}

// url returns the server's URL for path, with the given userinfo.
func (s *rtspTestServer) url(userinfo, path string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return fmt.Sprintf("rtsp://%s127.0.0.1:%d%s", userinfo, s.port, path)
}

func (s *rtspTestServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams = map[string]*gortsplib.ServerStream{}
	s.pubs = map[*gortsplib.ServerSession]string{}
	s.srv = &gortsplib.Server{
		Handler:        s,
		RTSPAddress:    fmt.Sprintf("127.0.0.1:%d", s.port),
		UDPRTPAddress:  fmt.Sprintf("127.0.0.1:%d", s.udpPort),
		UDPRTCPAddress: fmt.Sprintf("127.0.0.1:%d", s.udpPort+1),
		AuthMethods:    []auth.VerifyMethod{auth.VerifyMethodDigestMD5},
		// Room for bursts: the clip plays at up to 4x real time, and a
		// client slowed by a busy machine (or -race) must not lose packets
		// in the server's queue, which the tests would count as the
		// client's fault.
		WriteQueueSize: 8192,
	}
	if s.tcpOnly {
		s.srv.UDPRTPAddress, s.srv.UDPRTCPAddress = "", ""
	}
	if err := s.srv.Start(); err != nil {
		return err
	}
	if s.clip == nil {
		return nil
	}
	medi := &description.Media{
		Type: description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{
			PayloadTyp: 96, PacketizationMode: 1, SPS: s.clip.sps, PPS: s.clip.pps,
		}},
	}
	st := &gortsplib.ServerStream{Server: s.srv, Desc: &description.Session{Medias: []*description.Media{medi}}}
	if err := st.Initialize(); err != nil {
		s.srv.Close()
		return err
	}
	s.streams["/cam"] = st
	s.stopFeed, s.feedDone = make(chan struct{}), make(chan struct{})
	s.played, s.playOnce, s.player = make(chan struct{}), sync.Once{}, nil
	go s.feed(st, medi, s.stopFeed, s.feedDone)
	return nil
}

// close stops the feeder and the server; it may be called more than once.
func (s *rtspTestServer) close() {
	s.mu.Lock()
	srv, stop, done := s.srv, s.stopFeed, s.feedDone
	s.srv, s.stopFeed = nil, nil
	streams := s.streams
	s.streams = map[string]*gortsplib.ServerStream{}
	s.mu.Unlock()
	if srv == nil {
		return
	}
	if stop != nil {
		close(stop)
		<-done
	}
	for _, st := range streams {
		st.Close()
	}
	srv.Close()
}

// restart closes the server and starts it again on the same ports.
func (s *rtspTestServer) restart() {
	s.close()
	var err error
	for range 50 { // the port may linger for a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(s.t, err)
}

// feed writes the clip to st as RTP, looped, at s.speed times real time,
// with SPS and PPS in-band before each key frame as cameras send them. With
// s.next set, it switches to that clip (new SPS/PPS, new size) after
// s.switchAt access units and loops it.
func (s *rtspTestServer) feed(st *gortsplib.ServerStream, medi *description.Media, stop, done chan struct{}) {
	defer close(done)
	enc, err := medi.Formats[0].(*format.H264).CreateEncoder()
	if err != nil {
		panic(err)
	}
	if s.waitPlay {
		select {
		case <-stop:
			return
		case <-s.played:
		}
		// gortsplib calls OnPlay before it makes the session a reader of
		// the stream: packets written before then never reach it, and
		// under load the feeder used to lose the first key frame that
		// way. Wait until the session plays, and a little longer for the
		// steps between its state change and its reader registration.
		s.mu.Lock()
		player := s.player
		s.mu.Unlock()
		for deadline := time.Now().Add(2 * time.Second); player.State() != gortsplib.ServerSessionStatePlay && time.Now().Before(deadline); {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	c, i := s.clip, 0
	var base time.Duration // PTS of the current pass's start
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		if i == len(c.aus) || c == s.clip && s.next != nil && i == s.switchAt {
			base += c.pts[i-1] + c.interval
			if s.next != nil {
				c = s.next
			}
			i = 0
		}
		au, pts, key := c.aus[i], base+c.pts[i], c.keys[i]
		i++
		t.Reset(max(time.Until(start.Add(time.Duration(float64(pts)/s.speed))), 0))
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if s.paused.Load() {
			continue
		}
		if key {
			au = append([][]byte{c.sps, c.pps}, au...)
		}
		pkts, err := enc.Encode(au)
		if err != nil {
			panic(err)
		}
		ts := uint32(int64(pts) * 90000 / int64(time.Second))
		for _, p := range pkts {
			p.Timestamp = ts
			s.rtpCount++
			if s.dropEvery > 0 && s.rtpCount%s.dropEvery == 0 {
				continue
			}
			if err := st.WritePacketRTP(medi, p); err != nil {
				return
			}
		}
		s.sent.Add(1)
	}
}

func (s *rtspTestServer) authorized(conn *gortsplib.ServerConn, req *base.Request) bool {
	return s.user == "" || conn.VerifyCredentials(req, s.user, s.pass)
}

func (s *rtspTestServer) stream(path string) *gortsplib.ServerStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[path]
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *rtspTestServer) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	st := s.stream(ctx.Path)
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnAnnounce implements gortsplib.ServerHandlerOnAnnounce: a publisher
// creates the stream at its path.
func (s *rtspTestServer) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[ctx.Path] != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("path in use")
	}
	st := &gortsplib.ServerStream{Server: s.srv, Desc: ctx.Description}
	if err := st.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	s.streams[ctx.Path] = st
	s.pubs[ctx.Session] = ctx.Path
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *rtspTestServer) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	if !s.authorized(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	st := s.stream(ctx.Path)
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *rtspTestServer) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s.mu.Lock()
	played := s.played
	if s.player == nil {
		s.player = ctx.Session
	}
	s.mu.Unlock()
	if played != nil {
		s.playOnce.Do(func() { close(played) })
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord implements gortsplib.ServerHandlerOnRecord: packets from the
// publisher go to the readers of its path.
func (s *rtspTestServer) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	st := s.stream(ctx.Path)
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		_ = st.WritePacketRTP(medi, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose: a
// publisher leaving ends its stream.
func (s *rtspTestServer) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path, ok := s.pubs[ctx.Session]; ok {
		delete(s.pubs, ctx.Session)
		if st := s.streams[path]; st != nil {
			st.Close()
			delete(s.streams, path)
		}
	}
}

// TestRTSPServer exposes the test server to the external test package
// (ingest_test), whose tests drive the source through the pipeline.
type TestRTSPServer struct{ s *rtspTestServer }

// StartTestRTSPServer starts a server that serves the reference clip at
// /cam, requiring Digest credentials when user is set.
func StartTestRTSPServer(t testing.TB, user, pass string) *TestRTSPServer {
	return &TestRTSPServer{startRTSPServer(t, loadClip(t), user, pass)}
}

// URL returns the server's URL for path with the given userinfo.
func (s *TestRTSPServer) URL(userinfo, path string) string { return s.s.url(userinfo, path) }

// Close stops the server.
func (s *TestRTSPServer) Close() { s.s.close() }

// Restart starts a closed server again on the same ports.
func (s *TestRTSPServer) Restart() { s.s.restart() }

// Pause stops (true) or resumes (false) sending while connections stay up.
func (s *TestRTSPServer) Pause(on bool) { s.s.paused.Store(on) }

// garbageServer is a TCP server on 127.0.0.1 that misbehaves. With
// handshake false it answers anything with random bytes; with handshake
// true it plays a valid RTSP session (OPTIONS, DESCRIBE with the clip's SDP,
// SETUP interleaved, PLAY) and then sends interleaved frames full of random
// bytes. It closes each connection when done.
type garbageServer struct {
	l    net.Listener
	wg   sync.WaitGroup
	addr string
}

func startGarbageServer(t testing.TB, clip *testClip, handshake bool, seed uint64) *garbageServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &garbageServer{l: l, addr: l.Addr().String()}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for n := uint64(0); ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				rng := rand.New(rand.NewPCG(seed, n))
				if handshake {
					if !rtspHandshake(c, clip) {
						return
					}
					garbageFrames(c, rng)
					return
				}
				buf := make([]byte, 64<<10)
				for i := range buf {
					buf[i] = byte(rng.Uint32())
				}
				_, _ = c.Write(buf)
			}()
		}
	}()
	t.Cleanup(g.close)
	return g
}

func (g *garbageServer) close() {
	g.l.Close()
	g.wg.Wait()
}

// rtspHandshake answers requests until PLAY; it reports whether PLAY came.
func rtspHandshake(c net.Conn, clip *testClip) bool {
	r := bufio.NewReader(c)
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=garbage\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1;sprop-parameter-sets=" +
		base64.StdEncoding.EncodeToString(clip.sps) + "," + base64.StdEncoding.EncodeToString(clip.pps) + "\r\n" +
		"a=control:trackID=0\r\n"
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		method, _, _ := strings.Cut(line, " ")
		cseq := ""
		for {
			h, err := r.ReadString('\n')
			if err != nil {
				return false
			}
			h = strings.TrimSpace(h)
			if h == "" {
				break
			}
			if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "CSeq") {
				cseq = strings.TrimSpace(v)
			}
		}
		res := "RTSP/1.0 200 OK\r\nCSeq: " + cseq + "\r\n"
		switch method {
		case "OPTIONS":
			res += "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"
		case "DESCRIBE":
			res += fmt.Sprintf("Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
		case "SETUP":
			res += "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678;timeout=60\r\n\r\n"
		case "PLAY":
			res += "Session: 12345678\r\n\r\n"
		default:
			res += "\r\n"
		}
		if _, err := io.WriteString(c, res); err != nil {
			return false
		}
		if method == "PLAY" {
			return true
		}
	}
}

// garbageFrames writes interleaved RTP frames whose headers are plausible
// (version 2, payload type 96, channel 0) and whose payloads are random,
// with a random NAL unit type in the first payload byte.
func garbageFrames(c net.Conn, rng *rand.Rand) {
	for i := 0; i < 3000; i++ {
		n := 12 + rng.IntN(1400)
		if rng.IntN(10) == 0 {
			n = 12 + rng.IntN(4)
		}
		b := make([]byte, 4+n)
		b[0], b[1] = '$', 0
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		for j := 4; j < len(b); j++ {
			b[j] = byte(rng.Uint32())
		}
		b[4] = 0x80 | b[4]&0x3f // version 2; random padding/extension bits
		b[5] = 96 | b[5]&0x80
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}
