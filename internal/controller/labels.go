package controller

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/cluster"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/netpol"
)

// operatorPodLabels are the only pod labels the operator ever writes.
var operatorPodLabels = []string{netpol.WorkloadLabel, netpol.WorkloadKindLabel}

// labeler keeps the operator's labels on pods in step with what the policies select.
// Labels are made before the policies that select by them are written, and broken only
// after no live policy selects by them any more, so a declared client is never cut off
// while policies are being rewritten.
type labeler struct {
	client  client.Client
	planner Planner
	// release lets the labeler remove labels no policy relies on; without it, it only
	// adds and updates.
	release bool
}

// sync gives each pod the operator labels its identity needs and, when releasing,
// removes those nothing relies on. It writes only pods whose labels differ.
func (l labeler) sync(ctx context.Context, pods []cluster.Pod) error {
	for _, pod := range pods {
		want, err := l.planner.LabelsWanted(ctx, pod.Identity)
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
	keep := !l.release
	if have := pod.Labels[netpol.WorkloadLabel]; l.release && have != "" && want[netpol.WorkloadLabel] != have && have == netpol.LabelValue(id.Name) {
		relied, err := l.planner.Cluster.PoliciesSelecting(ctx, pod.Namespace, have)
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
	target := cluster.PodMeta()
	target.Namespace, target.Name = pod.Namespace, pod.Name
	if err := l.client.Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("labelling pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
