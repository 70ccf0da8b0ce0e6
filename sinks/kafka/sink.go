// Package kafka is Vigil's Kafka sink. Each analysed frame becomes one JSON
// message (sinks.Message) on the detections topic and each track event one
// message (TrackMessage) on the tracks topic, keyed by stream ID so a
// stream's messages stay in order on one partition; headers carry the
// content type, schema version and a message ID for de-duplication. The
// JSON Schemas of both topics are embedded (Schema, Validate).
//
// Results enter through Write, from the pipeline's sink goroutine, and go
// to one router goroutine that owns all state. By default it is a
// write-ahead log: it appends every message to an on-disk spool
// (append-only segments of CRC-32C-checked records, bounded by
// SpoolMaxBytes, oldest dropped first) and hands it to the OS before Write
// returns, reads batches back from the spool's unacknowledged head and
// hands one at a time to a producer goroutine that writes it with
// kafka-go, acknowledged by all in-sync replicas; only then does the
// spool's acknowledged offset move. So a process killed at any point
// loses nothing: Open replays the unacknowledged tail, and messages
// acknowledged less than a second before the kill (the ack file is
// rewritten at most once a second) are sent again. With NoWriteAhead the
// router batches messages in memory (bounded by BufferBytes) and they go
// to the spool only when a write fails, memory is full or the sink closes.
// Either way the spool is replayed in order once the brokers answer
// again, also after a restart. Delivery is at least once.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/sinks"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("kafka sink closed")

