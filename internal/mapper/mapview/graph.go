package mapview

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/identity"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/export"
)

// State says what is known of a call drawn on the graph.
type State string

// The states of a call: without intents to compare with, every call is Observed.
const (
	// Observed is a call the map holds; no intents were given to compare with.
	Observed State = "observed"
	// Declared is an observed call the intents declare.
	Declared State = "declared"
	// Undeclared is an observed call the intents do not declare: enforcing them would
	// block it.
	Undeclared State = "undeclared"
	// NotObserved is a call the intents declare that the map never observed.
	NotObserved State = "not-observed"
)

// Arrow is the calls from one peer to another in one state.
type Arrow struct {
	Client edges.Peer `json:"client"`
	Server edges.Peer `json:"server"`
	State  State      `json:"state"`
	// Ports are the observed ports ("TCP/8080"); none for a call never observed.
	Ports []string `json:"ports,omitempty"`
	// Count is the number of connections observed.
	Count uint64 `json:"count,omitempty"`
	// Target names the declaring target of a call never observed.
	Target string `json:"target,omitempty"`
}

// Graph is the map as peers and arrows.
type Graph struct {
	Nodes  []edges.Peer `json:"nodes"`
	Arrows []Arrow      `json:"arrows"`
}

// NewGraph draws the edges. With declared set (the ClientIntents applied, which may be
// empty), each observed call is Declared or Undeclared, and each target no observed call
// matches is drawn as NotObserved if the filter keeps it; with declared nil, every call
// is Observed.
func NewGraph(es []edges.Edge, declared []v2beta1.ClientIntents, f Filter) Graph {
	type pair struct {
		client, server edges.Peer
		state          State
	}
	arrows := map[pair]*Arrow{}
	add := func(p pair) *Arrow {
		a, ok := arrows[p]
		if !ok {
			a = &Arrow{Client: p.client, Server: p.server, State: p.state}
			arrows[p] = a
		}
		return a
	}
	for _, e := range f.Apply(es) {
		state := Observed
		if declared != nil {
			state = Undeclared
			if export.Declares(declared, e.Key) {
				state = Declared
			}
		}
		a := add(pair{e.Client, e.Server, state})
		a.Ports = append(a.Ports, export.PortName(e.Key))
		a.Count += e.Count
	}
	for _, ci := range declared {
		for _, t := range ci.Spec.Targets {
			if observedTarget(ci, t, es) {
				continue
			}
			client := declaredClient(ci, es)
			for _, server := range declaredServers(ci.Namespace, t, es) {
				if f.Keep(edges.Key{Client: client, Server: server}) {
					add(pair{client, server, NotObserved}).Target = intent.TargetName(t)
				}
			}
		}
	}
	g := Graph{Nodes: []edges.Peer{}, Arrows: []Arrow{}}
	for _, a := range arrows {
		g.Arrows = append(g.Arrows, *a)
		for _, p := range []edges.Peer{a.Client, a.Server} {
			if !slices.Contains(g.Nodes, p) {
				g.Nodes = append(g.Nodes, p)
			}
		}
	}
	slices.SortFunc(g.Nodes, func(a, b edges.Peer) int { return cmp.Compare(render.Peer(a), render.Peer(b)) })
	slices.SortFunc(g.Arrows, func(a, b Arrow) int {
		return cmp.Or(cmp.Compare(render.Peer(a.Client), render.Peer(b.Client)), cmp.Compare(render.Peer(a.Server), render.Peer(b.Server)), cmp.Compare(a.State, b.State))
	})
	return g
}

// observedTarget reports whether an observed call of the ClientIntents' client matches
// the target.
func observedTarget(ci v2beta1.ClientIntents, t v2beta1.Target, es []edges.Edge) bool {
	for _, e := range es {
		if clientIs(ci, e.Client) && export.TargetCovers(ci.Namespace, t, e.Key) {
			return true
		}
	}
	return false
}

