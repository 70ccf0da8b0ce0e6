package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/config"
)

// retrainScheduler runs `vigil retrain` in a child process on the
// hard-frame store when the retrain section says: at a time of day, or
// once enough new hard frames were kept. One run at a time; the child's
// gate decides whether the candidate is published to the model's registry,
// which the server's registry watch then loads.
type retrainScheduler struct {
	cfg      config.Retrain
	store    string // hard_frames.dir
	registry string // the model's registry root
	name     string // the model's name in it
	exe      string
	kept     func() uint64 // hard frames kept since the server started
	log      *slog.Logger
	runs     *prometheus.CounterVec

	lastKept uint64
	lastDay  string // the date of the last daily run
}

func newRetrainScheduler(cfg *config.Config, kept func() uint64, reg prometheus.Registerer, log *slog.Logger) (*retrainScheduler, error) {
	rt := cfg.Retrain
	var bundle string
	for _, m := range cfg.Models {
		if m.Name == rt.Model {
			bundle = m.Bundle
		}
	}
	if _, err := os.Stat(filepath.Join(bundle, "model.yaml")); err == nil {
		return nil, fmt.Errorf("retrain.model: %s's bundle %s is a bundle folder; retraining publishes to a registry, so configure the registry's model folder", rt.Model, bundle)
	}
	if st, err := os.Stat(bundle); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("retrain.model: %s's bundle %s is not a registry model folder", rt.Model, bundle)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("retrain: finding this program to run vigil retrain: %w", err)
	}
	return &retrainScheduler{
		cfg: rt, store: cfg.HardFrames.Dir, registry: filepath.Dir(filepath.Clean(bundle)), name: filepath.Base(filepath.Clean(bundle)),
		exe: exe, kept: kept, log: log, runs: newRetrainMetrics(reg),
	}, nil
}

// newRetrainMetrics registers vigil_retrain_runs_total.
func newRetrainMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_retrain_runs_total",
		Help: "Scheduled vigil retrain runs by result: published (the gate passed), rejected (it did not), failed.",
	}, []string{"result"})
	for _, r := range []string{"published", "rejected", "failed"} {
		runs.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(runs)
	}
	return runs
}

// run checks the schedule every check_every until ctx ends.
func (r *retrainScheduler) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(r.cfg.CheckEvery))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if why := r.due(now); why != "" {
				r.once(ctx, now, why)
			}
		}
	}
}

// due says why a run is due at now, or "" when none is.
func (r *retrainScheduler) due(now time.Time) string {
	if n := r.cfg.MinNewFrames; n > 0 && r.kept()-r.lastKept >= uint64(n) {
		return fmt.Sprintf("%d new hard frames", r.kept()-r.lastKept)
	}
	if r.cfg.At != "" {
		at, _ := time.Parse("15:04", r.cfg.At) // validated with the config
		day := now.Format(time.DateOnly)
		start := time.Date(now.Year(), now.Month(), now.Day(), at.Hour(), at.Minute(), 0, 0, now.Location())
		if r.lastDay != day && !now.Before(start) {
			return "daily at " + r.cfg.At
		}
	}
	return ""
}

// once runs vigil retrain and waits for it.
func (r *retrainScheduler) once(ctx context.Context, now time.Time, why string) {
	r.lastKept, r.lastDay = r.kept(), now.Format(time.DateOnly)
	stamp := now.Format("20060102-150405")
	out := filepath.Join(r.cfg.Dir, stamp)
	args := []string{"retrain", "--registry", r.registry, "--name", r.name, "--data", r.store,
		"--labels", r.cfg.Labels, "--eval", r.cfg.Eval,
		"--margin", strconv.FormatFloat(r.cfg.Margin, 'g', -1, 64), "--max-drop", strconv.FormatFloat(r.cfg.MaxDrop, 'g', -1, 64),
		"--steps", strconv.Itoa(r.cfg.Steps), "--out", out}
	if r.cfg.KeepEval != "" {
		args = append(args, "--keep-eval", r.cfg.KeepEval)
	}
	for _, src := range r.cfg.Replay {
		args = append(args, "--replay", src)
	}
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		r.fail(fmt.Errorf("retrain.dir: %w", err))
		return
	}
	logPath := filepath.Join(r.cfg.Dir, stamp+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		r.fail(fmt.Errorf("retrain log: %w", err))
		return
	}
	defer logFile.Close()
	r.log.Info("retraining", "model", r.name, "why", why, "out", out, "log", logPath)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.Timeout))
	defer cancel()
	cmd := exec.CommandContext(cctx, r.exe, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := time.Now()
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.runs.WithLabelValues("published").Inc()
		r.log.Info("retrained model published; the registry watch loads it", "model", r.name, "took", time.Since(started).Round(time.Second), "log", logPath)
	case errors.As(err, &ee) && ee.ExitCode() == notPublishedCode:
		r.runs.WithLabelValues("rejected").Inc()
		r.log.Info("retrained model not published: the gate refused it", "model", r.name, "took", time.Since(started).Round(time.Second), "log", logPath)
	case ctx.Err() != nil:
		// The server is stopping; the child was killed with it.
	default:
		r.fail(fmt.Errorf("vigil retrain (log %s): %w", logPath, err))
	}
}

func (r *retrainScheduler) fail(err error) {
	r.runs.WithLabelValues("failed").Inc()
	r.log.Error("scheduled retraining failed", "model", r.name, "err", err)
}
