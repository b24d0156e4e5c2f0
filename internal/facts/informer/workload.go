package informer

import (
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// CachedWorkload is what the cache keeps of a Deployment, StatefulSet or DaemonSet: the
// metadata slimOwner keeps and the selector. A typed workload costs about 1.2 KB even
// without its pod template, most of it the empty template's own fields; readers find
// this in the informers' stores in place of the typed object.
type CachedWorkload struct {
	metav1.PartialObjectMetadata
	// Selector is the workload's pod selector.
	Selector *metav1.LabelSelector
}

// DeepCopyObject implements runtime.Object.
func (w *CachedWorkload) DeepCopyObject() runtime.Object {
	out := &CachedWorkload{}
	w.PartialObjectMetadata.DeepCopyInto(&out.PartialObjectMetadata)
	out.Selector = w.Selector.DeepCopy()
	return out
}

// workloadOf returns the selector of a workload as the cache or a client holds it;
// ok is false for any other object.
func workloadOf(obj any) (selector *metav1.LabelSelector, ok bool) {
	switch w := obj.(type) {
	case *CachedWorkload:
		return w.Selector, true
	case *appsv1.Deployment:
		return w.Spec.Selector, true
	case *appsv1.StatefulSet:
		return w.Spec.Selector, true
	case *appsv1.DaemonSet:
		return w.Spec.Selector, true
	}
	return nil, false
}

// SelectorOf returns the pod selector of a workload, cached or typed, and nil for any
// other object.
func SelectorOf(obj any) *metav1.LabelSelector {
	s, _ := workloadOf(obj)
	return s
}

// slimWorkload is the cache's transform of Deployments, StatefulSets and DaemonSets.
// A list streamed by watch passes it twice: a CachedWorkload passes unchanged.
func slimWorkload(obj any) (any, error) {
	var (
		meta metav1.ObjectMeta
		kind string
	)
	switch w := obj.(type) {
	case *appsv1.Deployment:
		meta, kind = w.ObjectMeta, "Deployment"
	case *appsv1.StatefulSet:
		meta, kind = w.ObjectMeta, "StatefulSet"
	case *appsv1.DaemonSet:
		meta, kind = w.ObjectMeta, "DaemonSet"
	default:
		return cache.TransformStripManagedFields()(obj)
	}
	m := &metav1.PartialObjectMetadata{ObjectMeta: meta}
	m.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind(kind))
	if _, err := slimOwner(m); err != nil {
		return nil, err
	}
	sel, _ := workloadOf(obj)
	return &CachedWorkload{PartialObjectMetadata: *m, Selector: sel}, nil
}
