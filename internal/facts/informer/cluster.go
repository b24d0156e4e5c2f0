// Package informer answers the compilers' questions (facts.Facts) from the operator's
// informer cache, and keeps the indexes and the pod identity index those answers need.
package informer

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
)

// Index names registered on the cache.
const (
	// IndexServer maps ClientIntents to the server keys ("namespace|key") they target.
	IndexServer = "intentguard.server"
	// IndexServerName maps ClientIntents to the "namespace/name" of workload servers they target.
	IndexServerName = "intentguard.serverName"
	// IndexClient maps ClientIntents to their client's "namespace/name".
	IndexClient = "intentguard.client"
	// IndexServerNamespace maps ClientIntents to the namespaces of the servers they target.
	IndexServerNamespace = "intentguard.serverNamespace"
	// IndexProtectedName maps ProtectedServices to "namespace/name".
	IndexProtectedName = "intentguard.protectedName"
	// IndexPodLabel maps pods to "namespace/value" of the label Start was given.
	IndexPodLabel = "intentguard.podLabel"
)

var (
	podGVK        = corev1.SchemeGroupVersion.WithKind("Pod")
	replicaSetGVK = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
	jobGVK        = batchv1.SchemeGroupVersion.WithKind("Job")
	cronJobGVK    = batchv1.SchemeGroupVersion.WithKind("CronJob")
)

// ServerIndexKey is the IndexServer value of a server.
func ServerIndexKey(s intent.Server) string { return s.Namespace + "|" + s.Key() }

// NameKey is the "namespace/name" value used by the name indexes.
func NameKey(namespace, name string) string { return namespace + "/" + name }

// Start registers the indexes and starts the pod identity index on the manager's cache,
// and returns a Reader over both. The manager is ready only once the identity index is.
// Pods are also indexed by the value of podLabel, when given: the Reader finds the pods
// carrying a value of it without reading every pod of the namespace.
func Start(ctx context.Context, mgr ctrl.Manager, podLabel string) (Reader, error) {
	idx := ClusterWideIndexer{Cache: mgr.GetCache()}
	if err := RegisterIndexes(ctx, idx); err != nil {
		return Reader{}, err
	}
	if podLabel != "" {
		if err := RegisterPodLabelIndex(ctx, idx, podLabel); err != nil {
			return Reader{}, err
		}
	}
	ids := NewIdentities(mgr.GetCache(), mgr.GetAPIReader(), mgr.GetLogger().WithName("identities"))
	if err := ids.Start(ctx); err != nil {
		return Reader{}, err
	}
	if err := mgr.AddReadyzCheck("identities", func(*http.Request) error {
		if !ids.HasSynced() {
			return fmt.Errorf("pod identities not indexed yet")
		}
		return nil
	}); err != nil {
		return Reader{}, fmt.Errorf("adding the identity index readiness check: %w", err)
	}
	return Reader{Reader: mgr.GetClient(), Identities: ids, Informers: mgr.GetCache(), IndexedPodLabel: podLabel}, nil
}

