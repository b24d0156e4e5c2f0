package networkpolicy

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Index names this point registers on the cache.
const (
	// indexPolicyLabelRef maps the operator's NetworkPolicies to the operator pod labels
	// they select by, as "namespace/label value" (see policyLabelRefs).
	indexPolicyLabelRef = "intentguard.policyLabelRef"
	// indexPolicyServer maps the operator's NetworkPolicies to the server digest they are
	// labelled with (the label compile.ServerLabel).
	indexPolicyServer = "intentguard.policyServer"
)

// LimitCache keeps only the operator's own NetworkPolicies in the cache: nothing else
// is ever read or written.
func LimitCache(opts *cache.Options) {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.ByObject[&networkingv1.NetworkPolicy{}] = cache.ByObject{
		Label: labels.SelectorFromSet(labels.Set{ownership.Label: ownership.IntentsOperator}),
	}
}

// registerIndexes adds the NetworkPolicy indexes the point queries to the cache.
func registerIndexes(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &networkingv1.NetworkPolicy{}, indexPolicyLabelRef, policyLabelRefs); err != nil {
		return fmt.Errorf("indexing NetworkPolicies by the pod labels they select: %w", err)
	}
	if err := idx.IndexField(ctx, &networkingv1.NetworkPolicy{}, indexPolicyServer, func(o client.Object) []string {
		if v := o.GetLabels()[compile.ServerLabel]; v != "" {
			return []string{v}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing NetworkPolicies by server: %w", err)
	}
	return nil
}

// policyLabelRefs returns the operator pod labels a NetworkPolicy selects pods by, in its
// pod selector and in its ingress peers, as "namespace/label value".
func policyLabelRefs(o client.Object) []string {
	np, ok := o.(*networkingv1.NetworkPolicy)
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(namespace string, sel *metav1.LabelSelector) {
		if sel == nil || namespace == "" {
			return
		}
		if v, ok := sel.MatchLabels[compile.WorkloadLabel]; ok && !seen[namespace+"/"+v] {
			seen[namespace+"/"+v] = true
			out = append(out, namespace+"/"+v)
		}
	}
	add(np.Namespace, &np.Spec.PodSelector)
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			ns := np.Namespace
			if peer.NamespaceSelector != nil {
				ns = peer.NamespaceSelector.MatchLabels[compile.NamespaceNameLabel]
			}
			add(ns, peer.PodSelector)
		}
	}
	return out
}

// policiesSelecting reports whether a live policy of the operator selects pods by the
// operator label value in namespace.
func policiesSelecting(ctx context.Context, r client.Reader, namespace, value string) (bool, error) {
	var list networkingv1.NetworkPolicyList
	if err := r.List(ctx, &list, client.MatchingFields{indexPolicyLabelRef: namespace + "/" + value}, client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("listing NetworkPolicies selecting %s in %s: %w", value, namespace, err)
	}
	return len(list.Items) > 0, nil
}
