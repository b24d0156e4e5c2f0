// Package istio is the Istio enforcement point: it writes, per server that some intents
// call or a ProtectedService names, the AuthorizationPolicies package authz compiles
// (on the server's pods and, in ambient mode, on its waypoint), deletes those of its own
// no longer desired, and records what they enforce for each client.
package istio

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/burst"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Options configure the Istio enforcement point.
type Options struct {
	// Enforcement holds the roll-out settings, the same as the other points'.
	Enforcement enforcement.Options
	// TrustDomain, when set, is used instead of the mesh configuration's.
	TrustDomain string
	// MeshConfig is istiod's ConfigMap, whose "mesh" entry states the trust domain;
	// empty means DefaultMeshConfig.
	MeshConfig types.NamespacedName
}

// DefaultMeshConfig is where istiod's default installation keeps its mesh configuration.
var DefaultMeshConfig = types.NamespacedName{Namespace: "istio-system", Name: "istio"}

func (o Options) withDefaults() Options {
	if o.MeshConfig.Name == "" {
		o.MeshConfig = DefaultMeshConfig
	}
	return o
}

// AddToScheme registers the AuthorizationPolicy types the point reads and writes.
func AddToScheme(s *runtime.Scheme) error {
	if err := securityv1.AddToScheme(s); err != nil {
		return fmt.Errorf("registering security.istio.io/v1: %w", err)
	}
	return nil
}

// LimitCache keeps in the cache only what the point reads: the operator's own
// AuthorizationPolicies, pods slimmed to what mesh detection needs, and the one
// ConfigMap holding the mesh configuration.
func LimitCache(c *cache.Options, opts Options) {
	opts = opts.withDefaults()
	if c.ByObject == nil {
		c.ByObject = map[client.Object]cache.ByObject{}
	}
	c.ByObject[&securityv1.AuthorizationPolicy{}] = cache.ByObject{
		Label: labels.SelectorFromSet(labels.Set{ownership.Label: ownership.IntentsOperator}),
	}
	c.ByObject[&corev1.Pod{}] = cache.ByObject{Transform: slimPod}
	c.ByObject[&corev1.ConfigMap{}] = cache.ByObject{Namespaces: map[string]cache.Config{
		opts.MeshConfig.Namespace: {FieldSelector: fields.OneTermEqualSelector("metadata.name", opts.MeshConfig.Name)},
	}}
}