// RegisterPodLabelIndex indexes the pods' metadata by the value of label (IndexPodLabel).
func RegisterPodLabelIndex(ctx context.Context, idx client.FieldIndexer, label string) error {
	if err := idx.IndexField(ctx, PodMeta(), IndexPodLabel, func(o client.Object) []string {
		if v, ok := o.GetLabels()[label]; ok {
			return []string{NameKey(o.GetNamespace(), v)}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by %s: %w", label, err)
	}
	return nil
}

// RegisterIndexes adds the indexes the controllers query to the cache. Every value names
// its namespace, and every query is across namespaces: idx may be a ClusterWideIndexer.
func RegisterIndexes(ctx context.Context, idx client.FieldIndexer) error {
	ciIndexes := map[string]client.IndexerFunc{
		IndexServer: func(o client.Object) []string {
			var out []string
			for _, s := range intent.Servers(o.(*v2beta1.ClientIntents)) {
				out = append(out, ServerIndexKey(s))
			}
			return out
		},
		IndexServerName: func(o client.Object) []string {
			var out []string
			for _, s := range intent.Servers(o.(*v2beta1.ClientIntents)) {
				if !s.Service {
					out = append(out, NameKey(s.Namespace, s.Name))
				}
			}
			return out
		},
		IndexServerNamespace: func(o client.Object) []string {
			seen := map[string]bool{}
			var out []string
			for _, s := range intent.Servers(o.(*v2beta1.ClientIntents)) {
				if !seen[s.Namespace] {
					seen[s.Namespace] = true
					out = append(out, s.Namespace)
				}
			}
			return out
		},
		IndexClient: func(o client.Object) []string {
			c := intent.Client(o.(*v2beta1.ClientIntents))
			return []string{NameKey(c.Namespace, c.Name)}
		},
	}
	for name, fn := range ciIndexes {
		if err := idx.IndexField(ctx, &v2beta1.ClientIntents{}, name, fn); err != nil {
			return fmt.Errorf("indexing ClientIntents by %s: %w", name, err)
		}
	}
	if err := idx.IndexField(ctx, &v2beta1.ProtectedService{}, IndexProtectedName, func(o client.Object) []string {
		ps := o.(*v2beta1.ProtectedService)
		return []string{NameKey(ps.Namespace, ps.Spec.Name)}
	}); err != nil {
		return fmt.Errorf("indexing ProtectedServices by name: %w", err)
	}
	return nil
}

// PodsMatching implements facts.Facts.
func (r Reader) PodsMatching(ctx context.Context, namespace string, selector map[string]string) ([]facts.Pod, error) {
	list := PodMetaList()
	if err := r.List(ctx, list, r.podsSelected(namespace, selector)...); err != nil {
		return nil, fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	out := make([]facts.Pod, 0, len(list.Items))
	for i := range list.Items {
		id, err := r.Identity(ctx, &list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, facts.Pod{Meta: &list.Items[i], Identity: id})
	}
	return out, nil
}

// NamespaceReady implements facts.Facts.
func (r Reader) NamespaceReady(ctx context.Context, namespace string) (bool, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	return ns.DeletionTimestamp.IsZero(), nil
}

// CacheOptions keeps the cache to what the operator needs: no managed fields, of
// Deployments, StatefulSets and DaemonSets their metadata and selector (CachedWorkload),
// and of the ReplicaSets, Jobs and CronJobs between pods and their workloads only the
// owner references that resolving an identity reads; the strings ClientIntents'
// statuses repeat are kept once. Enforcement points narrow it further to the objects
// they own.
func CacheOptions() cache.Options {
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:     {Transform: slimWorkload},
			&appsv1.StatefulSet{}:    {Transform: slimWorkload},
			&appsv1.DaemonSet{}:      {Transform: slimWorkload},
			&v2beta1.ClientIntents{}: {Transform: slimIntents()},
		},
	}
	for _, gvk := range []schema.GroupVersionKind{replicaSetGVK, jobGVK, cronJobGVK} {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		opts.ByObject[m] = cache.ByObject{Transform: slimOwner}
	}
	return opts
}

// slimOwner keeps of an intermediate owner's metadata what the identity index and
// Workloads read: its name, version, deletion and owner references (kind and name).
// Their labels and annotations (a ReplicaSet carries its pod template's labels and its
// Deployment's revision) are never read, and there is one such owner or two per workload.
func slimOwner(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return cache.TransformStripManagedFields()(obj)
	}
	refs := make([]metav1.OwnerReference, len(m.OwnerReferences))
	for i, r := range m.OwnerReferences {
		refs[i] = metav1.OwnerReference{APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, Controller: r.Controller}
	}
	if len(refs) == 0 {
		refs = nil
	}
	m.ObjectMeta = metav1.ObjectMeta{
		Namespace: m.Namespace, Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp, OwnerReferences: refs,
	}
	return m, nil
}

