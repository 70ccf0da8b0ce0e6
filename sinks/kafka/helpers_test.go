package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-video/vigil/frame"
)

const (
	testDetections = "vigil.detections"
	testTracks     = "vigil.tracks"
)

// testResult is frame seq of stream with two detections (one with a mask
// and keypoints) and, every 10th frame, a track start and end.
func testResult(stream string, seq uint64) *frame.Result {
	mask := &frame.Mask{Width: 64, Height: 48, Counts: []uint32{100, 20, 200, 40, 2712}}
	r := &frame.Result{
		StreamID: stream, Seq: seq, PTS: time.Duration(seq) * 40 * time.Millisecond,
		Captured: time.Date(2026, 11, 29, 9, 0, 0, int(seq)*1000, time.UTC), Width: 64, Height: 48,
		Model: "yolox_nano", ModelVersion: "3",
		Detections: []frame.Detection{
			{Box: frame.Box{X1: 1, Y1: 2, X2: 30, Y2: 40}, Class: 0, Label: "person", Score: 0.91, TrackID: 7,
				Keypoints: []frame.Keypoint{{X: 3, Y: 4, Score: 0.8}, {X: 5, Y: 6, Score: 0.7}}, Mask: mask},
			{Box: frame.Box{X1: 10, Y1: 12, X2: 20, Y2: 22}, Class: 2, Label: "car", Score: 0.55, TrackID: 9},
		},
	}
	if seq%10 == 0 {
		r.Events = []frame.TrackEvent{
			{Kind: "started", TrackID: seq + 100, Class: 0, Label: "person", First: r.PTS, Last: r.PTS, Frames: 3, MeanScore: 0.8},
			{Kind: "ended", TrackID: seq + 1, Class: 2, Label: "car", First: 0, Last: r.PTS, Frames: 9, MeanScore: 0.6},
		}
	}
	return r
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBroker starts kfake on addr ("127.0.0.1:0" for any port) and stops
// it at the end of the test.
func startBroker(t testing.TB, addr string, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	var c *kfake.Cluster
	var err error
	// The port of a broker just stopped may take a moment to be free.
	for range 50 {
		if c, err = StartDevBroker(addr, []string{testDetections, testTracks}, opts...); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// consumed is what a consumer read from one topic.
type consumed struct {
	mu   sync.Mutex
	msgs []kafkago.Message
}

// readTopic reads topic from the beginning with a consumer group until want
// distinct messages (by message ID) arrived or the timeout passed.
func readTopic(t testing.TB, addr, topic string, want int, timeout time.Duration) []kafkago.Message {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: []string{addr}, Topic: topic, GroupID: fmt.Sprintf("test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano()),
		StartOffset: kafkago.FirstOffset, MaxWait: 100 * time.Millisecond, MinBytes: 1, MaxBytes: 10 << 20,
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 2 * time.Second,
		JoinGroupBackoff: 100 * time.Millisecond, CommitInterval: 0,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// At-least-once delivery repeats messages: read until want distinct
	// message IDs have arrived (or the timeout).
	var out []kafkago.Message
	ids := map[string]bool{}
	for len(ids) < want {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			break
		}
		out = append(out, m)
		ids[header(m, HeaderMessageID)] = true
	}
	return out
}

func header(m kafkago.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// requireAllSeqs checks that the detections hold every seq 0..n-1 of each
// stream at least once, in order per stream apart from repeats.
func requireAllSeqs(t testing.TB, msgs []kafkago.Message, streams []string, n int) {
	t.Helper()
	seen := map[string]map[uint64]int{}
	for _, s := range streams {
		seen[s] = map[uint64]int{}
	}
	for _, m := range msgs {
		id := header(m, HeaderMessageID)
		stream, seqStr, ok := strings.Cut(id, "/")
		require.True(t, ok, "message-id %q", id)
		require.Equal(t, stream, string(m.Key))
		var seq uint64
		_, err := fmt.Sscan(seqStr, &seq)
		require.NoError(t, err)
		seen[stream][seq]++
	}
	for _, s := range streams {
		var missing []uint64
		for i := range uint64(n) {
			if seen[s][i] == 0 {
				missing = append(missing, i)
			}
		}
		require.Empty(t, missing, "stream %s: %d of %d frames missing", s, len(missing), n)
	}
}
