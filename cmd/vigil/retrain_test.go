package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/evaluate"
	"github.com/vigil-video/vigil/training/store"
)

// hardFrames writes n night synth frames of two cameras into a new store,
// as the miners would (band and track_gap in turn), with the ground truth
// as labels, and corrects the first half (so every label set has entries).
func hardFrames(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	classes := []string{"person", "car"}
	st, err := store.Create(dir, store.Options{Classes: classes})
	require.NoError(t, err)
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed, p.Domain = 320, 180, 6, 41, synth.Domain("night")
	src, err := dataset.NewSynthSource(dataset.SynthOptions{Params: p, Sequences: 2, Frames: n / 2, Stride: 7, Skip: 30})
	require.NoError(t, err)
	var fixes []store.Correction
	for i := range src.Len() {
		s, err := src.At(i)
		require.NoError(t, err)
		var objs []store.Object
		for _, o := range s.Objects {
			b := o.Box
			b.X1, b.Y1, b.X2, b.Y2 = max(b.X1, 0), max(b.Y1, 0), min(b.X2, 320), min(b.Y2, 180)
			if o.Ignore || b.W() < 2 || b.H() < 2 {
				continue
			}
			objs = append(objs, store.Object{Box: b, Class: slices.Index(classes, o.Label), Label: o.Label, Score: 0.8})
		}
		id, err := st.Put(store.Entry{StreamID: s.Sequence, CaptureTime: time.Unix(int64(1e9+i), 0), FrameSeq: uint64(i),
			Miner: []string{"band", "track_gap"}[i%2], Image: s.Image, Objects: objs})
		require.NoError(t, err)
		if i < n/2 {
			fixes = append(fixes, store.Correction{ID: id, Objects: objs})
		}
	}
	_, err = st.Correct(fixes)
	require.NoError(t, err)
	return dir
}

const (
	testEval = "synth://?domain=night&seed=900&frames=3&w=320&h=180"
	testKeep = "synth://?domain=day&seed=900&frames=3&w=320&h=180"
)