// noCopy lists straight from the cache without copying: every list here is read only.
var noCopy = client.UnsafeDisableDeepCopy

// Reader answers questions about the cluster from the cache.
type Reader struct {
	client.Reader
	// Identities finds pods by identity; PodsOf needs it. Without it,
	// Identity walks owners through Reader.
	Identities *Identities
	// Informers, when set, are the informers behind Reader, which WorkloadsSelecting
	// reads in place.
	Informers cache.Informers
	// IndexedPodLabel, when set, is the label pods are indexed by (IndexPodLabel).
	IndexedPodLabel string
}

// podsSelected returns the list options of the pods in namespace whose labels include
// selector: through IndexPodLabel when the selector is the indexed label alone, else
// by reading the labels of every pod of the namespace. Lists are read only.
func (r Reader) podsSelected(namespace string, selector map[string]string) []client.ListOption {
	if v, ok := selector[r.IndexedPodLabel]; ok && len(selector) == 1 && r.IndexedPodLabel != "" {
		return []client.ListOption{client.MatchingFields{IndexPodLabel: NameKey(namespace, v)}, noCopy}
	}
	return []client.ListOption{client.InNamespace(namespace), client.MatchingLabels(selector), noCopy}
}

// PodMeta returns an empty metadata-only pod to read into.
func PodMeta() *metav1.PartialObjectMetadata {
	p := &metav1.PartialObjectMetadata{}
	p.SetGroupVersionKind(podGVK)
	return p
}

// PodMetaList returns an empty metadata-only pod list to read into.
func PodMetaList() *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	return l
}

// Identity resolves a pod's identity: from the index when there is one, else through
// owners read from Reader by the rule both operators share.
func (r Reader) Identity(ctx context.Context, pod metav1.Object) (identity.Identity, error) {
	if r.Identities != nil {
		return r.Identities.Resolve(pod), nil
	}
	return identity.Resolve(ctx, pod, identity.NewOwners(r.Reader, r.Reader, logr.Discard()).Lookup)
}

// PodsOf implements facts.Facts: every pod whose identity has ref's name (found by
// identity, whatever owns it) and the pods the candidate workloads' selectors match.
func (r Reader) PodsOf(ctx context.Context, ref intent.Ref, workloads []facts.Workload) ([]facts.Pod, error) {
	seen := map[string]bool{}
	var out []facts.Pod
	for _, p := range r.Identities.PodsNamed(ref.Namespace, ref.Name) {
		seen[p.Meta.Name] = true
		out = append(out, p)
	}
	var queries []client.ListOption
	for _, w := range workloads {
		if w.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(w.Selector)
		if err != nil || sel.Empty() {
			continue
		}
		queries = append(queries, client.MatchingLabelsSelector{Selector: sel})
	}
	for _, q := range queries {
		list := PodMetaList()
		if err := r.List(ctx, list, client.InNamespace(ref.Namespace), q, noCopy); err != nil {
			return nil, fmt.Errorf("listing pods for %s: %w", ref, err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			if seen[p.Name] {
				continue
			}
			seen[p.Name] = true
			id, err := r.Identity(ctx, p)
			if err != nil {
				return nil, err
			}
			out = append(out, facts.Pod{Meta: p, Identity: id})
		}
	}
	return out, nil
}

// PodsLabelled lists the pods in namespace whose labels include selector, without their
// identities.
func (r Reader) PodsLabelled(ctx context.Context, namespace string, selector map[string]string) ([]metav1.PartialObjectMetadata, error) {
	list := PodMetaList()
	if err := r.List(ctx, list, r.podsSelected(namespace, selector)...); err != nil {
		return nil, fmt.Errorf("listing labelled pods in %s: %w", namespace, err)
	}
	return list.Items, nil
}

// Workloads implements facts.Facts; read from the informers' stores, the selectors are
// the cache's, read only.
func (r Reader) Workloads(ctx context.Context, namespace, name string) ([]facts.Workload, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	var out []facts.Workload
	stores, err := r.workloadStores(ctx, workloadKinds)
	if err != nil {
		return nil, err
	}
	for i, kind := range workloadKinds {
		var obj client.Object
		if stores != nil {
			item, exists, err := stores[i].GetByKey(key.String())
			if err != nil {
				return nil, fmt.Errorf("reading %s %s: %w", kind.name, key, err)
			}
			if !exists {
				continue
			}
			obj, _ = item.(client.Object)
		} else {
			obj = kind.proto.DeepCopyObject().(client.Object)
			if err := r.Get(ctx, key, obj); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("reading %s %s: %w", kind.name, key, err)
			}
		}
		if obj == nil || len(obj.GetOwnerReferences()) > 0 {
			continue // its owner, not it, is the identity; or not a root of any
		}
		out = append(out, facts.Workload{Kind: kind.name, Name: name, Selector: SelectorOf(obj)})
	}
	return out, nil
}

