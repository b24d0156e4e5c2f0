package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/analysis"
	"github.com/intentguard/intentguard/internal/cli/input"
	clisnapshot "github.com/intentguard/intentguard/internal/cli/snapshot"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// edit is a step's change of intents or ProtectedServices, held back until the CLI has
// predicted its outcome: put are the objects written (as a pull request's files hold
// them), gone those deleted, and apply writes the change to the API server.
type edit struct {
	put, gone []client.Object
	apply     func()
}

// prediction is what the CLI says of one step: the analysis of the new state, and the
// plan from the state before it.
type prediction struct {
	step   int
	result *analysis.Result
	// plan is nil when there is no state before (the first check).
	plan *analysis.Change
	// before are the NetworkPolicies on the API server before the step, by namespace/name.
	before map[string]*networkingv1.NetworkPolicy
}

// predict runs the CLI's analysis for a step. With an edit, it is `plan --snapshot
// cluster.yaml --dir change/`: a snapshot of the cluster as it is, written by the CLI's
// snapshot code, under the edit's manifests (and without the objects it deletes). Without
// one, the step changed the cluster itself, which has settled: the snapshot is the new
// state and the previous prediction the base.
func (w *world) predict(step int, e *edit) *prediction {
	defer w.timePrediction(time.Now())
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "predict-")
	if err != nil {
		w.t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	snapFile := filepath.Join(dir, "cluster.yaml")
	f, err := os.Create(snapFile)
	if err != nil {
		w.t.Fatal(err)
	}
	live := &input.Live{Config: local.Config, Namespaces: w.namespaces}
	if _, err := clisnapshot.Write(ctx, f, live, time.Now()); err != nil {
		w.t.Fatalf("seed %d, step %d: writing the snapshot: %v", w.seed, step, err)
	}
	if err := f.Close(); err != nil {
		w.t.Fatal(err)
	}
	p := &prediction{step: step, before: w.policies}
	opts := input.Options{Snapshots: []string{snapFile}}
	base := w.lastResult()
	var gone []client.Object
	if e != nil {
		base = w.analyze(step, opts, nil)
		change := filepath.Join(dir, "change")
		w.writeManifests(change, e.put)
		opts.Paths, gone = []string{change}, e.gone
	}
	p.result = w.analyze(step, opts, gone)
	if base != nil {
		plan := analysis.Diff(base, p.result)
		p.plan = &plan
	}
	return p
}

// lastResult is the previous prediction's analysis, if any.
func (w *world) lastResult() *analysis.Result {
	if w.last == nil {
		return nil
	}
	return w.last.result
}

// writeManifests writes objects into dir as a pull request holds them: one file each,
// with apiVersion and kind, metadata naming them and their spec.
func (w *world) writeManifests(dir string, objs []client.Object) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	for i, o := range objs {
		var manifest any
		switch o := o.(type) {
		case *v2beta1.ClientIntents:
			m := &v2beta1.ClientIntents{Spec: o.Spec}
			m.APIVersion, m.Kind, m.Namespace, m.Name = v2beta1.GroupVersion.String(), "ClientIntents", o.Namespace, o.Name
			manifest = m
		case *v2beta1.ProtectedService:
			m := &v2beta1.ProtectedService{Spec: o.Spec}
			m.APIVersion, m.Kind, m.Namespace, m.Name = v2beta1.GroupVersion.String(), "ProtectedService", o.Namespace, o.Name
			manifest = m
		default:
			w.t.Fatalf("no manifest for %T", o)
		}
		b, err := yaml.Marshal(manifest)
		if err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d-%s.yaml", i, o.GetName())), b, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
}

// analyze reads the inputs as the CLI does and runs its analysis with the operator's
// settings. The objects of gone are dropped: an overlay of files cannot delete. The
// operator's labels are taken off the pods, so the labels are predicted, not read back;
// its NetworkPolicies the analysis replaces by its own.
func (w *world) analyze(step int, opts input.Options, gone []client.Object) *analysis.Result {
	ctx := context.Background()
	set, err := input.Load(ctx, opts)
	if err != nil {
		w.t.Fatalf("seed %d, step %d: reading the inputs: %v", w.seed, step, err)
	}
	objs := set.Objects
	for _, g := range gone {
		objs = slices.DeleteFunc(objs, func(o client.Object) bool {
			k := input.KeyOf(o)
			return k.Group == v2beta1.GroupVersion.Group && k.Kind == kindOf(g) && k.Namespace == g.GetNamespace() && k.Name == g.GetName()
		})
	}
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok {
			delete(pod.Labels, compile.WorkloadLabel)
			delete(pod.Labels, compile.WorkloadKindLabel)
		}
	}
	snap, err := snapshot.New(objs)
	if err != nil {
		w.t.Fatalf("seed %d, step %d: indexing the inputs: %v", w.seed, step, err)
	}
	r, err := analysis.Analyze(ctx, snap, analysis.Options{Enforcement: enforcement.Options{Shadow: w.shadow}})
	if err != nil {
		w.t.Fatalf("seed %d, step %d: analysing: %v", w.seed, step, err)
	}
	return r
}

