package input_test

import (
	"context"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/cli/input"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// TestLocalFilesOverlayTheLiveCluster reads a real kube-apiserver under a change: the
// change's objects replace the live ones of the same kind, namespace and name, whatever
// version each is written in, and the others stay as the cluster has them.
func TestLocalFilesOverlayTheLiveCluster(t *testing.T) {
	ctx := context.Background()
	lc, kube := controlplane.ForTest(t, controlplane.Options{WithoutControllerManager: true})
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "token"}},
		&v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"}, Spec: v2beta1.ClientIntentsSpec{
			Workload: v2beta1.Workload{Name: "checkout"}, Targets: []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "payments"}}}}},
		&v2beta1.ProtectedService{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"}, Spec: v2beta1.ProtectedServiceSpec{Name: "orders"}},
	} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	change := write(t, map[string]string{"intents.yaml": intents("v1alpha3", "kafkaTopics")})

	set, err := input.Load(ctx, input.Options{
		Live:  &input.Live{Kubeconfig: lc.Kubeconfig},
		Paths: []string{change},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ci *v2beta1.ClientIntents
	var ps *v2beta1.ProtectedService
	for _, o := range set.Objects {
		switch o := o.(type) {
		case *v2beta1.ClientIntents:
			ci = o
		case *v2beta1.ProtectedService:
			ps = o
		case *corev1.Namespace:
			if o.Name == "shop" && o.Labels["team"] != "a" {
				t.Errorf("namespace labels %v", o.Labels)
			}
		}
		if input.KeyOf(o).Kind == "Secret" {
			t.Errorf("a Secret was read: %s", input.KeyOf(o))
		}
	}
	if ci == nil || len(ci.Spec.Targets) != 2 || ci.Spec.Targets[0].Kubernetes.Name != "orders" {
		t.Fatalf("ClientIntents %+v: want the change's (calls orders and kafka), converted", ci)
	}
	if src := set.Source(ci); src.File != filepath.Join(change, "intents.yaml") {
		t.Errorf("the ClientIntents comes from %v, want the change", src)
	}
	if ps == nil || set.Source(ps).File != "" {
		t.Errorf("the live ProtectedService is missing or not from the cluster: %+v", ps)
	}
	// With --prune the change, which holds intentguard objects in shop, deletes the live
	// ProtectedService it does not hold.
	pruned, err := input.Load(ctx, input.Options{Live: &input.Live{Kubeconfig: lc.Kubeconfig}, Paths: []string{change}, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned.Pruned) != 1 || pruned.Pruned[0].String() != "ProtectedService shop/orders" || pruned.Pruned[0].Source.File != "" {
		t.Errorf("pruned %+v, want the live ProtectedService shop/orders", pruned.Pruned)
	}
	if got := input.All[*v2beta1.ProtectedService](pruned); len(got) != 0 {
		t.Errorf("the pruned ProtectedService is still read: %v", got)
	}
}
