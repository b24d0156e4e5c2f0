package connectivity

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
)

// NewPod returns an endpoint with the labels of the pod and of its namespace, for a
// matrix over objects that are not (yet) in a cluster.
func NewPod(namespace, name, workload string, labels, namespaceLabels map[string]string) Pod {
	return Pod{Namespace: namespace, Name: name, Workload: workload, labels: labels, nsLabels: namespaceLabels}
}

// New builds the matrix of pods under policies, on port.
func New(pods []Pod, policies []*networkingv1.NetworkPolicy, port Port) *Matrix {
	if port.Protocol == "" {
		port.Protocol = corev1.ProtocolTCP
	}
	return &Matrix{Pods: pods, policy: matcher.BuildNetworkPolicies(true, policies), port: port}
}
