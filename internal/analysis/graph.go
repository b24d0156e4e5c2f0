package analysis

import (
	"cmp"
	"slices"
	"strings"
)

// Graph is the access graph: identities and Services as nodes, one edge per pair of
// endpoints and enforcement point.
type Graph struct {
	Nodes []Endpoint `json:"nodes"`
	Edges []Edge     `json:"edges"`
}

// Edge is the accesses a point grants from one endpoint to another, labelled by ports or
// by topics with their operations.
type Edge struct {
	Point Point    `json:"point"`
	From  Endpoint `json:"from"`
	To    Endpoint `json:"to"`
	Label string   `json:"label"`
}

// Focus narrows a graph to the accesses of one workload and/or namespace.
type Focus struct {
	// Workload keeps the edges from or to this endpoint (kind ignored when empty).
	Workload *Endpoint
	// Namespace keeps the edges with an end in this namespace.
	Namespace string
}

func (f Focus) keeps(t Tuple) bool {
	touches := func(e Endpoint) bool {
		w := f.Workload
		return e.Namespace == w.Namespace && e.Name == w.Name && (w.Kind == "" || w.Kind == e.Kind)
	}
	if f.Workload != nil && !touches(t.From) && !touches(t.To) {
		return false
	}
	return f.Namespace == "" || t.From.Namespace == f.Namespace || t.To.Namespace == f.Namespace
}

// Graph returns the access graph of the result's tuples that the focus keeps. An
// endpoint named without a kind is drawn as the one workload of that name the graph
// has with a kind (intents often name a Kafka broker without its kind, its
// KafkaServerConfig with it), so one workload is one node.
func (r *Result) Graph(f Focus) Graph {
	var kept []Tuple
	kinds := map[Endpoint][]string{}
	for _, t := range r.Tuples {
		if !f.keeps(t) {
			continue
		}
		kept = append(kept, t)
		for _, e := range []Endpoint{t.From, t.To} {
			bare := Endpoint{Namespace: e.Namespace, Name: e.Name}
			if e.Kind != "" && e.Kind != "Service" && !slices.Contains(kinds[bare], e.Kind) {
				kinds[bare] = append(kinds[bare], e.Kind)
			}
		}
	}
	node := func(e Endpoint) Endpoint {
		if k := kinds[e]; e.Kind == "" && len(k) == 1 {
			e.Kind = k[0]
		}
		return e
	}
	g := Graph{Nodes: []Endpoint{}, Edges: []Edge{}}
	type pair struct {
		point    Point
		from, to Endpoint
	}
	var order []pair
	labels := map[pair][]string{}
	for _, t := range kept {
		p := pair{t.Point, node(t.From), node(t.To)}
		if _, ok := labels[p]; !ok {
			order = append(order, p)
		}
		labels[p] = append(labels[p], t.What())
		for _, e := range []Endpoint{p.from, p.to} {
			if !slices.Contains(g.Nodes, e) {
				g.Nodes = append(g.Nodes, e)
			}
		}
	}
	for _, p := range order {
		label := strings.Join(labels[p], ", ")
		if p.point == Kafka {
			label = topicLabel(labels[p])
		}
		g.Edges = append(g.Edges, Edge{Point: p.point, From: p.from, To: p.to, Label: label})
	}
	slices.SortFunc(g.Nodes, func(a, b Endpoint) int { return cmp.Compare(a.String(), b.String()) })
	return g
}

// topicLabel groups "topic operation" items by topic: "orders: Read, Write; audit*: Write".
func topicLabel(items []string) string {
	var topics []string
	ops := map[string][]string{}
	for _, it := range items {
		topic, op, _ := strings.Cut(it, " ")
		if _, ok := ops[topic]; !ok {
			topics = append(topics, topic)
		}
		ops[topic] = append(ops[topic], op)
	}
	parts := make([]string, len(topics))
	for i, t := range topics {
		parts[i] = t + ": " + strings.Join(ops[t], ", ")
	}
	return strings.Join(parts, "; ")
}
