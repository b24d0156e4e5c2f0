package controlplane

import (
	"context"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Services get their cluster IPs from the range the options give, which holds more than
// envtest's 254.
func TestServiceCIDR(t *testing.T) {
	_, kube := ForTest(t, Options{WithoutControllerManager: true, ServiceCIDR: "10.96.0.0/16"})
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "wide"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if err := kube.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		t.Fatalf("cluster IP %q: %v", svc.Spec.ClusterIP, err)
	}
	if !netip.MustParsePrefix("10.96.0.0/16").Contains(ip) {
		t.Fatalf("cluster IP %s is outside 10.96.0.0/16", ip)
	}
}