// Options configures a Sink. Zero fields take the defaults given.
type Options struct {
	// Brokers are the bootstrap brokers, host:port each. Required.
	Brokers []string
	// DetectionsTopic defaults to "vigil.detections".
	DetectionsTopic string
	// TracksTopic defaults to "vigil.tracks".
	TracksTopic string
	// Compression is zstd, gzip, snappy, lz4 or none. It defaults to zstd.
	Compression string
	// SpoolDir holds the spool. Required.
	SpoolDir string
	// SpoolMaxBytes bounds the spool. It defaults to 1 GiB.
	SpoolMaxBytes int64
	// SpoolFsync is FsyncAlways, FsyncBatch (at most once a second) or
	// FsyncNever. It defaults to FsyncBatch.
	SpoolFsync string
	// BatchMessages caps the messages of one produce call. It defaults to
	// 1000.
	BatchMessages int
	// BatchBytes caps one produce call in bytes; a larger message is
	// dropped. It defaults to 1 MiB.
	BatchBytes int
	// BatchTimeout is how long a partial batch waits for more messages.
	// It defaults to 50ms; negative means no wait.
	BatchTimeout time.Duration
	// BufferBytes bounds the messages waiting in memory with NoWriteAhead;
	// past it they go to the spool. It defaults to 32 MiB.
	BufferBytes int64
	// NoWriteAhead turns write-ahead off. By default every message is
	// appended to the spool (handed to the OS; fsynced per SpoolFsync)
	// before Write returns and acknowledged there once the brokers
	// acknowledge it, so a killed process loses nothing: the next Open
	// sends the unacknowledged tail again. With NoWriteAhead messages wait
	// in memory and reach the spool only when a write fails, memory is
	// full or the sink closes; a kill loses what memory held.
	NoWriteAhead bool
	// SendTimeout bounds one produce call. It defaults to 10 seconds.
	SendTimeout time.Duration
	// RetryMax is the longest wait between tries while the brokers fail;
	// the wait starts at 100ms and doubles. It defaults to 5 seconds.
	RetryMax time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// OptionsFromConfig maps the config's sinks.kafka section to Options.
func OptionsFromConfig(c config.Kafka) Options {
	return Options{
		Brokers: c.Brokers, DetectionsTopic: c.DetectionsTopic, TracksTopic: c.TracksTopic,
		Compression: c.Compression, SpoolDir: c.SpoolDir, SpoolMaxBytes: int64(c.SpoolMaxMB) << 20,
		SpoolFsync: c.SpoolFsync, BatchMessages: c.BatchMessages, BatchBytes: c.BatchBytes,
		BatchTimeout: time.Duration(c.BatchTimeout), BufferBytes: int64(c.BufferMB) << 20,
		NoWriteAhead: c.WriteAhead != nil && !*c.WriteAhead,
	}
}

func (o *Options) setDefaults() error {
	if len(o.Brokers) == 0 {
		return errors.New("no brokers")
	}
	if o.SpoolDir == "" {
		return errors.New("no spool folder")
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.DetectionsTopic, "vigil.detections")
	def(&o.TracksTopic, "vigil.tracks")
	def(&o.Compression, "zstd")
	def(&o.SpoolFsync, FsyncBatch)
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = 1 << 30
	}
	if o.BatchMessages <= 0 {
		o.BatchMessages = 1000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 1 << 20
	}
	if o.BatchTimeout == 0 {
		o.BatchTimeout = 50 * time.Millisecond
	}
	if o.BufferBytes <= 0 {
		o.BufferBytes = 32 << 20
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 10 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch o.SpoolFsync {
	case FsyncAlways, FsyncBatch, FsyncNever:
	default:
		return fmt.Errorf("spool fsync must be always, batch or never, got %q", o.SpoolFsync)
	}
	return nil
}

func compression(name string) (kafkago.Compression, error) {
	switch name {
	case "zstd":
		return kafkago.Zstd, nil
	case "gzip":
		return kafkago.Gzip, nil
	case "snappy":
		return kafkago.Snappy, nil
	case "lz4":
		return kafkago.Lz4, nil
	case "none":
		return 0, nil
	}
	return 0, fmt.Errorf("compression must be zstd, gzip, snappy, lz4 or none, got %q", name)
}

// Sink produces results to Kafka. Write and Close must be called from one
// goroutine, as the pipeline does; the Sink is not safe for concurrent use.
type Sink struct {
	opts Options
	log  *slog.Logger
	w    *kafkago.Writer
	m    *metrics

	in chan []kafkago.Message
	// accepted answers each Write in write-ahead mode once its messages
	// are in the spool (nil) or could not be written there.
	accepted chan error
	closeReq chan context.Context
	done     chan struct{} // closed when the router has stopped
	closed   bool
	closeErr error // the router's, read after done
}

// batch is one produce call: messages from memory, or records from the
// spool (recs set).
type batch struct {
	msgs []kafkago.Message
	recs []spoolRecord
	err  error
	dur  time.Duration
}

// Open checks o, opens the spool in o.SpoolDir (replaying what an earlier
// run left there) and starts the sink. reg may be nil.
func Open(o Options, reg prometheus.Registerer) (*Sink, error) {
	if err := o.setDefaults(); err != nil {
		return nil, fmt.Errorf("opening Kafka sink: %w", err)
	}
	comp, err := compression(o.Compression)
	if err != nil {
		return nil, fmt.Errorf("opening Kafka sink: %w", err)
	}
	w := &kafkago.Writer{
		Addr: kafkago.TCP(o.Brokers...),
		// Murmur2 is the Java client's partitioner: the same key lands on
		// the same partition as with other producers.
		Balancer:        &kafkago.Murmur2Balancer{},
		MaxAttempts:     3,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		BatchSize:       o.BatchMessages,
		BatchBytes:      int64(o.BatchBytes),
		// The router batches by size and time; kafka-go's own timer would
		// only delay each partition's share of a batch.
		BatchTimeout:           time.Millisecond,
		ReadTimeout:            o.SendTimeout,
		WriteTimeout:           o.SendTimeout,
		RequiredAcks:           kafkago.RequireAll,
		Compression:            comp,
		AllowAutoTopicCreation: true,
		Transport: &kafkago.Transport{
			ClientID:    "vigil",
			DialTimeout: 5 * time.Second,
			MetadataTTL: 30 * time.Second,
		},
	}
	m, err := newMetrics(reg, w, []string{o.DetectionsTopic, o.TracksTopic})
	if err != nil {
		return nil, err
	}
	sp, err := openSpool(o.SpoolDir, o.SpoolMaxBytes, o.SpoolFsync)
	if err != nil {
		return nil, fmt.Errorf("opening Kafka sink: %w", err)
	}
	s := &Sink{
		opts: o, log: o.Logger.With("sink", "kafka"), w: w, m: m,
		in:       make(chan []kafkago.Message, 64),
		accepted: make(chan error, 1),
		closeReq: make(chan context.Context),
		done:     make(chan struct{}),
	}
	m.spoolMax.Set(float64(o.SpoolMaxBytes))
	r := &router{s: s, spool: sp, batches: make(chan *batch, 1), results: make(chan *batch, 1)}
	sp.onDrop = r.dropped
	r.reportCorrupt()
	r.updateSpool()
	if sp.count > 0 {
		s.log.Info("kafka spool holds messages from an earlier run; replaying them", "messages", sp.count, "bytes", sp.bytes, "dir", o.SpoolDir)
	}
	sendCtx, cancelSend := context.WithCancel(context.Background())
	go func() {
		s.produce(sendCtx, r.batches, r.results)
		close(r.results)
	}()
	go func() {
		defer close(s.done)
		s.closeErr = r.run(cancelSend)
	}()
	return s, nil
}

// Write queues r's messages; unless NoWriteAhead, it returns once they are
// in the spool. It blocks only while the router is busy with the spool's
// disk, never on the brokers.
func (s *Sink) Write(ctx context.Context, r *frame.Result) error {
	if s.closed {
		return ErrClosed
	}
	msgs, err := encodeResult(r, s.opts.DetectionsTopic, s.opts.TracksTopic)
	if err != nil {
		s.m.errors.WithLabelValues(reasonEncode).Inc()
		return err
	}
	var tooLarge error
	msgs = slices.DeleteFunc(msgs, func(m kafkago.Message) bool {
		// kafka-go refuses a message larger than a batch; keep a margin
		// for its record overhead.
		if messageSize(&m)+1024 <= s.opts.BatchBytes {
			return false
		}
		s.m.errors.WithLabelValues(reasonTooLarge).Inc()
		s.m.messages.WithLabelValues(m.Topic, outcomeDropped).Inc()
		tooLarge = fmt.Errorf("dropping a %d-byte message of %s frame %d on %s: larger than batch_bytes %d",
			len(m.Value), r.StreamID, r.Seq, m.Topic, s.opts.BatchBytes)
		return true
	})
	if len(msgs) > 0 {
		select {
		case s.in <- msgs:
		case <-ctx.Done():
			return fmt.Errorf("queueing frame %d of %s for Kafka: %w", r.Seq, r.StreamID, ctx.Err())
		case <-s.done:
			return ErrClosed
		}
		if !s.opts.NoWriteAhead {
			// The router answers every batch it takes, so this does not
			// wait on ctx: an answer left unread would go to the next
			// Write.
			select {
			case err := <-s.accepted:
				if err != nil {
					return fmt.Errorf("spooling frame %d of %s: %w", r.Seq, r.StreamID, err)
				}
			case <-s.done:
				return ErrClosed
			}
		}
	}
	return tooLarge
}

// Close sends what it can within ctx's deadline; the rest stays in the
// spool for the next Open. A failed write while closing is not retried.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.closeReq <- ctx
	<-s.done
	err := s.closeErr
	// kafka-go's Close waits for batches it still retries after a
	// cancelled write; don't let it outlast ctx.
	wdone := make(chan error, 1)
	go func() { wdone <- s.w.Close() }()
	select {
	case werr := <-wdone:
		if err == nil && werr != nil {
			err = fmt.Errorf("closing Kafka writer: %w", werr)
		}
	case <-ctx.Done():
	}
	if t, ok := s.w.Transport.(*kafkago.Transport); ok {
		t.CloseIdleConnections()
	}
	return err
}

