package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The docker-compose set-up lives at the repository root and in deploy/;
// these tests check it without Docker: files it names exist and parse, and
// the configs agree with each other.

const repoRoot = ".."

type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Build   any      `yaml:"build"`
		Ports   []string `yaml:"ports"`
		Volumes []string `yaml:"volumes"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(data, &c))
	return c
}

func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"vigil", "kafka", "prometheus", "grafana"} {
		require.Contains(t, c.Services, name)
	}
	require.NotNil(t, c.Services["vigil"].Build, "vigil is built from the Dockerfile")
	_, err := os.Stat(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)

	for name, s := range c.Services {
		if s.Image != "" {
			// The tag follows the last colon after the last slash (a registry
			// host may carry a port).
			last := s.Image[strings.LastIndex(s.Image, "/")+1:]
			_, tag, ok := strings.Cut(last, ":")
			require.True(t, ok || strings.Contains(s.Image, "@sha256:"), "service %s: image %q has no tag", name, s.Image)
			require.NotEqual(t, "latest", tag, "service %s: image %q", name, s.Image)
		} else {
			require.NotNil(t, s.Build, "service %s has neither image nor build", name)
		}
		for _, p := range s.Ports {
			require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "service %s publishes %q beyond 127.0.0.1", name, p)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
				_, err := os.Stat(filepath.Join(repoRoot, src))
				require.NoError(t, err, "service %s mounts %s", name, src)
			} else {
				require.Contains(t, c.Volumes, src, "service %s: named volume %q is not declared", name, src)
			}
		}
	}
}

func TestComposeVigilConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join(repoRoot, "deploy", "vigil.yaml"))
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:8080", c.Listen)
	require.True(t, c.Sinks.Kafka.Enabled)
	require.Equal(t, []string{"kafka:9092"}, c.Sinks.Kafka.Brokers)
	require.NotEmpty(t, c.Streams)

	compose := readCompose(t)
	require.Contains(t, compose.Services["vigil"].Volumes, "./deploy/vigil.yaml:/etc/vigil/vigil.yaml:ro")
	require.Contains(t, compose.Services["vigil"].Ports, "127.0.0.1:8080:8080")
}

// TestDockerfileConfigLoads parses the config the image carries for running
// without compose, written inline in the Dockerfile.
func TestDockerfileConfigLoads(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?s)COPY <<EOF_CONFIG /etc/vigil/vigil.yaml\n(.*?)\nEOF_CONFIG\n`).FindSubmatch(data)
	require.NotNil(t, m, "Dockerfile has no inline /etc/vigil/vigil.yaml")
	c, err := Parse(m[1])
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:8080", c.Listen, "the published port must reach the server")
	require.Contains(t, string(data), `CMD ["vigil", "serve", "--config", "/etc/vigil/vigil.yaml"]`)
}

func TestPrometheusScrapesVigil(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus.yml"))
	require.NoError(t, err)
	var p struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(data, &p))
	found := false
	for _, sc := range p.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, "vigil:8080") {
				found = true
				require.Contains(t, []string{"", "/metrics"}, sc.MetricsPath)
			}
		}
	}
	require.True(t, found, "no scrape config targets vigil:8080")
}

func TestGrafanaProvisioning(t *testing.T) {
	dsData, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/provisioning/datasources/prometheus.yaml"))
	require.NoError(t, err)
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(dsData, &ds))
	require.Len(t, ds.Datasources, 1)
	require.Equal(t, "prometheus", ds.Datasources[0].Type)
	require.Equal(t, "http://prometheus:9090", ds.Datasources[0].URL)

	provData, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/provisioning/dashboards/vigil.yaml"))
	require.NoError(t, err)
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	require.NoError(t, yaml.Unmarshal(provData, &prov))
	require.Len(t, prov.Providers, 1)
	compose := readCompose(t)
	require.Contains(t, compose.Services["grafana"].Volumes, "./deploy/grafana/dashboards:"+prov.Providers[0].Options.Path+":ro",
		"the provider's path is where compose mounts the dashboards")

	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/dashboards/vigil.json"))
	require.NoError(t, err)
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Type       string     `json:"type"`
			Title      string     `json:"title"`
			Datasource datasource `json:"datasource"`
			Targets    []struct {
				Expr       string     `json:"expr"`
				Datasource datasource `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.UID)
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.Equal(t, ds.Datasources[0].UID, p.Datasource.UID, "panel %q", p.Title)
		for _, tg := range p.Targets {
			require.Equal(t, ds.Datasources[0].UID, tg.Datasource.UID, "panel %q", p.Title)
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"rate(vigil_ingest_frames_total",
		"rate(vigil_ingest_frames_dropped_total",
		"histogram_quantile(0.95, sum by (le, stage) (rate(vigil_pipeline_latency_seconds_bucket",
		"rate(vigil_decode_errors_total",
	} {
		require.Contains(t, all, want)
	}
}