// TestRetrainGate: vigil retrain fine-tunes the built-in detector on a
// store, writes a bundle the server loads (fp32 and int8) with its report,
// and publishes it to the registry only when the gate passes: margin -1
// always holds (published, promoted, exit 0), margin +1 never does (exit
// status 3, the registry unchanged).
func TestRetrainGate(t *testing.T) {
	orttest.Init(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	data := hardFrames(t, 8)
	reg := filepath.Join(t.TempDir(), "registry")
	out := filepath.Join(t.TempDir(), "cand")
	common := []string{"--data", data, "--eval", testEval, "--steps", "2", "--batch", "1", "--eval-every", "2",
		"--registry", reg, "--name", "det", "--weight-miner", "band=2"}

	var so, se bytes.Buffer
	err := runRetrain(context.Background(), append([]string{"--base", "builtin:detector", "--out", out, "--margin", "-1", "--max-drop", "1", "--keep-eval", testKeep, "--int8-frames", "2"}, common...), &so, &se)
	require.NoError(t, err, se.String())
	require.Contains(t, so.String(), "published det v1")
	require.Contains(t, so.String(), "base fp32")
	require.Contains(t, so.String(), "AP@0.5 car")
	require.Contains(t, se.String(), "retrain: done 2 steps")
	for _, f := range []string{"model.yaml", "fp32.onnx", "int8.onnx", "summary.json", "report/loss.png", "report/validation.png", "report/worst.png", "report/eval_worst.png", "report/eval_worst/index.html"} {
		_, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
	}
	_, err = os.Stat(filepath.Join(out, "checkpoint"))
	require.ErrorIs(t, err, os.ErrNotExist, "the checkpoint is removed")
	b, err := inference.LoadBundle(out)
	require.NoError(t, err)
	require.Equal(t, "centernet", b.Family)
	require.Equal(t, []string{"person", "car"}, b.Labels)
	require.Len(t, b.Keypoints, 17)
	for _, v := range b.Variants {
		require.NoError(t, b.VerifyVariant(v), v.Name)
	}
	active, err := inference.Registry{Root: reg}.Active("det")
	require.NoError(t, err)
	require.Equal(t, 1, active)
	pub, err := inference.Registry{Root: reg}.Resolve("det")
	require.NoError(t, err)
	_, ok := pub.Variant("int8")
	require.True(t, ok, "the int8 variant is published too")
	require.Equal(t, b.Labels, pub.Labels)

	var sum struct {
		Gate      gateResult     `json:"gate"`
		Miners    map[string]int `json:"miners"`
		Corrected int            `json:"corrected"`
		Published map[string]any `json:"published"`
		Results   map[string]map[string]map[string]struct {
			AP50 float64 `json:"ap50"`
		} `json:"results"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &sum))
	require.True(t, sum.Gate.Passed)
	require.Equal(t, map[string]int{"band": 4, "track_gap": 4}, sum.Miners)
	require.Equal(t, 4, sum.Corrected)
	require.EqualValues(t, 1, sum.Published["version"])
	for _, set := range []string{"eval", "keep-eval"} {
		for _, who := range []string{"base", "candidate"} {
			for _, v := range []string{"fp32", "int8"} {
				require.Contains(t, sum.Results[set][who], v, "%s %s", set, who)
			}
		}
	}
	require.InDelta(t, sum.Results["eval"]["candidate"]["fp32"].AP50-sum.Results["eval"]["base"]["fp32"].AP50, sum.Gate.Gain, 1e-12)

	// The base now defaults to the registry's active version; +1 cannot
	// be gained.
	so.Reset()
	se.Reset()
	err = runRetrain(context.Background(), append([]string{"--out", filepath.Join(t.TempDir(), "cand2"), "--margin", "1", "--labels", "corrected", "--int8-frames", "0"}, common...), &so, &se)
	var ee *exitError
	require.ErrorAs(t, err, &ee, se.String())
	require.Equal(t, 3, ee.ExitCode())
	require.Contains(t, so.String(), "not published: candidate")
	require.Contains(t, so.String(), "< margin 1")
	require.Contains(t, se.String(), "by miner map[band:2 track_gap:2], 4 corrected, labels corrected")
	_, err = os.Stat(filepath.Join(reg, "det", "2"))
	require.ErrorIs(t, err, os.ErrNotExist, "a refused candidate must not reach the registry")
	active, err = inference.Registry{Root: reg}.Active("det")
	require.NoError(t, err)
	require.Equal(t, 1, active)
}

// TestRetrainFlags: bad flags and a missing base are refused before any
// training, with errors naming the flag.
func TestRetrainFlags(t *testing.T) {
	dir := t.TempDir()
	ok := []string{"--base", "builtin:detector", "--data", "synth://?domain=night&seed=1&frames=2&w=320&h=180", "--eval", testEval, "--out", filepath.Join(dir, "o")}
	with := func(extra ...string) []string { return append(slices.Clone(ok), extra...) }
	without := func(flag string) []string {
		var out []string
		for i := 0; i < len(ok); i += 2 {
			if ok[i] != flag {
				out = append(out, ok[i], ok[i+1])
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool // a usage error, its message on stderr
		msg   string
	}{
		{"no base", without("--base"), true, "--base is required"},
		{"no data", without("--data"), true, "--data is required"},
		{"no eval", without("--eval"), true, "--eval is required"},
		{"no out", without("--out"), true, "--out is required"},
		{"unknown flag", with("--lables", "pre"), true, "lables"},
		{"missing base", append(without("--base"), "--base", filepath.Join(dir, "nope")), false, "--base " + filepath.Join(dir, "nope")},
		{"base not a bundle", append(without("--base"), "--base", dir), false, "--base " + dir},
		{"labels", with("--labels", "gold"), false, "--labels"},
		{"weight", with("--weight-miner", "band"), false, "--weight-miner band"},
		{"negative weight", with("--weight-miner", "band=-1"), false, "--weight-miner band=-1"},
		{"registry alone", with("--registry", dir), false, "--registry and --name"},
		{"bad name", with("--registry", dir, "--name", "a/b"), false, "--name"},
		{"steps", with("--steps", "0"), false, "--steps 0"},
		{"margin", with("--margin", "2"), false, "--margin 2"},
		{"gate variant", with("--gate-variant", "fp16"), false, "--gate-variant fp16"},
		{"augment", with("--augment", "maybe"), false, "--augment maybe"},
		{"eval is training data", with("--replay", "synth://?domain=night&seed=899&sequences=3&w=320&h=180"), false, "--eval " + testEval + " overlaps --replay"},
		{"bad data", append(without("--data"), "--data", filepath.Join(dir, "none")), false, "--data " + filepath.Join(dir, "none")},
		{"bad synth", append(without("--eval"), "--eval", "synth://?domain=night&frames=x"), false, "--eval synth://?domain=night&frames=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var so, se bytes.Buffer
			err := runRetrain(context.Background(), tc.args, &so, &se)
			require.Error(t, err)
			if tc.usage {
				require.ErrorIs(t, err, errUsage)
				require.Contains(t, se.String(), tc.msg)
				return
			}
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

// TestRetrainGateRule: the decision on hand-made results, including the
// keep-eval drop and exact ties at the margin.
func TestRetrainGateRule(t *testing.T) {
	res := func(ap50 float64) *evaluate.DetectionResult { return &evaluate.DetectionResult{AP50: ap50} }
	for _, tc := range []struct {
		name                  string
		base, cand, kBase, kC float64
		keep                  bool
		margin, maxDrop       float64
		passed                bool
		reason                string
	}{
		{"gain", 0.30, 0.45, 0, 0, false, 0.10, 0.02, true, "+0.150 mAP@0.5 >= margin 0.1"},
		{"too little", 0.30, 0.31, 0, 0, false, 0.02, 0.02, false, "candidate +0.010 mAP@0.5 < margin 0.02"},
		{"tie passes", 0.50, 0.75, 0, 0, false, 0.25, 0.02, true, ">= margin 0.25"},
		{"keep holds", 0.30, 0.45, 0.90, 0.89, true, 0.10, 0.02, true, "-0.010 on --keep-eval"},
		{"keep drops", 0.30, 0.45, 0.90, 0.85, true, 0.10, 0.02, false, "loses 0.050 on --keep-eval > max drop 0.02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c comparison
			c.add("eval", "base", "fp32", res(tc.base))
			c.add("eval", "candidate", "fp32", res(tc.cand))
			if tc.keep {
				c.add("keep-eval", "base", "fp32", res(tc.kBase))
				c.add("keep-eval", "candidate", "fp32", res(tc.kC))
			}
			g := c.gate("fp32", tc.margin, tc.maxDrop, tc.keep)
			require.Equal(t, tc.passed, g.Passed, g.Reason)
			require.Contains(t, g.Reason, tc.reason)
		})
	}
	g := (&comparison{}).gate("int8", 0, 0, false)
	require.False(t, g.Passed)
	require.Contains(t, g.Reason, "no int8 evaluation")
}

func TestParseMinerWeights(t *testing.T) {
	w, err := parseMinerWeights("band=1, track_gap=2.5,random=0")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"band": 1, "track_gap": 2.5, "random": 0}, w)
	for _, bad := range []string{"band", "=1", "band=x", "band=-1", "band=1,band=2", "band=NaN", "band=1000"} {
		_, err := parseMinerWeights(bad)
		require.Error(t, err, bad)
	}
	require.True(t, overlaps("synth://?domain=night&seed=5", "synth://?domain=night&seed=3&sequences=3"))
	require.False(t, overlaps("synth://?domain=night&seed=6", "synth://?domain=night&seed=3&sequences=3"))
	require.False(t, overlaps("synth://?domain=day&seed=5", "synth://?domain=night&seed=5"))
	require.True(t, overlaps("/a/store/", "/a/store"))
	var ee *exitError
	require.True(t, errors.As(fmt.Errorf("wrapped: %w", &exitError{code: 3, msg: "x"}), &ee))
}
