package compile

import (
	"context"
	"fmt"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

// LabelRefs returns the workloads whose pods may need the operator's labels: the client
// of each ClientIntents, each workload it calls other than through a Service (a Service
// target's policy selects by the Service's own selector), and the server each
// ProtectedService names.
func LabelRefs(intents []v2beta1.ClientIntents, protected []v2beta1.ProtectedService) []intent.Ref {
	var refs []intent.Ref
	for i := range intents {
		refs = append(refs, intent.Client(&intents[i]))
		for _, s := range intent.Servers(&intents[i]) {
			if !s.Service {
				refs = append(refs, s.Ref)
			}
		}
	}
	for i := range protected {
		refs = append(refs, intent.Protected(&protected[i]).Ref)
	}
	return refs
}

// LabelsWanted returns the operator labels a pod of identity id must carry, the one rule
// the operator's labeller and the CLI's prediction share: the identity's labels when a
// ref that names id (from LabelRefs) has its pods selected by label, none otherwise.
// Refs naming other identities are ignored, so any superset of id's refs gives the same
// answer.
func (p Planner) LabelsWanted(ctx context.Context, id identity.Identity, refs []intent.Ref) (map[string]string, error) {
	seen := map[intent.Ref]bool{}
	for _, ref := range refs {
		if seen[ref] || !ref.Matches(id) {
			continue
		}
		seen[ref] = true
		sel, _, err := p.SelectPods(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("selecting the pods of %s: %w", ref, err)
		}
		if sel.ByLabel {
			return IdentityLabels(id), nil
		}
	}
	return nil, nil
}
