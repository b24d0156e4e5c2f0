// Package export turns the network map into ClientIntents: one per client workload, in
// the hub version, declaring the calls the map observed, with the evidence for each call
// in an annotation a reviewer reads. Calls the intents already applied declare can be left
// out (the delta), and peers ClientIntents cannot name are listed with the reason.
package export

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
)

// ObservedAnnotation holds, on an exported ClientIntents, the evidence for its calls: a
// JSON array of Evidence, one per observed edge.
const ObservedAnnotation = "intentguard.dev/observed"

// Evidence is what the map knows of one exported call on one port.
type Evidence struct {
	// Target names the target as the ClientIntents' status does ("kubernetes api.shop").
	Target string `json:"target"`
	// Port is "TCP/8080".
	Port      string    `json:"port"`
	DNSNames  []string  `json:"dnsNames,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	Count     uint64    `json:"count"`
	Agents    []string  `json:"agents,omitempty"`
}

// Skip is an observed edge that no ClientIntents can declare, and why.
type Skip struct {
	Edge   edges.Key `json:"edge"`
	Reason string    `json:"reason"`
}

// String renders the skip for a person: "client -> server TCP/80: reason".
func (s Skip) String() string {
	return fmt.Sprintf("%s -> %s %s: %s", s.Edge.Client, s.Edge.Server, PortName(s.Edge), s.Reason)
}

// Options are what an export takes besides the map.
type Options struct {
	// Declared are the ClientIntents already applied (in the hub version): the calls they
	// declare are left out, and a client whose calls are all declared gets no
	// ClientIntents. Empty exports every call.
	Declared []v2beta1.ClientIntents
}

// Result is an export.
type Result struct {
	// Intents are the ClientIntents, ordered by namespace and name.
	Intents []v2beta1.ClientIntents
	// Skipped are the edges no ClientIntents can declare, in the map's order.
	Skipped []Skip
	// AlreadyDeclared counts the edges Options.Declared declares.
	AlreadyDeclared int
	// Internet counts the internet targets exported, which no enforcement point enforces
	// yet: their status says "not enforced".
	Internet int
	// Merged are the ClientIntents declaring the calls of several workload identities
	// that share a name, one of them named without a kind (see Export).
	Merged []string
	// Extended are the ClientIntents applied that the delta adds targets to (see
	// Export).
	Extended []Extension
	// Omitted say which ClientIntents' evidence annotations hold only MaxEvidence calls.
	Omitted []string
}

// Export turns the edges into ClientIntents. A client workload gets one ClientIntents,
// named after it, in its namespace, with its kind; a workload server is a kubernetes
// target with its kind, a Service a service target, an external host an internet target
// (its DNS name, else its address, with the ports observed). Two workloads of different
// kinds sharing a name get a ClientIntents each, named name-kind; when one of them is
// named without a kind (by the workload-name annotation), a ClientIntents for it would
// name the others too, so they share one ClientIntents without a kind, listed in Merged.
//
// With Options.Declared, the calls they declare are left out; a client that already has
// a ClientIntents gets a copy of it with the targets of its undeclared calls added (its
// targets first), listed in Extended, so that applying the export keeps what it
// declared. The output depends only on the set of edges, not on their order.
func Export(es []edges.Edge, opts Options) Result {
	var res Result
	declared := newDeclarations(opts.Declared)
	byClient := map[clientKey][]edges.Edge{}
	for _, e := range es {
		if reason := inexpressible(e.Key); reason != "" {
			res.Skipped = append(res.Skipped, Skip{Edge: e.Key, Reason: reason})
			continue
		}
		if declared.declares(e.Key) {
			res.AlreadyDeclared++
			continue
		}
		k := clientKey{e.Client.Namespace, e.Client.Name}
		byClient[k] = append(byClient[k], e)
	}
	for k, group := range byClient {
		res.Intents = append(res.Intents, intentsFor(k, group, &res)...)
	}
	if len(opts.Declared) > 0 {
		res.Intents, res.Extended = extend(res.Intents, opts.Declared, &res)
	}
	slices.Sort(res.Omitted)
	res.Omitted = slices.Compact(res.Omitted)
	order := func(a, b v2beta1.ClientIntents) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Spec.Workload.Name, b.Spec.Workload.Name), cmp.Compare(a.Spec.Workload.Kind, b.Spec.Workload.Kind))
	}
	slices.SortFunc(res.Intents, order)
	// name-kind may be another workload's name: the later one gives way.
	taken := map[clientKey]bool{}
	for i := range res.Intents {
		ci := &res.Intents[i]
		for taken[clientKey{ci.Namespace, ci.Name}] {
			ci.Name += "-observed"
		}
		taken[clientKey{ci.Namespace, ci.Name}] = true
	}
	slices.SortFunc(res.Intents, order)
	slices.Sort(res.Merged)
	return res
}

type clientKey struct{ namespace, name string }

// intentsFor builds the ClientIntents of the client identities sharing a namespace and a
// name.
func intentsFor(k clientKey, group []edges.Edge, res *Result) []v2beta1.ClientIntents {
	kinds := map[string][]edges.Edge{}
	for _, e := range group {
		kinds[e.Client.WorkloadKind] = append(kinds[e.Client.WorkloadKind], e)
	}
	if _, kindless := kinds[""]; kindless && len(kinds) > 1 {
		res.Merged = append(res.Merged, k.namespace+"/"+k.name)
		return []v2beta1.ClientIntents{build(k, k.name, "", group, res)}
	}
	var out []v2beta1.ClientIntents
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		name := k.name
		if len(kinds) > 1 {
			name += "-" + strings.ToLower(kind)
		}
		out = append(out, build(k, name, kind, kinds[kind], res))
	}
	return out
}

// build makes one ClientIntents of a client's edges: one target per server.
func build(k clientKey, name, kind string, group []edges.Edge, res *Result) v2beta1.ClientIntents {
	slices.SortFunc(group, compareEdges)
	type pending struct {
		target v2beta1.Target
		order  string
	}
	targets := map[string]*pending{}
	var evidence []Evidence
	order := map[string]string{}
	for _, e := range group {
		t := targetOf(k.namespace, e.Server)
		id := targetID(t)
		p, ok := targets[id]
		if !ok {
			p = &pending{target: t, order: id}
			targets[id] = p
		}
		if p.target.Internet != nil && !slices.Contains(p.target.Internet.Ports, int32(e.Port)) {
			p.target.Internet.Ports = append(p.target.Internet.Ports, int32(e.Port))
		}
		order[TargetName(p.target)] = id
		evidence = append(evidence, Evidence{
			Target: TargetName(p.target), Port: PortName(e.Key), DNSNames: e.DNSNames,
			FirstSeen: e.FirstSeen.UTC().Truncate(time.Second), LastSeen: e.LastSeen.UTC().Truncate(time.Second), Count: e.Count, Agents: e.Agents,
		})
	}
	ci := v2beta1.ClientIntents{
		TypeMeta:   metav1.TypeMeta{APIVersion: v2beta1.GroupVersion.String(), Kind: "ClientIntents"},
		ObjectMeta: metav1.ObjectMeta{Namespace: k.namespace, Name: name},
		Spec:       v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: k.name, Kind: kind}},
	}
	for _, id := range slices.Sorted(maps.Keys(targets)) {
		t := targets[id].target
		if t.Internet == nil {
			ci.Spec.Targets = append(ci.Spec.Targets, t)
			continue
		}
		slices.Sort(t.Internet.Ports)
		// An internet target holds at most maxInternetPorts ports: more take more targets.
		for ports := range slices.Chunk(t.Internet.Ports, maxInternetPorts) {
			in := *t.Internet
			in.Ports = ports
			ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Internet: &in})
			res.Internet++
		}
	}
	// In the order of the targets; the edges were sorted, so ports ascend within one.
	slices.SortStableFunc(evidence, func(a, b Evidence) int { return cmp.Compare(order[a.Target], order[b.Target]) })
	annotation, omitted := evidenceJSON(evidence)
	ci.Annotations = map[string]string{ObservedAnnotation: annotation}
	res.omit(ci, omitted)
	return ci
}

// maxInternetPorts is how many ports an internet target may list (api/v2beta1's marker).
const maxInternetPorts = 64

// MaxEvidence bounds the calls an evidence annotation holds: the API server refuses
// annotations above 256 KB in all, and a call's evidence takes about 250 bytes.
const MaxEvidence = 500

// omit records that the evidence of n calls was left out of ci's annotation.
func (r *Result) omit(ci v2beta1.ClientIntents, n int) {
	if n > 0 {
		r.Omitted = append(r.Omitted, fmt.Sprintf("%s/%s: the evidence of %d calls (of the last targets) is left out of its annotation, which holds at most %d", ci.Namespace, ci.Name, n, MaxEvidence))
	}
}

// evidenceJSON encodes the evidence, at most MaxEvidence calls, as a JSON array with
// one call per line, which YAML writes as a block a reviewer reads line by line; it
// returns how many calls it left out.
func evidenceJSON(evidence []Evidence) (string, int) {
	omitted := max(0, len(evidence)-MaxEvidence)
	evidence = evidence[:len(evidence)-omitted]
	lines := make([]string, len(evidence))
	for i, ev := range evidence {
		// Evidence holds only strings, numbers and times: encoding cannot fail.
		raw, _ := json.Marshal(ev)
		lines[i] = string(raw)
	}
	return "[\n" + strings.Join(lines, ",\n") + "\n]", omitted
}

// compareEdges orders edges by client, server, port and protocol, as the aggregator does.
func compareEdges(a, b edges.Edge) int {
	return cmp.Or(cmp.Compare(a.Client.String(), b.Client.String()), cmp.Compare(a.Server.String(), b.Server.String()),
		cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
}

// targetOf names a server as a target of a client in namespace clientNS: in-namespace
// servers by name alone, as intents files usually write them.
func targetOf(clientNS string, server edges.Peer) v2beta1.Target {
	name := server.Name
	if server.Namespace != clientNS {
		name += "." + server.Namespace
	}
	switch server.Kind {
	case edges.PeerService:
		return v2beta1.Target{Service: &v2beta1.ServiceTarget{Name: name}}
	case edges.PeerExternal:
		if a, err := netip.ParseAddr(server.Name); err == nil {
			return v2beta1.Target{Internet: &v2beta1.InternetTarget{IPs: []string{a.String()}}}
		}
		return v2beta1.Target{Internet: &v2beta1.InternetTarget{Domains: []string{server.Name}}}
	default:
		return v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name, Kind: server.WorkloadKind}}
	}
}

// targetID identifies a target by its server, whatever its ports.
func targetID(t v2beta1.Target) string {
	switch {
	case t.Kubernetes != nil:
		return "1 " + t.Kubernetes.Name + " " + t.Kubernetes.Kind
	case t.Service != nil:
		return "2 " + t.Service.Name
	default:
		return "3 " + strings.Join(append(slices.Clone(t.Internet.Domains), t.Internet.IPs...), ",")
	}
}

// TargetName names a target as the ClientIntents' status does: "kubernetes
// Deployment:api", "service web.shop", "internet api.example.com".
func TargetName(t v2beta1.Target) string {
	switch {
	case t.Kubernetes != nil && t.Kubernetes.Kind != "":
		return "kubernetes " + t.Kubernetes.Kind + ":" + t.Kubernetes.Name
	case t.Kubernetes != nil:
		return "kubernetes " + t.Kubernetes.Name
	case t.Service != nil:
		return "service " + t.Service.Name
	default:
		return "internet " + strings.Join(append(slices.Clone(t.Internet.Domains), t.Internet.IPs...), ", ")
	}
}

// PortName renders an edge's port as "TCP/8080".
func PortName(k edges.Key) string {
	proto := k.Protocol
	if proto == "" {
		proto = "TCP"
	}
	return proto + "/" + strconv.Itoa(int(k.Port))
}

// The grammars of the fields an export writes (api/v2beta1's markers): a workload's
// name, a domain.
var (
	workloadGrammar = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	domainGrammar   = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.])*[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?[.]?$`)
)

