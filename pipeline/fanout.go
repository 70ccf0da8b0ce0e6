package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/sinks"
)

// NamedSink is a sink with the name its metrics and logs use.
type NamedSink struct {
	Name string
	Sink sinks.Sink
}

// flusher is implemented by sinks that buffer; the fan-out flushes them when
// their queue runs empty, so lines appear promptly without a syscall per frame.
type flusher interface{ Flush() error }

// fanout delivers every result to every sink. Each sink has its own goroutine
// and bounded queue; a full queue drops its oldest result (and counts it)
// unless block is set.
type fanout struct {
	runners []*sinkRunner
	block   bool
	wg      sync.WaitGroup
}

type sinkRunner struct {
	NamedSink
	ch  chan *frame.Result
	m   *metrics
	log *slog.Logger
}

const sinkQueueLen = 256

func newFanout(ss []NamedSink, block bool, m *metrics, log *slog.Logger) *fanout {
	f := &fanout{block: block}
	for _, s := range ss {
		f.runners = append(f.runners, &sinkRunner{NamedSink: s, ch: make(chan *frame.Result, sinkQueueLen), m: m, log: log.With("sink", s.Name)})
	}
	return f
}

// start runs each sink's goroutine. Writes use work; Close uses the context
// that closeCtx returns once the queue is drained.
func (f *fanout) start(work context.Context, closeCtx func() context.Context) {
	for _, r := range f.runners {
		f.wg.Go(func() { r.run(work, closeCtx) })
	}
}

// publish hands r to every sink. Sinks may keep r, so it must not be changed
// afterwards.
func (f *fanout) publish(ctx context.Context, res *frame.Result) error {
	for _, r := range f.runners {
		if f.block {
			select {
			case r.ch <- res:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		r.offer(res)
	}
	return nil
}

// offer queues res, dropping the oldest queued result while the queue is full.
// Each pass either queues res or removes one result, so it ends.
func (r *sinkRunner) offer(res *frame.Result) {
	for {
		select {
		case r.ch <- res:
			return
		default:
		}
		select {
		case <-r.ch:
			r.m.sinkMessages.WithLabelValues(r.Name, "dropped").Inc()
		default:
		}
	}
}

// close ends intake and waits for every sink to drain and close.
func (f *fanout) close() {
	for _, r := range f.runners {
		close(r.ch)
	}
	f.wg.Wait()
}

func (r *sinkRunner) run(work context.Context, closeCtx func() context.Context) {
	errLog := newErrorDumper(r.log, "sink write errors")
	ok := r.m.sinkMessages.WithLabelValues(r.Name, "ok")
	failed := r.m.sinkMessages.WithLabelValues(r.Name, "error")
	lat := r.m.latency.WithLabelValues(stageSink)
	writeTime := r.m.sinkWrite.WithLabelValues(r.Name)
	fl, canFlush := r.Sink.(flusher)
	for res := range r.ch {
		start := time.Now()
		err := r.Sink.Write(work, res)
		writeTime.Observe(time.Since(start).Seconds())
		if err != nil {
			failed.Inc()
			errLog.add(err)
		} else {
			ok.Inc()
			if !res.Captured.IsZero() {
				lat.Observe(time.Since(res.Captured).Seconds())
			}
		}
		if canFlush && len(r.ch) == 0 {
			if err := fl.Flush(); err != nil {
				errLog.add(err)
			}
		}
	}
	errLog.flush()
	if err := r.Sink.Close(closeCtx()); err != nil {
		r.log.Error("closing sink", "err", err)
	}
}