// Setup registers the Istio point on the manager (whose cache LimitCache shaped) and
// returns it. The AuthorizationPolicy CRD must be served.
func Setup(ctx context.Context, mgr ctrl.Manager, reader informer.Reader, opts Options) (*Point, error) {
	opts = opts.withDefaults()
	gvk := securityv1.SchemeGroupVersion.WithKind("AuthorizationPolicy")
	if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("the Istio enforcement point needs Istio's AuthorizationPolicy CRD (security.istio.io/v1), which the cluster does not serve: %w", err)
		}
		return nil, fmt.Errorf("looking up AuthorizationPolicy: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, indexServiceAccount, serviceAccountOf); err != nil {
		return nil, fmt.Errorf("indexing pods by ServiceAccount: %w", err)
	}
	point := newPoint()
	mesh := cachedMesh{reader: reader, meshConfig: opts.MeshConfig}
	r := &Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Rollout:   compile.Planner{Facts: reader, Options: opts.Enforcement},
		Planner:   authz.Planner{Facts: reader, Mesh: mesh, TrustDomain: opts.TrustDomain},
		point:     point,
		echoes:    burst.NewEchoes(),
	}
	m := mapper{reader: reader, point: point, mesh: mesh, sharing: newSharingRefresh(sharingDelay)}
	bursts := burst.NewCoalescer()
	bursts.Holding = point.activity.Hold
	bursts.Log = mgr.GetLogger().WithName("istio-authorizationpolicies")
	mark := func(reqs ...reconcile.Request) { m.marked(reqs) }
	err := ctrl.NewControllerManagedBy(mgr).
		Named("istio-authorizationpolicies").
		Watches(&v2beta1.ClientIntents{}, burst.Enqueue(mark, bursts, m.serversOfIntents), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v2beta1.ProtectedService{}, m.enqueue(m.serversOfNamespaceOf), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&securityv1.AuthorizationPolicy{}, burst.EnqueueUnlessEcho(r.echoes, mark, serverOfPolicy)).
		Watches(&corev1.Service{}, m.enqueue(m.serversOfNamespaceOf)).
		Watches(&corev1.Pod{}, burst.Enqueue(mark, bursts, m.serversOfPod), builder.WithPredicates(podMeshChanged)).
		Watches(&corev1.ConfigMap{}, m.enqueue(m.everyServer), builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return client.ObjectKeyFromObject(o) == opts.MeshConfig
		}))).
		WatchesMetadata(namespaceMeta(), m.enqueue(m.serversOfNamespace)).
		WatchesRawSource(source.Channel(m.sharing.events, m.enqueue(m.serversSharing))).
		WatchesRawSource(reader.Identities.Source(burst.Enqueue(mark, bursts, func(ctx context.Context, c informer.PodChange) []reconcile.Request {
			if c.Old == c.New && maps.Equal(withoutOperatorLabels(c.OldLabels), withoutOperatorLabels(c.NewLabels)) {
				return nil
			}
			var out []reconcile.Request
			for i, id := range []identity.Identity{c.Old, c.New} {
				l := []map[string]string{c.OldLabels, c.NewLabels}[i]
				if id.Name != "" {
					out = append(out, m.serversOfPodAs(ctx, c.Namespace, c.Name, id, l)...)
				}
			}
			return out
		}))).
		Complete(bursts.Defer(r))
	if err != nil {
		return nil, fmt.Errorf("setting up the Istio AuthorizationPolicy controller: %w", err)
	}
	return point, nil
}

// podMeshChanged passes the pod events that can change a policy: creation, deletion, and
// changes of labels, annotations (the injector's status) or owners. Status updates, the
// bulk of pod events, are dropped, and so are the NetworkPolicy point's own pod labels,
// which no AuthorizationPolicy's content depends on.
var podMeshChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return !maps.Equal(withoutOperatorLabels(e.ObjectOld.GetLabels()), withoutOperatorLabels(e.ObjectNew.GetLabels())) ||
			!maps.Equal(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()) ||
			len(e.ObjectOld.GetOwnerReferences()) != len(e.ObjectNew.GetOwnerReferences())
	},
}

func withoutOperatorLabels(l map[string]string) map[string]string {
	out := maps.Clone(l)
	delete(out, compile.WorkloadLabel)
	delete(out, compile.WorkloadKindLabel)
	return out
}

// mapper turns watch events into the servers they can affect.
type mapper struct {
	reader informer.Reader
	point  *Point
	mesh   cachedMesh
	// sharing brings back, after a pause, the servers of the clients a ServiceAccount's
	// pods run as, whose over-permission names who else runs under it.
	sharing *sharingRefresh
}

// serverSet collects server requests, once each, in the order first added.
type serverSet struct {
	seen map[reconcile.Request]bool
	out  []reconcile.Request
}

func (s *serverSet) add(server intent.Server) {
	r := serverRequest(server)
	if s.seen == nil {
		s.seen = map[reconcile.Request]bool{}
	}
	if !s.seen[r] {
		s.seen[r] = true
		s.out = append(s.out, r)
	}
}

func serverRequest(s intent.Server) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Key()}}
}

// enqueue maps an event to server requests and marks them in hand, so that status can
// tell a change under way from a wait.
func (m mapper) enqueue(f func(context.Context, client.Object) []reconcile.Request) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return m.marked(f(ctx, o))
	})
}

func (m mapper) marked(reqs []reconcile.Request) []reconcile.Request {
	for _, r := range reqs {
		if s, err := intent.ParseKey(r.Namespace, r.Name); err == nil {
			m.point.mark(s)
		}
	}
	return reqs
}

func (m mapper) serversOfIntents(_ context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, s := range intent.Servers(o.(*v2beta1.ClientIntents)) {
		out = append(out, serverRequest(s))
	}
	return out
}

