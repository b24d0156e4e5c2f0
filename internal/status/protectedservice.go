package status

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
)

// ProtectedServiceReconciler reports on each ProtectedService what the enforcement points
// recorded for the server it names: whether it is protected, and by which object.
type ProtectedServiceReconciler struct {
	Client   client.Client
	Points   []enforcement.Point
	Recorder events.EventRecorder
}

// Reconcile recomputes one ProtectedService's status and writes it if it changed.
func (r *ProtectedServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ps v2beta1.ProtectedService
	if err := r.Client.Get(ctx, req.NamespacedName, &ps); err != nil || !ps.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var states []enforcement.TargetState
	for _, point := range r.Points {
		got, err := point.Protection(ctx, &ps)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("reading the %s outcome: %w", point.Name(), err)
		}
		states = append(states, got...)
	}
	if wait := settling(states); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	reason, policy := enforcement.ReasonReconciled, ""
	var msgs []string
	for _, st := range states {
		msgs = append(msgs, st.Message)
		switch {
		case st.State == enforcement.Failed:
			reason = enforcement.ReasonFailed
		case st.State != enforcement.Enforced && reason != enforcement.ReasonFailed:
			reason = enforcement.ReasonPending
		}
		if policy == "" {
			policy = st.Object
		}
	}
	if len(states) == 0 {
		reason, msgs = enforcement.ReasonPending, []string{fmt.Sprintf("no enforcement point protects %s", intent.Protected(&ps))}
	}
	status := ps.Status.DeepCopy()
	status.ObservedGeneration = ps.Generation
	status.Policy = policy
	prev := meta.FindStatusCondition(ps.Status.Conditions, enforcement.ConditionReady)
	enforcement.SetReadiness(&status.Conditions, reason, strings.Join(msgs, "; "), ps.Generation)
	if equality.Semantic.DeepEqual(status, &ps.Status) {
		return ctrl.Result{}, nil
	}
	cond := meta.FindStatusCondition(status.Conditions, enforcement.ConditionReady)
	if kind, ok := eventFor(prev, *cond); ok && r.Recorder != nil {
		r.Recorder.Eventf(&ps, nil, kind, cond.Reason, enforcement.ConditionReady, "%s", enforcement.EventNote(cond.Message))
	}
	patch := client.MergeFrom(ps.DeepCopy())
	ps.Status = *status
	if err := r.Client.Status().Patch(ctx, &ps, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log.FromContext(ctx).Info("updated ProtectedService status", "ready", cond.Status, "message", cond.Message)
	return ctrl.Result{}, nil
}
