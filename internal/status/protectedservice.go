package status

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// ProtectedServiceReconciler reports on each ProtectedService whether the policy that
// protects its server is in place, and which one it is.
type ProtectedServiceReconciler struct {
	Client   client.Client
	Planner  compile.Planner
	Recorder events.EventRecorder

	mu sync.Mutex
	// pendingSince remembers when a ProtectedService was first seen waiting for a policy
	// the NetworkPolicy controller is writing: Pending is reported only if that lasts.
	pendingSince map[client.ObjectKey]time.Time
}

// waitedEnough reports whether a ProtectedService waiting for its policy has waited long
// enough to report Pending; ok false clears the memory.
func (r *ProtectedServiceReconciler) waitedEnough(key client.ObjectKey, waiting bool) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !waiting {
		delete(r.pendingSince, key)
		return 0, true
	}
	if r.pendingSince == nil {
		r.pendingSince = map[client.ObjectKey]time.Time{}
	}
	t, ok := r.pendingSince[key]
	if !ok {
		t = time.Now()
		r.pendingSince[key] = t
	}
	left := pendingStall - time.Since(t)
	return left, left <= 0
}

// Reconcile recomputes one ProtectedService's status and writes it if it changed.
func (r *ProtectedServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ps v2beta1.ProtectedService
	if err := r.Client.Get(ctx, req.NamespacedName, &ps); err != nil || !ps.DeletionTimestamp.IsZero() {
		r.waitedEnough(req.NamespacedName, false)
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	server := intent.Protected(&ps)
	planner := r.Planner.ForOneReconcile()
	plan, err := planner.Plan(ctx, server)
	if err != nil {
		return ctrl.Result{}, err
	}
	ready, reason, msg, policy, writing := false, ReasonPending, "", "", false
	switch {
	case plan.KindMeant != "":
		reason, msg = ReasonFailed, compile.KindMisspelled(server, plan.KindMeant)
	case plan.Policy == nil:
		msg = fmt.Sprintf("no NetworkPolicy is planned for %s", server)
	default:
		key := client.ObjectKeyFromObject(plan.Policy)
		var live networkingv1.NetworkPolicy
		err := r.Client.Get(ctx, key, &live)
		switch {
		case apierrors.IsNotFound(err):
			msg, writing = fmt.Sprintf("waiting for NetworkPolicy %s to be written", key), true
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("reading NetworkPolicy %s: %w", key, err)
		case !compile.UpToDate(plan.Policy, &live):
			msg, writing = fmt.Sprintf("waiting for NetworkPolicy %s to be updated", key), true
		default:
			gap, err := planner.Unlabelled(ctx, server.Ref)
			if err != nil {
				return ctrl.Result{}, err
			}
			policy = key.Name
			if gap > 0 {
				msg = fmt.Sprintf("waiting for %d pod(s) of %s to be labelled for NetworkPolicy %s", gap, server.Ref, key)
				break
			}
			ready, reason = true, ReasonEnforced
			msg = fmt.Sprintf("NetworkPolicy %s admits only the clients that declared calls to %s (%d ClientIntents)", key, server.Ref, len(plan.Intents))
			if !plan.Exists {
				msg += fmt.Sprintf("; no pods of %s exist yet, the policy selects them when they do", server.Ref)
			}
		}
	}
	// The policy's watch event brings this back when it lands; Pending costs a write and
	// an Event only when the wait lasts.
	if left, enough := r.waitedEnough(req.NamespacedName, writing); !enough {
		return ctrl.Result{RequeueAfter: min(left, pendingRecheck)}, nil
	}
	status := ps.Status.DeepCopy()
	status.ObservedGeneration = ps.Generation
	status.Policy = policy
	cond := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: ps.Generation}
	if ready {
		cond.Status = metav1.ConditionTrue
	}
	prev := meta.FindStatusCondition(ps.Status.Conditions, ConditionReady)
	meta.SetStatusCondition(&status.Conditions, cond)
	if equality.Semantic.DeepEqual(status, &ps.Status) {
		return ctrl.Result{}, nil
	}
	if r.Recorder != nil && (prev == nil || prev.Status != cond.Status || prev.Reason != cond.Reason) {
		kind := corev1.EventTypeNormal
		if !ready && prev != nil && prev.Status == metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(&ps, nil, kind, cond.Reason, ConditionReady, "%s", cond.Message)
	}
	patch := client.MergeFrom(ps.DeepCopy())
	ps.Status = *status
	if err := r.Client.Status().Patch(ctx, &ps, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log.FromContext(ctx).Info("updated ProtectedService status", "ready", cond.Status, "message", cond.Message)
	return ctrl.Result{}, nil
}