// serversOfPod returns the servers whose policies can depend on a pod: see serversOfPodAs.
func (m mapper) serversOfPod(ctx context.Context, o client.Object) []reconcile.Request {
	id, err := m.reader.Identity(ctx, o)
	if err != nil {
		log.FromContext(ctx).Error(err, "resolving a pod's identity", "pod", client.ObjectKeyFromObject(o))
		return m.serversIn(ctx, o.GetNamespace())
	}
	// The event's pod holds the ServiceAccount even when the pod is gone.
	for _, sa := range serviceAccountOf(o) {
		m.sharing.refresh(o.GetNamespace(), sa)
	}
	return m.serversOfPodAs(ctx, o.GetNamespace(), o.GetName(), id, o.GetLabels())
}

// serversOfPodAs returns the servers whose policies can depend on a pod of identity id
// with labels: the servers it is (by identity, or behind a Service selecting it) and the
// servers it calls; the servers called by the identities it shares its ServiceAccount
// with (whose over-permission names it) come a moment later, through m.sharing.
func (m mapper) serversOfPodAs(ctx context.Context, namespace, name string, id identity.Identity, labels map[string]string) []reconcile.Request {
	var set serverSet
	add := set.add
	logErr := func(err error) {
		log.FromContext(ctx).Error(err, "mapping a pod to servers", "pod", namespace+"/"+name)
	}
	asServer, err := m.reader.IntentsFor(ctx, informer.IndexServerName, informer.NameKey(namespace, id.Name))
	if err != nil {
		logErr(err)
	}
	for i := range asServer {
		for _, s := range intent.Servers(&asServer[i]) {
			if !s.Service && s.Namespace == namespace && s.Name == id.Name {
				add(s)
			}
		}
	}
	protected, err := m.reader.ProtectedNamed(ctx, namespace, id.Name)
	if err != nil {
		logErr(err)
	}
	for i := range protected {
		add(intent.Protected(&protected[i]))
	}
	svcs, err := m.mesh.ServicesSelecting(ctx, namespace, labels)
	if err != nil {
		logErr(err)
	}
	for _, svc := range svcs {
		add(intent.Server{Ref: intent.Ref{Namespace: namespace, Name: svc.Name}, Service: true})
	}
	asClient, err := m.reader.IntentsFor(ctx, informer.IndexClient, informer.NameKey(namespace, id.Name))
	if err != nil {
		logErr(err)
	}
	for i := range asClient {
		for _, s := range intent.Servers(&asClient[i]) {
			add(s)
		}
	}
	var pod corev1.Pod
	if err := m.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod); err == nil {
		// A pod's identity can change after its arrival (its owner is read later).
		for _, sa := range serviceAccountOf(&pod) {
			m.sharing.refresh(namespace, sa)
		}
	}
	return set.out
}

func (m mapper) serversOfNamespaceOf(ctx context.Context, o client.Object) []reconcile.Request {
	return m.serversIn(ctx, o.GetNamespace())
}

func (m mapper) serversOfNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return m.serversIn(ctx, o.GetName())
}

// serversIn returns every server whose policies can depend on something in namespace: the
// servers there, and the servers its clients call. A Service, ProtectedService or label
// there can change a server's pods, its waypoint, whether it is enforced, or whether a
// client is in the mesh.
func (m mapper) serversIn(ctx context.Context, namespace string) []reconcile.Request {
	var set serverSet
	add := set.add
	called, err := m.reader.IntentsFor(ctx, informer.IndexServerNamespace, namespace)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping a namespace to servers", "namespace", namespace)
	}
	for i := range called {
		for _, s := range intent.Servers(&called[i]) {
			if s.Namespace == namespace {
				add(s)
			}
		}
	}
	var calling v2beta1.ClientIntentsList
	if err := m.reader.List(ctx, &calling, client.InNamespace(namespace)); err != nil {
		log.FromContext(ctx).Error(err, "mapping a namespace to servers", "namespace", namespace)
	}
	for i := range calling.Items {
		for _, s := range intent.Servers(&calling.Items[i]) {
			add(s)
		}
	}
	var protected v2beta1.ProtectedServiceList
	if err := m.reader.List(ctx, &protected, client.InNamespace(namespace)); err != nil {
		log.FromContext(ctx).Error(err, "mapping a namespace to servers", "namespace", namespace)
	}
	for i := range protected.Items {
		add(intent.Protected(&protected.Items[i]))
	}
	return set.out
}

