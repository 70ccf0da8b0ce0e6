package pipeline

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/tracking"
)

// Latency stages recorded in vigil_pipeline_latency_seconds, each measured
// from the arrival of the frame's data.
const (
	stageDecode  = "decode"
	stageAnalyze = "analyze"
	stageSink    = "sink"
)

// Reasons a frame or packet is dropped, the reason label of
// vigil_ingest_frames_dropped_total.
const (
	dropQueueFull     = iota // live source outran the decoder: packet queue full, and the packets skipped until the next key frame
	dropInferenceBusy        // a newer frame replaced one still waiting for inference
	dropDecodeError          // packets skipped after a decode error, until the next key frame
	dropFrameLimit           // offline run reached its frame limit
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"queue_full", "inference_busy", "decode_error", "frame_limit"}

// metrics holds the pipeline's direct instruments. Per-stream counters live in
// each stream's stats and are read at scrape time by streamCollector, so a
// removed stream's series disappear with it.
type metrics struct {
	latency      *prometheus.HistogramVec
	sinkMessages *prometheus.CounterVec
	sinkWrite    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, p *Pipeline) *metrics {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_pipeline_latency_seconds",
			Help:    "Time from a frame's arrival to the end of each pipeline stage.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"stage"}),
		sinkMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_sink_messages_total",
			Help: "Results handed to each sink, by outcome (ok, error, dropped).",
		}, []string{"sink", "result"}),
		sinkWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_sink_write_duration_seconds",
			Help:    "Time each sink's Write took for one result, whatever its outcome.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.sinkMessages, m.sinkWrite, &streamCollector{p: p})
	}
	return m
}

var (
	descPackets = prometheus.NewDesc("vigil_ingest_packets_total",
		"Compressed packets received per stream.", []string{"stream"}, nil)
	descBytes = prometheus.NewDesc("vigil_ingest_bytes_total",
		"Compressed bytes received per stream.", []string{"stream"}, nil)
	descFrames = prometheus.NewDesc("vigil_ingest_frames_total",
		"Frames decoded or generated per stream.", []string{"stream"}, nil)
	descAnalyzed = prometheus.NewDesc("vigil_pipeline_frames_analyzed_total",
		"Frames that went through analysis per stream.", []string{"stream"}, nil)
	descDropped = prometheus.NewDesc("vigil_ingest_frames_dropped_total",
		"Frames or packets dropped per stream, by reason.", []string{"stream", "reason"}, nil)
	descDecodeErrors = prometheus.NewDesc("vigil_decode_errors_total",
		"Packets the decoder rejected, and frames it decoded only with concealed damage, per stream.", []string{"stream"}, nil)
	descRestarts = prometheus.NewDesc("vigil_ingest_restarts_total",
		"Times a stream's source was restarted after an error.", []string{"stream"}, nil)
	descStalls = prometheus.NewDesc("vigil_ingest_stalls_total",
		"Times a live source received nothing for its read timeout.", []string{"stream"}, nil)
	descPacketsLost = prometheus.NewDesc("vigil_ingest_packets_lost_total",
		"RTP packets missing from the sequence numbers per stream.", []string{"stream"}, nil)
	descState = prometheus.NewDesc("vigil_ingest_stream_state",
		"1 for the state each stream is in.", []string{"stream", "state"}, nil)
	descDecodeTime = prometheus.NewDesc("vigil_decode_duration_seconds",
		"Time the decoder spent on each compressed packet per stream, not counting handing its frames on.", []string{"stream"}, nil)
	descActiveTracks = prometheus.NewDesc("vigil_tracking_active_tracks",
		"Confirmed tracks alive after the stream's last analysed frame.", []string{"stream"}, nil)
	descTracksStarted = prometheus.NewDesc("vigil_tracking_tracks_started_total",
		"Tracks confirmed per stream (their started events).", []string{"stream"}, nil)
	descTracksEnded = prometheus.NewDesc("vigil_tracking_tracks_ended_total",
		"Confirmed tracks ended per stream (their ended events), lost or at the stream's end.", []string{"stream"}, nil)
)

// decodeBuckets are the upper bounds of vigil_decode_duration_seconds: a
// 1080p H.264 frame decodes in about 1-10 ms on one core.
var decodeBuckets = [...]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}

// durationHist is a fixed-bucket histogram of durations, usable at its zero
// value and safe for one writer and concurrent readers: it lives in a
// stream's stats, so its series goes with the stream.
type durationHist struct {
	counts [len(decodeBuckets) + 1]atomic.Uint64 // the last counts values above every bound
	sumNS  atomic.Int64
}

func (h *durationHist) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(decodeBuckets) && s > decodeBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNS.Add(int64(d))
}

// metric returns h as a constant histogram. Buckets are read one by one,
// so a scrape during an observation may see the sum a step ahead of them.
func (h *durationHist) metric(d *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(decodeBuckets))
	var n uint64
	for i, ub := range decodeBuckets {
		n += h.counts[i].Load()
		buckets[ub] = n
	}
	n += h.counts[len(decodeBuckets)].Load()
	return prometheus.MustNewConstHistogram(d, n, float64(h.sumNS.Load())/1e9, buckets, labels...)
}

// trackStats count a stream's tracks from its tracker's output.
type trackStats struct {
	active         atomic.Int64
	started, ended atomic.Uint64
}

// record counts one tracker update: its live tracks and its events.
func (t *trackStats) record(tracks []frame.Track, events []frame.TrackEvent) {
	var active int64
	for _, tr := range tracks {
		if tr.State == frame.TrackConfirmed {
			active++
		}
	}
	t.active.Store(active)
	for _, e := range events {
		switch e.Kind {
		case tracking.EventStarted:
			t.started.Add(1)
		case tracking.EventEnded:
			t.ended.Add(1)
		}
	}
}

// streamCollector reports every live stream's counters at scrape time.
type streamCollector struct{ p *Pipeline }

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descFrames, descAnalyzed, descDropped, descDecodeErrors, descRestarts, descStalls, descPacketsLost, descState,
		descDecodeTime, descActiveTracks, descTracksStarted, descTracksEnded} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.p.snapshotStreams() {
		id := s.cfg.ID
		st := &s.stats
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{id}, labels...)...)
		}
		counter(descPackets, st.packets.Load())
		counter(descBytes, st.bytes.Load())
		counter(descFrames, st.frames.Load())
		counter(descAnalyzed, st.analyzed.Load())
		counter(descDecodeErrors, st.decodeErrors.Load())
		counter(descRestarts, st.restarts.Load())
		counter(descStalls, st.stalls.Load())
		counter(descPacketsLost, st.packetsLost.Load())
		for r := range numDropReasons {
			counter(descDropped, st.dropped[r].Load(), dropReasonNames[r])
		}
		state := s.status().State
		for _, name := range allStates {
			v := 0.0
			if name == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, id, string(name))
		}
		ch <- st.decodeTime.metric(descDecodeTime, id)
		if s.tracker != nil {
			counter(descTracksStarted, st.tracks.started.Load())
			counter(descTracksEnded, st.tracks.ended.Load())
			ch <- prometheus.MustNewConstMetric(descActiveTracks, prometheus.GaugeValue, float64(st.tracks.active.Load()), id)
		}
	}
}
