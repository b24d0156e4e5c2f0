package identity

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// BuiltinOwners are the owner kinds both operators' RBAC always grants: they are followed
// without asking the API server first.
var BuiltinOwners = []schema.GroupVersionKind{
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"},
	{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
	{Group: "batch", Version: "v1", Kind: "Job"},
	{Group: "batch", Version: "v1", Kind: "CronJob"},
}

// KindRetry is how long a verdict that a kind may not be read stands before it is asked
// again (its CRD or a grant may be added meanwhile).
const KindRetry = 30 * time.Second

// Owners is the owner-following rule both operators share, so that a pod has one identity
// whichever binary resolves it: an owner of a builtin kind, or of any kind the binary may
// list, is read (as metadata) and followed; an owner of a kind it may not read (refused,
// or not served) is the root of the identity. Whether a kind may be read is asked once,
// around the cache, with a List of one item: a cache asked for a kind it may not watch
// would start an informer that never syncs, and an operator whose cache never syncs is
// never ready.
type Owners struct {
	cache client.Reader
	api   client.Reader
	log   logr.Logger

	mu    sync.Mutex
	kinds map[schema.GroupKind]verdict
}

type verdict struct {
	readable bool
	at       time.Time
}

// NewOwners returns the rule reading owners through cache and asking api (a reader that
// goes to the API server) whether a kind may be read.
func NewOwners(cache, api client.Reader, log logr.Logger) *Owners {
	return &Owners{cache: cache, api: api, log: log, kinds: map[schema.GroupKind]verdict{}}
}

// Readable reports whether owners of the kind are followed. A refusal (forbidden, or a
// kind the API server does not serve) is remembered for KindRetry; any other failure is
// returned, so that the caller tries again rather than settle on a shorter identity.
func (o *Owners) Readable(ctx context.Context, gvk schema.GroupVersionKind) (bool, error) {
	gk := gvk.GroupKind()
	if slices.ContainsFunc(BuiltinOwners, func(b schema.GroupVersionKind) bool { return b.GroupKind() == gk }) {
		return true, nil
	}
	o.mu.Lock()
	v, known := o.kinds[gk]
	o.mu.Unlock()
	if known && (v.readable || time.Since(v.at) < KindRetry) {
		return v.readable, nil
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	err := o.api.List(ctx, list, client.Limit(1))
	switch {
	case err == nil:
	case refused(err):
		o.log.Info("cannot list owner kind; its objects count as roots of their pods' identities (grant get, list and watch on it to follow it)", "kind", gk.String(), "error", err.Error())
	default:
		return false, fmt.Errorf("asking whether owners of kind %s may be listed: %w", gk, err)
	}
	o.mu.Lock()
	o.kinds[gk] = verdict{readable: err == nil, at: time.Now()}
	o.mu.Unlock()
	return err == nil, nil
}

// refused reports whether a List failed because the kind may not be read at all, as
// opposed to failing for now.
func refused(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) ||
		apimeta.IsNoMatchError(err)
}

// Lookup is the OwnerLookup of the rule: an owner of a kind that may not be read, or that
// does not exist, stops the walk there. An owner the cache has not seen yet is read from
// the API server: a pod's event can arrive before its ReplicaSet's, and stopping there
// would name the identity after the ReplicaSet.
func (o *Owners) Lookup(ctx context.Context, namespace string, gvk schema.GroupVersionKind, name string) ([]metav1.OwnerReference, bool, error) {
	ok, err := o.Readable(ctx, gvk)
	if err != nil || !ok {
		return nil, false, err
	}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	err = o.cache.Get(ctx, key, m)
	if apierrors.IsNotFound(err) && o.api != o.cache {
		err = o.api.Get(ctx, key, m)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading owner %s %s/%s: %w", gvk.Kind, namespace, name, err)
	}
	return m.GetOwnerReferences(), true, nil
}
