package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// floorRuns is how often the unthrottled floor is measured; its median is reported, as
// one run moves with whatever else the machine does.
const floorRuns = 3

// floor is the API server's own time for the writes enforcement needs, by one writer
// configuration.
type floor struct {
	// Seconds is the median of the runs.
	Seconds float64   `json:"seconds"`
	Runs    []float64 `json:"runs"`
}

// measureFloor runs writeFloor runs times with the writer w, undoing with undo.
func measureFloor(ctx context.Context, w, undo client.Client, want map[client.ObjectKey]*networkingv1.NetworkPolicy, labels []podLabel, runs int) (floor, error) {
	var f floor
	for range max(runs, 1) {
		took, err := writeFloor(ctx, w, undo, want, labels)
		if err != nil {
			return f, err
		}
		f.Runs = append(f.Runs, took.Seconds())
	}
	f.Seconds = median(f.Runs)
	return f, nil
}

// writeFloor creates the final policies and labels the pods they select by the operator's
// labels, with the plain client c and as many writers as the operator has reconcile
// workers, then undoes both with undo; it returns the time the writes took.
func writeFloor(ctx context.Context, c, undo client.Client, want map[client.ObjectKey]*networkingv1.NetworkPolicy, labels []podLabel) (time.Duration, error) {
	policies := make([]*networkingv1.NetworkPolicy, 0, len(want))
	for _, p := range want {
		policies = append(policies, p.DeepCopy())
	}
	t0 := time.Now()
	err := parallel(len(policies)+len(labels), 4, func(i int) error {
		if i < len(labels) {
			return patchLabels(ctx, c, labels[i], false)
		}
		return c.Create(ctx, policies[i-len(labels)])
	})
	took := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("floor writes: %w", err)
	}
	return took, undoFloor(ctx, undo, policies, labels)
}

// undoFloor deletes the floor's policies and removes its pod labels with the client undo.
func undoFloor(ctx context.Context, undo client.Client, policies []*networkingv1.NetworkPolicy, labels []podLabel) error {
	if err := parallel(len(policies), 16, func(i int) error { return undo.Delete(ctx, policies[i]) }); err != nil {
		return fmt.Errorf("removing floor policies: %w", err)
	}
	if err := parallel(len(labels), 16, func(i int) error { return patchLabels(ctx, undo, labels[i], true) }); err != nil {
		return fmt.Errorf("removing floor labels: %w", err)
	}
	return nil
}

// patchLabels sets the operator labels l names on its pod, or removes them, with a merge
// patch as the operator writes them.
func patchLabels(ctx context.Context, c client.Client, l podLabel, remove bool) error {
	m := map[string]any{}
	for k, v := range l.labels {
		m[k] = v
		if remove {
			m[k] = nil
		}
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": m}})
	if err != nil {
		return fmt.Errorf("encoding the labels of pod %s/%s: %w", l.ns, l.name, err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: l.ns, Name: l.name}}
	return c.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body))
}
