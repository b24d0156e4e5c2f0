package controller

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cluster"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/netpol"
)

// Setup registers the cache indexes, the identity index and the reconcilers with the
// manager. points are the enforcement points the ClientIntents status reports beside the
// NetworkPolicy one.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options, points ...enforcement.Point) error {
	if err := cluster.RegisterIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	ids := cluster.NewIdentities(mgr.GetCache(), mgr.GetAPIReader(), mgr.GetLogger().WithName("identities"))
	if err := ids.Start(ctx); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("identities", func(*http.Request) error {
		if !ids.HasSynced() {
			return fmt.Errorf("pod identities not indexed yet")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding the identity index readiness check: %w", err)
	}
	planner := Planner{Cluster: cluster.Reader{Reader: mgr.GetClient(), Identities: ids}, Options: opts}
	m := mapper{planner: planner}
	prog := newProgress()
	namespaces := &metav1.PartialObjectMetadata{}
	namespaces.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))

	policies := &PolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Planner: planner, progress: prog}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("networkpolicy").
		Watches(&v2beta1.ClientIntents{}, prog.enqueueServers(m.serversOfIntents)).
		Watches(&v2beta1.ProtectedService{}, prog.enqueueServers(m.serversOfProtected)).
		Watches(&networkingv1.NetworkPolicy{}, prog.enqueueServers(serverOfPolicy)).
		Watches(&corev1.Service{}, prog.enqueueServers(m.serversOfService)).
		Watches(&appsv1.Deployment{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.StatefulSet{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.DaemonSet{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesMetadata(namespaces, prog.enqueueServers(m.serversInNamespace), builder.WithPredicates(namespaceLifecycle)).
		WatchesRawSource(ids.Source(enqueueServersOf(prog, m.serversOfPodChange))).
		Complete(policies)
	if err != nil {
		return fmt.Errorf("setting up the NetworkPolicy controller: %w", err)
	}

	labels := &PodLabelReconciler{Client: mgr.GetClient(), Planner: planner}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("podlabels").
		WatchesRawSource(ids.Source(handler.TypedEnqueueRequestsFromMapFunc(podOfChange))).
		Watches(&v2beta1.ClientIntents{}, handler.EnqueueRequestsFromMapFunc(m.podsOfIntents)).
		Watches(&v2beta1.ProtectedService{}, handler.EnqueueRequestsFromMapFunc(m.podsOfProtected)).
		Watches(&networkingv1.NetworkPolicy{}, m.podsReleasedByPolicy()).
		Complete(labels)
	if err != nil {
		return fmt.Errorf("setting up the pod label controller: %w", err)
	}

	netpolPoint := &PolicyPoint{Client: mgr.GetClient(), Planner: planner, progress: prog}
	status := &StatusReconciler{Client: mgr.GetClient(), Planner: planner, Points: append([]enforcement.Point{netpolPoint}, points...), Recorder: mgr.GetEventRecorder("intentguard"), progress: prog}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("clientintents-status").
		For(&v2beta1.ClientIntents{}).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfPolicy)).
		Watches(&v2beta1.ProtectedService{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfProtected)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfService)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.DaemonSet{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesMetadata(namespaces, handler.EnqueueRequestsFromMapFunc(m.intentsOfNamespace), builder.WithPredicates(namespaceLifecycle)).
		WatchesRawSource(ids.Source(handler.TypedEnqueueRequestsFromMapFunc(m.intentsOfPodChange))).
		WatchesRawSource(source.Channel(prog.settled, handler.TypedEnqueueRequestsFromMapFunc(m.intentsOfServer)))
	for _, p := range points {
		if n, ok := p.(enforcement.Notifier); ok {
			b = b.WatchesRawSource(source.Channel(n.Changes(), handler.TypedEnqueueRequestsFromMapFunc(intentsOfNotice)))
		}
	}
	if err := b.Complete(status); err != nil {
		return fmt.Errorf("setting up the ClientIntents status controller: %w", err)
	}

	protected := &ProtectedStatusReconciler{Client: mgr.GetClient(), Planner: planner, Recorder: mgr.GetEventRecorder("intentguard")}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("protectedservice-status").
		For(&v2beta1.ProtectedService{}).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(m.protectedOfPolicy)).
		WatchesRawSource(ids.Source(handler.TypedEnqueueRequestsFromMapFunc(m.protectedOfPodChange))).
		Complete(protected)
	if err != nil {
		return fmt.Errorf("setting up the ProtectedService status controller: %w", err)
	}
	return nil
}

// mapper turns watch events into the requests of the objects they affect, through the
// cache indexes, so a change reconciles only what it touches.
type mapper struct {
	planner Planner
}

func serverRequest(s intent.Server) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Key()}}
}

func (m mapper) serversOfIntents(_ context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, s := range intent.Servers(o.(*v2beta1.ClientIntents)) {
		out = append(out, serverRequest(s))
	}
	return out
}

