package kafka

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// outageDelay is how long the broker stays down: the 20 s, or 3 s
// with -short.
func outageDelay() time.Duration {
	if testing.Short() {
		return 3 * time.Second
	}
	return 20 * time.Second
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// producer writes results of streams at a steady rate from one goroutine,
// as the pipeline does, until stopped; next is the next seq of each stream.
type producer struct {
	t       *testing.T
	streams []string
	next    uint64
	stop    chan struct{}
	wg      sync.WaitGroup
}

func (p *producer) start(s *Sink) {
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			for _, st := range p.streams {
				if err := s.Write(context.Background(), testResult(st, p.next)); err != nil {
					p.t.Errorf("write: %v", err)
					return
				}
			}
			p.next++
		}
	}()
}

func (p *producer) halt() {
	close(p.stop)
	p.wg.Wait()
}

func outageOptions(t *testing.T, addr, spoolDir string) Options {
	return Options{
		Brokers: []string{addr}, SpoolDir: spoolDir, Logger: testLogger(t),
		BatchTimeout: 10 * time.Millisecond, SendTimeout: 2 * time.Second, RetryMax: 500 * time.Millisecond,
	}
}

func waitSpoolEmpty(t *testing.T, s *Sink, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.m.spoolMsgs) == 0 && testutil.ToFloat64(s.m.spoolBytes) == 0 },
		timeout, 50*time.Millisecond, "spool not drained: %v messages", testutil.ToFloat64(s.m.spoolMsgs))
}

func requireNoSegments(t *testing.T, dir string) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	require.NoError(t, err)
	require.Empty(t, left)
}

// TestKafkaOutageBrokerRestart stops the broker mid-run and starts a new one
// on the same address (with the old one's data) after outageDelay.
func TestKafkaOutageBrokerRestart(t *testing.T) {
	t.Parallel()
	addr, data, spoolDir := freeAddr(t), t.TempDir(), t.TempDir()
	c := startBroker(t, addr, kfake.DataDir(data))
	s, err := Open(outageOptions(t, addr, spoolDir), nil)
	require.NoError(t, err)
	p := &producer{t: t, streams: []string{"a", "b", "c"}}
	p.start(s)

	time.Sleep(500 * time.Millisecond)
	c.Close()
	start := time.Now()
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.m.spoolMsgs) > 0 }, 10*time.Second, 20*time.Millisecond,
		"nothing spooled while the broker is down")
	time.Sleep(outageDelay() - time.Since(start))
	spooled := testutil.ToFloat64(s.m.spoolMsgs)
	startBroker(t, addr, kfake.DataDir(data))
	time.Sleep(300 * time.Millisecond)
	p.halt()
	waitSpoolEmpty(t, s, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
	requireNoSegments(t, spoolDir)
	t.Logf("outage %v: %d frames per stream, %.0f messages spooled at the peak", outageDelay(), p.next, spooled)

	n := int(p.next)
	msgs := readTopic(t, addr, testDetections, n*len(p.streams), 30*time.Second)
	requireAllSeqs(t, msgs, p.streams, n)
	t.Logf("%d detections messages for %d frames (%d repeats)", len(msgs), n*len(p.streams), len(msgs)-n*len(p.streams))
	require.Positive(t, testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeSpooled)))
	require.Zero(t, testutil.ToFloat64(s.m.spoolDropped))
}

