package netpol

import (
	"crypto/sha256"
	"encoding/hex"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

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
type Workload struct {
	Kind     string
	Name     string
	Selector *metav1.LabelSelector
}

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
