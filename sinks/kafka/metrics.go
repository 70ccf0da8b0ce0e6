package kafka

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// Outcomes of vigil_sinks_kafka_messages_total.
const (
	outcomeDelivered = "delivered" // acknowledged by all in-sync replicas
	outcomeSpooled   = "spooled"   // waiting in the spool for the brokers
	outcomeDropped   = "dropped"   // lost: spool full, too large, or the spool failed
)

// Reasons of vigil_sinks_kafka_errors_total.
const (
	reasonWrite        = "write"         // a produce request failed
	reasonEncode       = "encode"        // a result did not encode
	reasonTooLarge     = "too_large"     // a message larger than batch_bytes
	reasonSpoolWrite   = "spool_write"   // the spool could not be written
	reasonSpoolRead    = "spool_read"    // the spool could not be read
	reasonSpoolCorrupt = "spool_corrupt" // a damaged spool record, skipped
)

type metrics struct {
	messages     *prometheus.CounterVec
	bufferBytes  prometheus.Gauge
	spoolBytes   prometheus.Gauge
	spoolMsgs    prometheus.Gauge
	spoolMax     prometheus.Gauge
	spoolDropped prometheus.Counter
	sendDuration prometheus.Histogram
	errors       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, w *kafkago.Writer, topics []string) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_sinks_kafka_messages_total",
			Help: "Kafka sink messages by topic and outcome: delivered (acknowledged), spooled (waited in the on-disk spool for the brokers) or dropped.",
		}, []string{"topic", "outcome"}),
		bufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_sinks_kafka_buffer_bytes",
			Help: "Bytes of messages held in memory waiting to be produced (bounded by buffer_mb).",
		}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_sinks_kafka_spool_bytes",
			Help: "Bytes of messages in the on-disk spool not yet acknowledged by the brokers (with write-ahead every message passes through it).",
		}),
		spoolMsgs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_sinks_kafka_spool_messages",
			Help: "Messages in the on-disk spool not yet acknowledged by the brokers.",
		}),
		spoolMax: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_sinks_kafka_spool_max_bytes",
			Help: "Bound of the on-disk spool; past it the oldest messages are dropped.",
		}),
		spoolDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_sinks_kafka_spool_dropped_total",
			Help: "Messages dropped from the full on-disk spool, oldest first.",
		}),
		sendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_sinks_kafka_send_duration_seconds",
			Help:    "Time to produce one batch, until all in-sync replicas acknowledged it or it failed.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_sinks_kafka_errors_total",
			Help: "Kafka sink errors by reason: write, encode, too_large, spool_write, spool_read, spool_corrupt.",
		}, []string{"reason"}),
	}
	for _, t := range topics {
		for _, o := range []string{outcomeDelivered, outcomeSpooled, outcomeDropped} {
			m.messages.WithLabelValues(t, o)
		}
	}
	for _, r := range []string{reasonWrite, reasonEncode, reasonTooLarge, reasonSpoolWrite, reasonSpoolRead, reasonSpoolCorrupt} {
		m.errors.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.messages, m.bufferBytes, m.spoolBytes, m.spoolMsgs, m.spoolMax, m.spoolDropped,
		m.sendDuration, m.errors, newWriterCollector(w)} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("registering Kafka sink metrics (one Kafka sink per registry): %w", err)
			}
			return nil, fmt.Errorf("registering Kafka sink metrics: %w", err)
		}
	}
	return m, nil
}

// writerCollector exports kafka-go's Writer.Stats at scrape time. Stats
// resets on every call, so counters are summed here and the averages cover
// the time since the previous scrape.
type writerCollector struct {
	w *kafkago.Writer

	mu                                       sync.Mutex
	writes, messages, bytes, errors, retries int64

	descWrites, descMessages, descBytes, descErrors, descRetries *prometheus.Desc
	descBatchSeconds, descWriteSeconds, descWaitSeconds          *prometheus.Desc
	descBatchSize, descBatchBytes                                *prometheus.Desc
}

func newWriterCollector(w *kafkago.Writer) *writerCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("vigil_sinks_kafka_writer_"+name, help, nil, nil)
	}
	return &writerCollector{
		w:                w,
		descWrites:       d("writes_total", "Produce requests the Kafka client sent."),
		descMessages:     d("messages_total", "Messages the Kafka client sent."),
		descBytes:        d("bytes_total", "Bytes the Kafka client sent."),
		descErrors:       d("errors_total", "Errors the Kafka client saw."),
		descRetries:      d("retries_total", "Produce attempts the Kafka client retried."),
		descBatchSeconds: d("batch_seconds_avg", "Mean time to fill and send a batch, since the previous scrape."),
		descWriteSeconds: d("write_seconds_avg", "Mean time to write a batch to the broker, since the previous scrape."),
		descWaitSeconds:  d("wait_seconds_avg", "Mean time a batch waited for a connection, since the previous scrape."),
		descBatchSize:    d("batch_messages_avg", "Mean messages per batch, since the previous scrape."),
		descBatchBytes:   d("batch_bytes_avg", "Mean bytes per batch, since the previous scrape."),
	}
}

// Describe implements prometheus.Collector.
func (c *writerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.descWrites, c.descMessages, c.descBytes, c.descErrors, c.descRetries,
		c.descBatchSeconds, c.descWriteSeconds, c.descWaitSeconds, c.descBatchSize, c.descBatchBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *writerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	st := c.w.Stats()
	c.writes += st.Writes
	c.messages += st.Messages
	c.bytes += st.Bytes
	c.errors += st.Errors
	c.retries += st.Retries
	counters := [...]struct {
		d *prometheus.Desc
		v int64
	}{{c.descWrites, c.writes}, {c.descMessages, c.messages}, {c.descBytes, c.bytes}, {c.descErrors, c.errors}, {c.descRetries, c.retries}}
	c.mu.Unlock()
	for _, x := range counters {
		ch <- prometheus.MustNewConstMetric(x.d, prometheus.CounterValue, float64(x.v))
	}
	ch <- prometheus.MustNewConstMetric(c.descBatchSeconds, prometheus.GaugeValue, st.BatchTime.Avg.Seconds())
	ch <- prometheus.MustNewConstMetric(c.descWriteSeconds, prometheus.GaugeValue, st.WriteTime.Avg.Seconds())
	ch <- prometheus.MustNewConstMetric(c.descWaitSeconds, prometheus.GaugeValue, st.WaitTime.Avg.Seconds())
	ch <- prometheus.MustNewConstMetric(c.descBatchSize, prometheus.GaugeValue, float64(st.BatchSize.Avg))
	ch <- prometheus.MustNewConstMetric(c.descBatchBytes, prometheus.GaugeValue, float64(st.BatchBytes.Avg))
}
