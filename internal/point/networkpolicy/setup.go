// Package networkpolicy is the NetworkPolicy enforcement point: it writes one policy per
// server that some intents call or a ProtectedService names, keeps the operator's pod
// labels in step with what the policies select, and reports what it enforces.
package networkpolicy

import (
	"context"
	"fmt"
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

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/burst"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// Setup registers the NetworkPolicy point on the manager: its cache indexes, the policy
// reconciler and the pod label reconciler. The point it returns holds what the policy
// reconciler recorded.
func Setup(ctx context.Context, mgr ctrl.Manager, reader informer.Reader, opts enforcement.Options) (*Point, error) {
	if err := registerIndexes(ctx, informer.ClusterWideIndexer{Cache: mgr.GetCache()}); err != nil {
		return nil, err
	}
	ids := reader.Identities
	planner := compile.Planner{Facts: reader, Options: opts}
	m := mapper{reader: reader, opts: opts}
	point := newPoint()
	prog := point.progress
	bursts := burst.NewCoalescer()
	bursts.Holding = prog.activity.Hold
	bursts.Log = mgr.GetLogger().WithName("networkpolicy")

	echoes := burst.NewEchoes()
	policies := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Reader: reader, Planner: planner, point: point, echoes: echoes, held: bursts.Holds}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("networkpolicy").
		Watches(&v2beta1.ClientIntents{}, burst.Enqueue(prog.mark, bursts, m.serversOfIntents), builder.WithPredicates(specOrDeletionChanged)).
		Watches(&v2beta1.ProtectedService{}, prog.enqueueServers(m.serversOfProtected)).
		Watches(&networkingv1.NetworkPolicy{}, burst.EnqueueUnlessEcho(echoes, prog.mark, serverOfPolicy)).
		Watches(&corev1.Service{}, prog.enqueueServers(m.serversOfService)).
		Watches(&appsv1.Deployment{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.StatefulSet{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		Watches(&appsv1.DaemonSet{}, prog.enqueueServers(m.serversOfWorkload), builder.WithPredicates(selectorOrOwnersChanged)).
		WatchesMetadata(namespaces(), prog.enqueueServers(m.serversInNamespace), builder.WithPredicates(namespaceLifecycle)).
		WatchesRawSource(ids.Source(burst.Enqueue(prog.mark, bursts, m.serversOfPodChange))).
		Complete(bursts.Defer(policies))
	if err != nil {
		return nil, fmt.Errorf("setting up the NetworkPolicy controller: %w", err)
	}

	labels := &PodLabelReconciler{Client: mgr.GetClient(), Reader: reader, Planner: planner}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("podlabels").
		WatchesRawSource(ids.Source(handler.TypedEnqueueRequestsFromMapFunc(podOfChange))).
		Watches(&v2beta1.ClientIntents{}, handler.EnqueueRequestsFromMapFunc(m.podsOfIntents), builder.WithPredicates(specOrDeletionChanged)).
		Watches(&v2beta1.ProtectedService{}, handler.EnqueueRequestsFromMapFunc(m.podsOfProtected)).
		Watches(&networkingv1.NetworkPolicy{}, m.podsReleasedByPolicy()).
		Complete(labels)
	if err != nil {
		return nil, fmt.Errorf("setting up the pod label controller: %w", err)
	}
	return point, nil
}

// namespaces is the metadata-only object namespace watches are made of.
func namespaces() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

// mapper turns watch events into the requests of the objects they affect, through the
// cache indexes, so a change reconciles only what it touches.
type mapper struct {
	reader informer.Reader
	opts   enforcement.Options
}

// serverRequest is the NetworkPolicy reconciler's request for a server.
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
	key := informer.NameKey(namespace, name)
	seen := map[reconcile.Request]bool{}
	var out []reconcile.Request
	add := func(s intent.Server) {
		r := serverRequest(s)
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	asServer, err := m.reader.IntentsFor(ctx, informer.IndexServerName, key)
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
	asClient, err := m.reader.IntentsFor(ctx, informer.IndexClient, key)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping identity to servers", "identity", key)
	}
	for i := range asClient {
		for _, s := range intent.Servers(&asClient[i]) {
			add(s)
		}
	}
	protected, err := m.reader.ProtectedNamed(ctx, namespace, name)
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
	if m.opts.Shadow {
		// A Service of another name may front the protected pods; its policy is enforced
		// with them.
		out = append(out, m.serversIn(ctx, ps.Namespace, func(s intent.Server) bool { return s.Service })...)
	}
	return out
}

// serversIn returns the servers in namespace that some intents call and keep accepts.
func (m mapper) serversIn(ctx context.Context, namespace string, keep func(intent.Server) bool) []reconcile.Request {
	list, err := m.reader.IntentsFor(ctx, informer.IndexServerNamespace, namespace)
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
func (m mapper) serversOfPodChange(ctx context.Context, c informer.PodChange) []reconcile.Request {
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
		lookalikes, err := m.reader.WorkloadsSelecting(ctx, c.Namespace, l)
		if err != nil {
			log.FromContext(ctx).Error(err, "mapping pod to servers", "pod", c.Namespace+"/"+c.Name)
			continue
		}
		for _, name := range lookalikes {
			out = append(out, m.serversOfIdentity(ctx, c.Namespace, name)...)
		}
	}
	if m.opts.Shadow {
		out = append(out, m.serversIn(ctx, c.Namespace, func(s intent.Server) bool {
			if !s.Service {
				return false
			}
			var svc corev1.Service
			if err := m.reader.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Name}, &svc); err != nil || len(svc.Spec.Selector) == 0 {
				return false
			}
			sel := k8slabels.SelectorFromSet(svc.Spec.Selector)
			return (c.OldLabels != nil && sel.Matches(k8slabels.Set(c.OldLabels))) || (c.NewLabels != nil && sel.Matches(k8slabels.Set(c.NewLabels)))
		})...)
	}
	return out
}

