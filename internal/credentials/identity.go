package credentials

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/internal/identity"
)

// DefaultSPIFFEIDFormat is upstream's SPIFFE ID layout, so that SPIRE entries and
// authorization policies written for it keep working.
const DefaultSPIFFEIDFormat = "spiffe://{trustDomain}/otterize/namespace/{namespace}/service/{name}"

// rootOwner returns the object a pod's Secret should be owned by, so that it is
// garbage-collected with the workload: the root of the pod's owners as the rule both
// operators share finds it (ignoring the identity-override annotation, which names an
// identity, not an object), or the pod.
func rootOwner(ctx context.Context, owners *identity.Owners, pod *corev1.Pod) (*metav1.OwnerReference, error) {
	root, err := identity.Root(ctx, pod, owners.Lookup)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}, nil
	}
	// Only the reference: a Secret owned by the workload must not block its deletion.
	return &metav1.OwnerReference{APIVersion: root.APIVersion, Kind: root.Kind, Name: root.Name, UID: root.UID}, nil
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

// newer orders the pods of a workload, the one that speaks for it first: the newest (during
// a rollout it carries the new template's annotations), then by name, since creation times
// have one-second steps and the cache lists pods in no fixed order; without the second
// rule two reconciles could pick different pods and rewrite the Secret or entry each time.
func newer(a, b *corev1.Pod) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name < b.Name
}
