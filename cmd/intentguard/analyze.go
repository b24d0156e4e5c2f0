package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/types"
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
	// istio, istioTrustDomain and istioMeshConfig are the operator's Istio flags.
	istio            bool
	istioTrustDomain string
	istioMeshConfig  string
}

// settings are the operator settings the analysis assumes.
func (f *analysisFlags) settings() (settings, error) {
	st := settings{rollout: f.rollout}
	if !f.istio {
		return st, nil
	}
	ns, name, ok := strings.Cut(f.istioMeshConfig, "/")
	if !ok || ns == "" || name == "" {
		return st, &output.ExitError{Code: output.ExitUsage, Err: fmt.Errorf("--istio-mesh-config %q: want namespace/name", f.istioMeshConfig)}
	}
	st.istio = &analysis.IstioOptions{TrustDomain: f.istioTrustDomain, MeshConfig: types.NamespacedName{Namespace: ns, Name: name}}
	return st, nil
}

// settings are the operator's settings an analysis assumes.
type settings struct {
	rollout enforcement.Options
	// istio, when set, runs the Istio point's compiler too.
	istio *analysis.IstioOptions
}

func (f *analysisFlags) addTo(fs *pflag.FlagSet) {
	f.input.AddTo(fs)
	fs.StringArrayVar(&f.dirs, "dir", nil, "a file or directory of manifests (repeatable)")
	fs.BoolVar(&f.rollout.Shadow, "shadow-mode", false, "assume the operator runs in shadow mode (enforcing only ProtectedServices and --enforced-namespaces)")
	fs.StringSliceVar(&f.rollout.EnforcedNamespaces, "enforced-namespaces", nil, "with --shadow-mode, namespaces the operator enforces anyway")
	fs.BoolVar(&f.istio, "istio", false, "assume the operator writes Istio AuthorizationPolicies too (--istio-authorization-policies)")
	fs.StringVar(&f.istioTrustDomain, "istio-trust-domain", "", "with --istio, the mesh's trust domain (default: from istiod's mesh configuration among the inputs)")
	fs.StringVar(&f.istioMeshConfig, "istio-mesh-config", "istio-system/istio", "with --istio, istiod's ConfigMap among the inputs, namespace/name")
}

// analyze reads opts and runs the operator's compilers over what it read.
func analyze(ctx context.Context, opts input.Options, st settings) (*analysis.Result, error) {
	_, r, err := loadAndAnalyze(ctx, opts, st)
	return r, err
}

// loadAndAnalyze is analyze that also returns the objects read.
func loadAndAnalyze(ctx context.Context, opts input.Options, st settings) (*input.Set, *analysis.Result, error) {
	set, err := input.Load(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	snap, err := snapshot.New(set.Objects)
	if err != nil {
		return nil, nil, fmt.Errorf("indexing the inputs: %w", err)
	}
	origin := func(o client.Object) string {
		if src, ok := set.Sources[input.KeyOf(o)]; ok {
			return src.String()
		}
		return ""
	}
	r, err := analysis.Analyze(ctx, snap, analysis.Options{Enforcement: st.rollout, Origin: origin, Istio: st.istio})
	return set, r, err
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
	r, err := analyze(ctx, opts, settings{})
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
