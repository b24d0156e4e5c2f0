package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/netpol"
)

// Setup registers the cache indexes and the three reconcilers with the manager.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := cluster.RegisterIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	planner := Planner{Cluster: cluster.Reader{Reader: mgr.GetClient()}, Options: opts}
	m := mapper{planner: planner}
	prog := newProgress()

	policies := &PolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Planner: planner, progress: prog}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("networkpolicy").
		Watches(&v2beta1.ClientIntents{}, prog.enqueueServers(m.serversOfIntents)).
		Watches(&v2beta1.ProtectedService{}, prog.enqueueServers(m.serversOfProtected)).
		Watches(&networkingv1.NetworkPolicy{}, prog.enqueueServers(serverOfPolicy)).
		Watches(&corev1.Service{}, prog.enqueueServers(m.serverOfService)).
		Watches(&appsv1.Deployment{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.StatefulSet{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.DaemonSet{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesMetadata(&appsv1.ReplicaSet{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesMetadata(&batchv1.Job{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesMetadata(&batchv1.CronJob{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesMetadata(&corev1.Pod{}, prog.enqueueServers(m.serversOfPod), builder.WithPredicates(podIdentityChanged)).
		Complete(policies)
	if err != nil {
		return fmt.Errorf("setting up the NetworkPolicy controller: %w", err)
	}

	labels := &PodLabelReconciler{Client: mgr.GetClient(), Planner: planner}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("podlabels").
		WatchesMetadata(&corev1.Pod{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(podIdentityChanged)).
		Watches(&v2beta1.ClientIntents{}, handler.EnqueueRequestsFromMapFunc(m.podsOfIntents)).
		Watches(&v2beta1.ProtectedService{}, handler.EnqueueRequestsFromMapFunc(m.podsOfProtected)).
		Complete(labels)
	if err != nil {
		return fmt.Errorf("setting up the pod label controller: %w", err)
	}

	status := &StatusReconciler{Client: mgr.GetClient(), Planner: planner, Recorder: mgr.GetEventRecorder("intentguard"), progress: prog}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("clientintents-status").
		For(&v2beta1.ClientIntents{}).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfPolicy)).
		Watches(&v2beta1.ProtectedService{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfProtected)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfService)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.DaemonSet{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesRawSource(source.Channel(prog.settled, handler.TypedEnqueueRequestsFromMapFunc(m.intentsOfServer))).
		Complete(status)
	if err != nil {
		return fmt.Errorf("setting up the ClientIntents status controller: %w", err)
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
	return out
}

func serverOfPolicy(_ context.Context, o client.Object) []reconcile.Request {
	key, ok := o.GetAnnotations()[netpol.ServerAnnotation]
	if !ok || o.GetLabels()[netpol.ManagedByLabel] != netpol.ManagedByValue {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: key}}}
}

func (m mapper) serverOfService(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{serverRequest(intent.Server{Ref: intent.Ref{Namespace: o.GetNamespace(), Name: o.GetName()}, Service: true})}
}

func (m mapper) serversOfWorkload(ctx context.Context, o client.Object) []reconcile.Request {
	return m.serversOfIdentity(ctx, o.GetNamespace(), o.GetName())
}

// serversOfPod returns the servers whose pod selection a pod can change: those of the
// pod's own identity, and those of other workloads in its namespace whose selector
// matches the pod (the pod may break that selector's exclusivity, or restore it).
func (m mapper) serversOfPod(ctx context.Context, o client.Object) []reconcile.Request {
	id, err := m.planner.Cluster.Identity(ctx, o)
	if err != nil {
		log.FromContext(ctx).Error(err, "resolving pod identity", "pod", client.ObjectKeyFromObject(o))
		return nil
	}
	out := m.serversOfIdentity(ctx, id.Namespace, id.Name)
	lookalikes, err := m.planner.Cluster.WorkloadsSelecting(ctx, o.GetNamespace(), o.GetLabels())
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping pod to servers", "pod", client.ObjectKeyFromObject(o))
		return out
	}
	for _, name := range lookalikes {
		if name != id.Name {
			out = append(out, m.serversOfIdentity(ctx, o.GetNamespace(), name)...)
		}
	}
	return out
}

// podsNamed returns requests for the pods carrying the operator's label for the named
// identities: those whose labels may have to go.
func (m mapper) podsNamed(ctx context.Context, refs []intent.Ref) []reconcile.Request {
	var out []reconcile.Request
	for _, ref := range refs {
		pods, err := m.planner.Cluster.LabelledPods(ctx, ref.Namespace, ref.Name)
		if err != nil {
			log.FromContext(ctx).Error(err, "listing labelled pods", "identity", ref.String())
			continue
		}
		for i := range pods {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pods[i].Namespace, Name: pods[i].Name}})
		}
	}
	return out
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
	out := m.intentsBy(ctx, cluster.IndexServerName, cluster.NameKey(o.GetNamespace(), o.GetName()))
	return append(out, m.intentsBy(ctx, cluster.IndexClient, cluster.NameKey(o.GetNamespace(), o.GetName()))...)
}

// podIdentityChanged passes pod events that can change what selects the pod: creation,
// deletion, and changes of labels, annotations or owners. Status churn is dropped.
var podIdentityChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return metaChanged(e.ObjectOld, e.ObjectNew)
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

func metaChanged(a, b client.Object) bool {
	return !equality.Semantic.DeepEqual(a.GetLabels(), b.GetLabels()) ||
		!equality.Semantic.DeepEqual(a.GetAnnotations(), b.GetAnnotations()) ||
		!equality.Semantic.DeepEqual(a.GetOwnerReferences(), b.GetOwnerReferences())
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