// produce writes each batch and reports it back, one at a time.
func (s *Sink) produce(ctx context.Context, batches <-chan *batch, results chan<- *batch) {
	for b := range batches {
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, s.opts.SendTimeout)
		b.err = s.w.WriteMessages(sctx, b.msgs...)
		cancel()
		b.dur = time.Since(start)
		results <- b
	}
}

// router owns the in-memory queue, the spool and the batch in flight.
type router struct {
	s     *Sink
	spool *spool

	mem      []kafkago.Message
	memBytes int64
	memSince time.Time // when the oldest message in mem arrived

	batches  chan *batch
	results  chan *batch
	inflight *batch

	backoff  time.Duration
	retryAt  time.Time
	failing  bool // the last write failed
	closing  bool
	corrupt  int // spool.corrupt already counted
	dropLog  time.Time
	dropSeen int
}

func (r *router) run(cancelSend context.CancelFunc) error {
	s := r.s
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.pump()
		var wake <-chan time.Time
		if at := r.wakeAt(); !at.IsZero() {
			timer.Reset(time.Until(at))
			wake = timer.C
		}
		select {
		case msgs := <-s.in:
			r.accept(msgs)
		case b := <-r.results:
			r.finish(b)
		case <-wake:
		case <-tick.C:
			if r.spool.fsync == FsyncBatch {
				if err := r.spool.sync(); err != nil {
					s.m.errors.WithLabelValues(reasonSpoolWrite).Inc()
					s.log.Error("syncing kafka spool", "err", err)
				}
			}
			if !r.spool.ackDone {
				if err := r.spool.writeAck(); err != nil {
					s.m.errors.WithLabelValues(reasonSpoolWrite).Inc()
					s.log.Error("updating kafka spool", "err", err)
				}
			}
		case ctx := <-s.closeReq:
			return r.drain(ctx, cancelSend)
		}
	}
}

