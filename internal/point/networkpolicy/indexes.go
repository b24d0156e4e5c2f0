package networkpolicy

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"

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
	// indexPolicyServer maps the operator's NetworkPolicies to "namespace/server digest",
	// the digest they are labelled with (the label compile.ServerLabel).
	indexPolicyServer = "intentguard.policyServer"
)

// Annotations that stand in the cache for a NetworkPolicy's spec. The cache holds them
// only: nothing written to the API server is built from a cached policy.
const (
	// cachedSpecDigest is compile.SpecDigest of the policy's spec.
	cachedSpecDigest = "cache.intentguard.dev/spec-digest"
	// cachedLabelRefs are the policy's policyLabelRefs, comma-separated.
	cachedLabelRefs = "cache.intentguard.dev/label-refs"
	// cachedBy marks a policy slimPolicy made, with slimMark.
	cachedBy = "cache.intentguard.dev/slimmed-by"
)

// slimMark tells a policy this process slimmed from one the API server sent, which may
// carry annotations of the names above: it is drawn at random when the process starts
// and never leaves it, so no object written to the API server can carry it.
var slimMark = rand.Text()

// LimitCache keeps only the operator's own NetworkPolicies in the cache, and of each
// only its metadata, a digest of its spec and the pod labels it selects by: nothing
// else is ever read, and the spec (a peer for every client) was most of the policy
// cache's memory, one policy per server.
func LimitCache(opts *cache.Options) {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.ByObject[&networkingv1.NetworkPolicy{}] = cache.ByObject{
		Label:     labels.SelectorFromSet(labels.Set{ownership.Label: ownership.IntentsOperator}),
		Transform: slimPolicy,
	}
}

// slimPolicy is the cache's transform of a NetworkPolicy: no managed fields, and the
// spec replaced by the annotations cachedSpecDigest and cachedLabelRefs. The informer
// may hand it a policy it slimmed already (a list streamed by watch goes through it
// twice), which it returns as it is; annotations of those names on a policy from the API
// server are overwritten, never trusted.
func slimPolicy(obj any) (any, error) {
	np, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok || slimmed(np) {
		return obj, nil
	}
	ann := make(map[string]string, len(np.Annotations)+3)
	for k, v := range np.Annotations {
		ann[k] = v
	}
	ann[cachedSpecDigest] = compile.SpecDigest(&np.Spec)
	ann[cachedLabelRefs] = strings.Join(specLabelRefs(np), ",")
	ann[cachedBy] = slimMark
	np.Annotations = ann
	np.Spec = networkingv1.NetworkPolicySpec{}
	np.ManagedFields = nil
	return np, nil
}

// slimmed reports whether slimPolicy made np.
func slimmed(np *networkingv1.NetworkPolicy) bool {
	return np.Annotations[cachedBy] == slimMark
}

// upToDate is compile.UpToDate for a policy read from the cache, which holds its spec as
// a digest.
func upToDate(desired, cached *networkingv1.NetworkPolicy) bool {
	if slimmed(cached) {
		return compile.UpToDateWithSpec(desired, cached, cached.Annotations[cachedSpecDigest])
	}
	return compile.UpToDate(desired, cached)
}

// registerIndexes adds the NetworkPolicy indexes the point queries to the cache. Every
// value names its namespace, and every query is across namespaces.
func registerIndexes(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &networkingv1.NetworkPolicy{}, indexPolicyLabelRef, policyLabelRefs); err != nil {
		return fmt.Errorf("indexing NetworkPolicies by the pod labels they select: %w", err)
	}
	if err := idx.IndexField(ctx, &networkingv1.NetworkPolicy{}, indexPolicyServer, func(o client.Object) []string {
		if v := o.GetLabels()[compile.ServerLabel]; v != "" {
			return []string{o.GetNamespace() + "/" + v}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing NetworkPolicies by server: %w", err)
	}
	return nil
}

// policyLabelRefs returns the operator pod labels a NetworkPolicy selects pods by, in its
// pod selector and in its ingress peers, as "namespace/label value": from the spec, or
// for a policy read from the cache, from what slimPolicy recorded of it.
func policyLabelRefs(o client.Object) []string {
	np, ok := o.(*networkingv1.NetworkPolicy)
	if !ok {
		return nil
	}
	if slimmed(np) {
		if refs := np.Annotations[cachedLabelRefs]; refs != "" {
			return strings.Split(refs, ",")
		}
		return nil
	}
	return specLabelRefs(np)
}

// specLabelRefs is policyLabelRefs read from the policy's spec.
func specLabelRefs(np *networkingv1.NetworkPolicy) []string {
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
