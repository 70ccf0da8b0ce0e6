package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/vigil-video/vigil/inference"
)

const modelsUsage = `usage: vigil models import FILE.onnx --family F [--name N] [--registry DIR]
       vigil models list [--registry DIR] [--json]
       vigil models promote NAME VERSION [--registry DIR]
       vigil models quantize BUNDLE --calib URL [flags]   ('vigil models quantize -h')

import:   makes a new version of model N (default: the file's name) in the
          registry from a plain ONNX file: its fp32 variant, the family's
          input conventions and labels, and a checksum.
list:     prints every model of the registry with its versions and variants.
promote:  makes VERSION the one in service; a running server whose config names
          the model's registry folder loads it within seconds, and keeps the old
          one if the new one does not load.
quantize: adds an int8 variant to a bundle, calibrated on frames of a source.

The registry is DIR (default $VIGIL_MODELS, else ./models): DIR/<name>/<version>/
holds a bundle (model.yaml + one ONNX file per variant); DIR/<name>/active names
the version in service (the highest when absent).
`

func defaultRegistry() string {
	if d := os.Getenv("VIGIL_MODELS"); d != "" {
		return d
	}
	return "models"
}

// runModels dispatches `vigil models …`.
func runModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, modelsUsage)
		return errUsage
	}
	switch args[0] {
	case "import":
		return runModelsImport(args[1:], stdout, stderr)
	case "list":
		return runModelsList(args[1:], stdout, stderr)
	case "quantize":
		return runModelsQuantize(ctx, args[1:], stdout, stderr)
	case "promote":
		return runModelsPromote(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, modelsUsage)
		return flag.ErrHelp
	}
	fmt.Fprintf(stderr, "vigil models: unknown subcommand %q\n\n%s", args[0], modelsUsage)
	return errUsage
}

// splitFirstArg takes a leading positional argument so that flags may follow it.
func splitFirstArg(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

func runModelsImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil models import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	family := fs.String("family", "", "output decoder: "+strings.Join(inference.FamilyNames(), ", "))
	name := fs.String("name", "", "model `name` in the registry (default: the file's base name)")
	registry := fs.String("registry", defaultRegistry(), "registry `dir`")
	file, rest := splitFirstArg(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if file == "" || *family == "" {
		fmt.Fprintln(stderr, "vigil models import: FILE.onnx and --family are required")
		fs.Usage()
		return errUsage
	}
	b, err := inference.Registry{Root: *registry}.Import(file, *family, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %s as %s version %d in %s (%s, %s %dx%d, %d labels)\n",
		file, b.Name, b.Version, b.Dir, b.Task, b.Family, b.Input.Width, b.Input.Height, len(b.Labels))
	return nil
}

// modelListing is one line of `vigil models list --json`.
type modelListing struct {
	Name     string              `json:"name"`
	Versions []int               `json:"versions"`
	Active   int                 `json:"active"`
	Task     inference.Task      `json:"task,omitempty"`
	Family   string              `json:"family,omitempty"`
	Input    string              `json:"input,omitempty"`
	Variants []inference.Variant `json:"variants,omitempty"`
	Error    string              `json:"error,omitempty"`
}

func runModelsList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil models list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registry := fs.String("registry", defaultRegistry(), "registry `dir`")
	asJSON := fs.Bool("json", false, "one JSON object per model")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	entries, listErr := inference.Registry{Root: *registry}.List()
	var rows []modelListing
	for _, e := range entries {
		row := modelListing{Name: e.Name, Versions: e.Versions, Active: e.Active}
		if b := e.Bundle; b != nil {
			row.Task, row.Family, row.Variants = b.Task, b.Family, b.Variants
			row.Input = fmt.Sprintf("%dx%d %s %s", b.Input.Width, b.Input.Height, b.Input.Layout, b.Input.Color)
		} else {
			row.Error = "active version does not load"
		}
		rows = append(rows, row)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		if len(rows) == 0 {
			fmt.Fprintf(stdout, "no models in %s\n", *registry)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tACTIVE\tVERSIONS\tTASK\tFAMILY\tINPUT\tVARIANTS (accuracy loss)")
		for _, r := range rows {
			var vs []string
			for _, v := range r.Variants {
				vs = append(vs, fmt.Sprintf("%s (%.4f)", v.Name, v.Accuracy.Loss))
			}
			fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\t%s\t%s%s\n", r.Name, r.Active, r.Versions, r.Task, r.Family, r.Input, strings.Join(vs, ", "), r.Error)
		}
		tw.Flush()
	}
	return listErr
}

func runModelsPromote(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil models promote", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registry := fs.String("registry", defaultRegistry(), "registry `dir`")
	name, rest := splitFirstArg(args)
	version, rest := splitFirstArg(rest)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	v, err := strconv.Atoi(version)
	if name == "" || err != nil {
		fmt.Fprintln(stderr, "vigil models promote: NAME and a numeric VERSION are required")
		fs.Usage()
		return errUsage
	}
	if err := (inference.Registry{Root: *registry}).Promote(name, v); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: version %d is active\n", name, v)
	return nil
}
