package export

import (
	"cmp"
	"encoding/json"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
)

// Extension says that an exported ClientIntents is an applied one with targets added.
type Extension struct {
	// Intents is the ClientIntents, namespace/name: the applied one's name.
	Intents string `json:"intents"`
	// Kept are the applied targets, first in the spec; Added the targets that follow.
	Kept  int `json:"kept"`
	Added int `json:"added"`
}

// extend folds the targets exported for a client that already has a ClientIntents
// among declared into a copy of that one: applying the export then keeps what it
// declared, where a second ClientIntents for the workload would be refused by the
// webhook, and one of the same name would replace it.
func extend(exported, declared []v2beta1.ClientIntents, res *Result) ([]v2beta1.ClientIntents, []Extension) {
	var out []v2beta1.ClientIntents
	extended := map[string]*v2beta1.ClientIntents{}
	kept := map[string]int{}
	evidence := map[string][]Evidence{}
	for _, ci := range exported {
		i := slices.IndexFunc(declared, func(d v2beta1.ClientIntents) bool {
			return d.DeletionTimestamp == nil && d.Namespace == ci.Namespace && d.Spec.Workload.Name == ci.Spec.Workload.Name &&
				identity.KindsAgree(d.Spec.Workload.Kind, ci.Spec.Workload.Kind)
		})
		if i < 0 {
			// A ClientIntents of that name for another workload would be replaced.
			for slices.ContainsFunc(declared, func(d v2beta1.ClientIntents) bool { return d.Namespace == ci.Namespace && d.Name == ci.Name }) {
				ci.Name += "-observed"
			}
			out = append(out, ci)
			continue
		}
		applied := declared[i]
		key := applied.Namespace + "/" + applied.Name
		base, ok := extended[key]
		if !ok {
			base = &v2beta1.ClientIntents{
				TypeMeta: ci.TypeMeta,
				ObjectMeta: metav1.ObjectMeta{Namespace: applied.Namespace, Name: applied.Name,
					Labels: applied.Labels, Annotations: map[string]string{}},
				Spec: *applied.Spec.DeepCopy(),
			}
			for k, v := range applied.Annotations {
				base.Annotations[k] = v
			}
			extended[key] = base
			kept[key] = len(applied.Spec.Targets)
			// An annotation that does not read as evidence (edited by hand) gives way.
			var before []Evidence
			if json.Unmarshal([]byte(applied.Annotations[ObservedAnnotation]), &before) == nil {
				evidence[key] = before
			}
		}
		base.Spec.Targets = append(base.Spec.Targets, ci.Spec.Targets...)
		var added []Evidence
		_ = json.Unmarshal([]byte(ci.Annotations[ObservedAnnotation]), &added) // written by build
		evidence[key] = append(evidence[key], added...)
	}
	var exts []Extension
	for key, ci := range extended {
		annotation, omitted := evidenceJSON(evidence[key])
		ci.Annotations[ObservedAnnotation] = annotation
		res.omit(*ci, omitted)
		out = append(out, *ci)
		exts = append(exts, Extension{Intents: key, Kept: kept[key], Added: len(ci.Spec.Targets) - kept[key]})
	}
	slices.SortFunc(exts, func(a, b Extension) int { return cmp.Compare(a.Intents, b.Intents) })
	return out, exts
}
