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

// WithContainerPorts returns the pod serving ports: a named port of a policy then
// matches traffic to the number its container port of that name has, and a numbered
// port traffic to the name, as they do in a cluster.
func (p Pod) WithContainerPorts(ports []corev1.ContainerPort) Pod {
	p.ports = ports
	return p
}

// New builds the matrix of pods under policies, on port.
func New(pods []Pod, policies []*networkingv1.NetworkPolicy, port Port) *Matrix {
	if port.Protocol == "" {
		port.Protocol = corev1.ProtocolTCP
	}
	return &Matrix{Pods: pods, policy: matcher.BuildNetworkPolicies(true, policies), port: port, ipBlocks: admitsAddresses(policies)}
}

// admitsAddresses reports whether an ingress rule of the policies names an address block.
func admitsAddresses(policies []*networkingv1.NetworkPolicy) bool {
	for _, np := range policies {
		for _, rule := range np.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.IPBlock != nil {
					return true
				}
			}
		}
	}
	return false
}

// ResolveOn returns the port as traffic to dst reaches it: with the number of dst's
// container port of that name when the port is a name, or with the name of dst's
// container port of that number when it is a number. A port dst does not declare
// stays as it is, so that only policy ports written the same way match it.
func (p Port) ResolveOn(dst Pod) Port {
	for _, c := range dst.ports {
		proto := c.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if proto != p.Protocol {
			continue
		}
		switch {
		case p.Name != "" && c.Name == p.Name:
			p.Number = int(c.ContainerPort)
			return p
		case p.Name == "" && p.Number != 0 && int(c.ContainerPort) == p.Number:
			p.Name = c.Name
			return p
		}
	}
	return p
}
