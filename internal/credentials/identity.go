package credentials

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/identity"
)

// DefaultSPIFFEIDFormat is upstream's SPIFFE ID layout, so that SPIRE entries and
// authorization policies written for it keep working.
const DefaultSPIFFEIDFormat = "spiffe://{trustDomain}/otterize/namespace/{namespace}/service/{name}"

// followed are the owner kinds the identity walk reads (as metadata only); the walk
// stops at any other kind, which then names the identity, as in the intents operator.
var followed = map[schema.GroupVersionKind]bool{
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"):  true,
	appsv1.SchemeGroupVersion.WithKind("Deployment"):  true,
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"): true,
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"):   true,
	batchv1.SchemeGroupVersion.WithKind("Job"):        true,
	batchv1.SchemeGroupVersion.WithKind("CronJob"):    true,
}

// ownerLookup is the identity.OwnerLookup over the manager's cache, reading owners as
// metadata so that no workload's spec is ever held in memory.
func ownerLookup(r client.Reader) identity.OwnerLookup {
	return func(ctx context.Context, namespace string, gvk schema.GroupVersionKind, name string) ([]metav1.OwnerReference, bool, error) {
		if !followed[gvk] {
			return nil, false, nil
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, false, nil
			}
			return nil, false, err
		}
		return m.GetOwnerReferences(), true, nil
	}
}

// rootOwner returns the object a pod's Secret should be owned by, so that it is
// garbage-collected with the workload: the root of the pod's owners (ignoring the
// identity-override annotation, which names an identity, not an object), or the pod.
func rootOwner(ctx context.Context, r client.Reader, pod *corev1.Pod) (*metav1.OwnerReference, error) {
	bare := &metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, OwnerReferences: pod.OwnerReferences}
	root, err := identity.Resolve(ctx, bare, ownerLookup(r))
	if err != nil {
		return nil, err
	}
	if root.Kind == "Pod" {
		return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}, nil
	}
	// The root is one of the pod's owners or one found by the walk: find its API version.
	for gvk := range followed {
		if gvk.Kind != root.Kind {
			continue
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		if err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: root.Name}, m); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("reading owner %s %s/%s: %w", root.Kind, pod.Namespace, root.Name, err)
		}
		return &metav1.OwnerReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: m.Name, UID: m.UID}, nil
	}
	// An owner kind the walk does not follow: the pod's own reference names it.
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == root.Kind && ref.Name == root.Name {
			return &metav1.OwnerReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID}, nil
		}
	}
	return nil, nil
}

// SPIFFEID renders the SPIFFE ID of an identity from a format with the placeholders
// {trustDomain}, {namespace}, {name} and {kind}.
func SPIFFEID(format, trustDomain string, id identity.Identity) (*url.URL, error) {
	s := strings.NewReplacer("{trustDomain}", trustDomain, "{namespace}", id.Namespace, "{name}", id.Name, "{kind}", strings.ToLower(id.Kind)).Replace(format)
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	if u.Scheme != "spiffe" || u.Host == "" || u.Path == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Port() != "" {
		return nil, fmt.Errorf("SPIFFE ID %q is not spiffe://<trust domain>/<path>", s)
	}
	for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, fmt.Errorf("SPIFFE ID %q has an empty or dot path segment", s)
		}
	}
	return u, nil
}
