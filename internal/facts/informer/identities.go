package informer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/identity"
)

// PodChange is a pod whose identity or labels changed (or that appeared or went away):
// what a controller needs to find the policies and labels the change bears on.
type PodChange struct {
	Namespace, Name string
	// Old and New are the identities before and after; zero when the pod did not exist.
	Old, New identity.Identity
	// OldLabels and NewLabels are the pod's labels before and after.
	OldLabels, NewLabels map[string]string
}

// Identities keeps the resolved identity of every pod and finds pods by identity. It is
// fed by the pod informer and by the informers of every owner kind pods point to (read as
// metadata, so kinds the operator has no type for are followed too): an owner that
// arrives, changes or goes away resolves the pods below it again, and every change is
// passed on to the controllers' sources only after the index holds it. The index never
// waits for a controller: a replica that is not the leader runs the index (its readiness
// depends on it) but not the controllers.
type Identities struct {
	mu sync.RWMutex
	// pods holds each pod's metadata (as the informer holds it; read only) and identity.
	pods map[objectKey]*podEntry
	// byName maps "namespace/identity name" to the names of the pods of identities of
	// that name. Slices, not sets: most identities have one pod, most owners one child,
	// and an empty set costs a map.
	byName map[string][]string
	// owners holds, for each owner object seen, its controlling owner (nil at a root),
	// kept to what resolving reads of it.
	owners map[ownerKey]*metav1.OwnerReference
	// children maps an owner to the pods and owners that name it as their controller.
	children map[ownerKey][]childKey
	// kinds records the owner kinds followed (or being started), and when a kind that
	// could not be followed was last tried.
	kinds map[schema.GroupKind]kindState
	subs  map[*subscriber]struct{}

	cache cache.Cache
	// rule decides, as in the credentials operator, which owner kinds are followed.
	rule   *identity.Owners
	ctx    context.Context
	log    logr.Logger
	synced []toolscache.InformerSynced
}

type objectKey struct{ namespace, name string }

type ownerKey struct {
	namespace, group, kind, name string
}

// childKey is a pod (pod true) or an owner object below an owner.
type childKey struct {
	pod   bool
	owner ownerKey
	name  string
}

type podEntry struct {
	meta  *metav1.PartialObjectMetadata
	id    identity.Identity
	owner *ownerKey
}

type kindState struct {
	followed bool
	tried    time.Time
}

// kindRetry is how long a kind whose informer could not be started (its CRD not installed
// yet, say) waits before the next pod or owner naming it tries again.
const kindRetry = identity.KindRetry

// typedOwners are the owner kinds the operator caches with their types already; their
// informers are shared with the controllers instead of opening a second watch.
var typedOwners = map[schema.GroupVersionKind]client.Object{
	appsv1.SchemeGroupVersion.WithKind("Deployment"):  &appsv1.Deployment{},
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"): &appsv1.StatefulSet{},
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"):   &appsv1.DaemonSet{},
}

// NewIdentities returns an index fed by c's informers; probe (an API reader) checks that
// an owner kind can be listed before the index follows it. Call Subscribe before Start.
func NewIdentities(c cache.Cache, probe client.Reader, log logr.Logger) *Identities {
	return &Identities{
		pods:     map[objectKey]*podEntry{},
		byName:   map[string][]string{},
		owners:   map[ownerKey]*metav1.OwnerReference{},
		children: map[ownerKey][]childKey{},
		kinds:    map[schema.GroupKind]kindState{},
		subs:     map[*subscriber]struct{}{},
		cache:    c,
		rule:     identity.NewOwners(c, probe, log),
		log:      log,
	}
}

// subscriber is a started controller: its handler only adds requests to the controller's
// work queue, which is unbounded and merges repeated requests, so handing it a change
// never waits.
type subscriber struct {
	ctx     context.Context
	handler handler.TypedEventHandler[PodChange, reconcile.Request]
	queue   workqueue.TypedRateLimitingInterface[reconcile.Request]
}

func (s *subscriber) deliver(c PodChange) {
	s.handler.Generic(s.ctx, event.TypedGenericEvent[PodChange]{Object: c}, s.queue)
}

// Source returns the source of pod changes for one controller, mapped to requests by h.
// Nothing is kept for a controller before it starts (on a replica that is not the leader
// it may never start): when it starts, every pod the index holds is handed to it as a
// change from nothing, then every later change. The controller's other sources list
// every intent, policy and protected service at the same moment, so what a pod that went
// away before the start left behind is reconciled too.
func (x *Identities) Source(h handler.TypedEventHandler[PodChange, reconcile.Request]) source.Source {
	return changeSource{x: x, h: h}
}

type changeSource struct {
	x *Identities
	h handler.TypedEventHandler[PodChange, reconcile.Request]
}

