package networkpolicy

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// operatorPodLabels are the only pod labels the operator ever writes.
var operatorPodLabels = []string{compile.WorkloadLabel, compile.WorkloadKindLabel}

// labeler keeps the operator's labels on pods in step with what the policies select.
// Labels are made before the policies that select by them are written, and broken only
// after no live policy selects by them any more, so a declared client is never cut off
// while policies are being rewritten.
type labeler struct {
	client  client.Client
	reader  informer.Reader
	planner compile.Planner
	// release lets the labeler remove labels no policy relies on; without it, it only
	// adds and updates.
	release bool
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

// labelsWanted returns the operator labels a pod of identity id must carry: the identity
// labels when some intents or ProtectedService refer to it and its pods are selected by
// label, none otherwise.
func labelsWanted(ctx context.Context, r informer.Reader, p compile.Planner, id identity.Identity) (map[string]string, error) {
	key := informer.NameKey(id.Namespace, id.Name)
	var refs []intent.Ref
	asClient, err := r.IntentsFor(ctx, informer.IndexClient, key)
	if err != nil {
		return nil, err
	}
	for i := range asClient {
		refs = append(refs, intent.Client(&asClient[i]))
	}
	asServer, err := r.IntentsFor(ctx, informer.IndexServerName, key)
	if err != nil {
		return nil, err
	}
	for i := range asServer {
		for _, s := range intent.Servers(&asServer[i]) {
			if !s.Service {
				refs = append(refs, s.Ref)
			}
		}
	}
	protected, err := p.Facts.ProtectedNamed(ctx, id.Namespace, id.Name)
	if err != nil {
		return nil, err
	}
	for i := range protected {
		refs = append(refs, intent.Protected(&protected[i]).Ref)
	}
	for _, ref := range refs {
		if !ref.Matches(id) {
			continue
		}
		sel, _, err := p.SelectPods(ctx, ref)
		if err != nil {
			return nil, err
		}
		if sel.ByLabel {
			return compile.IdentityLabels(id), nil
		}
	}
	return nil, nil
}
