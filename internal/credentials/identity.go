package credentials

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/cluster"
	"github.com/intentguard/intentguard/internal/identity"
)

// DefaultSPIFFEIDFormat is upstream's SPIFFE ID layout, so that SPIRE entries and
// authorization policies written for it keep working.
const DefaultSPIFFEIDFormat = "spiffe://{trustDomain}/otterize/namespace/{namespace}/service/{name}"

// ownerLookup is the project's one owner walk over the manager's cache, reading owners
// as metadata so that no workload's spec is ever held in memory.
func ownerLookup(r client.Reader) identity.OwnerLookup { return cluster.OwnerLookup(r) }

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
	for _, gvk := range cluster.FollowedOwners {
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
