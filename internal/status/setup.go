// Package status reports, on ClientIntents and ProtectedServices, what the enforcement
// points do for them, as conditions, per-target states and Events.
package status

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy"
)

// Setup registers the ClientIntents and ProtectedService status reconcilers. policies is
// the NetworkPolicy point; points are the other enforcement points the ClientIntents
// status reports beside it.
func Setup(mgr ctrl.Manager, reader informer.Reader, policies *networkpolicy.PolicyPoint, points ...enforcement.Point) error {
	m := mapper{reader: reader}
	ids := reader.Identities
	status := &ClientIntentsReconciler{Client: mgr.GetClient(), Planner: policies.Planner, Points: append([]enforcement.Point{policies}, points...), Recorder: mgr.GetEventRecorder("intentguard"), progress: policies.Progress()}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("clientintents-status").
		For(&v2beta1.ClientIntents{}).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfPolicy)).
		Watches(&v2beta1.ProtectedService{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfProtected)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfService)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(networkpolicy.SelectorOrOwnersChanged)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(networkpolicy.SelectorOrOwnersChanged)).
		Watches(&appsv1.DaemonSet{}, handler.EnqueueRequestsFromMapFunc(m.intentsOfWorkload), builder.WithPredicates(networkpolicy.SelectorOrOwnersChanged)).
		WatchesMetadata(networkpolicy.Namespaces(), handler.EnqueueRequestsFromMapFunc(m.intentsOfNamespace), builder.WithPredicates(networkpolicy.NamespaceLifecycle)).
		WatchesRawSource(ids.Source(handler.TypedEnqueueRequestsFromMapFunc(m.intentsOfPodChange))).
		WatchesRawSource(source.Channel(policies.Progress().Settled, handler.TypedEnqueueRequestsFromMapFunc(m.intentsOfServer)))
	for _, p := range points {
		if n, ok := p.(enforcement.Notifier); ok {
			b = b.WatchesRawSource(source.Channel(n.Changes(), handler.TypedEnqueueRequestsFromMapFunc(intentsOfNotice)))
		}
	}
	if err := b.Complete(status); err != nil {
		return fmt.Errorf("setting up the ClientIntents status controller: %w", err)
	}

	protected := &ProtectedServiceReconciler{Client: mgr.GetClient(), Planner: policies.Planner, Recorder: mgr.GetEventRecorder("intentguard")}
	err := ctrl.NewControllerManagedBy(mgr).
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

// mapper turns watch events into the requests of the objects whose status they affect,
// through the cache indexes.
type mapper struct {
	reader informer.Reader
}

func intentsRequests(list []v2beta1.ClientIntents) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(list))
	for i := range list {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list[i])})
	}
	return out
}

func (m mapper) intentsBy(ctx context.Context, index, value string) []reconcile.Request {
	list, err := m.reader.IntentsFor(ctx, index, value)
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
	return m.intentsBy(ctx, informer.IndexServer, informer.ServerIndexKey(s))
}

func (m mapper) intentsOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := networkpolicy.ServerOfPolicy(ctx, o)
	if len(reqs) == 0 {
		return nil
	}
	return m.intentsOfServer(ctx, reqs[0])
}

func (m mapper) intentsOfProtected(ctx context.Context, o client.Object) []reconcile.Request {
	ps := o.(*v2beta1.ProtectedService)
	out := m.intentsBy(ctx, informer.IndexServerName, informer.NameKey(ps.Namespace, ps.Spec.Name))
	svc := intent.Server{Ref: intent.Ref{Namespace: ps.Namespace, Name: ps.Spec.Name}, Service: true}
	return append(out, m.intentsBy(ctx, informer.IndexServer, informer.ServerIndexKey(svc))...)
}

func (m mapper) intentsOfService(ctx context.Context, o client.Object) []reconcile.Request {
	svc := intent.Server{Ref: intent.Ref{Namespace: o.GetNamespace(), Name: o.GetName()}, Service: true}
	return m.intentsBy(ctx, informer.IndexServer, informer.ServerIndexKey(svc))
}

func (m mapper) intentsOfWorkload(ctx context.Context, o client.Object) []reconcile.Request {
	return m.intentsOfName(ctx, o.GetNamespace(), o.GetName())
}

// intentsOfName returns the ClientIntents whose client or a server has this identity name.
func (m mapper) intentsOfName(ctx context.Context, namespace, name string) []reconcile.Request {
	out := m.intentsBy(ctx, informer.IndexServerName, informer.NameKey(namespace, name))
	return append(out, m.intentsBy(ctx, informer.IndexClient, informer.NameKey(namespace, name))...)
}

func (m mapper) intentsOfNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return m.intentsBy(ctx, informer.IndexServerNamespace, o.GetName())
}

// intentsOfPodChange returns the ClientIntents whose status a pod change can alter.
func (m mapper) intentsOfPodChange(ctx context.Context, c informer.PodChange) []reconcile.Request {
	var out []reconcile.Request
	for _, id := range statusIdentities(c) {
		out = append(out, m.intentsOfName(ctx, id.Namespace, id.Name)...)
	}
	return out
}

// statusIdentities returns the identities whose status a pod change can alter: those of a
// pod that appeared, went away or changed identity, or whose operator labels changed.
func statusIdentities(c informer.PodChange) []identity.Identity {
	relevant := c.Old != c.New
	for _, k := range networkpolicy.OperatorPodLabels {
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
	reqs := networkpolicy.ServerOfPolicy(ctx, o)
	if len(reqs) == 0 {
		return nil
	}
	s, err := intent.ParseKey(reqs[0].Namespace, reqs[0].Name)
	if err != nil {
		return nil
	}
	return m.protectedNamed(ctx, s.Namespace, s.Name)
}

func (m mapper) protectedOfPodChange(ctx context.Context, c informer.PodChange) []reconcile.Request {
	var out []reconcile.Request
	for _, id := range statusIdentities(c) {
		out = append(out, m.protectedNamed(ctx, id.Namespace, id.Name)...)
	}
	return out
}

func (m mapper) protectedNamed(ctx context.Context, namespace, name string) []reconcile.Request {
	list, err := m.reader.ProtectedNamed(ctx, namespace, name)
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