// Start subscribes the controller's queue, then replays the index into it. A change
// published between the two reaches it twice, which the queue merges.
func (s changeSource) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	sub := &subscriber{ctx: ctx, handler: s.h, queue: q}
	x := s.x
	x.mu.Lock()
	x.subs[sub] = struct{}{}
	replay := make([]PodChange, 0, len(x.pods))
	for k, e := range x.pods {
		replay = append(replay, PodChange{Namespace: k.namespace, Name: k.name, New: e.id, NewLabels: e.meta.Labels})
	}
	x.mu.Unlock()
	go func() {
		<-ctx.Done()
		x.mu.Lock()
		delete(x.subs, sub)
		x.mu.Unlock()
	}()
	for _, c := range replay {
		sub.deliver(c)
	}
	return nil
}

// Start registers the index on the pod informer and the informers of the common owner
// kinds. ctx bounds the informers the index starts later for other owner kinds.
func (x *Identities) Start(ctx context.Context) error {
	x.ctx = ctx
	pod := PodMeta()
	inf, err := x.cache.GetInformer(ctx, pod, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting the pod informer: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { x.podChanged(asMeta(o)) },
		UpdateFunc: func(_, o any) { x.podChanged(asMeta(o)) },
		DeleteFunc: func(o any) { x.podDeleted(asMeta(o)) },
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	x.mu.Lock()
	x.synced = append(x.synced, reg.HasSynced)
	x.mu.Unlock()
	for _, gvk := range identity.BuiltinOwners {
		if err := x.follow(ctx, gvk, typedOwners[gvk]); err != nil {
			return err
		}
	}
	return nil
}

// HasSynced reports whether the index has seen every pod and owner of the initial lists.
func (x *Identities) HasSynced() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, s := range x.synced {
		if !s() {
			return false
		}
	}
	return true
}

// follow registers the index on the informer of one owner kind; obj nil reads it as metadata.
func (x *Identities) follow(ctx context.Context, gvk schema.GroupVersionKind, obj client.Object) error {
	gk := gvk.GroupKind()
	if obj == nil {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		obj = m
	}
	inf, err := x.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting the %s informer: %w", gk, err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { x.ownerChanged(gk, asObject(o)) },
		UpdateFunc: func(_, o any) { x.ownerChanged(gk, asObject(o)) },
		DeleteFunc: func(o any) { x.ownerDeleted(gk, asObject(o)) },
	})
	if err != nil {
		return fmt.Errorf("watching %s: %w", gk, err)
	}
	x.mu.Lock()
	x.kinds[gk] = kindState{followed: true}
	x.synced = append(x.synced, reg.HasSynced)
	x.mu.Unlock()
	return nil
}

// followLater starts following an owner kind seen for the first time, off the informer's
// goroutine: starting an informer asks the API server for the kind's mapping.
func (x *Identities) followLater(gvk schema.GroupVersionKind) {
	go func() {
		ok, err := x.rule.Readable(x.ctx, gvk)
		if err != nil {
			x.log.Info("cannot tell whether owner kind may be listed; its objects count as roots of their pods' identities until the next try", "kind", gvk.GroupKind().String(), "error", err.Error())
			return
		}
		if !ok {
			return
		}
		if err := x.follow(x.ctx, gvk, nil); err != nil {
			x.log.Info("cannot follow owner kind; its objects count as roots of their pods' identities", "kind", gvk.GroupKind().String(), "error", err.Error())
		}
	}()
}

func asMeta(o any) *metav1.PartialObjectMetadata {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	m, _ := o.(*metav1.PartialObjectMetadata)
	return m
}

func asObject(o any) client.Object {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	c, _ := o.(client.Object)
	return c
}

// keyOfRef returns the owner key a reference in namespace points to.
func keyOfRef(namespace string, ref *metav1.OwnerReference) (ownerKey, schema.GroupVersionKind, bool) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ownerKey{}, schema.GroupVersionKind{}, false
	}
	return ownerKey{namespace: namespace, group: gv.Group, kind: ref.Kind, name: ref.Name}, gv.WithKind(ref.Kind), true
}

// controllerRef is identity's choice of the owner to follow, copied as far as resolving
// reads it: its kind and name.
func controllerRef(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &metav1.OwnerReference{APIVersion: refs[i].APIVersion, Kind: refs[i].Kind, Name: refs[i].Name}
		}
	}
	if len(refs) > 0 {
		return &metav1.OwnerReference{APIVersion: refs[0].APIVersion, Kind: refs[0].Kind, Name: refs[0].Name}
	}
	return nil
}

