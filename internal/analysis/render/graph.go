package render

import (
	"fmt"
	"io"
	"strconv"

	"github.com/intentguard/intentguard/internal/analysis"
)

// DOT writes the graph in graphviz's language: NetworkPolicy edges solid, Kafka dashed.
func DOT(w io.Writer, g analysis.Graph) {
	fmt.Fprintln(w, "digraph access {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, "  node [shape=box, fontname=\"Helvetica\"];")
	fmt.Fprintln(w, "  edge [fontname=\"Helvetica\", fontsize=10];")
	for _, n := range g.Nodes {
		fmt.Fprintf(w, "  %s;\n", strconv.Quote(n.String()))
	}
	for _, e := range g.Edges {
		style := ""
		if e.Point == analysis.Kafka {
			style = ", style=dashed"
		}
		fmt.Fprintf(w, "  %s -> %s [label=%s%s];\n", strconv.Quote(e.From.String()), strconv.Quote(e.To.String()), strconv.Quote(e.Label), style)
	}
	fmt.Fprintln(w, "}")
}

// Mermaid writes the graph as a Mermaid flowchart: NetworkPolicy edges solid, Kafka dotted.
func Mermaid(w io.Writer, g analysis.Graph) {
	fmt.Fprintln(w, "flowchart LR")
	ids := map[analysis.Endpoint]string{}
	for i, n := range g.Nodes {
		ids[n] = fmt.Sprintf("n%d", i)
		fmt.Fprintf(w, "  %s[%q]\n", ids[n], n.String())
	}
	for _, e := range g.Edges {
		arrow := "-->"
		if e.Point == analysis.Kafka {
			arrow = "-.->"
		}
		fmt.Fprintf(w, "  %s %s|%q| %s\n", ids[e.From], arrow, e.Label, ids[e.To])
	}
}
