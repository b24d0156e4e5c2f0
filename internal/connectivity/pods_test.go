package connectivity

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestNamedPortsResolveOnTheDestination checks that a policy port given by name admits
// traffic to the number the destination's container port of that name has, and a
// numbered policy port traffic asked for by name, per destination pod and protocol.
func TestNamedPortsResolveOnTheDestination(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	policy := func(port intstr.IntOrString, proto corev1.Protocol) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &proto, Port: &port}}}},
			},
		}
	}
	ns := map[string]string{"kubernetes.io/metadata.name": "ns"}
	src := NewPod("ns", "client", "client.ns", map[string]string{"app": "client"}, ns)
	server := NewPod("ns", "server", "server.ns", map[string]string{"app": "server"}, ns)
	http := server.WithContainerPorts([]corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 53, Protocol: udp}})
	other := server.WithContainerPorts([]corev1.ContainerPort{{Name: "http", ContainerPort: 9090}})
	for _, tc := range []struct {
		name   string
		policy *networkingv1.NetworkPolicy
		dst    Pod
		port   Port
		want   bool
	}{
		{"named policy, number asked", policy(intstr.FromString("http"), tcp), http, Port{Number: 8080}, true},
		{"named policy, name asked", policy(intstr.FromString("http"), tcp), http, Port{Name: "http"}, true},
		{"named policy, other number", policy(intstr.FromString("http"), tcp), http, Port{Number: 9090}, false},
		{"named policy, number of another pod's port", policy(intstr.FromString("http"), tcp), other, Port{Number: 8080}, false},
		{"named policy, that pod's number", policy(intstr.FromString("http"), tcp), other, Port{Number: 9090}, true},
		{"named policy, no container ports", policy(intstr.FromString("http"), tcp), server, Port{Number: 8080}, false},
		{"numbered policy, name asked", policy(intstr.FromInt32(8080), tcp), http, Port{Name: "http"}, true},
		{"numbered policy, name of another number", policy(intstr.FromInt32(8080), tcp), other, Port{Name: "http"}, false},
		{"numbered policy, unknown name", policy(intstr.FromInt32(8080), tcp), http, Port{Name: "grpc"}, false},
		{"numbered policy, number asked", policy(intstr.FromInt32(8080), tcp), server, Port{Number: 8080}, true},
		{"protocol counts", policy(intstr.FromString("http"), tcp), http, Port{Number: 8080, Protocol: udp}, false},
		{"UDP name", policy(intstr.FromString("dns"), udp), http, Port{Number: 53, Protocol: udp}, true},
		{"UDP name asked on TCP", policy(intstr.FromString("dns"), udp), http, Port{Number: 53}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New([]Pod{src, tc.dst}, []*networkingv1.NetworkPolicy{tc.policy}, tc.port)
			if got := m.Allowed(src, tc.dst); got != tc.want {
				t.Errorf("allowed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAllowedFromOutside checks traffic from peers that are no pod: pod and namespace
// selectors never admit them, a rule without peers does, an address block does for
// the addresses it holds, and without an address such a block leaves it undecided.
func TestAllowedFromOutside(t *testing.T) {
	ns := map[string]string{"kubernetes.io/metadata.name": "ns"}
	server := NewPod("ns", "server", "server.ns", map[string]string{"app": "server"}, ns)
	other := NewPod("ns", "other", "other.ns", map[string]string{"app": "other"}, ns)
	policy := func(peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers}},
			},
		}
	}
	pods := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}, NamespaceSelector: &metav1.LabelSelector{}}
	block := networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24"}}
	for _, tc := range []struct {
		name             string
		policy           *networkingv1.NetworkPolicy
		dst              Pod
		ip               string
		allowed, decided bool
	}{
		{"every pod admitted, not the outside", policy(pods), server, "", false, true},
		{"every peer admitted", policy(), server, "", true, true},
		{"address in the block", policy(pods, block), server, "192.0.2.7", true, true},
		{"address outside the block", policy(pods, block), server, "198.51.100.1", false, true},
		{"unknown address and a block", policy(pods, block), server, "", false, false},
		{"pod no policy selects", policy(pods), other, "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New([]Pod{tc.dst}, []*networkingv1.NetworkPolicy{tc.policy}, Port{Number: 80})
			allowed, decided := m.AllowedFromOutside(tc.ip, tc.dst)
			if allowed != tc.allowed || decided != tc.decided {
				t.Errorf("allowed, decided = %v, %v; want %v, %v", allowed, decided, tc.allowed, tc.decided)
			}
		})
	}
}
