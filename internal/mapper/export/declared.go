package export

import (
	"net/netip"
	"strings"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// declarations are the ClientIntents already applied, by namespace, for asking whether
// they declare an observed call.
type declarations map[string][]v2beta1.ClientIntents

func newDeclarations(cis []v2beta1.ClientIntents) declarations {
	d := declarations{}
	for _, ci := range cis {
		if ci.DeletionTimestamp == nil {
			d[ci.Namespace] = append(d[ci.Namespace], ci)
		}
	}
	return d
}

// Declares reports whether one of the ClientIntents declares the observed call k: a
// ClientIntents of the client's identity (its workload's name, and a kind that admits
// the identity's) with a target naming the server as the enforcement points read it. A
// workload server is named by a kubernetes target (a kind that admits the server's) or a
// kafka target (a call to the broker's pods); a Service by a service target; an external
// host by an internet target whose domains or addresses hold it and whose ports, if
// any, hold the port. A call to a Service counts as declared only by a service target:
// which workloads a Service selects is not in the map.
func Declares(cis []v2beta1.ClientIntents, k edges.Key) bool {
	return newDeclarations(cis).declares(k)
}

func (d declarations) declares(k edges.Key) bool {
	if k.Client.Kind != edges.PeerWorkload {
		return false
	}
	for _, ci := range d[k.Client.Namespace] {
		w := ci.Spec.Workload
		if w.Name != k.Client.Name || !identity.KindMatches(w.Kind, k.Client.WorkloadKind) {
			continue
		}
		for _, t := range ci.Spec.Targets {
			if TargetCovers(ci.Namespace, t, k) {
				return true
			}
		}
	}
	return false
}

// TargetCovers reports whether target t of a ClientIntents in namespace ns names the
// server of the observed call k (see Declares).
func TargetCovers(ns string, t v2beta1.Target, k edges.Key) bool {
	s := k.Server
	named := func(name string) bool {
		n, namespace := intent.SplitName(name, ns)
		return n == s.Name && namespace == s.Namespace
	}
	switch s.Kind {
	case edges.PeerWorkload:
		return t.Kubernetes != nil && named(t.Kubernetes.Name) && identity.KindMatches(t.Kubernetes.Kind, s.WorkloadKind) ||
			t.Kafka != nil && named(t.Kafka.Name)
	case edges.PeerService:
		return t.Service != nil && named(t.Service.Name)
	case edges.PeerExternal:
		return t.Internet != nil && internetHolds(*t.Internet, s.Name, k.Port)
	}
	return false
}

// internetHolds reports whether an internet target admits host (a DNS name or an
// address) on port.
func internetHolds(in v2beta1.InternetTarget, host string, port uint16) bool {
	if len(in.Ports) > 0 && !containsPort(in.Ports, port) {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		for _, ip := range in.IPs {
			if p, err := netip.ParsePrefix(ip); err == nil && p.Contains(a) {
				return true
			}
			if b, err := netip.ParseAddr(ip); err == nil && b == a {
				return true
			}
		}
		return false
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, d := range in.Domains {
		d = strings.TrimSuffix(strings.ToLower(d), ".")
		if suffix, wild := strings.CutPrefix(d, "*."); wild && strings.HasSuffix(host, "."+suffix) || d == host {
			return true
		}
	}
	return false
}

func containsPort(ports []int32, port uint16) bool {
	for _, p := range ports {
		if p == int32(port) {
			return true
		}
	}
	return false
}
