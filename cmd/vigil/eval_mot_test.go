package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestEvalMOT(t *testing.T) {
	gt := shareddata.Path(t, "mot/TUD-Campus/gt.txt")
	res := shareddata.Path(t, "mot/TUD-Campus/test.txt")
	var out, errb bytes.Buffer
	code := run([]string{"eval", "mot", "--gt", gt, "--res", res}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	var got map[string]float64
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	keys := strings.Fields("idf1 idp idr recall precision gt mt pt ml fp fn idsw frag mota motp hota deta assa")
	require.Len(t, got, len(keys))
	// py-motmetrics' values, from shared/data/README.md; HOTA from
	// tracking/motmetrics/testdata/hota_reference.py (TrackEval's hota.py).
	for name, want := range map[string]float64{
		"idf1": 0.557659, "idp": 0.729730, "idr": 0.451253, "recall": 0.582173, "precision": 0.941441,
		"gt": 8, "mt": 1, "pt": 6, "ml": 1, "fp": 13, "fn": 150, "idsw": 7, "frag": 7,
		"mota": 0.526462, "motp": 0.277201,
		"hota": 0.39139743784511377, "deta": 0.41804703014276301, "assa": 0.36912068120832836,
	} {
		require.Contains(t, got, name)
		require.InDelta(t, want, got[name], 1e-6, name)
	}
}

func TestEvalMOTErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.txt")
	require.NoError(t, os.WriteFile(good, []byte("1,1,10,20,30,40,1\n"), 0o644))
	bad := filepath.Join(dir, "bad.txt")
	require.NoError(t, os.WriteFile(bad, []byte("1,1,10,20,30,40,1\n\n2,1,x,20,30,40,1\n"), 0o644))
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no res, no gt", []string{"--window", "3"}, 2, "--gt is required"},
		{"bad window", []string{"--res", good, "--window", "0"}, 2, "--window 0: must be >= 1"},
		{"no res", []string{"--gt", good}, 2, "--res is required"},
		{"bad distance", []string{"--gt", good, "--res", good, "--max-distance", "2"}, 2, "--max-distance 2"},
		{"unknown flag", []string{"--frobnicate"}, 2, "frobnicate"},
		{"stray argument", []string{"--gt", good, "--res", good, "extra"}, 2, `unexpected argument "extra"`},
		{"help", []string{"-h"}, 0, "usage: vigil eval mot"},
		{"malformed row", []string{"--gt", good, "--res", bad}, 1, bad + `:3: field 3 (x): "x" is not a number`},
		{"missing file", []string{"--gt", filepath.Join(dir, "nope.txt"), "--res", good}, 1, "nope.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"eval", "mot"}, tc.args...), &out, &errb)
			require.Equal(t, tc.code, code, errb.String())
			require.Contains(t, errb.String(), tc.msg)
		})
	}
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"eval", "mot", "--gt", good, "--res", good}, &out, &errb), errb.String())
	require.Contains(t, out.String(), `"mota":1,`)
}

// TestEvalMOTSummary: without ground truth, eval mot describes the tracks
// (TUD-Campus's ground truth read as a tracker's output: 8 identities).
func TestEvalMOTSummary(t *testing.T) {
	gt := shareddata.Path(t, "mot/TUD-Campus/gt.txt")
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"eval", "mot", "--res", gt}, &out, &errb), errb.String())
	var got map[string]float64
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	require.Equal(t, 8.0, got["tracks"])
	require.Equal(t, 10.0, got["switch_window"])
	require.Greater(t, got["mean_length"], 10.0)
	require.Contains(t, got, "suspected_switches")
}