// serversOfIdentity returns every server whose policy can depend on the identity name:
// servers of that name, and servers its intents call.
func (m mapper) serversOfIdentity(ctx context.Context, namespace, name string) []reconcile.Request {
	key := cluster.NameKey(namespace, name)
	seen := map[reconcile.Request]bool{}
	var out []reconcile.Request
	add := func(s intent.Server) {
		r := serverRequest(s)
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	asServer, err := m.planner.Cluster.IntentsFor(ctx, cluster.IndexServerName, key)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping identity to servers", "identity", key)
	}
	for i := range asServer {
		for _, s := range intent.Servers(&asServer[i]) {
			if !s.Service && s.Namespace == namespace && s.Name == name {
				add(s)
			}
		}
	}
	asClient, err := m.planner.Cluster.IntentsFor(ctx, cluster.IndexClient, key)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping identity to servers", "identity", key)
	}
	for i := range asClient {
		for _, s := range intent.Servers(&asClient[i]) {
			add(s)
		}
	}
	protected, err := m.planner.Cluster.ProtectedNamed(ctx, namespace, name)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping identity to servers", "identity", key)
	}
	for i := range protected {
		add(intent.Protected(&protected[i]))
	}
	return out
}

func (m mapper) serversOfProtected(ctx context.Context, o client.Object) []reconcile.Request {
	ps := o.(*v2beta1.ProtectedService)
	out := m.serversOfIdentity(ctx, ps.Namespace, ps.Spec.Name)
	out = append(out, serverRequest(intent.Protected(ps)), serverRequest(intent.Server{Ref: intent.Ref{Namespace: ps.Namespace, Name: ps.Spec.Name}, Service: true}))
	if m.planner.Options.Shadow {
		// A Service of another name may front the protected pods; its policy is enforced
		// with them.
		out = append(out, m.serversIn(ctx, ps.Namespace, func(s intent.Server) bool { return s.Service })...)
	}
	return out
}

// serversIn returns the servers in namespace that some intents call and keep accepts.
func (m mapper) serversIn(ctx context.Context, namespace string, keep func(intent.Server) bool) []reconcile.Request {
	list, err := m.planner.Cluster.IntentsFor(ctx, cluster.IndexServerNamespace, namespace)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping namespace to servers", "namespace", namespace)
		return nil
	}
	seen := map[reconcile.Request]bool{}
	var out []reconcile.Request
	for i := range list {
		for _, s := range intent.Servers(&list[i]) {
			if r := serverRequest(s); s.Namespace == namespace && keep(s) && !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

func (m mapper) serversInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return m.serversIn(ctx, o.GetName(), func(intent.Server) bool { return true })
}

// serversOfPodChange returns the servers whose policy a pod change can bear on: those of
// its old and new identity, those of workloads whose selector matches its old or new
// labels, and, in shadow mode, Services whose selector does (which identities a Service
// fronts decides whether it is enforced).
func (m mapper) serversOfPodChange(ctx context.Context, c cluster.PodChange) []reconcile.Request {
	var out []reconcile.Request
	for _, id := range []identity.Identity{c.Old, c.New} {
		if id.Name != "" {
			out = append(out, m.serversOfIdentity(ctx, id.Namespace, id.Name)...)
		}
	}
	for _, l := range []map[string]string{c.OldLabels, c.NewLabels} {
		if l == nil {
			continue
		}
		lookalikes, err := m.planner.Cluster.WorkloadsSelecting(ctx, c.Namespace, l)
		if err != nil {
			log.FromContext(ctx).Error(err, "mapping pod to servers", "pod", c.Namespace+"/"+c.Name)
			continue
		}
		for _, name := range lookalikes {
			out = append(out, m.serversOfIdentity(ctx, c.Namespace, name)...)
		}
	}
	if m.planner.Options.Shadow {
		out = append(out, m.serversIn(ctx, c.Namespace, func(s intent.Server) bool {
			if !s.Service {
				return false
			}
			var svc corev1.Service
			if err := m.planner.Cluster.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Name}, &svc); err != nil || len(svc.Spec.Selector) == 0 {
				return false
			}
			sel := k8slabels.SelectorFromSet(svc.Spec.Selector)
			return (c.OldLabels != nil && sel.Matches(k8slabels.Set(c.OldLabels))) || (c.NewLabels != nil && sel.Matches(k8slabels.Set(c.NewLabels)))
		})...)
	}
	return out
}

// enqueueServersOf is enqueueServers for changes that come from a channel.
func enqueueServersOf[T any](p *progress, f func(context.Context, T) []reconcile.Request) handler.TypedEventHandler[T, reconcile.Request] {
	return handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, o T) []reconcile.Request {
		reqs := f(ctx, o)
		p.mark(reqs...)
		return reqs
	})
}

