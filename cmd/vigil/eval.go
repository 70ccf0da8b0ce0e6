package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/vigil-video/vigil/inference/cocoeval"
)

const evalUsage = `usage: vigil eval coco --gt GT.json --dt RESULTS.json [--iou-type bbox|segm|keypoints]
       vigil eval mot --gt GT.txt --res RES.txt [--max-distance 0.5]
       vigil eval detect --model BUNDLE --data SOURCE [--frames N]

coco: scores a COCO results file against a COCO ground truth exactly as
pycocotools' COCOeval does and prints one JSON object with the summary
numbers by name (bbox and segm: ap, ap50, ap75, ap_small, ap_medium,
ap_large, ar1, ar10, ar100, ar_small, ar_medium, ar_large; keypoints: ap,
ap50, ap75, ap_medium, ap_large, ar, ar50, ar75, ar_medium, ar_large).
A value is -1 where no ground truth falls in its setting.

mot: scores a tracker's MOTChallenge text file against ground truth and
prints one JSON object with the CLEAR MOT and identity metrics as
py-motmetrics computes them (idf1 idp idr recall precision gt mt pt ml fp
fn idsw frag mota motp) and HOTA as TrackEval does (hota deta assa).

detect: runs a detector over a labelled source (synth://, COCO JSON, hard-frame
store) and prints its mAP; 'vigil eval detect -h'.
`

// runEval implements `vigil eval coco` and dispatches `vigil eval mot`.
func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "mot" {
		return runEvalMOT(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "detect" {
		return runEvalDetect(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "coco" {
		fmt.Fprint(stderr, evalUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	fs := flag.NewFlagSet("eval coco", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), evalUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	gtPath := fs.String("gt", "", "COCO ground-truth JSON file (required)")
	dtPath := fs.String("dt", "", "COCO results JSON file: an array of detections (required)")
	iouType := fs.String("iou-type", cocoeval.BBox, "what to score: bbox, segm or keypoints")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := requireFlags(fs, "gt", *gtPath, "dt", *dtPath); err != nil {
		return err
	}
	if _, err := cocoeval.DefaultParams(*iouType); err != nil {
		fmt.Fprintf(stderr, "--iou-type: %v\n", err)
		fs.Usage()
		return errUsage
	}
	gt, err := cocoeval.Load(*gtPath)
	if err != nil {
		return err
	}
	dt, err := cocoeval.LoadResults(*dtPath)
	if err != nil {
		return err
	}
	stats, err := cocoeval.Evaluate(gt, dt, *iouType)
	if err != nil {
		return fmt.Errorf("evaluating %s against %s: %w", *dtPath, *gtPath, err)
	}
	b, err := json.Marshal(stats)
	if err != nil {
		return fmt.Errorf("encoding stats: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
