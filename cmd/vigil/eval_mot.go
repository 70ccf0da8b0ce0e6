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

mot: scores a tracker's MOTChallenge text file (frame,id,x,y,w,h,conf,...)
against ground truth in the same format, with IoU matching, and prints one
JSON object: idf1 idp idr recall precision gt mt pt ml fp fn idsw frag mota
motp (as py-motmetrics computes them; motp is the mean 1-IoU of matches) and
hota deta assa (as TrackEval computes them, averaged over alpha 0.05..0.95).
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
	if err := parseFlags(fs, args); err != nil {
		return err
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
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding metrics: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
