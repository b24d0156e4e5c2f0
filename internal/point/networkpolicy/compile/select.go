package compile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

const (
	// WorkloadLabel carries a pod's identity name where no workload selector can stand
	// for the identity; it is added and removed by the operator only.
	WorkloadLabel = "intentguard.dev/workload"
	// WorkloadKindLabel carries the identity kind beside WorkloadLabel.
	WorkloadKindLabel = "intentguard.dev/workload-kind"
)

// selectorKinds are the controllers whose selector is stable for the life of the workload
// and so can stand for its identity in a policy.
var selectorKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true}

// Workload is a pod controller in a namespace and the selector of its pods.
type Workload = facts.Workload

// Pod is what pod selection needs of a pod: its labels and resolved identity.
type Pod struct {
	Labels   map[string]string
	Identity identity.Identity
}

// Selection is how policies select the pods of one identity.
type Selection struct {
	// Selector selects exactly the identity's pods (never empty).
	Selector *metav1.LabelSelector
	// ByLabel is true when Selector relies on WorkloadLabel, which the identity's pods must
	// then carry.
	ByLabel bool
}

// SelectPods decides how to select the pods of ref. The workload's own selector is used
// when exactly one stable workload answers to ref and, among the namespace's pods, that
// selector matches exactly the pods of ref's identity: then new pods are selected from the
// moment they exist. Otherwise (annotation-overridden identities, bare pods, jobs,
// selectors shared with other workloads) pods are selected by the operator's own labels,
// so a policy never selects a pod of another identity.
func SelectPods(ref intent.Ref, workloads []Workload, pods []Pod) Selection {
	var candidate *Workload
	for i := range workloads {
		w := &workloads[i]
		if w.Name != ref.Name || (ref.Kind != "" && w.Kind != ref.Kind) {
			continue
		}
		if candidate != nil || !selectorKinds[w.Kind] || isEmpty(w.Selector) {
			return ByLabel(ref)
		}
		candidate = w
	}
	if candidate == nil {
		return ByLabel(ref)
	}
	sel, err := metav1.LabelSelectorAsSelector(candidate.Selector)
	if err != nil {
		return ByLabel(ref)
	}
	for _, p := range pods {
		if sel.Matches(labels.Set(p.Labels)) != ref.Matches(p.Identity) {
			return ByLabel(ref)
		}
	}
	return Selection{Selector: candidate.Selector.DeepCopy()}
}

// ByLabel is the selection of ref's pods through the operator's pod labels.
func ByLabel(ref intent.Ref) Selection {
	return Selection{Selector: &metav1.LabelSelector{MatchLabels: PodLabels(ref)}, ByLabel: true}
}

// PodLabels are the labels the operator puts on pods of ref when selecting them by label.
func PodLabels(ref intent.Ref) map[string]string {
	l := map[string]string{WorkloadLabel: LabelValue(ref.Name)}
	if ref.Kind != "" {
		l[WorkloadKindLabel] = LabelValue(ref.Kind)
	}
	return l
}

// IdentityLabels are the operator labels a pod of identity id carries when selected by label.
func IdentityLabels(id identity.Identity) map[string]string {
	return PodLabels(intent.Ref{Namespace: id.Namespace, Name: id.Name, Kind: id.Kind})
}

// LabelValue returns s when it is a valid label value, else a stable digest of it.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h." + hex.EncodeToString(sum[:])[:56]
}

func isEmpty(s *metav1.LabelSelector) bool {
	return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
}

// Select decides how policies select ref's pods, and returns the pods it looked at: the
// candidate pods of ref's workloads and the pods carrying the operator's label for ref.
func Select(ctx context.Context, f facts.Facts, ref intent.Ref) (Selection, []facts.Pod, error) {
	sel, pods, _, err := selectAndFind(ctx, f, ref)
	return sel, pods, err
}

// selectAndFind is Select, and whether ref exists (existsIn) from what Select looked at.
func selectAndFind(ctx context.Context, f facts.Facts, ref intent.Ref) (Selection, []facts.Pod, bool, error) {
	workloads, err := f.Workloads(ctx, ref.Namespace, ref.Name)
	if err != nil {
		return Selection{}, nil, false, err
	}
	pods, err := candidatePods(ctx, f, ref, workloads)
	if err != nil {
		return Selection{}, nil, false, err
	}
	in := make([]Pod, len(pods))
	for i, p := range pods {
		in[i] = Pod{Labels: p.Meta.Labels, Identity: p.Identity}
	}
	return SelectPods(ref, workloads, in), pods, existsIn(ref, workloads, pods), nil
}

// candidatePods returns the pods that can bear on how ref's pods are selected: those the
// facts give for ref and its workloads, and those carrying the operator's label for ref.
func candidatePods(ctx context.Context, f facts.Facts, ref intent.Ref, workloads []Workload) ([]facts.Pod, error) {
	pods, err := f.PodsOf(ctx, ref, workloads)
	if err != nil {
		return nil, err
	}
	labelled, err := f.PodsMatching(ctx, ref.Namespace, map[string]string{WorkloadLabel: LabelValue(ref.Name)})
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(pods))
	for _, p := range pods {
		seen[p.Meta.Name] = true
	}
	for _, p := range labelled {
		if !seen[p.Meta.Name] {
			seen[p.Meta.Name] = true
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// existsIn reports whether ref names a workload or pods in the cluster, from ref's
// workloads and candidate pods.
func existsIn(ref intent.Ref, workloads []Workload, pods []facts.Pod) bool {
	for _, w := range workloads {
		if identity.KindMatches(ref.Kind, w.Kind) {
			return true
		}
	}
	for _, p := range pods {
		if ref.Matches(p.Identity) {
			return true
		}
	}
	return false
}
