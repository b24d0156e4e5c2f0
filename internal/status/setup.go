// Package status reports, on ClientIntents and ProtectedServices, what the enforcement
// points recorded for them, as conditions, per-target states and Events. It reads the
// points' records only: it never plans or looks at enforced objects itself.
package status

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
)

// Setup registers the ClientIntents and ProtectedService status reconcilers over the
// enforcement points. Besides their own objects they watch only the points' notices.
func Setup(mgr ctrl.Manager, points ...enforcement.Point) error {
	intents := &ClientIntentsReconciler{Client: mgr.GetClient(), Points: points, Recorder: mgr.GetEventRecorder("intentguard")}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("clientintents-status").
		For(&v2beta1.ClientIntents{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: statusWorkers * max(1, mgr.GetControllerOptions().MaxConcurrentReconciles)})
	for _, p := range points {
		b = b.WatchesRawSource(source.Channel(p.Subscribe(), handler.TypedEnqueueRequestsFromMapFunc(noticesOf[*v2beta1.ClientIntents])))
	}
	if err := b.Complete(intents); err != nil {
		return fmt.Errorf("setting up the ClientIntents status controller: %w", err)
	}

	protected := &ProtectedServiceReconciler{Client: mgr.GetClient(), Points: points, Recorder: mgr.GetEventRecorder("intentguard")}
	b = ctrl.NewControllerManagedBy(mgr).
		Named("protectedservice-status").
		For(&v2beta1.ProtectedService{})
	for _, p := range points {
		b = b.WatchesRawSource(source.Channel(p.Subscribe(), handler.TypedEnqueueRequestsFromMapFunc(noticesOf[*v2beta1.ProtectedService])))
	}
	if err := b.Complete(protected); err != nil {
		return fmt.Errorf("setting up the ProtectedService status controller: %w", err)
	}
	return nil
}

// statusWorkers is how many times as many reconciles in parallel the ClientIntents status
// controller runs as the others: in a burst each policy written completes about one
// ClientIntents, and a status patch of a custom resource costs the API server more than a
// policy create, so with as many workers status trailed its policies by seconds.
const statusWorkers = 2

// noticesOf passes on the notices about objects of type T: each status reconciler
// subscribes to every point and keeps its own kind.
func noticesOf[T client.Object](_ context.Context, o client.Object) []reconcile.Request {
	if _, ok := o.(T); !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
}

// settling returns how long to wait before reporting states while a point still carries
// out a change they depend on, as long as that has not lasted enforcement.PendingAfter:
// the status would say Pending now and be rewritten a moment later. The point's notice
// brings the reconcile back when its record changes; the wait is the fallback.
func settling(states []enforcement.TargetState) time.Duration {
	var wait time.Duration
	for _, st := range states {
		if st.InHand {
			wait = max(wait, enforcement.PendingAfter-time.Since(st.Since))
		}
	}
	if wait <= 0 {
		return 0
	}
	return min(wait, pendingRecheck)
}

// pendingRecheck is how often a status waiting for a point looks again.
const pendingRecheck = 5 * time.Second
