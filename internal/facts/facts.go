// Package facts is what the enforcement points' compilers may ask of a cluster: a few
// read-only questions, answered by the operator's informer cache (package informer) or
// by a set of objects read from files. Compilers that only ask these questions compute
// the same result offline as in the operator.
package facts

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

// Facts answers the compilers' questions about a cluster. Implementations return what
// they hold (never an error for something absent) and do not modify what they return;
// callers do not modify it either, as it may be the implementation's own copy.
type Facts interface {
	// IntentsTargeting returns the live ClientIntents (not being deleted) that call server.
	IntentsTargeting(ctx context.Context, server intent.Server) ([]v2beta1.ClientIntents, error)
	// ProtectedNamed returns the live ProtectedServices naming name in namespace.
	ProtectedNamed(ctx context.Context, namespace, name string) ([]v2beta1.ProtectedService, error)
	// NamespaceReady reports whether namespace exists and is not being deleted.
	NamespaceReady(ctx context.Context, namespace string) (bool, error)
	// Service returns the Service namespace/name, or nil when there is none.
	Service(ctx context.Context, namespace, name string) (*corev1.Service, error)
	// PodsMatching returns the pods in namespace whose labels include selector, with
	// their identities.
	PodsMatching(ctx context.Context, namespace string, selector map[string]string) ([]Pod, error)
	// Workloads returns the pod controllers named name in namespace that could be the root
	// of an identity of that name: stable ones with their selectors, others without.
	Workloads(ctx context.Context, namespace, name string) ([]Workload, error)
	// PodsOf returns, with their identities, the pods whose identity has ref's name
	// (whatever owns them) and the pods the workloads' selectors match in ref's namespace.
	PodsOf(ctx context.Context, ref intent.Ref, workloads []Workload) ([]Pod, error)
}

// Pod is a pod's metadata and resolved identity.
type Pod struct {
	Meta     *metav1.PartialObjectMetadata
	Identity identity.Identity
}

// Workload is a pod controller that may be the root of an identity.
type Workload struct {
	// Kind is the controller's kind ("Deployment", "Job", ...).
	Kind string
	// Name is its name, the identity's name.
	Name string
	// Selector is its pod selector when it is stable (Deployment, StatefulSet,
	// DaemonSet); nil for the others.
	Selector *metav1.LabelSelector
}
