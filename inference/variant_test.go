package inference

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/ingest/synth"
)

// synthFrame renders frame n of a small day scene.
func synthFrame(t *testing.T, n uint64) *frame.Frame {
	t.Helper()
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects = 320, 192, 6
	f := &frame.Frame{}
	synth.Snapshot(p, n, f)
	return f
}

// TestRunVariant: RunVariant beside the served int8 detector gives what an
// engine serving fp32 gives, by config name and by bundle name; the
// serving variant gives what Analyze gives; bad names are errors that say
// what exists.
func TestRunVariant(t *testing.T) {
	orttest.Init(t)
	ctx := context.Background()
	f := synthFrame(t, 40)
	cfg := config.Model{Name: "det", Bundle: "builtin:detector", Variant: "int8", ScoreThreshold: 0.3}

	e := newEngine(t, nil, 1)
	require.NoError(t, e.Load(cfg))
	require.Equal(t, "int8", e.Status()[0].Variant)

	fp32 := newEngine(t, nil, 1)
	cfg32 := cfg
	cfg32.Variant = "fp32"
	require.NoError(t, fp32.Load(cfg32))
	var want frame.Result
	require.NoError(t, fp32.Analyze(ctx, []string{"det"}, f, &want))
	require.NotEmpty(t, want.Detections, "the day detector finds objects in a day scene")

	got, err := e.RunVariant(ctx, "det", "", f)
	require.NoError(t, err)
	require.Equal(t, want.Detections, got, "the other variant of int8 is fp32")
	got, err = e.RunVariant(ctx, "detector", "fp32", f)
	require.NoError(t, err, "the bundle name resolves to the one model serving it")
	require.Equal(t, want.Detections, got)

	var served frame.Result
	require.NoError(t, e.Analyze(ctx, []string{"det"}, f, &served))
	got, err = e.RunVariant(ctx, "det", "int8", f)
	require.NoError(t, err)
	require.Equal(t, served.Detections, got)

	_, err = e.RunVariant(ctx, "nope", "", f)
	require.ErrorContains(t, err, `model "nope": no model of that name or bundle is loaded`)
	_, err = e.RunVariant(ctx, "det", "fp16", f)
	require.ErrorContains(t, err, `variant "fp16" of model det: the bundle's variants are fp32, int8`)

	// Two models serving one bundle: the bundle name is ambiguous.
	cfg2 := cfg
	cfg2.Name = "det2"
	require.NoError(t, e.Load(cfg2))
	_, err = e.RunVariant(ctx, "detector", "", f)
	require.ErrorContains(t, err, "models det, det2 all serve that bundle")

	// A reload replaces the side model; Unload and Close close them (the
	// package's goleak check sees any batcher left running).
	require.NoError(t, e.Load(cfg))
	got, err = e.RunVariant(ctx, "det", "", f)
	require.NoError(t, err)
	require.Equal(t, want.Detections, got)
	e.Unload("det")
	e.variants.mu.Lock()
	n := len(e.variants.m)
	e.variants.mu.Unlock()
	require.Zero(t, n, "Unload closes the model's side models")
	_, err = e.RunVariant(ctx, "det2", "fp32", f)
	require.NoError(t, err)
}

// TestRunVariantSingle: a bundle with one variant has no other.
func TestRunVariantSingle(t *testing.T) {
	orttest.Init(t)
	e := newEngine(t, nil, 1)
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: "builtin:detector", Variant: "fp32"}))
	// Drop the int8 variant from the served bundle's copy: the engine
	// only knows what the bundle lists.
	m, _ := e.Model("det")
	m.bundle.Variants = m.bundle.Variants[:1]
	_, err := e.RunVariant(context.Background(), "det", "", synthFrame(t, 0))
	require.ErrorIs(t, err, ErrNoOtherVariant)
}
