package compile

import (
	"context"
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts/snapshot"
	"github.com/intentguard/intentguard/internal/intent"
)

// labelledDeployment is a Deployment of the shop namespace whose pods carry kv.
func labelledDeployment(name string, kv ...string) *appsv1.Deployment {
	l := matchLabels(kv...).MatchLabels
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}},
		},
	}
}

// Only the pods of an identity that intents or a ProtectedService name, and that policies
// select by label, get the operator's labels: not a workload its own selector selects
// exactly, not a workload reached through a Service, not a pod nobody names.
func TestLabelsWantedOnlyWherePoliciesSelectByLabel(t *testing.T) {
	ci := v2beta1.ClientIntents{
		ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: "client"},
		Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: "client"}, Targets: []v2beta1.Target{
			{Kubernetes: &v2beta1.KubernetesTarget{Name: "server"}},
			{Service: &v2beta1.ServiceTarget{Name: "api"}},
		}},
	}
	ps := v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: "batch"}, Spec: v2beta1.ProtectedServiceSpec{Name: "batch"}}
	objects := []client.Object{
		&ci, &ps,
		labelledDeployment("server", "app", "server"),
		// client's selector also selects the debug pod: client is selected by label.
		labelledDeployment("client", "app", "client"),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: "debug", Labels: map[string]string{"app": "client"}}},
		// api shares its selector with other, but is called through a Service only.
		labelledDeployment("api", "app", "shared"),
		labelledDeployment("other", "app", "shared"),
		// A bare pod has no selector of its own.
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: "batch"}},
	}
	snap, err := snapshot.New(objects)
	if err != nil {
		t.Fatal(err)
	}
	refs := LabelRefs(snap.ClientIntents(), snap.ProtectedServices())
	if len(refs) != 3 {
		t.Fatalf("refs %v, want the client, server and batch (not the Service target api)", refs)
	}
	want := map[string]map[string]string{
		"client-predicted": {WorkloadLabel: "client", WorkloadKindLabel: "Deployment"},
		"batch":            {WorkloadLabel: "batch", WorkloadKindLabel: "Pod"},
	}
	planner := Planner{Facts: snap}
	seen := 0
	for _, pod := range snap.AllPods() {
		seen++
		got, err := planner.LabelsWanted(context.Background(), pod.Identity, refs)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want[pod.Meta.Name]) {
			t.Errorf("pod %s (%v): labels %v, want %v", pod.Meta.Name, pod.Identity, got, want[pod.Meta.Name])
		}
		// Refs of other identities change nothing: the operator passes only the refs
		// its indexes find for the identity.
		var own []intent.Ref
		for _, r := range refs {
			if r.Matches(pod.Identity) {
				own = append(own, r)
			}
		}
		alone, err := planner.LabelsWanted(context.Background(), pod.Identity, own)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(alone, got) {
			t.Errorf("pod %s: labels %v from its own refs %v, %v from all", pod.Meta.Name, alone, own, got)
		}
	}
	if seen != 6 {
		t.Fatalf("%d pods in the snapshot, want 6", seen)
	}
}