// lookup resolves owners from the index alone; the caller holds the lock.
func (x *Identities) lookup(_ context.Context, namespace string, gvk schema.GroupVersionKind, name string) ([]metav1.OwnerReference, bool, error) {
	ref, ok := x.owners[ownerKey{namespace: namespace, group: gvk.Group, kind: gvk.Kind, name: name}]
	if !ok {
		return nil, false, nil
	}
	if ref == nil {
		return nil, true, nil
	}
	return []metav1.OwnerReference{*ref}, true, nil
}

// resolve returns a pod's identity from the owners the index holds; the caller holds the lock.
func (x *Identities) resolve(pod metav1.Object) identity.Identity {
	id, err := identity.Resolve(context.Background(), pod, x.lookup)
	if err != nil {
		// Only an unparsable apiVersion in an owner reference gets here: the pod counts
		// as its own identity, which no intents name by accident.
		return identity.Identity{Namespace: pod.GetNamespace(), Name: pod.GetName(), Kind: "Pod"}
	}
	return id
}

// needKind starts following the kind of an owner reference if nothing follows it yet;
// the caller holds the lock.
func (x *Identities) needKind(namespace string, ref *metav1.OwnerReference) {
	if ref == nil || x.ctx == nil {
		return
	}
	_, gvk, ok := keyOfRef(namespace, ref)
	if !ok {
		return
	}
	st := x.kinds[gvk.GroupKind()]
	if st.followed || time.Since(st.tried) < kindRetry {
		return
	}
	x.kinds[gvk.GroupKind()] = kindState{tried: time.Now()}
	x.followLater(gvk)
}

func (x *Identities) podChanged(pod *metav1.PartialObjectMetadata) {
	if pod == nil {
		return
	}
	x.mu.Lock()
	change := x.setPod(pod)
	x.mu.Unlock()
	x.publish(change)
}

// setPod records a pod and returns the change; the caller holds the lock.
func (x *Identities) setPod(pod *metav1.PartialObjectMetadata) []PodChange {
	key := objectKey{pod.Namespace, pod.Name}
	prev := x.pods[key]
	ref := controllerRef(pod.OwnerReferences)
	x.needKind(pod.Namespace, ref)
	entry := &podEntry{meta: pod, id: x.resolve(pod)}
	if ref != nil {
		if ok, _, valid := keyOfRef(pod.Namespace, ref); valid {
			entry.owner = &ok
		}
	}
	change := PodChange{Namespace: pod.Namespace, Name: pod.Name, New: entry.id, NewLabels: pod.Labels}
	relink := prev == nil || prev.id != entry.id || !sameOwner(prev.owner, entry.owner)
	if prev != nil {
		change.Old, change.OldLabels = prev.id, prev.meta.Labels
		if relink {
			x.unlinkPod(key, prev)
		}
	}
	x.pods[key] = entry
	if relink {
		x.linkPod(key, entry)
	}
	if prev != nil && prev.id == entry.id && labelsEqual(prev.meta.Labels, pod.Labels) {
		return nil
	}
	return []PodChange{change}
}

func (x *Identities) podDeleted(pod *metav1.PartialObjectMetadata) {
	if pod == nil {
		return
	}
	x.mu.Lock()
	key := objectKey{pod.Namespace, pod.Name}
	prev := x.pods[key]
	if prev != nil {
		x.unlinkPod(key, prev)
		delete(x.pods, key)
	}
	x.mu.Unlock()
	if prev != nil {
		x.publish([]PodChange{{Namespace: pod.Namespace, Name: pod.Name, Old: prev.id, OldLabels: prev.meta.Labels}})
	}
}

// sameOwner reports whether two pod entries name the same owner.
func sameOwner(a, b *ownerKey) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// linkPod files a pod under its identity and owner; the caller has unlinked any earlier
// entry of the pod, so the lists hold each pod once. A pod whose identity and owner stay
// is not unlinked and linked again, so that the updates of a workload of many pods do not
// each walk its list.
func (x *Identities) linkPod(key objectKey, e *podEntry) {
	name := NameKey(e.id.Namespace, e.id.Name)
	x.byName[name] = append(x.byName[name], key.name)
	if e.owner != nil {
		x.children[*e.owner] = append(x.children[*e.owner], childKey{pod: true, name: key.name})
	}
}

func (x *Identities) unlinkPod(key objectKey, e *podEntry) {
	name := NameKey(e.id.Namespace, e.id.Name)
	if rest := without(x.byName[name], key.name); len(rest) == 0 {
		delete(x.byName, name)
	} else {
		x.byName[name] = rest
	}
	if e.owner != nil {
		x.removeChild(*e.owner, childKey{pod: true, name: key.name})
	}
}

// addChild files an owner object under its owner, once however often it is seen.
func (x *Identities) addChild(owner ownerKey, c childKey) {
	if !slices.Contains(x.children[owner], c) {
		x.children[owner] = append(x.children[owner], c)
	}
}

