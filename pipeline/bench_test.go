package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-video/vigil/frame"
)

// BenchmarkFrameQueueLive measures the "latest frame wins" hand-off when the
// consumer is slower than the producer (every put replaces a waiting frame).
func BenchmarkFrameQueueLive(b *testing.B) {
	q := newFrameQueue(true)
	var st streamStats
	f := &frame.Frame{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = q.put(ctx, f, &st)
	}
}

// BenchmarkSampler measures the per-frame sampling decision.
func BenchmarkSampler(b *testing.B) {
	s := sampler{interval: intervalOf(5)}
	pts := time.Duration(0)
	b.ReportAllocs()
	for b.Loop() {
		s.take(pts)
		pts += 40 * time.Millisecond
	}
}

type nopSink struct{}

func (nopSink) Write(context.Context, *frame.Result) error { return nil }
func (nopSink) Close(context.Context) error                { return nil }

// BenchmarkFanoutPublish measures handing one result to two sinks.
func BenchmarkFanoutPublish(b *testing.B) {
	m := newMetrics(nil, nil)
	f := newFanout([]NamedSink{{Name: "a", Sink: nopSink{}}, {Name: "b", Sink: nopSink{}}}, true, m, quietLogger())
	ctx := context.Background()
	f.start(ctx, func() context.Context { return ctx })
	r := &frame.Result{StreamID: "s"}
	b.ReportAllocs()
	for b.Loop() {
		_ = f.publish(ctx, r)
	}
	f.close()
}
