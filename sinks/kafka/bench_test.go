package kafka

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-video/vigil/frame"
)

// BenchmarkKafkaSink measures results written through the sink to the
// in-process broker and acknowledged (Close waits for the last batch), with
// the default zstd compression and a typical result: two detections, one
// with a mask and keypoints, track events every 10th frame. Every message
// goes through the spool first (write-ahead, the default).
func BenchmarkKafkaSink(b *testing.B) { benchmarkSink(b, false) }

// BenchmarkKafkaSinkNoWriteAhead is BenchmarkKafkaSink with messages held
// in memory, as with write_ahead: false.
func BenchmarkKafkaSinkNoWriteAhead(b *testing.B) { benchmarkSink(b, true) }

func benchmarkSink(b *testing.B, noWriteAhead bool) {
	c := startBroker(b, "127.0.0.1:0")
	addr := c.ListenAddrs()[0]
	s, err := Open(Options{Brokers: []string{addr}, SpoolDir: b.TempDir(), Logger: testLogger(b), NoWriteAhead: noWriteAhead}, nil)
	if err != nil {
		b.Fatal(err)
	}
	streams := []string{"cam-0", "cam-1", "cam-2", "cam-3"}
	results := make([]*frame.Result, 64)
	for i := range results {
		results[i] = testResult(streams[i%len(streams)], uint64(i+1))
	}
	ctx := context.Background()
	var peak uint64
	var peakBuf float64
	var ms runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		if err := s.Write(ctx, results[n%len(results)]); err != nil {
			b.Fatal(err)
		}
		n++
		if n%8192 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			peakBuf = max(peakBuf, testutil.ToFloat64(s.m.bufferBytes))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	delivered := testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeDelivered))
	if int(delivered) != n {
		b.Fatalf("delivered %v of %d", delivered, n)
	}
	if sp := testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeSpooled)); sp > 0 && noWriteAhead {
		b.Logf("%v messages went through the spool", sp)
	}
	st := s.w.Stats()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "results/s")
	if st.Messages > 0 {
		b.ReportMetric(float64(st.Bytes)/float64(st.Messages), "wire-bytes/msg")
	}
	msgs, _ := encodeResult(results[1], testDetections, testTracks)
	b.ReportMetric(float64(len(msgs[0].Value)), "json-bytes/msg")
	// The heap includes the in-process broker, which keeps every message.
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(peakBuf/(1<<20), "peak-buffer-MiB")
}

// BenchmarkKafkaSinkBrokerDown measures Write while no broker answers:
// every result goes to the spool (fsync batch), so this is the rate the
// sink absorbs during an outage.
func BenchmarkKafkaSinkBrokerDown(b *testing.B) { benchmarkBrokerDown(b, false) }

// BenchmarkKafkaSinkBrokerDownNoWriteAhead is BenchmarkKafkaSinkBrokerDown
// as with write_ahead: false (the spool is written in 256 KiB blocks).
func BenchmarkKafkaSinkBrokerDownNoWriteAhead(b *testing.B) { benchmarkBrokerDown(b, true) }

func benchmarkBrokerDown(b *testing.B, noWriteAhead bool) {
	s, err := Open(Options{
		Brokers: []string{"127.0.0.1:1"}, SpoolDir: b.TempDir(), Logger: testLogger(b),
		SpoolMaxBytes: 256 << 20, BufferBytes: 1 << 20, RetryMax: time.Minute, NoWriteAhead: noWriteAhead,
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	results := make([]*frame.Result, 64)
	for i := range results {
		results[i] = testResult("cam", uint64(i+1))
	}
	ctx := context.Background()
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		if err := s.Write(ctx, results[n%len(results)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "results/s")
	spooled := testutil.ToFloat64(s.m.messages.WithLabelValues(testDetections, outcomeSpooled))
	b.ReportMetric(spooled/float64(n), "spooled-fraction")
}