func (x *Identities) removeChild(owner ownerKey, c childKey) {
	if rest := without(x.children[owner], c); len(rest) == 0 {
		delete(x.children, owner)
	} else {
		x.children[owner] = rest
	}
}

// without removes v from list in place, not keeping the order.
func without[T comparable](list []T, v T) []T {
	for i := range list {
		if list[i] == v {
			last := len(list) - 1
			list[i] = list[last]
			var zero T
			list[last] = zero
			return list[:last]
		}
	}
	return list
}

func (x *Identities) ownerChanged(gk schema.GroupKind, o client.Object) {
	if o == nil {
		return
	}
	key := ownerKey{namespace: o.GetNamespace(), group: gk.Group, kind: gk.Kind, name: o.GetName()}
	ref := controllerRef(o.GetOwnerReferences())
	x.mu.Lock()
	prev, known := x.owners[key]
	if known && refsEqual(prev, ref) {
		x.mu.Unlock()
		return
	}
	x.needKind(key.namespace, ref)
	x.setOwner(key, prev, ref)
	changes := x.reresolve(key)
	x.mu.Unlock()
	x.publish(changes)
}

func (x *Identities) ownerDeleted(gk schema.GroupKind, o client.Object) {
	if o == nil {
		return
	}
	key := ownerKey{namespace: o.GetNamespace(), group: gk.Group, kind: gk.Kind, name: o.GetName()}
	x.mu.Lock()
	prev, known := x.owners[key]
	if !known {
		x.mu.Unlock()
		return
	}
	if prev != nil {
		if up, _, ok := keyOfRef(key.namespace, prev); ok {
			x.removeChild(up, childKey{owner: key})
		}
	}
	delete(x.owners, key)
	changes := x.reresolve(key)
	x.mu.Unlock()
	x.publish(changes)
}

// setOwner records an owner's controlling reference; the caller holds the lock.
func (x *Identities) setOwner(key ownerKey, prev, ref *metav1.OwnerReference) {
	if prev != nil {
		if up, _, ok := keyOfRef(key.namespace, prev); ok {
			x.removeChild(up, childKey{owner: key})
		}
	}
	x.owners[key] = ref
	if ref != nil {
		if up, _, ok := keyOfRef(key.namespace, ref); ok {
			x.addChild(up, childKey{owner: key})
		}
	}
}

// reresolve resolves again every pod below an owner; the caller holds the lock.
func (x *Identities) reresolve(root ownerKey) []PodChange {
	var changes []PodChange
	seen := map[ownerKey]bool{}
	var walk func(ownerKey)
	walk = func(k ownerKey) {
		if seen[k] {
			return // a cycle of owner references; real clusters have none
		}
		seen[k] = true
		for _, c := range slices.Clone(x.children[k]) {
			if !c.pod {
				walk(c.owner)
				continue
			}
			if e := x.pods[objectKey{k.namespace, c.name}]; e != nil {
				changes = append(changes, x.setPod(e.meta)...)
			}
		}
	}
	walk(root)
	return changes
}

func (x *Identities) publish(changes []PodChange) {
	if len(changes) == 0 {
		return
	}
	x.mu.RLock()
	subs := make([]*subscriber, 0, len(x.subs))
	for s := range x.subs {
		subs = append(subs, s)
	}
	x.mu.RUnlock()
	for _, c := range changes {
		for _, s := range subs {
			s.deliver(c)
		}
	}
}

// Of returns the identity of a pod the index holds.
func (x *Identities) Of(namespace, name string) (identity.Identity, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.pods[objectKey{namespace, name}]
	if !ok {
		return identity.Identity{}, false
	}
	return e.id, true
}

// Resolve returns the identity of a pod, from the index when it holds the pod, else
// resolved through the owners the index holds.
func (x *Identities) Resolve(pod metav1.Object) identity.Identity {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.pods[objectKey{pod.GetNamespace(), pod.GetName()}]; ok && e.meta.ResourceVersion == pod.GetResourceVersion() {
		return e.id
	}
	return x.resolve(pod)
}

// PodsNamed returns the pods whose identity has this name in namespace (of any kind),
// with their identities. The metadata is shared with the cache: read only.
func (x *Identities) PodsNamed(namespace, name string) []facts.Pod {
	x.mu.RLock()
	defer x.mu.RUnlock()
	names := x.byName[NameKey(namespace, name)]
	out := make([]facts.Pod, 0, len(names))
	for _, n := range names {
		e := x.pods[objectKey{namespace, n}]
		out = append(out, facts.Pod{Meta: e.meta, Identity: e.id})
	}
	return out
}

func refsEqual(a, b *metav1.OwnerReference) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
