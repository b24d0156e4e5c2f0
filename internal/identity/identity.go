// Package identity resolves a pod's service identity: the name (and kind) of the workload
// it belongs to, which ClientIntents refer to.
package identity

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// WorkloadNameAnnotation overrides a pod's identity name.
	WorkloadNameAnnotation = "intents.otterize.com/workload-name"
	// ServiceNameAnnotation is the older twin of WorkloadNameAnnotation.
	ServiceNameAnnotation = "intents.otterize.com/service-name"

	// maxOwnerDepth bounds the owner walk; real chains are 2 or 3 deep.
	maxOwnerDepth = 8
)

// Identity is a workload's service identity within its namespace.
type Identity struct {
	Namespace string
	Name      string
	// Kind is the root owner's kind ("Deployment", "CronJob", "Pod" for a bare pod), or
	// empty when the name comes from an annotation.
	Kind string
}

// String renders the identity as kind/namespace/name.
func (i Identity) String() string {
	return fmt.Sprintf("%s/%s/%s", i.Kind, i.Namespace, i.Name)
}

// Matches reports whether the identity is the one a reference (name, optional kind) names.
func (i Identity) Matches(namespace, name, kind string) bool {
	return i.Namespace == namespace && i.Name == name && KindMatches(kind, i.Kind)
}

// KindMatches reports whether a reference's kind admits an object of kind have: a
// reference without a kind admits every kind, as in intents files.
func KindMatches(want, have string) bool { return want == "" || want == have }

// KindsAgree reports whether two references' kinds can name the same object: they agree
// unless both are set and differ.
func KindsAgree(a, b string) bool { return KindMatches(a, b) || KindMatches(b, a) }

// OwnerLookup returns the owner references of the object that ref points to in namespace.
// found is false when the object is unknown to the lookup (not cached, deleted, or of a
// kind it does not follow); the walk then stops at ref.
type OwnerLookup func(ctx context.Context, namespace string, gvk schema.GroupVersionKind, name string) (owners []metav1.OwnerReference, found bool, err error)

// Resolve returns the identity of the pod whose metadata is given: the annotation
// override, else the root of its ownerReferences, else the pod itself.
func Resolve(ctx context.Context, pod metav1.Object, lookup OwnerLookup) (Identity, error) {
	ns := pod.GetNamespace()
	if id, ok := FromAnnotations(ns, pod.GetAnnotations()); ok {
		return id, nil
	}
	root, err := Root(ctx, pod, lookup)
	if err != nil {
		return Identity{}, err
	}
	if root == nil {
		return Identity{Namespace: ns, Name: pod.GetName(), Kind: "Pod"}, nil
	}
	return Identity{Namespace: ns, Name: root.Name, Kind: root.Kind}, nil
}

// Root returns a copy of the reference to the root of a pod's owners, the object its
// identity is named after unless an annotation overrides it; nil for a pod without owners.
func Root(ctx context.Context, pod metav1.Object, lookup OwnerLookup) (*metav1.OwnerReference, error) {
	ns := pod.GetNamespace()
	ref := controllerOf(pod.GetOwnerReferences())
	if ref == nil {
		return nil, nil
	}
	for depth := 0; depth < maxOwnerDepth; depth++ {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: owner %s %q: %w", ns, pod.GetName(), ref.Kind, ref.Name, err)
		}
		owners, found, err := lookup(ctx, ns, gv.WithKind(ref.Kind), ref.Name)
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: looking up owner %s %q: %w", ns, pod.GetName(), ref.Kind, ref.Name, err)
		}
		next := controllerOf(owners)
		if !found || next == nil {
			break
		}
		ref = next
	}
	root := *ref
	return &root, nil
}

// FromAnnotations returns the identity set by the override annotations, if any.
func FromAnnotations(namespace string, annotations map[string]string) (Identity, bool) {
	for _, key := range []string{WorkloadNameAnnotation, ServiceNameAnnotation} {
		if v := annotations[key]; v != "" {
			return Identity{Namespace: namespace, Name: v}, true
		}
	}
	return Identity{}, false
}

// controllerOf returns the controlling owner reference, or the first one when none is
// marked as controller (objects created by hand sometimes omit the flag).
func controllerOf(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	if len(refs) > 0 {
		return &refs[0]
	}
	return nil
}
