package install

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/istio"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/istio/istiocrd"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// TestChartRBACCoversTheIstioPoint: installed with istio.authorizationPolicies, the
// chart's RBAC lets the operator, as the chart's ServiceAccount, watch pods and its
// policies, read the mesh configuration in its namespace, and write a server's policy;
// no request of the operator is refused.
func TestChartRBACCoversTheIstioPoint(t *testing.T) {
	ctx := context.Background()
	if err := istiocrd.Install(ctx, kube); err != nil {
		t.Fatal(err)
	}
	ensureNamespace(t, namespace)
	ensureNamespace(t, istio.DefaultMeshConfig.Namespace)
	apply(t, render(t, "istio.authorizationPolicies=true"))
	mesh := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: istio.DefaultMeshConfig.Namespace, Name: istio.DefaultMeshConfig.Name},
		Data: map[string]string{"mesh": "trustDomain: corp.example\n"}}
	if err := kube.Create(ctx, mesh); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Delete(context.Background(), mesh) })

	r := startReplica(t, 0, time.Hour, func(c *operator.Config) { c.IstioAuthorizationPolicies = true })
	routeWebhooksTo(t, r)
	ns := "istio-rbac"
	ensureNamespace(t, ns)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nginx", Labels: map[string]string{"app": "nginx"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}, {Name: authz.ProxyContainer, Image: "istio/proxyv2"}}}}
	ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "client"},
		Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: "client"}, Targets: []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "nginx"}}}}}
	for _, o := range []client.Object{pod, ci} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	suite.WaitFor(t, "the server's AuthorizationPolicy", time.Minute, func() (bool, error) {
		var list unstructured.UnstructuredList
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicyList"})
		err := kube.List(ctx, &list, client.InNamespace(ns))
		return err == nil && len(list.Items) == 1, err
	})
	// Pods owned by a kind the chart grants nothing on (another test's Gadgets) cost the
	// identity index one refused look, whichever points run.
	r.rec.mu.Lock()
	defer r.rec.mu.Unlock()
	for _, d := range r.rec.denied {
		if !strings.HasPrefix(d, "GET /apis/test.intentguard.dev/v1/gadgets") {
			t.Errorf("the chart's RBAC refused the operator: %s", d)
		}
	}
}
