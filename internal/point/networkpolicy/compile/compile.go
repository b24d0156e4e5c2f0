// Package compile compiles intents into NetworkPolicies: one ingress policy per protected
// server that admits exactly the clients that declared a call to it. It does no I/O: it
// reads the cluster only through facts.Facts, so it plans offline what the operator does.
package compile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/intentguard/intentguard/internal/facts"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/ownership"
)

const (
	// ServerLabel holds a digest of the server a policy protects, to find it again.
	ServerLabel = "intentguard.dev/server"
	// ServerAnnotation holds the server key in readable form.
	ServerAnnotation = "intentguard.dev/server"

	// NamespaceNameLabel is set by the API server on every namespace.
	NamespaceNameLabel = "kubernetes.io/metadata.name"
)

// Client is a workload allowed to call the server, and the selection of its pods.
type Client struct {
	Ref  intent.Ref
	Pods *metav1.LabelSelector
}

// Input is everything known about one server that its policy depends on.
type Input struct {
	Server intent.Server
	// Pods selects the server's pods; nil when the server does not exist (no policy).
	Pods *metav1.LabelSelector
	// Ports limits the allowed calls to these ports; empty allows every port.
	Ports []networkingv1.NetworkPolicyPort
	// Clients are the workloads that declared a call to the server.
	Clients []Client
	// DNSPorts, when the server's pods serve the cluster's DNS, are the DNS ports, which
	// stay open to every pod (see ClusterDNS.PortsFor).
	DNSPorts []networkingv1.NetworkPolicyPort
}

// Compile returns the NetworkPolicy that protects in.Server, or nil when there is nothing
// to select. A server without clients gets a policy that denies all ingress.
func Compile(in Input) *networkingv1.NetworkPolicy {
	if isEmpty(in.Pods) {
		return nil
	}
	var rules []networkingv1.NetworkPolicyIngressRule
	if peers := peersOf(in.Clients); len(peers) > 0 {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: normalizePorts(in.Ports)})
	}
	if len(in.DNSPorts) > 0 {
		// Cutting DNS off would break every workload in the cluster, declared or not.
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: normalizePorts(in.DNSPorts)})
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        PolicyName(in.Server),
			Namespace:   in.Server.Namespace,
			Labels:      map[string]string{ownership.Label: ownership.IntentsOperator, ServerLabel: in.Server.Hash()},
			Annotations: map[string]string{ServerAnnotation: in.Server.Key()},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *in.Pods.DeepCopy(),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

// ClusterDNS is what the cluster's DNS Service tells about the DNS pods.
type ClusterDNS struct {
	// Service is the DNS Service (kube-dns or coredns in kube-system); nil when the
	// cluster has none the operator can see.
	Service *corev1.Service
}

// DNSNamespace and DNSServiceNames are where clusters keep their DNS Service.
const DNSNamespace = "kube-system"

// DNSServiceNames are the names the cluster DNS Service goes by.
var DNSServiceNames = []string{"kube-dns", "coredns"}

// DNSService returns the cluster's DNS Service, or nil when there is none.
func DNSService(ctx context.Context, f facts.Facts) (*corev1.Service, error) {
	for _, name := range DNSServiceNames {
		svc, err := f.Service(ctx, DNSNamespace, name)
		if svc != nil || err != nil {
			return svc, err
		}
	}
	return nil, nil
}

// IsDNSService reports whether a Service is where the cluster's DNS is found.
func IsDNSService(namespace, name string) bool {
	return namespace == DNSNamespace && slices.Contains(DNSServiceNames, name)
}

// PortsFor returns the ports that must stay open to every pod on a server: the DNS
// Service's target ports (where the DNS pods listen, 5353 say) when the server is that
// Service or some of its pods (podLabels) are DNS pods; none otherwise. Without a DNS
// Service, a server named like one in kube-system keeps port 53 open.
func (d ClusterDNS) PortsFor(s intent.Server, podLabels []map[string]string) []networkingv1.NetworkPolicyPort {
	if s.Namespace != DNSNamespace {
		return nil
	}
	if d.Service == nil || d.Service.Namespace != s.Namespace {
		if !slices.Contains(DNSServiceNames, s.Name) {
			return nil
		}
		tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
		dns := intstr.FromInt32(53)
		return []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}}
	}
	dnsPods := false
	if s.Service && s.Name == d.Service.Name {
		dnsPods = true
	} else if len(d.Service.Spec.Selector) > 0 {
		sel := labels.SelectorFromSet(d.Service.Spec.Selector)
		for _, l := range podLabels {
			if sel.Matches(labels.Set(l)) {
				dnsPods = true
				break
			}
		}
	}
	if !dnsPods {
		return nil
	}
	return ServicePorts(d.Service)
}

