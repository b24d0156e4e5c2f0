package networkpolicy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// operatorPodLabels are the only pod labels the operator ever writes.
var operatorPodLabels = []string{compile.WorkloadLabel, compile.WorkloadKindLabel}

// PodLabelReconciler gives a pod the operator labels its identity needs, and takes them
// away once no intents select its identity by label and no live policy relies on them.
type PodLabelReconciler struct {
	// Client reads pods from the cache and patches their labels.
	Client client.Client
	// Reader answers identity and intents questions from the informer cache.
	Reader informer.Reader
	// Planner decides which workloads the policies select by label.
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

// labeler keeps the operator's labels on pods in step with what the policies select.
// Labels are made before the policies that select by them are written, and broken only
// after no live policy selects by them any more, so a declared client is never cut off
// while policies are being rewritten. The pods of an identity no policy selects by label
// are labelled by the rule only on events about them, their intents or ProtectedService,
// not when another pod changes how they would be selected: such labels select nothing,
// and following every pod change of a namespace for them would cost a label reconcile of
// every identity there (docs/concepts.md).
type labeler struct {
	client  client.Client
	reader  informer.Reader
	planner compile.Planner
	// release lets the labeler remove labels no policy relies on; without it, it only
	// adds and updates.
	release bool
	// live, when set, reads a pod again after a patch lost to a concurrent change (most
	// often the pod label reconciler writing the same labels), so that the patch is
	// decided again at once instead of failing the reconcile and waiting for a retry.
	live client.Reader
}

// sync gives each pod the operator labels its identity needs and, when releasing,
// removes those nothing relies on. It writes only pods whose labels differ.
func (l labeler) sync(ctx context.Context, pods []facts.Pod) error {
	for _, pod := range pods {
		want, err := labelsWanted(ctx, l.reader, l.planner, pod.Identity)
		if err != nil {
			return err
		}
		if err := l.patch(ctx, pod.Meta, pod.Identity, want); err != nil {
			return err
		}
	}
	return nil
}

// patch sets the operator labels of one pod to want, leaving every other label alone.
// A label to remove stays while the pod still has the identity it names and a live
// policy selects by it.
func (l labeler) patch(ctx context.Context, pod *metav1.PartialObjectMetadata, id identity.Identity, want map[string]string) error {
	err := l.patchOnce(ctx, pod, id, want)
	if !apierrors.IsConflict(err) || l.live == nil {
		return err
	}
	fresh := informer.PodMeta()
	if err := l.live.Get(ctx, client.ObjectKeyFromObject(pod), fresh); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading pod %s/%s again: %w", pod.Namespace, pod.Name, err)
	}
	return l.patchOnce(ctx, fresh, id, want)
}

// patchOnce is one attempt of patch, on the pod as read.
func (l labeler) patchOnce(ctx context.Context, pod *metav1.PartialObjectMetadata, id identity.Identity, want map[string]string) error {
	keep := !l.release
	if have := pod.Labels[compile.WorkloadLabel]; l.release && have != "" && want[compile.WorkloadLabel] != have && have == compile.LabelValue(id.Name) {
		relied, err := policiesSelecting(ctx, l.reader, pod.Namespace, have)
		if err != nil {
			return err
		}
		keep = relied
	}
	changes := map[string]any{}
	for _, k := range operatorPodLabels {
		have, has := pod.Labels[k]
		w, wanted := want[k]
		switch {
		case wanted && (!has || have != w):
			changes[k] = w
		case !wanted && has && !keep:
			changes[k] = nil
		}
	}
	if len(changes) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":          changes,
		"resourceVersion": pod.ResourceVersion,
	}})
	if err != nil {
		return fmt.Errorf("encoding label patch: %w", err)
	}
	target := informer.PodMeta()
	target.Namespace, target.Name = pod.Namespace, pod.Name
	if err := l.client.Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("labelling pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// labelsWanted returns the operator labels a pod of identity id must carry, by the
// compiler's rule, over the intents and ProtectedServices that name id.
func labelsWanted(ctx context.Context, r informer.Reader, p compile.Planner, id identity.Identity) (map[string]string, error) {
	key := informer.NameKey(id.Namespace, id.Name)
	asClient, err := r.IntentsFor(ctx, informer.IndexClient, key)
	if err != nil {
		return nil, err
	}
	asServer, err := r.IntentsFor(ctx, informer.IndexServerName, key)
	if err != nil {
		return nil, err
	}
	protected, err := p.Facts.ProtectedNamed(ctx, id.Namespace, id.Name)
	if err != nil {
		return nil, err
	}
	return p.LabelsWanted(ctx, id, compile.LabelRefs(slices.Concat(asClient, asServer), protected))
}