func clientIs(ci v2beta1.ClientIntents, p edges.Peer) bool {
	return p.Kind == edges.PeerWorkload && p.Namespace == ci.Namespace && p.Name == ci.Spec.Workload.Name &&
		identity.KindMatches(ci.Spec.Workload.Kind, p.WorkloadKind)
}

// declaredClient is the ClientIntents' client as a peer: the one observed client it
// names, so that a client named without its kind is one node, else as it is named.
func declaredClient(ci v2beta1.ClientIntents, es []edges.Edge) edges.Peer {
	named := edges.Peer{Kind: edges.PeerWorkload, Namespace: ci.Namespace, Name: ci.Spec.Workload.Name, WorkloadKind: ci.Spec.Workload.Kind}
	var seen []edges.Peer
	for _, e := range es {
		if clientIs(ci, e.Client) && !slices.Contains(seen, e.Client) {
			seen = append(seen, e.Client)
		}
	}
	if len(seen) == 1 {
		return seen[0]
	}
	return named
}

// declaredServers are the peers a target names: a workload (the one observed server of
// that name when the target names no kind), a Service, or each domain and address of an
// internet target.
func declaredServers(ns string, t v2beta1.Target, es []edges.Edge) []edges.Peer {
	var out []edges.Peer
	switch {
	case t.Kubernetes != nil || t.Kafka != nil:
		name, kind := "", ""
		if t.Kubernetes != nil {
			name, kind = t.Kubernetes.Name, t.Kubernetes.Kind
		} else {
			name = t.Kafka.Name
		}
		n, namespace := intent.SplitName(name, ns)
		named := edges.Peer{Kind: edges.PeerWorkload, Namespace: namespace, Name: n, WorkloadKind: kind}
		var seen []edges.Peer
		for _, e := range es {
			s := e.Server
			if s.Kind == edges.PeerWorkload && s.Namespace == namespace && s.Name == n && identity.KindMatches(kind, s.WorkloadKind) && !slices.Contains(seen, s) {
				seen = append(seen, s)
			}
		}
		if len(seen) == 1 {
			named = seen[0]
		}
		out = append(out, named)
	case t.Service != nil:
		n, namespace := intent.SplitName(t.Service.Name, ns)
		out = append(out, edges.Peer{Kind: edges.PeerService, Namespace: namespace, Name: n})
	case t.Internet != nil:
		for _, h := range append(slices.Clone(t.Internet.Domains), t.Internet.IPs...) {
			out = append(out, edges.Peer{Kind: edges.PeerExternal, Name: h})
		}
	}
	return out
}

// Label is what an arrow says: its ports and connections, and its state when intents
// were compared.
func (a Arrow) Label() string {
	if a.State == NotObserved {
		return "declared, not observed"
	}
	s := fmt.Sprintf("%s (%d)", strings.Join(a.Ports, ", "), a.Count)
	if a.State == Undeclared {
		s += " undeclared"
	}
	return s
}

func (g Graph) drawing() ([]string, []render.Arrow) {
	nodes := make([]string, len(g.Nodes))
	for i, n := range g.Nodes {
		nodes[i] = render.Peer(n)
	}
	arrows := make([]render.Arrow, len(g.Arrows))
	for i, a := range g.Arrows {
		arrows[i] = render.Arrow{From: render.Peer(a.Client), To: render.Peer(a.Server), Label: a.Label()}
		switch a.State {
		case Undeclared:
			arrows[i].Line = render.Bold
		case NotObserved:
			arrows[i].Line = render.Dashed
		}
	}
	return nodes, arrows
}

// DOT writes the graph for graphviz: observed calls solid, undeclared ones bold and red,
// declared calls never observed dashed.
func (g Graph) DOT(w io.Writer) {
	nodes, arrows := g.drawing()
	render.WriteDOT(w, "map", nodes, arrows)
}

// Mermaid writes the graph as a Mermaid flowchart: observed calls solid, undeclared ones
// thick, declared calls never observed dotted.
func (g Graph) Mermaid(w io.Writer) {
	nodes, arrows := g.drawing()
	render.WriteMermaid(w, nodes, arrows)
}
