// Package ingest turns cameras, files and generated scenes into packets and
// frames. Each kind of source registers itself under a URL scheme (file://,
// synth://, later rtsp:// and whip://); Open picks the source for a URL.
//
// Data enters from the network, a file or a generator and leaves through the
// Output a Source is run with: compressed access units (frame.Packet) for
// coded video, decoded frames (frame.Frame) for generated scenes.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-video/vigil/frame"
)

// ErrUnknownScheme is returned by Open for a URL whose scheme has no source.
var ErrUnknownScheme = errors.New("unknown URL scheme")

// Output receives what a Source produces. Its methods are called from the
// source's own goroutine, one at a time. For a live source they must not block
// for long (a slow consumer drops and counts); for a non-live source they may
// block to apply back-pressure.
type Output interface {
	// Params announces the codec of the packets that follow; it is called
	// before the first packet and again whenever the codec changes.
	Params(p frame.CodecParams) error
	// Packet delivers one compressed access unit. The source may reuse
	// p.Data after Packet returns.
	Packet(p *frame.Packet) error
	// Frame delivers one decoded picture, for sources that have no compressed
	// form. Ownership passes to the Output, which must Release it.
	Frame(f *frame.Frame) error
	// Count records n events of a kind the source observed (a stall, lost
	// packets); the pipeline turns them into per-stream counters.
	Count(e Event, n uint64)
}

// Event is a kind of source event that Output.Count records.
type Event uint8

// Source events.
const (
	// EventStall is a live source that received nothing for its read
	// timeout and gave up, so that the stream reconnects.
	EventStall Event = iota
	// EventPacketsLost counts RTP packets missing from the sequence numbers.
	EventPacketsLost
)

// Source is one stream's producer.
type Source interface {
	// Run produces data until ctx is cancelled, the source ends, or an Output
	// call returns an error. A finite source that reached its end returns
	// io.EOF.
	Run(ctx context.Context, out Output) error
	// Live reports whether the source runs on its own clock (a camera, a
	// real-time paced file): consumers then drop rather than block.
	Live() bool
}

// Options are a stream's settings that a source may use besides its URL.
// Query parameters in the URL, where a source defines them, override them.
type Options struct {
	// Realtime paces a file source at its timestamps; otherwise it is read
	// as fast as the consumer takes it.
	Realtime bool
	// Loop starts a file source over at its end.
	Loop bool
	// Transport is the RTSP media transport: "tcp", "udp" or "auto" (the
	// default when empty).
	Transport string
	// ReadTimeout is how long a live source may receive nothing before it
	// gives up with a stall error, so that the stream reconnects. 0 means
	// 10 seconds.
	ReadTimeout time.Duration
	// Token is the Bearer token a WHIP publisher must present; empty
	// accepts any publisher.
	Token string
}

// KeyFrameRequester is implemented by sources that can ask their sender for
// a key frame (WebRTC's RTCP PLI). The pipeline calls RequestKeyFrame when
// its decoder breaks, so that decoding resumes without waiting for the next
// scheduled key frame. It must not block and is safe to call often: the
// source rate-limits the requests.
type KeyFrameRequester interface {
	RequestKeyFrame()
}

// Opener makes a Source for a stream ID, a parsed URL and the stream's
// options.
type Opener func(streamID string, u *url.URL, opts Options) (Source, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes Open use fn for URLs of the given scheme. It panics on a
// duplicate scheme, like http.Handle.
func Register(scheme string, fn Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	scheme = strings.ToLower(scheme)
	if _, dup := registry[scheme]; dup {
		panic("ingest: scheme registered twice: " + scheme)
	}
	registry[scheme] = fn
}

// Schemes returns the registered URL schemes in sorted order.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Open parses rawURL and returns the Source registered for its scheme.
func Open(streamID, rawURL string, opts Options) (Source, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing URL of stream %s: %w", streamID, err)
	}
	registryMu.RLock()
	fn, ok := registry[strings.ToLower(u.Scheme)]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("stream %s: %w %q (have %s)", streamID, ErrUnknownScheme, u.Scheme, strings.Join(Schemes(), ", "))
	}
	src, err := fn(streamID, u, opts)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", streamID, err)
	}
	return src, nil
}

// Redact returns rawURL with any password replaced, for logs, metrics and the
// API. Unparseable URLs are returned as a fixed placeholder so that nothing
// secret leaks through an error path.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<unparseable URL>"
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
	}
	q := u.Query()
	for k := range q {
		switch strings.ToLower(k) {
		case "token", "password", "pass", "secret", "key":
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if !changed {
		// url.URL.String does not always give back what it parsed
		// ("synth://?x" becomes "synth:?x"): keep the original.
		return rawURL
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// RedactError removes rawURL's credentials from an error message that may
// quote the URL (or its password) verbatim.
func RedactError(msg, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return msg
	}
	msg = strings.ReplaceAll(msg, rawURL, Redact(rawURL))
	if pw, ok := u.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}