func kindOf(o client.Object) string {
	switch o.(type) {
	case *v2beta1.ClientIntents:
		return "ClientIntents"
	case *v2beta1.ProtectedService:
		return "ProtectedService"
	}
	return fmt.Sprintf("%T", o)
}

// livePolicies returns the NetworkPolicies of the test's namespaces, by namespace/name.
func (w *world) livePolicies() map[string]*networkingv1.NetworkPolicy {
	out := map[string]*networkingv1.NetworkPolicy{}
	for _, ns := range w.liveNamespaces() {
		var list networkingv1.NetworkPolicyList
		if err := kube.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			w.t.Fatal(err)
		}
		for i := range list.Items {
			out[ns+"/"+list.Items[i].Name] = &list.Items[i]
		}
	}
	return out
}

// comparePrediction holds the settled cluster to the prediction: the operator's
// NetworkPolicies and pod labels, every pod pair's verdict on the test's port, explain's
// verdict between every two identities, and the plan's NetworkPolicy writes. The
// cluster is given one more quiet spell before a difference counts, as check gives the
// operator.
func (w *world) comparePrediction(p *prediction) {
	defer w.timePrediction(time.Now())
	var wrong []string
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			w.quiet()
		}
		if wrong = w.predictionErrors(p); len(wrong) == 0 {
			break
		}
	}
	if len(wrong) > 0 {
		w.t.Fatalf("seed %d, step %d: the CLI's prediction differs from the operator's outcome in %d ways:\n%s\nchanges so far:\n%s",
			w.seed, p.step, len(wrong), strings.Join(wrong[:min(len(wrong), 30)], "\n"), strings.Join(w.log, "\n"))
	}
	w.last, w.policies = p, w.livePolicies()
}

// predictionErrors compares the prediction with the cluster as it is now.
func (w *world) predictionErrors(p *prediction) []string {
	m, err := connectivity.Evaluate(context.Background(), kube, w.liveNamespaces(), http8080)
	if err != nil {
		w.t.Fatal(err)
	}
	predicted := p.result.Matrix(http8080)
	byKey := map[string]connectivity.Pod{}
	for _, pod := range predicted.Pods {
		byKey[pod.Namespace+"/"+pod.Name] = pod
	}
	var wrong []string
	for _, dst := range m.Pods {
		pd, ok := byKey[dst.Namespace+"/"+dst.Name]
		if !ok {
			wrong = append(wrong, fmt.Sprintf("pod %s/%s (%s) runs but the snapshot does not hold it", dst.Namespace, dst.Name, dst.Workload))
			continue
		}
		for _, src := range m.Pods {
			ps, ok := byKey[src.Namespace+"/"+src.Name]
			if samePod(src, dst) || !ok {
				continue
			}
			got, want := m.Allowed(src, dst), predicted.Allowed(ps, pd)
			w.predicted++
			if got != want {
				wrong = append(wrong, fmt.Sprintf("%s/%s (%s) -> %s/%s (%s): the operator's cluster allows=%v, the CLI predicted %v",
					src.Namespace, src.Name, src.Workload, dst.Namespace, dst.Name, dst.Workload, got, want))
			}
		}
	}
	wrong = append(wrong, w.objectErrors(p.result)...)
	wrong = append(wrong, w.explainErrors(p.result, m)...)
	if p.plan != nil {
		wrong = append(wrong, w.planErrors(p)...)
	}
	return wrong
}

// objectErrors holds the predicted NetworkPolicies and pod labels to the operator's. The
// labels are compared on the pods of the identities the predicted policies involve that
// the snapshot held and still run: the operator labels those before writing a policy,
// and the pods of other identities only when an event about them comes, which the
// analysis cannot know of (no policy relies on those labels; the verdicts still count).
func (w *world) objectErrors(r *analysis.Result) []string {
	var wrong []string
	live := map[string]*networkingv1.NetworkPolicy{}
	for key, np := range w.livePolicies() {
		if np.Labels[ownership.Label] == ownership.IntentsOperator {
			live[key] = np
		}
	}
	w.predictedPolicies += len(r.Policies)
	for _, np := range r.Policies {
		key := np.Namespace + "/" + np.Name
		switch got, ok := live[key]; {
		case !ok:
			wrong = append(wrong, "the CLI predicted NetworkPolicy "+key+", the operator made none")
		case !compile.UpToDate(np, got):
			wrong = append(wrong, fmt.Sprintf("NetworkPolicy %s: the CLI predicted %+v, the operator made %+v", key, np.Spec, got.Spec))
		}
		delete(live, key)
	}
	for key := range live {
		wrong = append(wrong, "the operator made NetworkPolicy "+key+", the CLI predicted none")
	}
	var involved []intent.Ref
	for _, plan := range r.Plans {
		if plan.Policy != nil {
			involved = append(involved, plan.Involved...)
		}
	}
	for _, pod := range w.livePods() {
		key := pod.Namespace + "/" + pod.Name
		i := slices.IndexFunc(r.Snapshot.Pods(pod.Namespace), func(p facts.Pod) bool { return p.Meta.Name == pod.Name })
		if i < 0 {
			continue // reported with the verdicts
		}
		id := r.Snapshot.Pods(pod.Namespace)[i].Identity
		if !slices.ContainsFunc(involved, func(ref intent.Ref) bool { return ref.Matches(id) }) {
			continue
		}
		if r.PodLabels[key] != nil {
			w.predictedLabels++
		}
		got := map[string]string{}
		for _, l := range []string{compile.WorkloadLabel, compile.WorkloadKindLabel} {
			if v, ok := pod.Labels[l]; ok {
				got[l] = v
			}
		}
		if want := r.PodLabels[key]; !maps.Equal(want, got) {
			wrong = append(wrong, fmt.Sprintf("pod %s: the CLI predicted operator labels %v, the operator put %v", key, want, got))
		}
	}
	return wrong
}