// WorkloadsSelecting returns the names of the stable workloads in namespace whose
// selector matches a pod's labels.
func (r Reader) WorkloadsSelecting(ctx context.Context, namespace string, podLabels map[string]string) ([]string, error) {
	var out []string
	set := labels.Set(podLabels)
	match := func(name string, s *metav1.LabelSelector) {
		if sel, err := metav1.LabelSelectorAsSelector(s); err == nil && !sel.Empty() && sel.Matches(set) {
			out = append(out, name)
		}
	}
	if done, err := r.eachWorkloadIn(ctx, namespace, match); done || err != nil {
		return out, err
	}
	var ds appsv1.DeploymentList
	if err := r.List(ctx, &ds, client.InNamespace(namespace), noCopy); err != nil {
		return nil, fmt.Errorf("listing Deployments in %s: %w", namespace, err)
	}
	for i := range ds.Items {
		match(ds.Items[i].Name, ds.Items[i].Spec.Selector)
	}
	var ss appsv1.StatefulSetList
	if err := r.List(ctx, &ss, client.InNamespace(namespace), noCopy); err != nil {
		return nil, fmt.Errorf("listing StatefulSets in %s: %w", namespace, err)
	}
	for i := range ss.Items {
		match(ss.Items[i].Name, ss.Items[i].Spec.Selector)
	}
	var dss appsv1.DaemonSetList
	if err := r.List(ctx, &dss, client.InNamespace(namespace), noCopy); err != nil {
		return nil, fmt.Errorf("listing DaemonSets in %s: %w", namespace, err)
	}
	for i := range dss.Items {
		match(dss.Items[i].Name, dss.Items[i].Spec.Selector)
	}
	return out, nil
}

// workloadKind is a kind of object a pod's identity may be named after; proto, an
// empty object of the kind, names its informer and is never changed.
type workloadKind struct {
	name  string
	proto client.Object
}

func metadataOf(gvk schema.GroupVersionKind) client.Object {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	return m
}

// workloadKinds are the kinds Workloads reads: first those that select pods (cached
// as CachedWorkload), then the owners cached as metadata.
var workloadKinds = []workloadKind{
	{"Deployment", &appsv1.Deployment{}},
	{"StatefulSet", &appsv1.StatefulSet{}},
	{"DaemonSet", &appsv1.DaemonSet{}},
	{"ReplicaSet", metadataOf(replicaSetGVK)},
	{"Job", metadataOf(jobGVK)},
	{"CronJob", metadataOf(cronJobGVK)},
}

// selectingKinds are the kinds of workloadKinds whose objects carry a pod selector.
var selectingKinds = workloadKinds[:3]