// wakeAt is when pump has work that waits on time: a retry or a partial
// batch's timeout.
func (r *router) wakeAt() time.Time {
	switch {
	case r.inflight != nil:
		return time.Time{}
	case time.Now().Before(r.retryAt):
		return r.retryAt
	case len(r.mem) > 0, !r.s.opts.NoWriteAhead && r.spool.count > 0:
		return r.memSince.Add(r.s.opts.BatchTimeout)
	}
	return time.Time{}
}

// accept queues msgs in memory while the spool is empty and memory has
// room, else in the spool, which memory always precedes. In write-ahead
// mode everything goes to the spool, handed to the OS before Write is
// answered.
func (r *router) accept(msgs []kafkago.Message) {
	o := &r.s.opts
	if !o.NoWriteAhead {
		if r.spool.count == 0 {
			r.memSince = time.Now()
		}
		err := r.spool.append(msgs)
		if err == nil {
			err = r.spool.flush()
		}
		if err != nil {
			// What did not reach the OS may be lost; Write says so.
			r.s.m.errors.WithLabelValues(reasonSpoolWrite).Inc()
			r.count(msgs, outcomeDropped)
			r.s.log.Error("writing kafka spool: messages may be lost", "messages", len(msgs), "err", err)
		} else if r.failing {
			// Every message passes through the spool; "spooled" counts
			// those that wait there for the brokers.
			r.count(msgs, outcomeSpooled)
		}
		r.updateSpool()
		select {
		case r.s.accepted <- err:
		default: // no Write waits (Close drains s.in)
		}
		return
	}
	var spill []kafkago.Message
	for _, m := range msgs {
		size := int64(messageSize(&m))
		if r.spool.count == 0 && len(spill) == 0 && r.memBytes+size <= o.BufferBytes {
			if len(r.mem) == 0 {
				r.memSince = time.Now()
			}
			r.mem = append(r.mem, m)
			r.memBytes += size
			continue
		}
		spill = append(spill, m)
	}
	r.s.m.bufferBytes.Set(float64(r.memBytes))
	if len(spill) > 0 {
		r.toSpool(spill, false)
	}
}

