// Command vigil is the Vigil video analytics server and its tools.
//
//	vigil serve    [--config FILE] [--listen ADDR]   run the server
//	vigil analyze  --input URL [--model M] ...       analyse one source offline
//	vigil models   import|list|quantize|promote ...  manage model bundles
//	vigil eval     coco|mot --gt GT ...                score results like pycocotools / py-motmetrics
//	vigil bench    decode|ingest|infer ...           speed against peers
//	vigil consume  --brokers B --topic T [--validate] read Kafka results as JSON lines
//	vigil train    --task detect --out BUNDLE      train a model on generated scenes
//	vigil retrain  --base B --data DIR --out B     fine-tune on hard frames, gate, publish
//	vigil dataset  validate|export|import DIR      hard-frame stores
//	vigil version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `usage: vigil <command> [flags]

commands:
  serve     run the server (embedded default config without --config)
  analyze   run the pipeline on one source and write JSON lines
  models    manage model bundles (models import, list, quantize, promote)
  bench     measure speed against peers (bench decode, ingest, infer)
  eval      score results (eval coco, eval mot)
  consume   print a Kafka topic's results as JSON lines, optionally validated
  train     train Vigil's own models on generated scenes (train --task detect)
  retrain   fine-tune a model on hard frames, gate it against the current one, publish it
  dataset   check, export and import hard-frame stores (dataset validate|export|import)
  version   print the version

Run 'vigil <command> -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "analyze":
		err = runAnalyze(ctx, args[1:], stdout, stderr)
	case "models":
		err = runModels(ctx, args[1:], stdout, stderr)
	case "bench":
		err = runBench(ctx, args[1:], stdout, stderr)
	case "eval":
		err = runEval(ctx, args[1:], stdout, stderr)
	case "consume":
		err = runConsume(ctx, args[1:], stdout, stderr)
	case "train":
		err = runTrain(ctx, args[1:], stdout, stderr)
	case "retrain":
		err = runRetrain(ctx, args[1:], stdout, stderr)
	case "dataset":
		err = runDataset(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "vigil", version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	// Commands with exit statuses of their own (retrain: 3 when its
	// candidate is not published).
	var ec *exitError
	switch {
	case errors.As(err, &ec):
		fmt.Fprintf(stderr, "vigil %s: %v\n", args[0], err)
		return ec.ExitCode()
	default:
		fmt.Fprintf(stderr, "vigil %s: %v\n", args[0], err)
		return 1
	}
}

// errUsage marks an error the flag package already reported.
var errUsage = errors.New("usage error")

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return bi.Main.Version + " " + s.Value[:12]
			}
		}
		return bi.Main.Version
	}
	return "(unknown)"
}

// parseFlags parses args and maps flag errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

// requireFlags reports the first of the named flags left empty, with the
// usage, as a usage error. Pairs are flag name, value.
func requireFlags(fs *flag.FlagSet, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			fmt.Fprintf(fs.Output(), "--%s is required\n", pairs[i])
			fs.Usage()
			return errUsage
		}
	}
	return nil
}
