// Package whiptest publishes video to a WHIP endpoint with pion/webrtc, as
// a real peer for tests and benchmarks: H.264 from an Annex-B byte stream or
// VP8 from an IVF file goes in, RTP over a loopback PeerConnection comes out.
package whiptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/vigil-video/vigil/ingest/h264"
)

// Publisher is one WHIP publisher. It is not safe for concurrent use.
type Publisher struct {
	pc        *webrtc.PeerConnection
	track     *webrtc.TrackLocalStaticRTP
	sender    *webrtc.RTPSender
	pz        rtp.Packetizer
	connected chan struct{}
	plis      atomic.Int64
	done      chan struct{}

	// DropEvery, when positive, drops every DropEvery-th RTP packet instead
	// of sending it, to simulate loss.
	DropEvery int
	sent      int
	// Location is the session URL the server returned.
	Location string
	// Answer is the server's SDP answer.
	Answer string
	base   string
	token  string
}

// NewPeerConnection returns a pion PeerConnection that only uses loopback
// addresses, with one sendonly video track of the given MIME type
// (webrtc.MimeTypeH264 or webrtc.MimeTypeVP8).
func NewPeerConnection(mime string) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP, *webrtc.RTPSender, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, nil, nil, fmt.Errorf("registering codecs: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating peer connection: %w", err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, "video", "vigil-test")
	if err != nil {
		pc.Close()
		return nil, nil, nil, fmt.Errorf("creating track: %w", err)
	}
	tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		pc.Close()
		return nil, nil, nil, fmt.Errorf("adding track: %w", err)
	}
	return pc, track, tr.Sender(), nil
}

// Offer creates and gathers a complete offer on pc.
func Offer(pc *webrtc.PeerConnection) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("creating offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("setting offer: %w", err)
	}
	<-gathered
	return pc.LocalDescription().SDP, nil
}

// StatusError is a WHIP response other than 201.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("WHIP server answered %d: %s", e.Code, e.Body)
}

// Publish connects a new publisher of mime video to the WHIP endpoint url
// (http://host/whip/{stream}) with token (may be empty).
func Publish(ctx context.Context, url, token, mime string) (*Publisher, error) {
	pc, track, sender, err := NewPeerConnection(mime)
	if err != nil {
		return nil, err
	}
	var payloader rtp.Payloader = &codecs.H264Payloader{}
	if mime == webrtc.MimeTypeVP8 {
		payloader = &codecs.VP8Payloader{EnablePictureID: true}
	}
	p := &Publisher{
		pc: pc, track: track, sender: sender, connected: make(chan struct{}), done: make(chan struct{}), token: token,
		pz: rtp.NewPacketizer(1200, 0, 0, payloader, rtp.NewRandomSequencer(), 90000),
	}
	// Read RTCP from the receiver: count its key frame requests.
	go func() {
		defer close(p.done)
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					p.plis.Add(1)
				}
			}
		}
	}()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			select {
			case <-p.connected:
			default:
				close(p.connected)
			}
		}
	})
	offer, err := Offer(pc)
	if err != nil {
		pc.Close()
		return nil, err
	}
	code, answer, loc, err := Post(ctx, url, token, offer)
	if err != nil {
		pc.Close()
		return nil, err
	}
	if code != http.StatusCreated {
		pc.Close()
		return nil, &StatusError{Code: code, Body: answer}
	}
	p.Answer, p.Location = answer, loc
	if i := strings.Index(url, "/whip/"); i >= 0 {
		p.base = url[:i]
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		pc.Close()
		return nil, fmt.Errorf("applying answer: %w", err)
	}
	return p, nil
}

// Post sends an offer and returns the status, body and Location.
func Post(ctx context.Context, url, token, offer string) (code int, body, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(offer))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", fmt.Errorf("posting offer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", "", fmt.Errorf("reading answer: %w", err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Location"), nil
}

// WaitConnected waits until the PeerConnection is connected.
func (p *Publisher) WaitConnected(ctx context.Context) error {
	select {
	case <-p.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the connection: %w", ctx.Err())
	}
}

// SendH264 sends the access units of an Annex-B H.264 stream at fps, 3000
// ticks of the 90 kHz clock apart, and returns how many it sent.
func (p *Publisher) SendH264(ctx context.Context, annexB []byte, fps float64) (int, error) {
	aus := AccessUnits(annexB)
	return p.send(ctx, len(aus), fps, func(i int) []byte { return aus[i] })
}

// SendIVF sends the frames of an IVF file (VP8) at fps and returns how many
// it sent.
func (p *Publisher) SendIVF(ctx context.Context, ivf []byte, fps float64) (int, error) {
	r, _, err := ivfreader.NewWith(bytes.NewReader(ivf))
	if err != nil {
		return 0, fmt.Errorf("reading IVF: %w", err)
	}
	var frames [][]byte
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("reading IVF: %w", err)
		}
		frames = append(frames, f)
	}
	return p.send(ctx, len(frames), fps, func(i int) []byte { return frames[i] })
}

func (p *Publisher) send(ctx context.Context, n int, fps float64, sample func(int) []byte) (int, error) {
	d := time.Duration(float64(time.Second) / fps)
	t := time.NewTicker(d)
	defer t.Stop()
	for i := range n {
		for _, pkt := range p.pz.Packetize(sample(i), uint32(90000/fps)) {
			p.sent++
			if p.DropEvery > 0 && p.sent%p.DropEvery == 0 {
				continue
			}
			if err := p.track.WriteRTP(pkt); err != nil {
				return i, fmt.Errorf("writing frame %d: %w", i, err)
			}
		}
		select {
		case <-ctx.Done():
			return i + 1, ctx.Err()
		case <-t.C:
		}
	}
	return n, nil
}

// Delete ends the session with a DELETE on its Location and returns the
// status code.
func (p *Publisher) Delete(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, p.base+p.Location, nil)
	if err != nil {
		return 0, err
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("deleting session: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// KeyFrameRequests returns the number of RTCP PLI and FIR packets the
// receiver sent.
func (p *Publisher) KeyFrameRequests() int { return int(p.plis.Load()) }

// Close closes the PeerConnection and waits for the RTCP reader.
func (p *Publisher) Close() error {
	err := p.pc.Close()
	<-p.done
	return err
}

// AccessUnits groups the NAL units of an Annex-B H.264 stream into access
// units (ITU-T H.264 section 7.4.1.2.3): a new one starts at an AUD, SEI,
// SPS or PPS, or at a slice whose first_mb_in_slice is 0, after a slice.
// Each is returned in Annex-B form.
func AccessUnits(annexB []byte) [][]byte {
	var out [][]byte
	var cur [][]byte
	vcl := false
	flush := func() {
		if len(cur) > 0 {
			out = append(out, h264.AppendAnnexB(nil, cur...))
		}
		cur, vcl = cur[:0], false
	}
	for _, nal := range h264.SplitAnnexB(nil, annexB) {
		t := h264.TypeOf(nal)
		switch {
		case t >= 6 && t <= 9 && vcl:
			flush()
		case t.IsVCL() && vcl && len(nal) > 1 && nal[1]&0x80 != 0:
			flush()
		}
		cur = append(cur, nal)
		vcl = vcl || t.IsVCL()
	}
	flush()
	return out
}