func serverOfPolicy(_ context.Context, o client.Object) []reconcile.Request {
	key, ok := o.GetAnnotations()[netpol.ServerAnnotation]
	if !ok || o.GetLabels()[netpol.ManagedByLabel] != netpol.ManagedByValue {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: key}}}
}

func (m mapper) serversOfService(ctx context.Context, o client.Object) []reconcile.Request {
	out := []reconcile.Request{serverRequest(intent.Server{Ref: intent.Ref{Namespace: o.GetNamespace(), Name: o.GetName()}, Service: true})}
	if isDNSService(o.GetNamespace(), o.GetName()) {
		// Its ports are the exception every policy of a DNS server carries.
		out = append(out, m.serversIn(ctx, o.GetNamespace(), func(intent.Server) bool { return true })...)
	}
	return out
}

func (m mapper) serversOfWorkload(ctx context.Context, o client.Object) []reconcile.Request {
	return m.serversOfIdentity(ctx, o.GetNamespace(), o.GetName())
}

// podOfChange is the label reconcile of a pod that still exists.
func podOfChange(_ context.Context, c cluster.PodChange) []reconcile.Request {
	if c.New.Name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}}}
}

// podsNamed returns requests for the pods of the named identities and the pods carrying
// the operator's label for them: those whose labels may have to change.
func (m mapper) podsNamed(ctx context.Context, refs []intent.Ref) []reconcile.Request {
	seen := map[types.NamespacedName]bool{}
	var out []reconcile.Request
	add := func(namespace, name string) {
		k := types.NamespacedName{Namespace: namespace, Name: name}
		if !seen[k] {
			seen[k] = true
			out = append(out, reconcile.Request{NamespacedName: k})
		}
	}
	for _, ref := range refs {
		for _, p := range m.planner.Cluster.Identities.PodsNamed(ref.Namespace, ref.Name) {
			add(p.Meta.Namespace, p.Meta.Name)
		}
		pods, err := m.planner.Cluster.LabelledPods(ctx, ref.Namespace, netpol.LabelValue(ref.Name))
		if err != nil {
			log.FromContext(ctx).Error(err, "listing labelled pods", "identity", ref.String())
			continue
		}
		for i := range pods {
			add(pods[i].Namespace, pods[i].Name)
		}
	}
	return out
}

// podsReleasedByPolicy enqueues, when a policy stops selecting by some operator labels
// (rewritten or deleted), the pods carrying them: their labels may go now that no live
// policy relies on them.
func (m mapper) podsReleasedByPolicy() handler.EventHandler {
	released := func(ctx context.Context, old, cur client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		still := map[string]bool{}
		if cur != nil {
			for _, r := range cluster.PolicyLabelRefs(cur) {
				still[r] = true
			}
		}
		for _, r := range cluster.PolicyLabelRefs(old) {
			if still[r] {
				continue
			}
			ns, value, _ := strings.Cut(r, "/")
			pods, err := m.planner.Cluster.LabelledPods(ctx, ns, value)
			if err != nil {
				log.FromContext(ctx).Error(err, "listing labelled pods", "namespace", ns, "label", value)
				continue
			}
			for i := range pods {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pods[i].Namespace, Name: pods[i].Name}})
			}
		}
	}
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			released(ctx, e.ObjectOld, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			released(ctx, e.Object, nil, q)
		},
	}
}

func (m mapper) podsOfIntents(ctx context.Context, o client.Object) []reconcile.Request {
	ci := o.(*v2beta1.ClientIntents)
	refs := []intent.Ref{intent.Client(ci)}
	for _, s := range intent.Servers(ci) {
		if !s.Service {
			refs = append(refs, s.Ref)
		}
	}
	return m.podsNamed(ctx, refs)
}

func (m mapper) podsOfProtected(ctx context.Context, o client.Object) []reconcile.Request {
	return m.podsNamed(ctx, []intent.Ref{intent.Protected(o.(*v2beta1.ProtectedService)).Ref})
}

func intentsRequests(list []v2beta1.ClientIntents) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(list))
	for i := range list {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list[i])})
	}
	return out
}

func (m mapper) intentsBy(ctx context.Context, index, value string) []reconcile.Request {
	list, err := m.planner.Cluster.IntentsFor(ctx, index, value)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping to ClientIntents", "index", index, "value", value)
		return nil
	}
	return intentsRequests(list)
}

// intentsOfServer returns the ClientIntents that call a server, given as its request.
func (m mapper) intentsOfServer(ctx context.Context, r reconcile.Request) []reconcile.Request {
	s, err := intent.ParseKey(r.Namespace, r.Name)
	if err != nil {
		return nil
	}
	return m.intentsBy(ctx, cluster.IndexServer, cluster.ServerIndexKey(s))
}

