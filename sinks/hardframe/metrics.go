package hardframe

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/training/store"
)

// Stages of vigil_hardframe_errors_total.
const (
	stageVariant = "variant" // running the other variant failed
	stageConvert = "convert" // the frame could not be converted to RGB
	stageStore   = "store"   // the store refused or failed the write
)

type metrics struct {
	candidates  [numMiners]prometheus.Counter
	kept        [numMiners]prometheus.Counter
	skipped     map[string]prometheus.Counter
	errors      map[string]prometheus.Counter
	quantChecks prometheus.Counter
}

// newMetrics makes the miner's metrics and registers them, with the store's
// size read at scrape time, on reg (nil: nowhere).
func newMetrics(reg prometheus.Registerer, st *store.Store) (*metrics, error) {
	candidates := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_hardframe_candidates_total",
		Help: "Analysed frames each hard-frame miner picked, before the rate limit, dedup and the queue.",
	}, []string{"miner"})
	kept := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_hardframe_frames_kept_total",
		Help: "Hard frames written to the store, by the miner they count for (the first by precedence: track_gap, quant_disagreement, flicker, band, random).",
	}, []string{"miner"})
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_hardframe_frames_skipped_total",
		Help: "Picked frames not stored, by reason: rate_limit (the stream's per-minute cap), duplicate (near-duplicate of a recent kept frame), queue_full (the writer fell behind) or shutdown.",
	}, []string{"reason"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_hardframe_errors_total",
		Help: "Hard-frame miner failures by stage: variant (running the other variant), convert (frame to RGB) or store (writing the entry).",
	}, []string{"stage"})
	m := &metrics{
		skipped: map[string]prometheus.Counter{}, errors: map[string]prometheus.Counter{},
		quantChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_hardframe_quant_checks_total",
			Help: "Frames the quant_disagreement miner ran the detector's other variant on.",
		}),
	}
	for i, name := range minerNames {
		m.candidates[i], m.kept[i] = candidates.WithLabelValues(name), kept.WithLabelValues(name)
	}
	for _, r := range []string{SkipRateLimit, SkipDuplicate, SkipQueueFull, SkipShutdown} {
		m.skipped[r] = skipped.WithLabelValues(r)
	}
	for _, s := range []string{stageVariant, stageConvert, stageStore} {
		m.errors[s] = errs.WithLabelValues(s)
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{
		candidates, kept, skipped, errs, m.quantChecks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_hardframe_store_bytes",
			Help: "Bytes of the hard-frame store's entries (bounded by hard_frames.max_mb).",
		}, func() float64 { return float64(st.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_hardframe_store_entries",
			Help: "Entries in the hard-frame store.",
		}, func() float64 { return float64(st.Stats().Entries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_hardframe_store_evictions_total",
			Help: "Entries evicted from the hard-frame store, oldest first, to stay under hard_frames.max_mb.",
		}, func() float64 { return float64(st.Stats().Evictions) }),
	}
	var all []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return m, nil
}
