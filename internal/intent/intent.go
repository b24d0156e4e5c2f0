// Package intent reads ClientIntents into the references the compilers work with: the
// client, and the servers its calls reach.
package intent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/identity"
)

// Ref names a workload identity: namespace, name and an optional kind.
type Ref struct {
	Namespace string
	Name      string
	Kind      string
}

// Matches reports whether a resolved identity is the one the reference names.
func (r Ref) Matches(id identity.Identity) bool {
	return id.Matches(r.Namespace, r.Name, r.Kind)
}

// String renders the reference the way intents files write it, with the kind in front.
func (r Ref) String() string {
	if r.Kind == "" {
		return r.Name + "." + r.Namespace
	}
	return r.Kind + ":" + r.Name + "." + r.Namespace
}

// Server is what one NetworkPolicy protects: a workload identity, or the pods behind a
// Kubernetes Service (then Kind is empty).
type Server struct {
	Ref
	Service bool
}

// Key encodes the server, without its namespace, as a work-queue key.
func (s Server) Key() string {
	if s.Service {
		return "service//" + s.Name
	}
	return "workload/" + s.Kind + "/" + s.Name
}

// ParseKey is the inverse of Key.
func ParseKey(namespace, key string) (Server, error) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 || parts[2] == "" {
		return Server{}, fmt.Errorf("malformed server key %q", key)
	}
	switch parts[0] {
	case "service":
		return Server{Ref: Ref{Namespace: namespace, Name: parts[2]}, Service: true}, nil
	case "workload":
		return Server{Ref: Ref{Namespace: namespace, Name: parts[2], Kind: parts[1]}}, nil
	}
	return Server{}, fmt.Errorf("malformed server key %q", key)
}

// String renders the server as an intents file would name it.
func (s Server) String() string {
	if s.Service {
		return "service " + s.Name + "." + s.Namespace
	}
	return s.Ref.String()
}

// wellKnownKinds are the kinds of Kubernetes' own pod controllers, and pods, by their
// lowercase spelling.
var wellKnownKinds = map[string]string{}

func init() {
	for _, k := range []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod", "ReplicationController"} {
		wellKnownKinds[strings.ToLower(k)] = k
	}
}

// WellKnownKind returns the kind of Kubernetes' own workloads that kind spells, ignoring
// letter case, and whether there is one. Kinds are case-sensitive: when the two differ,
// kind names no kind of Kubernetes and no workload has it.
func WellKnownKind(kind string) (string, bool) {
	k, ok := wellKnownKinds[strings.ToLower(kind)]
	return k, ok
}

// Hash is a label-safe digest of the server, namespace included.
func (s Server) Hash() string {
	sum := sha256.Sum256([]byte(s.Namespace + "/" + s.Key()))
	return hex.EncodeToString(sum[:])[:40]
}

// SplitName splits a target name, "name" or "name.namespace", defaulting the namespace.
func SplitName(name, defaultNamespace string) (string, string) {
	if n, ns, ok := strings.Cut(name, "."); ok {
		return n, ns
	}
	return name, defaultNamespace
}

// Client returns the reference to the client workload the intents declare calls for.
func Client(ci *v2beta1.ClientIntents) Ref {
	return Ref{Namespace: ci.Namespace, Name: ci.Spec.Workload.Name, Kind: ci.Spec.Workload.Kind}
}

// Servers returns the servers the intents reach over the network, sorted and without
// duplicates. Kafka targets count as calls to the broker workload; internet targets reach
// no server in the cluster.
func Servers(ci *v2beta1.ClientIntents) []Server {
	seen := map[Server]bool{}
	var out []Server
	add := func(s Server) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, t := range ci.Spec.Targets {
		switch {
		case t.Kubernetes != nil:
			name, ns := SplitName(t.Kubernetes.Name, ci.Namespace)
			add(Server{Ref: Ref{Namespace: ns, Name: name, Kind: t.Kubernetes.Kind}})
		case t.Service != nil:
			name, ns := SplitName(t.Service.Name, ci.Namespace)
			add(Server{Ref: Ref{Namespace: ns, Name: name}, Service: true})
		case t.Kafka != nil:
			name, ns := SplitName(t.Kafka.Name, ci.Namespace)
			add(Server{Ref: Ref{Namespace: ns, Name: name}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return Less(out[i], out[j]) })
	return out
}

// Less orders servers by namespace, then key.
func Less(a, b Server) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Key() < b.Key()
}

// Protected returns the server a ProtectedService names.
func Protected(ps *v2beta1.ProtectedService) Server {
	return Server{Ref: Ref{Namespace: ps.Namespace, Name: ps.Spec.Name, Kind: ps.Spec.Kind}}
}

// Covers reports whether a ProtectedService (name, kind) covers the server: same name, and
// kinds that do not contradict each other.
func Covers(ps *v2beta1.ProtectedService, s Server) bool {
	if ps.Namespace != s.Namespace || ps.Spec.Name != s.Name {
		return false
	}
	return s.Service || identity.KindsAgree(ps.Spec.Kind, s.Kind)
}

// TargetName names a target in status the way the intents file declares it, with its
// type in front: "kubernetes server", "service nginx.shop", "kafka kafka.kafka",
// "internet api.example.com, 1.2.3.0/24".
func TargetName(t v2beta1.Target) string {
	switch {
	case t.Kubernetes != nil:
		if t.Kubernetes.Kind != "" {
			return "kubernetes " + t.Kubernetes.Kind + ":" + t.Kubernetes.Name
		}
		return "kubernetes " + t.Kubernetes.Name
	case t.Service != nil:
		return "service " + t.Service.Name
	case t.Kafka != nil:
		return "kafka " + t.Kafka.Name
	case t.Internet != nil:
		return "internet " + strings.Join(append(append([]string(nil), t.Internet.Domains...), t.Internet.IPs...), ", ")
	}
	return "unknown target"
}

// ServerOf returns the in-cluster server a target reaches over the network, if any.
func ServerOf(ci *v2beta1.ClientIntents, t v2beta1.Target) (Server, bool) {
	probe := v2beta1.ClientIntents{}
	probe.Namespace = ci.Namespace
	probe.Spec.Targets = []v2beta1.Target{t}
	servers := Servers(&probe)
	if len(servers) == 0 {
		return Server{}, false
	}
	return servers[0], true
}

// HTTPOf returns the HTTP resources a target declares: those of a kubernetes or service
// target, none for the others (none also means any request to the server).
func HTTPOf(t v2beta1.Target) []v2beta1.HTTPTarget {
	switch {
	case t.Kubernetes != nil:
		return t.Kubernetes.HTTP
	case t.Service != nil:
		return t.Service.HTTP
	}
	return nil
}
