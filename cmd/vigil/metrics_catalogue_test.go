package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/pipeline"
	"github.com/vigil-video/vigil/sinks/hardframe"
	"github.com/vigil-video/vigil/sinks/jsonl"
	kafkasink "github.com/vigil-video/vigil/sinks/kafka"
	"github.com/vigil-video/vigil/sinks/viewer"
	"github.com/vigil-video/vigil/tracking"
)

// catalogueEntry is one row of the README's metrics table.
type catalogueEntry struct {
	typ    string   // counter, gauge or histogram
	labels []string // sorted
}

// readCatalogue parses the table of the README's "## Metrics" section:
// | `name` | type | labels | meaning |, labels comma-separated or empty.
func readCatalogue(t *testing.T) map[string]catalogueEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(data), "\n## Metrics\n")
	require.True(t, ok, "README.md has no ## Metrics section")
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	name := regexp.MustCompile("^`([a-z_:][a-z0-9_:]*)`$")
	cat := map[string]catalogueEntry{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		require.Len(t, cells, 4, "README metrics row not of the form | `name` | type | labels | meaning |: %s", line)
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		m := name.FindStringSubmatch(cells[0])
		require.NotNil(t, m, "README metrics row: bad name cell: %s", line)
		require.Contains(t, []string{"counter", "gauge", "histogram"}, cells[1], "README metrics row: bad type: %s", line)
		require.NotContains(t, cat, m[1], "listed twice")
		var labels []string
		for l := range strings.SplitSeq(cells[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		cat[m[1]] = catalogueEntry{typ: cells[1], labels: labels}
	}
	require.NotEmpty(t, cat)
	return cat
}

// describingRegisterer remembers the collectors registered through it, so
// that the test can list every metric they describe, also those that have
// no series yet (a vector before its first label values).
type describingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (d *describingRegisterer) Register(c prometheus.Collector) error {
	if err := d.Registerer.Register(c); err != nil {
		return err
	}
	d.collectors = append(d.collectors, c)
	return nil
}

func (d *describingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

// described returns the sorted variable labels of every metric the
// collectors describe, by name. client_golang has no accessor for a Desc's
// name and labels; its String form is the documented way to see them.
func (d *describingRegisterer) described(t *testing.T) map[string][]string {
	t.Helper()
	re := regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)
	out := map[string][]string{}
	for _, c := range d.collectors {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for desc := range ch {
			m := re.FindStringSubmatch(desc.String())
			require.NotNil(t, m, "unexpected Desc form %s", desc)
			var labels []string
			if m[2] != "" {
				labels = strings.Split(m[2], ",")
			}
			slices.Sort(labels)
			out[m[1]] = labels
		}
	}
	return out
}

// TestMetricsCatalogue builds what `vigil serve` registers metrics for —
// the Go and process collectors, an inference engine with a model, a
// pipeline with a synthetic stream and a tracker, the JSONL sink and the
// Kafka sink on an in-process broker, the viewer, the hard-frame miner and the API guard — runs a few frames through it, and
// checks the registry against the README's table: every vigil_* metric is
// listed with its type and labels, every row names a registered metric,
// and the gathered metrics pass promlint.
func TestMetricsCatalogue(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec := &describingRegisterer{Registerer: reg}
	quiet := slog.New(slog.DiscardHandler)

	broker, err := kafkasink.StartDevBroker("127.0.0.1:0", []string{"vigil.detections", "vigil.tracks"})
	require.NoError(t, err)
	defer broker.Close()
	kafka, err := kafkasink.Open(kafkasink.Options{Brokers: broker.ListenAddrs(), SpoolDir: t.TempDir(), BatchTimeout: time.Millisecond, Logger: quiet}, rec)
	require.NoError(t, err)
	lines := &jsonl.Writer{Path: filepath.Join(t.TempDir(), "results.jsonl")}
	require.NoError(t, lines.Open())

	trackerCfg := tracking.OptionsFromConfig(config.Default().Tracker)
	eng := inference.NewEngine(inference.EngineOptions{
		Runtime: config.Runtime{Device: "cpu", Threads: 1}, Batching: config.Batching{MaxBatch: 1},
		Registerer: rec, LowScoreFloor: lowScoreFloor(&trackerCfg), Logger: quiet,
	})
	defer eng.Close()
	// The model fills the inference series for promlint; without the shared
	// data they are still described, and checked against the table.
	var models []string
	if model := filepath.Join(shareddata.Dir(), "models", "yolox_nano_416.onnx"); fileExists(model) {
		require.NoError(t, eng.Load(config.Model{Name: "det", Bundle: model, Family: "yolox", ScoreThreshold: 0.3}))
		models = []string{"det"}
	} else {
		require.False(t, shareddata.Required(), "VIGIL_REQUIRE_SHARED=1: %s missing", model)
		t.Log("no shared data: the inference metrics are only described, not gathered")
	}

	hub := viewer.New(viewer.Options{Registerer: rec, Logger: quiet})
	hfCfg := config.Default().HardFrames
	hfCfg.Dir = filepath.Join(t.TempDir(), "hardframes")
	miner, err := hardframe.New(hardframe.Options{Config: hfCfg, Variants: eng, Registerer: rec, Logger: quiet})
	require.NoError(t, err)
	defer miner.Close(context.Background())
	_ = pipeline.Guard("", rec, http.NotFoundHandler())
	newRetrainMetrics(rec)

	stream := config.Stream{ID: "synth", URL: "synth://?objects=4&w=320&h=240&fps=10&frames=6&realtime=0", Models: models}
	stream.ApplyDefaults()
	p, err := pipeline.New(pipeline.Options{
		Streams:    []config.Stream{stream},
		Models:     models,
		Analyzer:   eng,
		Tracker:    &trackerCfg,
		Sinks:      []pipeline.NamedSink{{Name: "jsonl", Sink: lines}, {Name: "kafka", Sink: kafka}, {Name: "viewer", Sink: hub}},
		Tap:        hub,
		Observers:  []pipeline.FrameObserver{miner},
		Registerer: rec,
		Logger:     quiet,
		Offline:    true,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, p.Run(ctx))

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems, "promlint")

	cat := readCatalogue(t)
	described := rec.described(t)
	for name, labels := range described {
		require.True(t, strings.HasPrefix(name, "vigil_"), "%s: Vigil's own metrics are named vigil_*", name)
		entry, ok := cat[name]
		require.True(t, ok, "%s is registered but not in the README's metrics table", name)
		require.Equal(t, labels, entry.labels, "%s: labels in the README", name)
	}
	for name := range cat {
		require.Contains(t, described, name, "the README lists %s, which nothing registers", name)
	}

	mfs, err := reg.Gather()
	require.NoError(t, err)
	gathered := 0
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "vigil_") {
			require.True(t, strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_"), "%s: unexpected collector", name)
			continue
		}
		gathered++
		typ := map[dto.MetricType]string{dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge", dto.MetricType_HISTOGRAM: "histogram"}[mf.GetType()]
		require.Equal(t, cat[name].typ, typ, "%s: type in the README", name)
	}
	require.Greater(t, gathered, len(cat)/2, "the run filled most series")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