func (m mapper) intentsOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := serverOfPolicy(ctx, o)
	if len(reqs) == 0 {
		return nil
	}
	return m.intentsOfServer(ctx, reqs[0])
}

func (m mapper) intentsOfProtected(ctx context.Context, o client.Object) []reconcile.Request {
	ps := o.(*v2beta1.ProtectedService)
	out := m.intentsBy(ctx, cluster.IndexServerName, cluster.NameKey(ps.Namespace, ps.Spec.Name))
	svc := intent.Server{Ref: intent.Ref{Namespace: ps.Namespace, Name: ps.Spec.Name}, Service: true}
	return append(out, m.intentsBy(ctx, cluster.IndexServer, cluster.ServerIndexKey(svc))...)
}

func (m mapper) intentsOfService(ctx context.Context, o client.Object) []reconcile.Request {
	svc := intent.Server{Ref: intent.Ref{Namespace: o.GetNamespace(), Name: o.GetName()}, Service: true}
	return m.intentsBy(ctx, cluster.IndexServer, cluster.ServerIndexKey(svc))
}

func (m mapper) intentsOfWorkload(ctx context.Context, o client.Object) []reconcile.Request {
	return m.intentsOfName(ctx, o.GetNamespace(), o.GetName())
}

// intentsOfName returns the ClientIntents whose client or a server has this identity name.
func (m mapper) intentsOfName(ctx context.Context, namespace, name string) []reconcile.Request {
	out := m.intentsBy(ctx, cluster.IndexServerName, cluster.NameKey(namespace, name))
	return append(out, m.intentsBy(ctx, cluster.IndexClient, cluster.NameKey(namespace, name))...)
}

func (m mapper) intentsOfNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return m.intentsBy(ctx, cluster.IndexServerNamespace, o.GetName())
}

// intentsOfPodChange returns the ClientIntents whose status a pod change can alter.
func (m mapper) intentsOfPodChange(ctx context.Context, c cluster.PodChange) []reconcile.Request {
	var out []reconcile.Request
	for _, id := range statusIdentities(c) {
		out = append(out, m.intentsOfName(ctx, id.Namespace, id.Name)...)
	}
	return out
}

// statusIdentities returns the identities whose status a pod change can alter: those of a
// pod that appeared, went away or changed identity, or whose operator labels changed.
func statusIdentities(c cluster.PodChange) []identity.Identity {
	relevant := c.Old != c.New
	for _, k := range operatorPodLabels {
		relevant = relevant || c.OldLabels[k] != c.NewLabels[k]
	}
	if !relevant {
		return nil
	}
	var out []identity.Identity
	for _, id := range []identity.Identity{c.Old, c.New} {
		if id.Name != "" {
			out = append(out, id)
		}
	}
	return out
}

func intentsOfNotice(_ context.Context, ci *v2beta1.ClientIntents) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(ci)}}
}

// protectedOfPolicy returns the ProtectedServices of the server a policy protects.
func (m mapper) protectedOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := serverOfPolicy(ctx, o)
	if len(reqs) == 0 {
		return nil
	}
	s, err := intent.ParseKey(reqs[0].Namespace, reqs[0].Name)
	if err != nil {
		return nil
	}
	return m.protectedNamed(ctx, s.Namespace, s.Name)
}

func (m mapper) protectedOfPodChange(ctx context.Context, c cluster.PodChange) []reconcile.Request {
	var out []reconcile.Request
	for _, id := range statusIdentities(c) {
		out = append(out, m.protectedNamed(ctx, id.Namespace, id.Name)...)
	}
	return out
}

func (m mapper) protectedNamed(ctx context.Context, namespace, name string) []reconcile.Request {
	list, err := m.planner.Cluster.ProtectedNamed(ctx, namespace, name)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping to ProtectedServices", "namespace", namespace, "name", name)
		return nil
	}
	out := make([]reconcile.Request, 0, len(list))
	for i := range list {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list[i])})
	}
	return out
}

// namespaceLifecycle passes namespace events that change whether policies can live in
// it: creation, deletion, and the start of deletion.
var namespaceLifecycle = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}

// selectorOrOwnersChanged passes workload events that can change pod selection: creation,
// deletion, selector or owner changes. Rollouts and scaling are dropped.
var selectorOrOwnersChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		if !equality.Semantic.DeepEqual(e.ObjectOld.GetOwnerReferences(), e.ObjectNew.GetOwnerReferences()) {
			return true
		}
		return !equality.Semantic.DeepEqual(selectorOf(e.ObjectOld), selectorOf(e.ObjectNew))
	},
}

func selectorOf(o client.Object) *metav1.LabelSelector {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return w.Spec.Selector
	case *appsv1.StatefulSet:
		return w.Spec.Selector
	case *appsv1.DaemonSet:
		return w.Spec.Selector
	}
	return nil
}
