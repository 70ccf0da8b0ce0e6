package ingest

import (
	"context"
	"fmt"
	"net/url"
	"sync"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/whip"
)

func init() { Register("whip", openWHIP) }

// whipQueue bounds the packets waiting between the WHIP session and the
// source's goroutine; beyond it packets are dropped until the next key frame.
const whipQueue = 512

// WHIPSource receives a stream from WebRTC publishers over WHIP: it attaches
// to whip.Default, which `vigil serve` mounts under /whip/, and publishers
// POST their offers to /whip/{stream ID}. With no publisher the source just
// waits; publishers may come and go.
//
// URL form: whip:// (nothing else is needed; the stream ID names the
// endpoint), with an optional query parameter token=… that overrides
// Options.Token.
type WHIPSource struct {
	streamID string
	opts     whip.StreamOptions
	server   *whip.Server
}

func openWHIP(streamID string, u *url.URL, opts Options) (Source, error) {
	token := opts.Token
	if t := u.Query().Get("token"); t != "" {
		token = t
	}
	return &WHIPSource{
		streamID: streamID,
		opts:     whip.StreamOptions{Token: token, ReadTimeout: opts.ReadTimeout},
		server:   whip.Default,
	}, nil
}

// Live implements Source: publishers send in real time.
func (s *WHIPSource) Live() bool { return true }

// RequestKeyFrame asks the current publisher for a key frame; see
// KeyFrameRequester.
func (s *WHIPSource) RequestKeyFrame() { s.server.RequestKeyFrame(s.streamID) }

// Run implements Source. It forwards what the stream's publishers send
// until ctx ends.
func (s *WHIPSource) Run(ctx context.Context, out Output) error {
	q := &whipSink{wake: make(chan struct{}, 1)}
	detach, err := s.server.Attach(s.streamID, s.opts, q)
	if err != nil {
		return fmt.Errorf("attaching WHIP stream %s: %w", s.streamID, err)
	}
	defer detach()
	var batch []whipItem
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-q.wake:
		}
		batch = q.take(batch[:0])
		for i := range batch {
			it := &batch[i]
			var err error
			switch {
			case it.params != nil:
				err = out.Params(*it.params)
			case it.pkt != nil:
				err = out.Packet(it.pkt)
			case it.stall:
				out.Count(EventStall, 1)
			default:
				out.Count(EventPacketsLost, it.lost)
			}
			if err != nil {
				return err
			}
			*it = whipItem{}
		}
	}
}

// whipItem is one thing a session handed over.
type whipItem struct {
	params *frame.CodecParams
	pkt    *frame.Packet
	lost   uint64
	stall  bool
}

// whipSink queues what the sessions deliver for the source's goroutine; it
// never blocks the session.
type whipSink struct {
	wake chan struct{}

	mu      sync.Mutex
	items   []whipItem
	packets int
	skip    bool // packets were dropped: wait for a key frame
	dropped uint64
}

func (q *whipSink) push(it whipItem) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *whipSink) take(dst []whipItem) []whipItem {
	q.mu.Lock()
	dst = append(dst, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	q.packets = 0
	q.mu.Unlock()
	return dst
}

// Params implements whip.Sink.
func (q *whipSink) Params(p frame.CodecParams) {
	q.mu.Lock()
	q.skip = false
	q.mu.Unlock()
	q.push(whipItem{params: &p})
}

// Packet implements whip.Sink.
func (q *whipSink) Packet(p *frame.Packet) {
	q.mu.Lock()
	if q.skip && !p.KeyFrame || q.packets >= whipQueue {
		q.skip = true
		q.dropped++
		q.mu.Unlock()
		return
	}
	q.skip = false
	q.packets++
	q.mu.Unlock()
	cp := *p
	cp.Data = append([]byte(nil), p.Data...)
	q.push(whipItem{pkt: &cp})
}

// Lost implements whip.Sink.
func (q *whipSink) Lost(n uint64) { q.push(whipItem{lost: n}) }

// Stalled implements whip.Sink.
func (q *whipSink) Stalled() { q.push(whipItem{stall: true}) }
