// Package viewertest is a WHEP viewer on pion/webrtc, a real peer for the
// viewer's tests: it POSTs an offer with a recvonly video transceiver and
// the "vigil" data channel, reassembles the H.264 access units it receives
// and hands them and the data channel messages to callbacks.
package viewertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/vigil-video/vigil/ingest/h264"
)

// Options are a Viewer's callbacks, called from its reader goroutines.
type Options struct {
	// Token is sent as a Bearer token when set.
	Token string
	// OnAccessUnit receives each reassembled access unit; au.Data is only
	// valid during the call.
	OnAccessUnit func(au h264.AccessUnit)
	// OnMessage receives each data channel message.
	OnMessage func(msg []byte)
}

// Viewer is one WHEP session.
type Viewer struct {
	pc        *webrtc.PeerConnection
	client    *http.Client
	token     string
	location  string
	connected chan struct{}
	wg        sync.WaitGroup
	// AccessUnits and Messages count what arrived.
	AccessUnits, Messages atomic.Int64
}

// StatusError is a WHEP answer other than 201.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("WHEP server answered %d: %s", e.Code, e.Body)
}

// Dial opens a session with the WHEP endpoint url (http://host/whep/{stream})
// and waits until it is connected.
func Dial(ctx context.Context, url string, opts Options) (*Viewer, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("registering codecs: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("creating peer connection: %w", err)
	}
	v := &Viewer{pc: pc, client: &http.Client{Timeout: 10 * time.Second}, token: opts.Token, connected: make(chan struct{})}
	fail := func(err error) (*Viewer, error) {
		_ = pc.Close()
		v.wg.Wait()
		return nil, err
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return fail(fmt.Errorf("adding transceiver: %w", err))
	}
	dc, err := pc.CreateDataChannel("vigil", nil)
	if err != nil {
		return fail(fmt.Errorf("creating data channel: %w", err))
	}
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		v.Messages.Add(1)
		if opts.OnMessage != nil {
			opts.OnMessage(m.Data)
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.wg.Add(1)
		defer v.wg.Done()
		var d h264.Depacketizer
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			d.Push(pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload, func(au h264.AccessUnit) {
				v.AccessUnits.Add(1)
				if opts.OnAccessUnit != nil {
					opts.OnAccessUnit(au)
				}
			})
		}
	})
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(v.connected) })
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(fmt.Errorf("creating offer: %w", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(fmt.Errorf("setting offer: %w", err))
	}
	<-gathered
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(pc.LocalDescription().SDP))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	v.auth(req)
	resp, err := v.client.Do(req)
	if err != nil {
		return fail(fmt.Errorf("posting offer: %w", err))
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fail(&StatusError{Code: resp.StatusCode, Body: string(bytes.TrimSpace(body))})
	}
	loc, err := resp.Location()
	if err != nil {
		return fail(fmt.Errorf("answer without Location: %w", err))
	}
	v.location = loc.String()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return fail(fmt.Errorf("applying answer: %w", err))
	}
	select {
	case <-v.connected:
		return v, nil
	case <-ctx.Done():
		return fail(fmt.Errorf("waiting for the connection: %w", ctx.Err()))
	}
}

func (v *Viewer) auth(r *http.Request) {
	if v.token != "" {
		r.Header.Set("Authorization", "Bearer "+v.token)
	}
}

// Close ends the session with DELETE (unless hangUp is false: then the
// viewer just vanishes, like a closed tab) and closes the peer connection.
func (v *Viewer) Close(hangUp bool) error {
	var err error
	if hangUp {
		req, _ := http.NewRequest(http.MethodDelete, v.location, nil)
		v.auth(req)
		resp, e := v.client.Do(req)
		switch {
		case e != nil:
			err = fmt.Errorf("deleting session: %w", e)
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			err = &StatusError{Code: resp.StatusCode}
		default:
			resp.Body.Close()
		}
	}
	err = errors.Join(err, v.pc.Close())
	v.wg.Wait()
	v.client.CloseIdleConnections()
	return err
}
