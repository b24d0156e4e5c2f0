package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/cli/output"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
)

// analysisFlags are the flags of the commands that run the operator's compilers: the
// inputs, and the operator's roll-out settings to assume.
type analysisFlags struct {
	input input.Flags
	// dirs are --dir files and directories of manifests.
	dirs []string
	// rollout are the operator's --shadow-mode and --enforced-namespaces.
	rollout enforcement.Options
}

func (f *analysisFlags) addTo(fs *pflag.FlagSet) {
	f.input.AddTo(fs)
	fs.StringArrayVar(&f.dirs, "dir", nil, "a file or directory of manifests (repeatable)")
	fs.BoolVar(&f.rollout.Shadow, "shadow-mode", false, "assume the operator runs in shadow mode (enforcing only ProtectedServices and --enforced-namespaces)")
	fs.StringSliceVar(&f.rollout.EnforcedNamespaces, "enforced-namespaces", nil, "with --shadow-mode, namespaces the operator enforces anyway")
}

// analyze reads opts and runs the operator's compilers over what it read.
func analyze(ctx context.Context, opts input.Options, rollout enforcement.Options) (*analysis.Result, error) {
	set, err := input.Load(ctx, opts)
	if err != nil {
		return nil, err
	}
	snap, err := snapshot.New(set.Objects)
	if err != nil {
		return nil, fmt.Errorf("indexing the inputs: %w", err)
	}
	origin := func(o client.Object) string {
		if src, ok := set.Sources[input.KeyOf(o)]; ok {
			return src.String()
		}
		return ""
	}
	return analysis.Analyze(ctx, snap, analysis.Options{Enforcement: rollout, Origin: origin})
}

// checkExpectations checks an assertions file on the objects of opts, with the
// operator's default settings. The failures, each with the chain that breaks it, are
// written to w when asText, else carried by the findings error, so that a JSON or
// JUnit report on w stays one document.
func checkExpectations(ctx context.Context, opts input.Options, path string, w io.Writer, asText bool) error {
	exp, err := analysis.LoadExpectations(path)
	if err != nil {
		return err
	}
	r, err := analyze(ctx, opts, enforcement.Options{})
	if err != nil {
		return err
	}
	failures := r.Check(exp)
	if len(failures) == 0 {
		return nil
	}
	var text strings.Builder
	render.Failures(&text, failures)
	if asText {
		fmt.Fprint(w, text.String())
		return output.Findings(nil)
	}
	return output.Findings(errors.New(strings.TrimSuffix(text.String(), "\n")))
}
