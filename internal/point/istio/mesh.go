package istio

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
)

// indexServiceAccount maps pods to the ServiceAccount they run under.
const indexServiceAccount = "intentguard.istio.serviceAccount"

// cachedMesh answers the Istio compiler's questions from the operator's cache: pods
// slimmed to what mesh detection reads (see slimPod), namespaces' metadata, Services
// and the mesh configuration's ConfigMap.
type cachedMesh struct {
	reader informer.Reader
	// meshConfig is where istiod's mesh configuration lives.
	meshConfig client.ObjectKey
}

var _ authz.MeshFacts = cachedMesh{}

// PodSpecs implements authz.MeshFacts.
func (m cachedMesh) PodSpecs(ctx context.Context, namespace string, names []string) ([]corev1.Pod, error) {
	out := make([]corev1.Pod, 0, len(names))
	for _, name := range names {
		var pod corev1.Pod
		err := m.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
		}
		out = append(out, pod)
	}
	return out, nil
}

// NamespaceLabels implements authz.MeshFacts.
func (m cachedMesh) NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error) {
	ns := namespaceMeta()
	err := m.reader.Get(ctx, client.ObjectKey{Name: namespace}, ns)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	return ns.Labels, nil
}

// ServicesSelecting implements authz.MeshFacts.
func (m cachedMesh) ServicesSelecting(ctx context.Context, namespace string, podLabels map[string]string) ([]corev1.Service, error) {
	var list corev1.ServiceList
	if err := m.reader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing the Services of %s: %w", namespace, err)
	}
	var out []corev1.Service
	for _, svc := range list.Items {
		if len(svc.Spec.Selector) > 0 && k8slabels.SelectorFromSet(svc.Spec.Selector).Matches(k8slabels.Set(podLabels)) {
			out = append(out, svc)
		}
	}
	return out, nil
}

// PodsWithServiceAccount implements authz.MeshFacts. The pods are the cache's own, not
// copies: every client of every server asks for the pods of its ServiceAccount, often a
// namespace's default one that all its pods share, and copying them was most of the
// point's CPU in a bulk. The answer only ever reads them.
func (m cachedMesh) PodsWithServiceAccount(ctx context.Context, namespace, serviceAccount string) ([]facts.Pod, error) {
	var list corev1.PodList
	if err := m.reader.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexServiceAccount: serviceAccount}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the pods of ServiceAccount %s/%s: %w", namespace, serviceAccount, err)
	}
	out := make([]facts.Pod, 0, len(list.Items))
	for i := range list.Items {
		meta := &metav1.PartialObjectMetadata{TypeMeta: list.Items[i].TypeMeta, ObjectMeta: list.Items[i].ObjectMeta}
		id, err := m.reader.Identity(ctx, meta)
		if err != nil {
			return nil, fmt.Errorf("resolving the identity of pod %s/%s: %w", namespace, meta.Name, err)
		}
		out = append(out, facts.Pod{Meta: meta, Identity: id})
	}
	return out, nil
}

// MeshConfig implements authz.MeshFacts.
func (m cachedMesh) MeshConfig(ctx context.Context) (string, bool, error) {
	var cm corev1.ConfigMap
	err := m.reader.Get(ctx, m.meshConfig, &cm)
	switch {
	case apierrors.IsNotFound(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("reading the mesh configuration %s: %w", m.meshConfig, err)
	}
	mesh, ok := cm.Data["mesh"]
	return mesh, ok, nil
}

// serviceAccountOf is the ServiceAccount a pod runs under, as Istio names its identity.
func serviceAccountOf(o client.Object) []string {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return nil
	}
	if pod.Spec.ServiceAccountName != "" {
		return []string{pod.Spec.ServiceAccountName}
	}
	return []string{"default"}
}

// slimPod keeps of a pod what the Istio point reads (metadata, ServiceAccount, the names
// of its containers and whether an init container keeps running), so that caching full
// pods costs little more than caching their metadata.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return cache.TransformStripManagedFields()(obj)
	}
	slim := &corev1.Pod{TypeMeta: pod.TypeMeta, ObjectMeta: pod.ObjectMeta}
	slim.ManagedFields = nil
	slim.Spec.ServiceAccountName = pod.Spec.ServiceAccountName
	for _, c := range pod.Spec.Containers {
		slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Name: c.Name})
	}
	for _, c := range pod.Spec.InitContainers {
		slim.Spec.InitContainers = append(slim.Spec.InitContainers, corev1.Container{Name: c.Name, RestartPolicy: c.RestartPolicy})
	}
	return slim, nil
}

// namespaceMeta is the metadata-only object namespaces are read and watched as.
func namespaceMeta() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}