// TestKafkaOutageSinkRestart closes the sink while the broker is down (a
// Vigil restart) and opens a new one on the same spool after the broker is
// back.
func TestKafkaOutageSinkRestart(t *testing.T) {
	t.Parallel()
	addr, data, spoolDir := freeAddr(t), t.TempDir(), t.TempDir()
	c := startBroker(t, addr, kfake.DataDir(data))
	s, err := Open(outageOptions(t, addr, spoolDir), nil)
	require.NoError(t, err)
	p := &producer{t: t, streams: []string{"a", "b"}}
	p.start(s)

	time.Sleep(500 * time.Millisecond)
	c.Close()
	start := time.Now()
	time.Sleep(time.Second)
	p.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
	left := testutil.ToFloat64(s.m.spoolMsgs)
	require.Positive(t, left, "the closed sink left its messages in the spool")

	time.Sleep(outageDelay() - time.Since(start))
	startBroker(t, addr, kfake.DataDir(data))
	s, err = Open(outageOptions(t, addr, spoolDir), nil)
	require.NoError(t, err)
	require.Equal(t, left, testutil.ToFloat64(s.m.spoolMsgs), "the new sink found the spool")
	p.start(s)
	time.Sleep(300 * time.Millisecond)
	p.halt()
	waitSpoolEmpty(t, s, 30*time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
	requireNoSegments(t, spoolDir)
	t.Logf("outage %v: %d frames per stream, %.0f messages left in the spool over the restart", outageDelay(), p.next, left)

	n := int(p.next)
	msgs := readTopic(t, addr, testDetections, n*len(p.streams), 30*time.Second)
	requireAllSeqs(t, msgs, p.streams, n)
	trks := readTopic(t, addr, testTracks, (n+9)/10*2*len(p.streams), 30*time.Second)
	require.GreaterOrEqual(t, len(trks), (n+9)/10*2*len(p.streams))
}

// TestKafkaBrokerDownSpoolFullAndDamagedTail writes to a broker that never
// answers: Write stays fast, the small spool fills and drops the oldest
// (counted); then a crash is simulated by damaging the spool's last record,
// and a new sink with a broker up delivers the rest, counting the damage.
func TestKafkaBrokerDownSpoolFullAndDamagedTail(t *testing.T) {
	t.Parallel()
	addr, spoolDir := freeAddr(t), t.TempDir()
	o := outageOptions(t, addr, spoolDir)
	o.SpoolMaxBytes = 256 << 10
	o.SpoolFsync = FsyncAlways
	s, err := Open(o, nil)
	require.NoError(t, err)
	ctx := context.Background()
	const n = 1500
	var slowest time.Duration
	for i := range uint64(n) {
		start := time.Now()
		require.NoError(t, s.Write(ctx, testResult("a", i)))
		slowest = max(slowest, time.Since(start))
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond) // let the first writes fail
		}
	}
	require.Less(t, slowest, 500*time.Millisecond, "Write blocked on the dead broker")
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, s.Close(cctx))
	dropped := testutil.ToFloat64(s.m.spoolDropped)
	require.Positive(t, dropped, "the spool bound was hit")
	require.Equal(t, dropped, testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeDropped))+
		testutil.ToFloat64(s.m.messages.WithLabelValues(testTracks, outcomeDropped)))
	left := testutil.ToFloat64(s.m.spoolMsgs)
	require.LessOrEqual(t, testutil.ToFloat64(s.m.spoolBytes), float64(o.SpoolMaxBytes))
	t.Logf("slowest Write %v; %.0f dropped, %.0f left in the spool", slowest, dropped, left)

	// Damage the newest record, as a crash mid-write would.
	segs, err := filepath.Glob(filepath.Join(spoolDir, "*"+segmentSuffix))
	require.NoError(t, err)
	last := segs[len(segs)-1]
	st, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, st.Size()-5))

	startBroker(t, addr)
	s, err = Open(o, nil)
	require.NoError(t, err)
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.errors.WithLabelValues(reasonSpoolCorrupt)))
	require.Equal(t, left-1, testutil.ToFloat64(s.m.spoolMsgs))
	waitSpoolEmpty(t, s, 20*time.Second)
	require.NoError(t, s.Close(cctx))
	requireNoSegments(t, spoolDir)
	sent := testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeDelivered)) +
		testutil.ToFloat64(s.m.messages.WithLabelValues(testTracks, outcomeDelivered))
	require.Equal(t, left-1, sent)

	// What arrived is the newest frames, in order, without the damaged
	// last one.
	dets := int(testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeDelivered)))
	msgs := readTopic(t, addr, testDetections, dets, 10*time.Second)
	require.Len(t, msgs, dets)
	var seqs []uint64
	for _, m := range msgs {
		var seq uint64
		_, err := fmt.Sscanf(header(m, HeaderMessageID), "a/%d", &seq)
		require.NoError(t, err)
		seqs = append(seqs, seq)
	}
	require.True(t, slices.IsSorted(seqs), "in order")
	require.Equal(t, uint64(n-2), seqs[len(seqs)-1])
	require.Equal(t, uint64(n-1-dets), seqs[0], "contiguous newest frames")
}
