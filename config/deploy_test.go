package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// readMetricTypes returns the type (counter, gauge, histogram) of every
// metric in the README's "## Metrics" table, by name. The table's full
// check against the registered metrics is cmd/vigil's TestMetricsCatalogue.
func readMetricTypes(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(data), "\n## Metrics\n")
	require.True(t, ok, "README.md has no ## Metrics section")
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	types := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		require.GreaterOrEqual(t, len(cells), 2, line)
		types[strings.Trim(strings.TrimSpace(cells[0]), "`")] = strings.TrimSpace(cells[1])
	}
	require.NotEmpty(t, types)
	return types
}

// dashboardPanel is the part of a Grafana panel the tests read; rows may
// hold panels of their own.
type dashboardPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

// dashboardQueries returns every PromQL expression of a dashboard (panel
// targets and template variable queries) by panel or variable title.
func dashboardQueries(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var dash struct {
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(data, &dash), path)
	out := map[string][]string{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "panel %q has an empty query", p.Title)
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			if p.Type != "row" && p.Type != "text" {
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		switch q := v.Query.(type) {
		case string:
			out["$"+v.Name] = append(out["$"+v.Name], q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				out["$"+v.Name] = append(out["$"+v.Name], s)
			}
		}
	}
	return out
}

var (
	// Identifiers that name metrics: Vigil's and the Go and process
	// collectors' (README: "Besides these…").
	metricName = regexp.MustCompile(`\b(?:vigil|go|process)_[a-zA-Z0-9_:]*`)
	// rate and increase take counters (or a histogram's series).
	rateOf = regexp.MustCompile(`\b(?:rate|increase|irate)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
)

// quantileArgs returns the argument lists of expr's histogram_quantile
// calls, up to their closing parentheses.
func quantileArgs(expr string) []string {
	var out []string
	rest := expr
	for {
		i := strings.Index(rest, "histogram_quantile(")
		if i < 0 {
			return out
		}
		rest = rest[i+len("histogram_quantile("):]
		depth, end := 1, len(rest)
		for j, r := range rest {
			switch r {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				end = j
				break
			}
		}
		out = append(out, rest[:end])
	}
}

// catalogued resolves a name used in PromQL to a metric of the README's
// table: a histogram's _bucket, _sum and _count series are the histogram.
func catalogued(types map[string]string, name string) (base, typ string, ok bool) {
	if typ, ok := types[name]; ok {
		return name, typ, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, cut := strings.CutSuffix(name, suffix); cut && types[b] == "histogram" {
			return b, "histogram", true
		}
	}
	return "", "", false
}

// TestDashboardMetricsExist: every metric the Grafana dashboards query is
// in the README's metrics table (or one of the Go and process collectors'),
// counters and histograms are read with rate, histogram_quantile gets
// buckets, and the dashboard covers what issue 7 asks of it.
func TestDashboardMetricsExist(t *testing.T) {
	types := readMetricTypes(t)
	paths, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "grafana", "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	used := map[string]bool{}
	for _, path := range paths {
		for title, exprs := range dashboardQueries(t, path) {
			for _, expr := range exprs {
				names := metricName.FindAllString(expr, -1)
				require.NotEmpty(t, names, "%s: %q: no metric", title, expr)
				for _, name := range names {
					if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
						continue
					}
					base, _, ok := catalogued(types, name)
					require.True(t, ok, "%s: %q uses %s, which the README's metrics table does not list", title, expr, name)
					used[base] = true
				}
				for _, m := range rateOf.FindAllStringSubmatch(expr, -1) {
					if _, typ, ok := catalogued(types, m[1]); ok {
						require.NotEqual(t, "gauge", typ, "%s: %q: rate of the gauge %s", title, expr, m[1])
					}
				}
				// histogram_quantile takes the rate of a histogram's buckets,
				// summed keeping le.
				for _, arg := range quantileArgs(expr) {
					rates := rateOf.FindAllStringSubmatch(arg, -1)
					require.NotEmpty(t, rates, "%s: %q: histogram_quantile of no rate", title, expr)
					for _, m := range rates {
						require.True(t, strings.HasSuffix(m[1], "_bucket"), "%s: %q: histogram_quantile of %s", title, expr, m[1])
					}
					if strings.Contains(arg, " by (") {
						require.Regexp(t, `by \((le\b|[^)]*\ble\b)`, arg, "%s: %q: the sum must keep le", title, expr)
					}
				}
			}
		}
	}
	for _, want := range []string{
		"vigil_pipeline_frames_analyzed_total", // per-stream fps
		"vigil_ingest_frames_dropped_total",
		"vigil_inference_duration_seconds",
		"vigil_inference_batch_size",
		"vigil_pipeline_latency_seconds",
		"vigil_sinks_kafka_spool_bytes",
		"vigil_tracking_active_tracks",
		"vigil_inference_model_info",
	} {
		require.True(t, used[want], "no dashboard panel uses %s", want)
	}
}

func TestDashboardMetricRegexps(t *testing.T) {
	types := map[string]string{"a_seconds": "histogram", "b_total": "counter", "c_bytes": "gauge"}
	for _, tc := range []struct {
		name, base string
		ok         bool
	}{
		{"a_seconds_bucket", "a_seconds", true},
		{"a_seconds_count", "a_seconds", true},
		{"b_total", "b_total", true},
		{"b_total_bucket", "", false},
		{"c_bytes_sum", "", false},
		{"d", "", false},
	} {
		base, _, ok := catalogued(types, tc.name)
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.base, base, tc.name)
	}
	require.Equal(t, []string{"0.95, sum by (le, stage) (rate(vigil_x_seconds_sum[5m]))", "0.5, rate(y_bucket[5m])"},
		quantileArgs(`histogram_quantile(0.95, sum by (le, stage) (rate(vigil_x_seconds_sum[5m]))) / histogram_quantile(0.5, rate(y_bucket[5m]))`))
	require.Equal(t, []string{"0.5, x"}, quantileArgs(`histogram_quantile(0.5, x`), "unbalanced: up to the end")
	require.Equal(t, "vigil_g", rateOf.FindStringSubmatch(`sum(rate( vigil_g{a="b"}[1m]))`)[1])
}

// composeInit is what TestComposeCreatesKafkaTopics reads of the compose
// file.
type composeInit struct {
	Services map[string]struct {
		Image      string `yaml:"image"`
		Entrypoint any    `yaml:"entrypoint"`
		Command    any    `yaml:"command"`
		Restart    string `yaml:"restart"`
		// DependsOn is a list of names or a map of name to condition.
		DependsOn yaml.Node `yaml:"depends_on"`
	} `yaml:"services"`
}

// conditions returns the condition of each service a depends_on names; a
// plain list means service_started.
func conditions(t *testing.T, n yaml.Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		require.NoError(t, n.Decode(&names))
		for _, name := range names {
			out[name] = "service_started"
		}
	default:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		require.NoError(t, n.Decode(&m))
		for name, c := range m {
			out[name] = c.Condition
		}
	}
	return out
}

// shellText joins a compose command or entrypoint, a string or a list.
func shellText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		var parts []string
		for _, p := range v {
			parts = append(parts, shellText(p))
		}
		return strings.Join(parts, "\n")
	}
	return ""
}

// TestComposeCreatesKafkaTopics: a one-shot service creates the topics
// deploy/vigil.yaml writes to, each with partitions and a retention, before
// Vigil starts and after Kafka is healthy; the broker does not auto-create.
func TestComposeCreatesKafkaTopics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var c composeInit
	require.NoError(t, yaml.Unmarshal(data, &c))
	vigilCfg, err := Load(filepath.Join(repoRoot, "deploy", "vigil.yaml"))
	require.NoError(t, err)

	var init string
	for name, s := range c.Services {
		if strings.Contains(shellText(s.Command)+shellText(s.Entrypoint), "kafka-topics.sh") {
			require.Empty(t, init, "two services create topics")
			init = name
		}
	}
	require.NotEmpty(t, init, "no service runs kafka-topics.sh")
	s := c.Services[init]
	require.Equal(t, "service_healthy", conditions(t, s.DependsOn)["kafka"], "%s waits for a healthy Kafka", init)
	require.Equal(t, "service_completed_successfully", conditions(t, c.Services["vigil"].DependsOn)[init], "vigil starts after the topics exist")
	require.Contains(t, []string{"no", ""}, s.Restart, "%s runs once", init)
	require.Equal(t, c.Services["kafka"].Image, s.Image, "the tools match the broker's version")

	script := shellText(s.Command)
	for _, topic := range []string{vigilCfg.Sinks.Kafka.DetectionsTopic, vigilCfg.Sinks.Kafka.TracksTopic} {
		var create string
		for line := range strings.SplitSeq(script, "\n") {
			if strings.Contains(line, "kafka-topics.sh") && strings.Contains(line, "--create") &&
				strings.Contains(line, "--topic "+topic+" ") {
				create = line
			}
		}
		require.NotEmpty(t, create, "topic %s is not created", topic)
		require.Contains(t, create, "--if-not-exists", "%s: creating must be idempotent", topic)
		require.Contains(t, create, "--bootstrap-server kafka:9092")
		parts := regexp.MustCompile(`--partitions (\d+)`).FindStringSubmatch(create)
		require.NotNil(t, parts, "%s: no --partitions", topic)
		n, err := strconv.Atoi(parts[1])
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 3, "%s: partitions spread streams over consumers", topic)
		require.Contains(t, create, "--replication-factor 1", "%s: one broker holds one replica", topic)
		ret := regexp.MustCompile(`--config retention\.ms=(\d+)`).FindStringSubmatch(create)
		require.NotNil(t, ret, "%s: no retention.ms", topic)
		ms, err := strconv.ParseInt(ret[1], 10, 64)
		require.NoError(t, err)
		require.True(t, ms >= 3_600_000 && ms <= 30*86_400_000, "%s: retention %d ms is not between an hour and 30 days", topic, ms)
	}

	var raw struct {
		Services map[string]struct {
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(data, &raw))
	require.Equal(t, "false", raw.Services["kafka"].Environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"], "topics come from the init service, with its settings")
}