// workloadStores returns the informers' stores of kinds, or nil when the Reader has no
// informers to read. The cache keeps the selecting kinds as CachedWorkload, which its
// typed Get and List cannot return; and a Get copies what it finds, and makes an error
// of what it does not: a Get of each kind for every server planned was 12% of what the
// operator allocated in a bulk.
func (r Reader) workloadStores(ctx context.Context, kinds []workloadKind) ([]toolscache.Indexer, error) {
	if r.Informers == nil {
		return nil, nil
	}
	type indexed interface{ GetIndexer() toolscache.Indexer }
	stores := make([]toolscache.Indexer, 0, len(kinds))
	for _, kind := range kinds {
		inf, err := r.Informers.GetInformer(ctx, kind.proto)
		if err != nil {
			return nil, fmt.Errorf("getting the %s informer: %w", kind.name, err)
		}
		store, ok := inf.(indexed)
		if !ok {
			return nil, fmt.Errorf("the %s informer has no store to read", kind.name)
		}
		stores = append(stores, store.GetIndexer())
	}
	return stores, nil
}

// eachWorkloadIn calls f with the name and selector of every Deployment, StatefulSet
// and DaemonSet in namespace, read in place from the informers' stores; done is false
// when the Reader has no informers to read. A list from the cache copies every object
// into its items: every pod event asks, and a namespace of many Deployments made that
// most of what the operator allocated.
func (r Reader) eachWorkloadIn(ctx context.Context, namespace string, f func(name string, s *metav1.LabelSelector)) (done bool, err error) {
	stores, err := r.workloadStores(ctx, selectingKinds)
	if err != nil || stores == nil {
		return err != nil, err
	}
	for _, store := range stores {
		items, err := store.ByIndex(toolscache.NamespaceIndex, namespace)
		if err != nil {
			return true, fmt.Errorf("reading the workloads of %s: %w", namespace, err)
		}
		for _, item := range items {
			if sel, ok := workloadOf(item); ok {
				f(item.(client.Object).GetName(), sel)
			}
		}
	}
	return true, nil
}

// IntentsFor lists the live ClientIntents matching an index value. They share their
// spec and status with the cache, read only: every server and pod reconcile lists the
// intents of its identities, and copying each one with its status was 4% of what the
// operator allocated in a bulk.
func (r Reader) IntentsFor(ctx context.Context, index, value string) ([]v2beta1.ClientIntents, error) {
	var list v2beta1.ClientIntentsList
	if err := r.List(ctx, &list, client.MatchingFields{index: value}, noCopy); err != nil {
		return nil, fmt.Errorf("listing ClientIntents by %s=%s: %w", index, value, err)
	}
	out := list.Items[:0]
	for _, ci := range list.Items {
		if ci.DeletionTimestamp.IsZero() {
			out = append(out, ci)
		}
	}
	return out, nil
}

// ProtectedNamed implements facts.Facts; the ProtectedServices share their contents with
// the cache, read only.
func (r Reader) ProtectedNamed(ctx context.Context, namespace, name string) ([]v2beta1.ProtectedService, error) {
	var list v2beta1.ProtectedServiceList
	if err := r.List(ctx, &list, client.MatchingFields{IndexProtectedName: NameKey(namespace, name)}, noCopy); err != nil {
		return nil, fmt.Errorf("listing ProtectedServices for %s/%s: %w", namespace, name, err)
	}
	out := list.Items[:0]
	for _, ps := range list.Items {
		if ps.DeletionTimestamp.IsZero() {
			out = append(out, ps)
		}
	}
	return out, nil
}

// IntentsTargeting implements facts.Facts.
func (r Reader) IntentsTargeting(ctx context.Context, server intent.Server) ([]v2beta1.ClientIntents, error) {
	return r.IntentsFor(ctx, IndexServer, ServerIndexKey(server))
}

// Service implements facts.Facts.
func (r Reader) Service(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	var svc corev1.Service
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &svc)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading Service %s/%s: %w", namespace, name, err)
	}
	return &svc, nil
}

// Scheme returns a scheme with every type the operator reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme, v2beta1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("building scheme: %v", err))
		}
	}
	return s
}

// Reader answers the compilers' questions.
var _ facts.Facts = Reader{}
