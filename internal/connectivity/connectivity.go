// Package connectivity evaluates which pods may reach which under the NetworkPolicies
// stored in a cluster, with an evaluator independent of this project's compiler
// (cyclonus' matcher), so tests and demos check what is enforced, not what was written.
package connectivity

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mattfenwick/cyclonus/pkg/matcher"

	"github.com/intentguard/intentguard/internal/facts/informer"
)

// Pod is one endpoint of the matrix.
type Pod struct {
	Namespace string
	Name      string
	// Workload is the pod's identity name, "name.namespace".
	Workload string
	labels   map[string]string
	nsLabels map[string]string
	// ports are the container ports the pod declares, which resolve named ports.
	ports []corev1.ContainerPort
}

// Port is the destination port traffic is evaluated on.
type Port struct {
	Number   int
	Name     string
	Protocol corev1.Protocol
}

// Matrix holds, for every ordered pair of pods, whether ingress to the destination allows it.
type Matrix struct {
	Pods   []Pod
	policy *matcher.Policy
	port   Port
	// ipBlocks is true when a policy admits peers by address: traffic from outside every
	// pod is then decided by the peer's address.
	ipBlocks bool
}

// Evaluate reads pods, namespaces and NetworkPolicies of the given namespaces straight
// from the API server (r should not be a cache) and builds the matrix.
func Evaluate(ctx context.Context, r client.Reader, namespaces []string, port Port) (*Matrix, error) {
	reader := informer.Reader{Reader: r}
	var pods []Pod
	var policies []*networkingv1.NetworkPolicy
	for _, ns := range namespaces {
		var namespace corev1.Namespace
		if err := r.Get(ctx, client.ObjectKey{Name: ns}, &namespace); err != nil {
			return nil, fmt.Errorf("reading namespace %s: %w", ns, err)
		}
		list := informer.PodMetaList()
		if err := r.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing pods in %s: %w", ns, err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			if !p.DeletionTimestamp.IsZero() {
				continue
			}
			id, err := reader.Identity(ctx, p)
			if err != nil {
				return nil, err
			}
			pods = append(pods, Pod{Namespace: ns, Name: p.Name, Workload: id.Name + "." + ns, labels: p.Labels, nsLabels: namespace.Labels})
		}
		var nps networkingv1.NetworkPolicyList
		if err := r.List(ctx, &nps, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing NetworkPolicies in %s: %w", ns, err)
		}
		for i := range nps.Items {
			policies = append(policies, &nps.Items[i])
		}
	}
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Workload != pods[j].Workload {
			return pods[i].Workload < pods[j].Workload
		}
		return pods[i].Name < pods[j].Name
	})
	return New(pods, policies, port), nil
}

// Allowed reports whether src may open a connection to dst on the matrix's port.
func (m *Matrix) Allowed(src, dst Pod) bool {
	peer := func(p Pod) *matcher.TrafficPeer {
		return &matcher.TrafficPeer{Internal: &matcher.InternalPeer{PodLabels: p.labels, NamespaceLabels: p.nsLabels, Namespace: p.Namespace}}
	}
	port := m.port.ResolveOn(dst)
	t := &matcher.Traffic{Source: peer(src), Destination: peer(dst), ResolvedPort: port.Number, ResolvedPortName: port.Name, Protocol: port.Protocol}
	// Only ingress is in question: the operator writes ingress policies only.
	return m.policy.IsIngressOrEgressAllowed(t, true).IsAllowed()
}

// AllowedFromOutside reports whether traffic from a peer that is no pod (a node's host
// network, an address outside the cluster) may open a connection to dst on the matrix's
// port; ip is its address, or empty when unknown. decided is false when the answer
// depends on an address that is unknown: a policy admits peers by address.
func (m *Matrix) AllowedFromOutside(ip string, dst Pod) (allowed, decided bool) {
	if ip == "" && m.ipBlocks {
		return false, false
	}
	port := m.port.ResolveOn(dst)
	t := &matcher.Traffic{
		Source:       &matcher.TrafficPeer{IP: ip},
		Destination:  &matcher.TrafficPeer{Internal: &matcher.InternalPeer{PodLabels: dst.labels, NamespaceLabels: dst.nsLabels, Namespace: dst.Namespace}},
		ResolvedPort: port.Number, ResolvedPortName: port.Name, Protocol: port.Protocol,
	}
	return m.policy.IsIngressOrEgressAllowed(t, true).IsAllowed(), true
}

// Workloads returns the distinct workload names in the matrix, sorted.
func (m *Matrix) Workloads() []string {
	var out []string
	for _, p := range m.Pods {
		if len(out) == 0 || out[len(out)-1] != p.Workload {
			out = append(out, p.Workload)
		}
	}
	return out
}

// WorkloadAllowed reports whether every pod of src may reach every pod of dst; ok is false
// when the pods of the two workloads disagree (which a correct policy never causes).
func (m *Matrix) WorkloadAllowed(src, dst string) (allowed bool, consistent bool) {
	first, seen := false, false
	for _, s := range m.Pods {
		if s.Workload != src {
			continue
		}
		for _, d := range m.Pods {
			if d.Workload != dst || d.Name == s.Name {
				continue
			}
			a := m.Allowed(s, d)
			if seen && a != first {
				return false, false
			}
			first, seen = a, true
		}
	}
	return first, true
}

// Render prints the workload-to-workload matrix: rows are sources, columns destinations.
func (m *Matrix) Render(w io.Writer) {
	workloads := m.Workloads()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "from \\ to\t%s\n", strings.Join(workloads, "\t"))
	for _, src := range workloads {
		cells := make([]string, len(workloads))
		for i, dst := range workloads {
			switch a, ok := m.WorkloadAllowed(src, dst); {
			case src == dst:
				cells[i] = "-"
			case !ok:
				cells[i] = "MIXED"
			case a:
				cells[i] = "allowed"
			default:
				cells[i] = "denied"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", src, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
}