// peersOf turns clients into peers: namespace by name, pods by their selection. Clients
// with no selection are skipped: an empty selector would admit the whole namespace.
func peersOf(clients []Client) []networkingv1.NetworkPolicyPeer {
	seen := map[string]bool{}
	type keyed struct {
		key  string
		peer networkingv1.NetworkPolicyPeer
	}
	var out []keyed
	for _, c := range clients {
		if isEmpty(c.Pods) {
			continue
		}
		peer := networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{NamespaceNameLabel: c.Ref.Namespace}},
			PodSelector:       c.Pods.DeepCopy(),
		}
		b, _ := json.Marshal(peer)
		if seen[string(b)] {
			continue
		}
		seen[string(b)] = true
		out = append(out, keyed{string(b), peer})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	peers := make([]networkingv1.NetworkPolicyPeer, len(out))
	for i := range out {
		peers[i] = out[i].peer
	}
	return peers
}

// normalizePorts sets the default protocol, removes duplicates and sorts, so the same
// ports always compile to the same policy.
func normalizePorts(ports []networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort {
	seen := map[string]bool{}
	var out []networkingv1.NetworkPolicyPort
	for _, p := range ports {
		p := *p.DeepCopy()
		if p.Protocol == nil {
			tcp := corev1.ProtocolTCP
			p.Protocol = &tcp
		}
		key := portKey(p)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return portKey(a) < portKey(b)
	})
	return out
}

// portKey identifies a port rule: protocol, port (or name, or all) and range end.
func portKey(p networkingv1.NetworkPolicyPort) string {
	port, end := "*", int32(0)
	if p.Port != nil {
		port = p.Port.String()
	}
	if p.EndPort != nil {
		end = *p.EndPort
	}
	return fmt.Sprintf("%s/%s-%d", *p.Protocol, port, end)
}

// ServicePorts returns the pod ports a Service forwards to (numbers or container port
// names), as policy ports.
func ServicePorts(svc *corev1.Service) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, sp := range svc.Spec.Ports {
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port)
		}
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &target})
	}
	return out
}

// UpToDate reports whether an existing policy already is the desired one: same spec, and
// the desired labels and annotations present. Anything else on it (labels added by other
// tools, say) is left alone.
func UpToDate(desired, existing *networkingv1.NetworkPolicy) bool {
	return UpToDateWithSpec(desired, existing, SpecDigest(&existing.Spec))
}

// UpToDateWithSpec is UpToDate for an existing policy known by its metadata and the
// SpecDigest of its spec, as a cache that keeps no spec holds it.
func UpToDateWithSpec(desired, existing *networkingv1.NetworkPolicy, specDigest string) bool {
	for k, v := range desired.Labels {
		if existing.Labels[k] != v {
			return false
		}
	}
	for k, v := range desired.Annotations {
		if existing.Annotations[k] != v {
			return false
		}
	}
	return SpecDigest(&desired.Spec) == specDigest
}

// SpecDigest identifies a policy spec by its JSON encoding: two specs with the same
// digest encode alike.
func SpecDigest(spec *networkingv1.NetworkPolicySpec) string {
	raw, _ := json.Marshal(spec)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// ServiceSelector returns the selector of a Service's pods, or nil for a Service without
// one (its endpoints are managed by hand and cannot be selected).
func ServiceSelector(svc *corev1.Service) *metav1.LabelSelector {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	m := make(map[string]string, len(svc.Spec.Selector))
	for k, v := range svc.Spec.Selector {
		m[k] = v
	}
	return &metav1.LabelSelector{MatchLabels: m}
}
