package networkpolicy

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// PodLabelReconciler gives a pod the operator labels its identity needs, and takes them
// away once no intents select its identity by label and no live policy relies on them.
type PodLabelReconciler struct {
	Client  client.Client
	Reader  informer.Reader
	Planner compile.Planner
}

// Reconcile syncs one pod's operator labels.
func (r *PodLabelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := informer.PodMeta()
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !pod.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	id, err := r.Reader.Identity(ctx, pod)
	if err != nil {
		return ctrl.Result{}, err
	}
	lab := labeler{client: r.Client, reader: r.Reader, planner: r.Planner.ForOneReconcile(), release: true}
	err = lab.sync(ctx, []facts.Pod{{Meta: pod, Identity: id}})
	if apierrors.IsConflict(err) {
		return ctrl.Result{Requeue: true}, nil
	}
	return ctrl.Result{}, err
}