// serverOfPolicy returns the server request recorded on a policy of the operator.
func serverOfPolicy(_ context.Context, o client.Object) []reconcile.Request {
	key, ok := o.GetAnnotations()[compile.ServerAnnotation]
	if !ok || o.GetLabels()[ownership.Label] != ownership.IntentsOperator {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: key}}}
}

func (m mapper) serversOfService(ctx context.Context, o client.Object) []reconcile.Request {
	out := []reconcile.Request{serverRequest(intent.Server{Ref: intent.Ref{Namespace: o.GetNamespace(), Name: o.GetName()}, Service: true})}
	if compile.IsDNSService(o.GetNamespace(), o.GetName()) {
		// Its ports are the exception every policy of a DNS server carries.
		out = append(out, m.serversIn(ctx, o.GetNamespace(), func(intent.Server) bool { return true })...)
	}
	return out
}

func (m mapper) serversOfWorkload(ctx context.Context, o client.Object) []reconcile.Request {
	return m.serversOfIdentity(ctx, o.GetNamespace(), o.GetName())
}

// podOfChange is the label reconcile of a pod that still exists.
func podOfChange(_ context.Context, c informer.PodChange) []reconcile.Request {
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
		for _, p := range m.reader.Identities.PodsNamed(ref.Namespace, ref.Name) {
			add(p.Meta.Namespace, p.Meta.Name)
		}
		pods, err := m.reader.PodsLabelled(ctx, ref.Namespace, map[string]string{compile.WorkloadLabel: compile.LabelValue(ref.Name)})
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
			for _, r := range policyLabelRefs(cur) {
				still[r] = true
			}
		}
		for _, r := range policyLabelRefs(old) {
			if still[r] {
				continue
			}
			ns, value, _ := strings.Cut(r, "/")
			pods, err := m.reader.PodsLabelled(ctx, ns, map[string]string{compile.WorkloadLabel: value})
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
	return m.podsNamed(ctx, compile.LabelRefs([]v2beta1.ClientIntents{*o.(*v2beta1.ClientIntents)}, nil))
}

func (m mapper) podsOfProtected(ctx context.Context, o client.Object) []reconcile.Request {
	return m.podsNamed(ctx, compile.LabelRefs(nil, []v2beta1.ProtectedService{*o.(*v2beta1.ProtectedService)}))
}

// namespaceLifecycle passes namespace events that change whether policies can live in
// it: creation, deletion, and the start of deletion.
var namespaceLifecycle = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}

// specOrDeletionChanged passes the ClientIntents events that can change a plan: all but
// updates that change neither the generation (the spec) nor whether the object is being
// deleted. Status writes are such updates: without it, each status written in a bulk
// brought back every server and pod of its intents.
var specOrDeletionChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
			e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}

// selectorOrOwnersChanged passes workload events that can change pod selection: creation,
// deletion, selector or owner changes. Rollouts and scaling are dropped.
var selectorOrOwnersChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		if !equality.Semantic.DeepEqual(e.ObjectOld.GetOwnerReferences(), e.ObjectNew.GetOwnerReferences()) {
			return true
		}
		return !equality.Semantic.DeepEqual(informer.SelectorOf(e.ObjectOld), informer.SelectorOf(e.ObjectNew))
	},
}