// pump starts the next batch if none is in flight and no retry is due:
// memory first, then the spool.
func (r *router) pump() {
	o := &r.s.opts
	if r.inflight != nil || time.Now().Before(r.retryAt) {
		return
	}
	if len(r.mem) > 0 {
		if !r.closing && len(r.mem) < o.BatchMessages && r.memBytes < int64(o.BatchBytes) &&
			time.Since(r.memSince) < o.BatchTimeout {
			return
		}
		n, size := 0, 0
		for n < len(r.mem) && n < o.BatchMessages {
			ms := messageSize(&r.mem[n])
			if n > 0 && size+ms > o.BatchBytes {
				break
			}
			size += ms
			n++
		}
		b := &batch{msgs: r.mem[:n:n]}
		r.mem = r.mem[n:]
		r.memBytes -= int64(size)
		if len(r.mem) == 0 {
			r.mem, r.memBytes = nil, 0
		} else {
			r.memSince = time.Now()
		}
		r.s.m.bufferBytes.Set(float64(r.memBytes))
		r.send(b)
		return
	}
	if r.spool.count == 0 {
		return
	}
	if !o.NoWriteAhead && !r.closing && r.spool.count < o.BatchMessages && r.spool.bytes < int64(o.BatchBytes) &&
		time.Since(r.memSince) < o.BatchTimeout {
		return // a partial batch waits for more, as memory's would
	}
	recs, err := r.spool.peek(o.BatchMessages, o.BatchBytes)
	r.reportCorrupt()
	r.updateSpool()
	if err != nil {
		r.s.m.errors.WithLabelValues(reasonSpoolRead).Inc()
		r.s.log.Error("reading kafka spool", "err", err)
		r.retryLater()
		return
	}
	if len(recs) == 0 {
		return
	}
	b := &batch{recs: recs, msgs: make([]kafkago.Message, len(recs))}
	for i := range recs {
		b.msgs[i] = recs[i].msg
	}
	r.memSince = time.Now()
	r.send(b)
}

func (r *router) send(b *batch) {
	r.inflight = b
	r.batches <- b
}

// finish accounts for a batch's result. A failed batch from memory goes to
// the front of the spool with the rest of memory; one from the spool is
// read again at the next try.
func (r *router) finish(b *batch) {
	s := r.s
	r.inflight = nil
	s.m.sendDuration.Observe(b.dur.Seconds())
	if b.err == nil {
		r.count(b.msgs, outcomeDelivered)
		if b.recs != nil {
			if err := r.spool.commit(b.recs); err != nil {
				s.m.errors.WithLabelValues(reasonSpoolWrite).Inc()
				s.log.Error("updating kafka spool", "err", err)
			}
			r.updateSpool()
			if r.spool.count == 0 {
				s.log.Info("kafka spool replayed")
			}
		}
		if r.failing {
			s.log.Info("kafka brokers accept writes again", "spooled", r.spool.count)
		}
		r.failing, r.backoff = false, 0
		return
	}
	s.m.errors.WithLabelValues(reasonWrite).Inc()
	if !r.failing {
		s.log.Warn("kafka write failed; spooling messages until the brokers accept them", "err", b.err, "spool", r.spool.dir)
	}
	r.failing = true
	if b.recs == nil {
		all := append(b.msgs, r.mem...)
		r.mem, r.memBytes = nil, 0
		r.s.m.bufferBytes.Set(0)
		r.toSpool(all, true)
	}
	r.retryLater()
}

func (r *router) retryLater() {
	r.backoff = min(max(2*r.backoff, 100*time.Millisecond), r.s.opts.RetryMax)
	r.retryAt = time.Now().Add(r.backoff)
}

func (r *router) toSpool(msgs []kafkago.Message, front bool) {
	var err error
	if front {
		err = r.spool.prepend(msgs)
	} else {
		err = r.spool.append(msgs)
	}
	if err != nil {
		// What did not reach the disk is lost; say so loudly.
		r.s.m.errors.WithLabelValues(reasonSpoolWrite).Inc()
		r.count(msgs, outcomeDropped)
		r.s.log.Error("writing kafka spool: messages lost", "messages", len(msgs), "err", err)
	} else {
		r.count(msgs, outcomeSpooled)
	}
	r.updateSpool()
}

func (r *router) count(msgs []kafkago.Message, outcome string) {
	var det, trk int
	for i := range msgs {
		if msgs[i].Topic == r.s.opts.DetectionsTopic {
			det++
		} else {
			trk++
		}
	}
	if det > 0 {
		r.s.m.messages.WithLabelValues(r.s.opts.DetectionsTopic, outcome).Add(float64(det))
	}
	if trk > 0 {
		r.s.m.messages.WithLabelValues(r.s.opts.TracksTopic, outcome).Add(float64(trk))
	}
}