// inexpressible says why no ClientIntents can declare the edge, or "" when one can.
func inexpressible(k edges.Key) string {
	switch c := k.Client; {
	case c.Kind == edges.PeerNode:
		return "the client is a process on node " + c.Name + "'s host network, not a workload: ClientIntents declare the calls of workloads"
	case c.Kind == edges.PeerExternal:
		return "the client is outside the cluster: ClientIntents declare the calls of workloads"
	case c.Kind != edges.PeerWorkload:
		return "the client is a " + string(c.Kind) + ", not a workload: ClientIntents declare the calls of workloads"
	case c.Namespace == "":
		return "the client workload has no namespace, which a ClientIntents needs"
	case len(c.Name) > 253 || !workloadGrammar.MatchString(c.Name):
		return fmt.Sprintf("the client's name %q is not one a ClientIntents' workload can hold (lower-case letters, digits and '-')", c.Name)
	}
	switch s := k.Server; s.Kind {
	case edges.PeerNode:
		return "the server is node " + s.Name + "'s host network, which no target names (a hostNetwork pod serving the port would be named instead)"
	case edges.PeerWorkload, edges.PeerService:
		if s.Namespace == "" {
			return "the server has no namespace, which a target needs"
		}
		if errs := validation.IsDNS1123Label(s.Name); len(errs) > 0 {
			return fmt.Sprintf("the server's name %q cannot be a target's name: %s", s.Name, errs[0])
		}
	case edges.PeerExternal:
		if _, err := netip.ParseAddr(s.Name); err != nil && (len(s.Name) > 253 || !domainGrammar.MatchString(s.Name)) {
			return fmt.Sprintf("the external server %q is neither an address nor a DNS name an internet target can hold", s.Name)
		}
	default:
		return "the server is of unknown kind " + string(s.Kind)
	}
	return ""
}
