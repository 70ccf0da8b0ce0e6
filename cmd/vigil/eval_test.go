package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestEvalCOCOBBox(t *testing.T) {
	gt := shareddata.Path(t, "coco/instances_val2014_100.json")
	dt := shareddata.Path(t, "coco/instances_val2014_fakebbox100_results.json")
	var out, errb bytes.Buffer
	code := run([]string{"eval", "coco", "--gt", gt, "--dt", dt}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	require.Len(t, got, 13)
	require.Equal(t, "bbox", got["iou_type"])
	// pycocotools' values, from shared/data/README.md.
	for name, want := range map[string]float64{
		"ap": 0.5045806987249628, "ap50": 0.6969727247299577, "ap75": 0.5729816669904824,
		"ap_small": 0.5856257209410443, "ap_medium": 0.5193996948036719, "ap_large": 0.5013978986347466,
		"ar1": 0.38681277964578054, "ar10": 0.5936795762842003, "ar100": 0.595352982877607,
		"ar_small": 0.6398109626113442, "ar_medium": 0.5664205978994309, "ar_large": 0.5642905982905982,
	} {
		require.InDelta(t, want, got[name], 1e-9, name)
	}
}

func TestEvalCOCOKeypoints(t *testing.T) {
	gt := shareddata.Path(t, "coco/keypoints_gt.json")
	dt := shareddata.Path(t, "coco/keypoints_dt.json")
	var out, errb bytes.Buffer
	code := run([]string{"eval", "coco", "--gt", gt, "--dt", dt, "--iou-type", "keypoints"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	require.Len(t, got, 11)
	require.Equal(t, "keypoints", got["iou_type"])
	// From pycocotools' algorithm, see inference/cocoeval/eval_test.go.
	require.InDelta(t, 0.5048844884488449, got["ap"], 1e-9)
	require.InDelta(t, 0.75, got["ar_large"], 1e-9)
}

func TestEvalCOCOErrors(t *testing.T) {
	dir := t.TempDir()
	gt := filepath.Join(dir, "gt.json")
	require.NoError(t, os.WriteFile(gt, []byte(`{"images":[{"id":1,"width":10,"height":10}],"categories":[{"id":1,"name":"a"}],"annotations":[]}`), 0o644))
	bad := filepath.Join(dir, "dt.json")
	require.NoError(t, os.WriteFile(bad, []byte(`[{"image_id":1,"category_id":1,"bbox":[0,0,1,1],"score":1},{"image_id":1,"category_id":1,"bbox":[0,0,1,1]}]`), 0o644))
	stray := filepath.Join(dir, "stray.json")
	require.NoError(t, os.WriteFile(stray, []byte(`[{"image_id":5,"category_id":1,"bbox":[0,0,1,1],"score":1}]`), 0o644))

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"help", []string{"eval", "coco", "-h"}, 0, []string{"--iou-type"}},
		{"no subcommand", []string{"eval"}, 2, []string{"vigil eval coco"}},
		{"missing gt", []string{"eval", "coco", "--dt", bad}, 2, []string{"--gt is required"}},
		{"unknown iou type", []string{"eval", "coco", "--gt", gt, "--dt", bad, "--iou-type", "mask"}, 2, []string{"--iou-type", `"mask"`}},
		{"bad results field", []string{"eval", "coco", "--gt", gt, "--dt", bad}, 1, []string{bad, "[1]: score is missing"}},
		{"missing file", []string{"eval", "coco", "--gt", filepath.Join(dir, "nope.json"), "--dt", bad}, 1, []string{"nope.json"}},
		{"image not in gt", []string{"eval", "coco", "--gt", gt, "--dt", stray}, 1, []string{"image_id 5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			require.Equal(t, tc.code, code, errb.String())
			for _, s := range tc.stderr {
				require.Contains(t, errb.String(), s)
			}
		})
	}
}