// explainErrors asks explain about every two identities of the live pods on the test's
// port, and holds its verdict to the live cluster's over their pods. The port is asked
// by name, as the Services' target ports name it: explain does not resolve a number to
// the name a pod gives it.
func (w *world) explainErrors(r *analysis.Result, m *connectivity.Matrix) []string {
	var wrong []string
	ids := m.Workloads()
	for _, from := range ids {
		for _, to := range ids {
			live := liveVerdict(m, from, to)
			if live == "" {
				continue // one pod, which does not reach itself
			}
			src, err1 := analysis.ParseEndpoint(from)
			dst, err2 := analysis.ParseEndpoint(to)
			if err1 != nil || err2 != nil {
				w.t.Fatalf("identities %s, %s: %v %v", from, to, err1, err2)
			}
			es, err := r.Explain(analysis.Query{From: src, To: dst, Port: "TCP/" + http8080.Name})
			w.explained++
			switch {
			case err != nil:
				wrong = append(wrong, fmt.Sprintf("explain %s %s: %v", from, to, err))
			case len(es) != 1:
				wrong = append(wrong, fmt.Sprintf("explain %s %s: %d answers for one port", from, to, len(es)))
			case es[0].Verdict != live:
				wrong = append(wrong, fmt.Sprintf("explain %s %s --port %s: the operator's cluster says %s, explain %s (%s%s)",
					from, to, http8080.Name, live, es[0].Verdict, strings.Join(es[0].Chain, "; "), strings.Join(es[0].Missing, "; ")))
			}
		}
	}
	return wrong
}

// liveVerdict is explain's verdict read off the live matrix: allowed or denied when every
// pod pair of the two identities agrees, mixed when they do not; empty with no pair.
func liveVerdict(m *connectivity.Matrix, from, to string) string {
	allowed, denied := 0, 0
	for _, s := range m.Pods {
		for _, d := range m.Pods {
			if s.Workload != from || d.Workload != to || samePod(s, d) {
				continue
			}
			if m.Allowed(s, d) {
				allowed++
			} else {
				denied++
			}
		}
	}
	switch {
	case allowed+denied == 0:
		return ""
	case denied == 0:
		return analysis.Allowed
	case allowed == 0:
		return analysis.Denied
	}
	return analysis.Mixed
}

// planErrors holds the plan's NetworkPolicy writes to the NetworkPolicies that changed on
// the API server during the step: created, updated (spec, labels or annotations) and
// deleted, by name.
func (w *world) planErrors(p *prediction) []string {
	now := w.livePolicies()
	var changed []string
	for key, np := range now {
		old, ok := p.before[key]
		switch {
		case !ok:
			changed = append(changed, analysis.Create+" "+key)
		case !equality.Semantic.DeepEqual(np.Spec, old.Spec) || !equality.Semantic.DeepEqual(np.Labels, old.Labels) || !equality.Semantic.DeepEqual(np.Annotations, old.Annotations):
			changed = append(changed, analysis.Update+" "+key)
		}
	}
	for key := range p.before {
		if _, ok := now[key]; !ok {
			changed = append(changed, analysis.Delete+" "+key)
		}
	}
	var planned []string
	for _, c := range p.plan.Policies {
		planned = append(planned, c.Action+" "+c.Namespace+"/"+c.Name)
	}
	w.planned += len(planned)
	slices.Sort(changed)
	slices.Sort(planned)
	if slices.Equal(changed, planned) {
		return nil
	}
	return []string{fmt.Sprintf("plan lists NetworkPolicy writes %v, the API server saw %v", planned, changed)}
}

// timePrediction adds the time since start to the prediction's cost.
func (w *world) timePrediction(start time.Time) { w.predicting += time.Since(start) }

func samePod(a, b connectivity.Pod) bool { return a.Namespace == b.Namespace && a.Name == b.Name }
