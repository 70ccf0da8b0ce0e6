package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-video/vigil/sinks"
	kafkasink "github.com/vigil-video/vigil/sinks/kafka"
)

// TestKafkaKillWhileBrokerDown is issue 7's last check: the broker goes
// down, `vigil serve` keeps analysing for a few seconds and is killed with
// SIGKILL; the broker comes back (with its earlier messages) and a second
// server on the same spool sends the first one's results. Every frame the
// first server handed to the Kafka sink before the kill must arrive at
// least once, and the spool must drain.
func TestKafkaKillWhileBrokerDown(t *testing.T) {
	dir := t.TempDir()
	addr, data, spool := freePort(t), filepath.Join(dir, "broker"), filepath.Join(dir, "spool")
	topics := []string{"vigil.detections", "vigil.tracks"}
	startBroker := func() *kfake.Cluster {
		t.Helper()
		var c *kfake.Cluster
		var err error
		for range 50 { // the port of a broker just stopped may take a moment
			if c, err = kafkasink.StartDevBroker(addr, topics, kfake.DataDir(data)); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	cfg := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
streams:
  - id: a
    url: "synth://?objects=2&w=64&h=48&fps=30&seed=1"
    infer_fps: 30
  - id: b
    url: "synth://?objects=2&w=64&h=48&fps=30&seed=2"
    infer_fps: 30
sinks:
  kafka:
    enabled: true
    brokers: ["`+addr+`"]
    spool_dir: `+spool+`
    batch_timeout: 10ms
`), 0o644))
	streamIDs := []string{"a", "b"}

	broker := startBroker()
	cmd, url, stderr := startServe(t, "--listen", "127.0.0.1:0", "--config", cfg)
	require.Eventually(t, func() bool {
		return killMetric(t, url, `vigil_sinks_kafka_messages_total{outcome="delivered",topic="vigil.detections"}`) >= 20
	}, 20*time.Second, 50*time.Millisecond, "nothing delivered; stderr:\n%s", stderr)

	broker.Close()
	time.Sleep(3 * time.Second)
	require.Positive(t, killMetric(t, url, "vigil_sinks_kafka_spool_messages"), "nothing waits in the spool with the broker down")
	// The frames analysed so far, and then the sink has taken all of them:
	// each is in the spool before the kill.
	analysed := killStreams(t, url)
	require.Eventually(t, func() bool {
		return killMetric(t, url, `vigil_sink_messages_total{result="ok",sink="kafka"}`) >= float64(analysed["a"].FramesAnalyzed+analysed["b"].FramesAnalyzed)
	}, 5*time.Second, 5*time.Millisecond)
	killedAt := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	t.Logf("killed with frames analysed: a %d, b %d", analysed["a"].FramesAnalyzed, analysed["b"].FramesAnalyzed)

	broker = startBroker()
	cmd, url, stderr = startServe(t, "--listen", "127.0.0.1:0", "--config", cfg)
	backlog := killMetric(t, url, "vigil_sinks_kafka_spool_messages")
	// The spool is a FIFO: once it holds nothing unacknowledged, the first
	// run's backlog, which precedes the new messages, has been delivered.
	require.Eventually(t, func() bool { return killMetric(t, url, "vigil_sinks_kafka_spool_bytes") == 0 },
		20*time.Second, 10*time.Millisecond, "spool not drained; stderr:\n%s", stderr)
	require.Eventually(t, func() bool {
		s := killStreams(t, url)
		return s["a"].FramesAnalyzed >= 10 && s["b"].FramesAnalyzed >= 10
	}, 10*time.Second, 50*time.Millisecond)
	second := killStreams(t, url)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM; stderr:\n%s", stderr)
	}
	left, err := filepath.Glob(filepath.Join(spool, "*.seg"))
	require.NoError(t, err)
	require.Empty(t, left, "spool segments left after a clean stop")
	t.Logf("second run: %.0f messages replayed from the spool; frames analysed: a %d, b %d",
		backlog, second["a"].FramesAnalyzed, second["b"].FramesAnalyzed)

	// Each run numbers a stream's frames from 0, so the runs are told apart
	// by capture time: the first run captured everything before the kill,
	// the second everything after. A frame dropped before analysis (the
	// live "latest frame wins" slot; rare, but it happens under -race)
	// leaves a hole in the seqs, so per run and stream two things must
	// hold: at least as many distinct seqs as frames analysed (at the kill
	// for run 1, at SIGTERM for run 2), which misses any lost tail; and no
	// more holes below the highest seq than frames dropped, which misses
	// any lost middle.
	want := map[string]killStream{}
	for _, id := range streamIDs {
		want["1/"+id] = analysed[id]
		want["2/"+id] = second[id]
	}
	seen, total := killReadDetections(t, addr, killedAt, want)
	for key, st := range want {
		var top uint64
		for seq := range seen[key] {
			top = max(top, seq)
		}
		var holes []uint64
		for seq := range top {
			if !seen[key][seq] {
				holes = append(holes, seq)
			}
		}
		require.GreaterOrEqual(t, len(seen[key]), int(st.FramesAnalyzed), "run/stream %s: frames missing", key)
		require.LessOrEqual(t, len(holes), int(st.FramesDropped), "run/stream %s: seqs %v missing with %d frames dropped before analysis", key, holes, st.FramesDropped)
		t.Logf("run/stream %s: %d frames analysed, %d distinct seqs up to %d, %d holes, %d dropped before analysis",
			key, st.FramesAnalyzed, len(seen[key]), top, len(holes), st.FramesDropped)
	}
	t.Logf("%d detections messages read", total)
}

// killStream is the part of /api/streams the kill test reads.
type killStream struct {
	FramesAnalyzed uint64 `json:"frames_analyzed"`
	FramesDropped  uint64 `json:"frames_dropped"`
}

func killStreams(t *testing.T, url string) map[string]killStream {
	t.Helper()
	var list []struct {
		ID string `json:"id"`
		killStream
	}
	require.NoError(t, json.Unmarshal(killGet(t, url+"/api/streams"), &list))
	out := map[string]killStream{}
	for _, s := range list {
		out[s.ID] = s.killStream
	}
	return out
}

// killMetric reads one sample from /metrics; series is the name with its
// labels as Prometheus writes them. A missing series is -1.
func killMetric(t *testing.T, url, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindSubmatch(killGet(t, url+"/metrics"))
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

func killGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, b)
	return b
}

// killReadDetections reads the detections topic from the beginning until
// each "run/stream" of want has as many distinct seqs as it analysed
// frames, or 20 s passed. A message captured before killedAt is run 1's.
func killReadDetections(t *testing.T, addr string, killedAt time.Time, want map[string]killStream) (map[string]map[uint64]bool, int) {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: []string{addr}, Topic: "vigil.detections", GroupID: fmt.Sprintf("kill-test-%d", time.Now().UnixNano()),
		StartOffset: kafkago.FirstOffset, MaxWait: 100 * time.Millisecond, MinBytes: 1, MaxBytes: 10 << 20,
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 2 * time.Second,
		JoinGroupBackoff: 100 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := map[string]map[uint64]bool{}
	for key := range want {
		seen[key] = map[uint64]bool{}
	}
	complete := func() bool {
		for key, st := range want {
			if uint64(len(seen[key])) < st.FramesAnalyzed {
				return false
			}
		}
		return true
	}
	total := 0
	for !complete() {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			break
		}
		total++
		var msg sinks.Message
		require.NoError(t, json.Unmarshal(m.Value, &msg))
		run := "2"
		if msg.Captured.Before(killedAt) {
			run = "1"
		}
		if s, ok := seen[run+"/"+msg.Stream]; ok {
			s[msg.Seq] = true
		}
	}
	return seen, total
}
