package controller

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/cluster"
)

// PodLabelReconciler gives a pod the operator labels its identity needs, and takes them
// away once no intents select its identity by label and no live policy relies on them.
type PodLabelReconciler struct {
	Client  client.Client
	Planner Planner
}

// Reconcile syncs one pod's operator labels.
func (r *PodLabelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := cluster.PodMeta()
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !pod.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	id, err := r.Planner.Cluster.Identity(ctx, pod)
	if err != nil {
		return ctrl.Result{}, err
	}
	lab := labeler{client: r.Client, planner: r.Planner.forOneReconcile(), release: true}
	err = lab.sync(ctx, []cluster.Pod{{Meta: pod, Identity: id}})
	if apierrors.IsConflict(err) {
		return ctrl.Result{Requeue: true}, nil
	}
	return ctrl.Result{}, err
}
