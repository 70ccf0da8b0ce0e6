package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/vigil-video/vigil/tracking/motmetrics"
)

const evalMOTUsage = `usage: vigil eval mot --gt GT.txt --res RES.txt [--max-distance 0.5]
       vigil eval mot --res RES.txt [--window 10]

mot: scores a tracker's MOTChallenge text file (frame,id,x,y,w,h,conf,...)
against ground truth in the same format, with IoU matching, and prints one
JSON object: idf1 idp idr recall precision gt mt pt ml fp fn idsw frag mota
motp (as py-motmetrics computes them; motp is the mean 1-IoU of matches) and
hota deta assa (as TrackEval computes them, averaged over alpha 0.05..0.95).

Without --gt it describes the tracks alone: tracks, frames, mean_length,
median_length, short_tracks (< 5 frames) and suspected_switches: tracks
that start within --window frames after another ended, where it ended
(IoU >= 0.3 or centres closer than half a box height), each most likely an
object that went on under a new identity.
`

// runEvalMOT implements `vigil eval mot`; args follow "mot".
func runEvalMOT(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval mot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), evalMOTUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	gtPath := fs.String("gt", "", "ground-truth MOTChallenge text file (required)")
	resPath := fs.String("res", "", "tracker output MOTChallenge text file (required)")
	maxDist := fs.Float64("max-distance", 0.5, "largest 1-IoU at which a box may match for the CLEAR and identity metrics")
	window := fs.Int("window", 10, "without --gt: frames within which a track starting where another ended counts as a suspected switch")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *gtPath == "" && *resPath != "" {
		if *window < 1 {
			fmt.Fprintf(stderr, "--window %d: must be >= 1\n", *window)
			fs.Usage()
			return errUsage
		}
		res, err := motmetrics.ReadMOT(*resPath)
		if err != nil {
			return err
		}
		return printJSON(stdout, motmetrics.Summarize(res, *window))
	}
	if err := requireFlags(fs, "gt", *gtPath, "res", *resPath); err != nil {
		return err
	}
	if !(*maxDist > 0 && *maxDist <= 1) {
		fmt.Fprintf(stderr, "--max-distance %v: must be in (0, 1]\n", *maxDist)
		fs.Usage()
		return errUsage
	}
	gt, err := motmetrics.ReadMOT(*gtPath)
	if err != nil {
		return err
	}
	res, err := motmetrics.ReadMOT(*resPath)
	if err != nil {
		return err
	}
	r, err := motmetrics.Evaluate(gt, res, motmetrics.Options{MaxDistance: *maxDist})
	if err != nil {
		return fmt.Errorf("evaluating %s against %s: %w", *resPath, *gtPath, err)
	}
	return printJSON(stdout, r)
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding metrics: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