// dropped is told of messages dropped from the full spool.
func (r *router) dropped(topic string, n int) {
	s := r.s
	if topic != s.opts.DetectionsTopic && topic != s.opts.TracksTopic {
		topic = s.opts.DetectionsTopic // a topic renamed since the spool was written
	}
	s.m.messages.WithLabelValues(topic, outcomeDropped).Add(float64(n))
	s.m.spoolDropped.Add(float64(n))
	r.dropSeen += n
	if time.Since(r.dropLog) >= 10*time.Second {
		s.log.Error("KAFKA SPOOL FULL: dropping the oldest messages; raise sinks.kafka.spool_max_mb or fix the brokers",
			"dropped", r.dropSeen, "spool_max_bytes", s.opts.SpoolMaxBytes, "dir", s.opts.SpoolDir)
		r.dropLog, r.dropSeen = time.Now(), 0
	}
}

func (r *router) reportCorrupt() {
	if d := r.spool.corrupt - r.corrupt; d > 0 {
		r.corrupt = r.spool.corrupt
		r.s.m.errors.WithLabelValues(reasonSpoolCorrupt).Add(float64(d))
		r.s.log.Warn("kafka spool had damaged records (a crash mid-write?); skipped them and what followed in their segment",
			"damaged", d, "dir", r.spool.dir)
	}
}

func (r *router) updateSpool() {
	r.s.m.spoolBytes.Set(float64(r.spool.bytes))
	r.s.m.spoolMsgs.Set(float64(r.spool.count))
}

// drain sends what is queued until ctx is done, the queues are empty or a
// write fails, then spools what is left in memory and closes the spool.
func (r *router) drain(ctx context.Context, cancelSend context.CancelFunc) error {
	s := r.s
	r.closing = true
	for drained := false; !drained; {
		select {
		case msgs := <-s.in:
			r.accept(msgs)
		default:
			drained = true
		}
	}
	for ctx.Err() == nil {
		if r.inflight == nil {
			if r.failing || time.Now().Before(r.retryAt) {
				break // the brokers are down: don't wait for them
			}
			r.pump()
			if r.inflight == nil {
				break
			}
		}
		select {
		case b := <-r.results:
			r.finish(b)
		case <-ctx.Done():
		}
	}
	cancelSend()
	if r.inflight != nil {
		r.finish(<-r.results)
	}
	close(r.batches)
	for range r.results { // the producer has stopped when results closes
	}
	if len(r.mem) > 0 {
		mem := r.mem
		r.mem, r.memBytes = nil, 0
		r.s.m.bufferBytes.Set(0)
		r.toSpool(mem, true)
	}
	err := r.spool.close()
	r.updateSpool()
	if r.spool.count > 0 {
		s.log.Warn("kafka sink closed with messages in the spool; they are sent after the next start",
			"messages", r.spool.count, "bytes", r.spool.bytes, "dir", r.spool.dir)
	}
	if err != nil {
		return fmt.Errorf("closing kafka spool: %w", err)
	}
	return nil
}

// StartDevBroker starts an in-process Kafka broker (franz-go's kfake) that
// listens on addr ("127.0.0.1:9092"; port 0 picks one), with topics created
// with 3 partitions each and auto-creation on. It is for development and
// tests: messages live in memory unless opts add kfake.DataDir. Close the
// returned cluster to stop it; ListenAddrs says where it listens.
func StartDevBroker(addr string, topics []string, opts ...kfake.Opt) (*kfake.Cluster, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("starting development broker on %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("starting development broker on %q: port: %w", addr, err)
	}
	all := []kfake.Opt{
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(3),
	}
	if len(topics) > 0 {
		all = append(all, kfake.SeedTopics(3, topics...))
	}
	c, err := kfake.NewCluster(append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("starting development broker on %s: %w", addr, err)
	}
	return c, nil
}

var _ sinks.Sink = (*Sink)(nil)
