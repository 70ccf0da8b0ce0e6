package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/sinks"
	kafkasink "github.com/vigil-video/vigil/sinks/kafka"
)

// kafkaWithResults starts an in-process broker and sends n results of each
// stream through the real Kafka sink; it returns the broker address.
func kafkaWithResults(t *testing.T, streams []string, n int) string {
	t.Helper()
	c, err := kafkasink.StartDevBroker("127.0.0.1:0", []string{"vigil.detections", "vigil.tracks"})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	s, err := kafkasink.Open(kafkasink.Options{Brokers: []string{addr}, SpoolDir: t.TempDir(), BatchTimeout: time.Millisecond}, nil)
	require.NoError(t, err)
	ctx := context.Background()
	for i := range uint64(n) {
		for _, st := range streams {
			r := &frame.Result{
				StreamID: st, Seq: i, PTS: time.Duration(i) * time.Second / 5, Captured: time.Now(), Width: 320, Height: 240,
				Model: "m", ModelVersion: "1",
				Detections: []frame.Detection{{Box: frame.Box{X1: 1, Y1: 2, X2: 3, Y2: 4}, Class: 0, Label: "person", Score: 0.9, TrackID: 1}},
			}
			if i == 0 {
				r.Events = []frame.TrackEvent{{Kind: "started", TrackID: 1, Label: "person", Frames: 3, MeanScore: 0.9}}
			}
			require.NoError(t, s.Write(ctx, r))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(cctx))
	return addr
}

func consumeLines(t *testing.T, args ...string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := runConsume(ctx, args, &out, &errOut)
	require.NoError(t, ctx.Err(), "consume timed out; stderr: %s", errOut.String())
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), err
}

func TestConsumeValidatesSinkOutput(t *testing.T) {
	streams := []string{"a", "b"}
	addr := kafkaWithResults(t, streams, 5)
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"all partitions", nil},
		{"group", []string{"--group", "test-consume"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := consumeLines(t, append([]string{"--brokers", addr, "--topic", "vigil.detections", "--validate", "--count", "10", "--from-beginning"}, tc.extra...)...)
			require.NoError(t, err)
			require.Len(t, lines, 10)
			seen := map[string]bool{}
			for _, l := range lines {
				var m sinks.Message
				require.NoError(t, json.Unmarshal([]byte(l), &m), l)
				seen[fmt.Sprintf("%s/%d", m.Stream, m.Seq)] = true
			}
			require.Len(t, seen, 10)
		})
	}
	lines, err := consumeLines(t, "--brokers", addr, "--topic", "vigil.tracks", "--validate", "--count", "2", "--from-beginning")
	require.NoError(t, err)
	require.Len(t, lines, 2)
	var tm kafkasink.TrackMessage
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &tm))
	require.Equal(t, "started", tm.Kind)
}

func TestConsumeStopsAtInvalidMessage(t *testing.T) {
	addr := kafkaWithResults(t, []string{"a"}, 1)
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "vigil.detections", BatchTimeout: time.Millisecond}
	defer w.Close()
	bad := `{"schema":"2","stream":"a","seq":1,"pts":0,"captured":"2026-11-29T09:00:00Z","width":1,"height":1,` +
		`"detections":[{"box":[1,2,3,4],"class_id":0,"score":1.7}]}`
	require.NoError(t, w.WriteMessages(context.Background(), kafkago.Message{Key: []byte("a"), Value: []byte(bad)}))

	lines, err := consumeLines(t, "--brokers", addr, "--topic", "vigil.detections", "--validate", "--count", "5", "--from-beginning")
	require.Error(t, err)
	require.Contains(t, err.Error(), "/detections/0/score")
	require.Len(t, lines, 1, "the valid message before it is printed")

	// Without --validate it is printed like any other.
	lines, err = consumeLines(t, "--brokers", addr, "--topic", "vigil.detections", "--count", "2", "--from-beginning")
	require.NoError(t, err)
	require.Len(t, lines, 2)

	// The process exits non-zero and names the field.
	res := vigil(t, 30*time.Second, "consume", "--brokers", addr, "--topic", "vigil.detections", "--validate", "--count", "2", "--from-beginning")
	require.Equal(t, 1, res.code, res.stderr)
	require.Contains(t, res.stderr, "/detections/0/score")
}

func TestConsumeUsage(t *testing.T) {
	res := vigil(t, 30*time.Second, "consume", "--topic", "vigil.detections")
	require.Equal(t, 2, res.code)
	require.Contains(t, res.stderr, "--brokers is required")
	res = vigil(t, 30*time.Second, "consume", "--brokers", "127.0.0.1:1", "--topic", "x", "--schema", "weather")
	require.Equal(t, 2, res.code)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestServeKafkaDevBroker runs `vigil serve --dev-broker=ADDR` on a small
// synthetic stream and reads its results with `vigil consume --validate`.
func TestServeKafkaDevBroker(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
streams:
  - id: synth
    url: "synth://?objects=2&w=160&h=120&fps=10&seed=1"
    infer_fps: 5
sinks:
  kafka:
    spool_dir: `+filepath.Join(dir, "spool")+`
`), 0o644))
	addr := freePort(t)
	cmd, _, stderr := startServe(t, "--listen", "127.0.0.1:0", "--config", cfg, "--dev-broker="+addr)
	res := vigil(t, 60*time.Second, "consume", "--brokers", addr, "--topic", "vigil.detections", "--validate", "--count", "3", "--from-beginning")
	require.Equal(t, 0, res.code, "consume: %s\nserve: %s", res.stderr, stderr.String())
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 3)
	var m sinks.Message
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
	require.Equal(t, "synth", m.Stream)
	require.Contains(t, stderr.String(), "DEVELOPMENT KAFKA BROKER")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM; stderr:\n%s", stderr.String())
	}
}

func FuzzConsumeFormat(f *testing.F) {
	f.Add([]byte(`{"schema":"2","stream":"a","seq":1,"pts":0,"captured":"2026-11-29T09:00:00Z","width":1,"height":1,"detections":[]}`))
	f.Add([]byte(`{"kind":"started"}`))
	f.Add([]byte("not json\n"))
	f.Add([]byte(`[1, {"a": null}]`))
	f.Fuzz(func(t *testing.T, value []byte) {
		for _, validate := range []bool{false, true} {
			c := &consumer{kind: kafkasink.KindDetections, validate: validate}
			line, err := c.format(nil, value)
			if err != nil {
				require.True(t, validate)
				continue
			}
			require.True(t, bytes.HasSuffix(line, []byte("\n")))
			require.Equal(t, 1, bytes.Count(line, []byte("\n")), "one line")
			require.True(t, json.Valid(line), "%q", line)
		}
	})
}