// serversSharing returns the servers called by the identities whose pods run under a
// ServiceAccount (the object is the ServiceAccount's namespace and name).
func (m mapper) serversSharing(ctx context.Context, o client.Object) []reconcile.Request {
	var set serverSet
	pods, err := m.mesh.PodsWithServiceAccount(ctx, o.GetNamespace(), o.GetName())
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping a ServiceAccount to servers", "serviceAccount", client.ObjectKeyFromObject(o))
	}
	seen := map[string]bool{}
	for _, p := range pods {
		if seen[p.Identity.Name] {
			continue
		}
		seen[p.Identity.Name] = true
		calling, err := m.reader.IntentsFor(ctx, informer.IndexClient, informer.NameKey(o.GetNamespace(), p.Identity.Name))
		if err != nil {
			log.FromContext(ctx).Error(err, "mapping a ServiceAccount to servers", "serviceAccount", client.ObjectKeyFromObject(o))
		}
		for i := range calling {
			for _, s := range intent.Servers(&calling[i]) {
				set.add(s)
			}
		}
	}
	return set.out
}

// sharingDelay is how long a pod's arrival or departure waits before the servers of the
// clients sharing its ServiceAccount are brought back: in a burst (a rollout, the
// operator's start), once per ServiceAccount instead of once per pod, as every pod of a
// namespace often runs under its default ServiceAccount.
const sharingDelay = 2 * time.Second

// sharingRefresh sends, for each namespace and ServiceAccount, at most one event per
// delay standing for the ServiceAccount, a delay after a pod under it changed.
type sharingRefresh struct {
	delay  time.Duration
	events chan event.TypedGenericEvent[client.Object]

	mu      sync.Mutex
	pending map[types.NamespacedName]bool
}

func newSharingRefresh(delay time.Duration) *sharingRefresh {
	return &sharingRefresh{delay: delay, events: make(chan event.TypedGenericEvent[client.Object], 1024), pending: map[types.NamespacedName]bool{}}
}

// refresh schedules the event of a ServiceAccount, unless one is scheduled.
func (s *sharingRefresh) refresh(namespace, serviceAccount string) {
	key := types.NamespacedName{Namespace: namespace, Name: serviceAccount}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[key] {
		return
	}
	s.pending[key] = true
	time.AfterFunc(s.delay, func() {
		s.mu.Lock()
		delete(s.pending, key)
		s.mu.Unlock()
		sa := &corev1.ServiceAccount{}
		sa.Namespace, sa.Name = key.Namespace, key.Name
		s.events <- event.TypedGenericEvent[client.Object]{Object: sa}
	})
}

// everyServer returns every server: the mesh configuration changes every principal.
func (m mapper) everyServer(ctx context.Context, _ client.Object) []reconcile.Request {
	var set serverSet
	var intents v2beta1.ClientIntentsList
	if err := m.reader.List(ctx, &intents); err != nil {
		log.FromContext(ctx).Error(err, "listing every ClientIntents")
	}
	for i := range intents.Items {
		for _, s := range intent.Servers(&intents.Items[i]) {
			set.add(s)
		}
	}
	var protected v2beta1.ProtectedServiceList
	if err := m.reader.List(ctx, &protected); err != nil {
		log.FromContext(ctx).Error(err, "listing every ProtectedService")
	}
	for i := range protected.Items {
		set.add(intent.Protected(&protected.Items[i]))
	}
	return set.out
}

// serverOfPolicy returns the server recorded on a policy labelled as the operator's.
func serverOfPolicy(_ context.Context, o client.Object) []reconcile.Request {
	key, ok := o.GetAnnotations()[authz.ServerAnnotation]
	if !ok || o.GetLabels()[ownership.Label] != ownership.IntentsOperator {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: key}}}
}
