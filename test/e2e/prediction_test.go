package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// predictionProblems holds the CLI's analysis to what the operator did. The cluster is
// read as `intentguard` reads one, and the operator's work is taken out of it (its
// NetworkPolicies, its labels on pods): what the analysis predicts from that state must
// be what the operator made of it, the same NetworkPolicies, the same labels on the
// pods its policies select, and the same verdict between every two pods as the
// independent evaluator gives on the live cluster.
func (w *world) predictionProblems() []string {
	ctx := context.Background()
	objs, err := (&input.Live{Config: local.Config, Namespaces: w.liveNamespaces()}).Read(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	livePolicies := map[string]*networkingv1.NetworkPolicy{}
	liveLabels := map[string]map[string]string{}
	var before []client.Object
	for _, o := range objs {
		switch o := o.(type) {
		case *networkingv1.NetworkPolicy:
			if o.Labels[ownership.Label] == ownership.IntentsOperator {
				livePolicies[o.Namespace+"/"+o.Name] = o
				continue
			}
		case *corev1.Pod:
			if !o.DeletionTimestamp.IsZero() {
				continue
			}
			key := o.Namespace + "/" + o.Name
			for _, l := range []string{compile.WorkloadLabel, compile.WorkloadKindLabel} {
				if v, ok := o.Labels[l]; ok {
					if liveLabels[key] == nil {
						liveLabels[key] = map[string]string{}
					}
					liveLabels[key][l] = v
					delete(o.Labels, l)
				}
			}
		}
		before = append(before, o)
	}
	snap, err := snapshot.New(before)
	if err != nil {
		w.t.Fatal(err)
	}
	r, err := analysis.Analyze(ctx, snap, analysis.Options{Enforcement: enforcement.Options{Shadow: w.shadow}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.predictedPolicies += len(r.Policies)
	var problems []string
	predicted := map[string]bool{}
	for _, np := range r.Policies {
		key := np.Namespace + "/" + np.Name
		predicted[key] = true
		switch live, ok := livePolicies[key]; {
		case !ok:
			problems = append(problems, "predicted NetworkPolicy "+key+" does not exist")
		case !compile.UpToDate(np, live):
			problems = append(problems, fmt.Sprintf("NetworkPolicy %s: predicted spec %+v, live %+v", key, np.Spec, live.Spec))
		}
	}
	for key := range livePolicies {
		if !predicted[key] {
			problems = append(problems, "NetworkPolicy "+key+" exists but is not predicted")
		}
	}
	// The operator labels the pods of the identities its policies select, before it
	// writes them; the pods of other identities it labels when an event about them comes,
	// which the analysis cannot know of, and no policy relies on those labels.
	var involved []intent.Ref
	for _, plan := range r.Plans {
		if plan.Policy != nil {
			involved = append(involved, plan.Involved...)
		}
	}
	for _, p := range snap.AllPods() {
		if snap.Predicted(p.Meta) || !slices.ContainsFunc(involved, func(ref intent.Ref) bool { return ref.Matches(p.Identity) }) {
			continue
		}
		key := p.Meta.Namespace + "/" + p.Meta.Name
		if r.PodLabels[key] != nil {
			w.predictedLabels++
		}
		if want, got := r.PodLabels[key], liveLabels[key]; !maps.Equal(want, got) {
			problems = append(problems, fmt.Sprintf("pod %s (%s): predicted operator labels %v, live %v", key, p.Identity, want, got))
		}
	}
	predictedMatrix := r.Matrix(http8080)
	liveMatrix, err := connectivity.Evaluate(ctx, kube, w.liveNamespaces(), http8080)
	if err != nil {
		w.t.Fatal(err)
	}
	byKey := map[string]connectivity.Pod{}
	for _, p := range predictedMatrix.Pods {
		byKey[p.Namespace+"/"+p.Name] = p
	}
	for _, src := range liveMatrix.Pods {
		for _, dst := range liveMatrix.Pods {
			ps, ok1 := byKey[src.Namespace+"/"+src.Name]
			pd, ok2 := byKey[dst.Namespace+"/"+dst.Name]
			if src.Namespace == dst.Namespace && src.Name == dst.Name || !ok1 || !ok2 {
				continue
			}
			if want, got := predictedMatrix.Allowed(ps, pd), liveMatrix.Allowed(src, dst); want != got {
				problems = append(problems, fmt.Sprintf("%s/%s -> %s/%s: predicted allowed=%v, live %v", src.Namespace, src.Name, dst.Namespace, dst.Name, want, got))
			}
		}
	}
	slices.Sort(problems)
	return problems
}

// checkPrediction fails the test when the analysis' prediction differs from the
// operator's outcome.
func (w *world) checkPrediction(step int) {
	if problems := w.predictionProblems(); len(problems) > 0 {
		w.t.Fatalf("seed %d, step %d: what intentguard predicts is not what the operator did (%d differences):\n%s\nchanges so far:\n%s",
			w.seed, step, len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"), strings.Join(w.log, "\n"))
	}
}
