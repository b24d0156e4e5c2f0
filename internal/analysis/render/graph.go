package render

import (
	"fmt"
	"io"
	"strconv"

	"github.com/intentguard/intentguard/internal/analysis"
)

// Line is how an arrow is drawn.
type Line int

// The lines graphs use: the default, a dashed one for what is of a second kind (Kafka
// accesses, calls declared but never observed), and a bold one for what needs attention.
const (
	Solid Line = iota
	Dashed
	Bold
)

// Arrow is one edge of a graph as DOT and Mermaid draw it, between two nodes named as
// they are shown.
type Arrow struct {
	From, To, Label string
	Line            Line
}

// WriteDOT writes a directed graph named name in graphviz's language.
func WriteDOT(w io.Writer, name string, nodes []string, arrows []Arrow) {
	fmt.Fprintf(w, "digraph %s {\n", name)
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, "  node [shape=box, fontname=\"Helvetica\"];")
	fmt.Fprintln(w, "  edge [fontname=\"Helvetica\", fontsize=10];")
	for _, n := range nodes {
		fmt.Fprintf(w, "  %s;\n", strconv.Quote(n))
	}
	for _, a := range arrows {
		style := ""
		switch a.Line {
		case Dashed:
			style = ", style=dashed"
		case Bold:
			style = ", style=bold, color=red"
		}
		fmt.Fprintf(w, "  %s -> %s [label=%s%s];\n", strconv.Quote(a.From), strconv.Quote(a.To), strconv.Quote(a.Label), style)
	}
	fmt.Fprintln(w, "}")
}

// WriteMermaid writes a Mermaid flowchart: dashed arrows dotted, bold ones thick.
func WriteMermaid(w io.Writer, nodes []string, arrows []Arrow) {
	fmt.Fprintln(w, "flowchart LR")
	ids := map[string]string{}
	for i, n := range nodes {
		ids[n] = fmt.Sprintf("n%d", i)
		fmt.Fprintf(w, "  %s[%q]\n", ids[n], n)
	}
	for _, a := range arrows {
		arrow := "-->"
		switch a.Line {
		case Dashed:
			arrow = "-.->"
		case Bold:
			arrow = "==>"
		}
		fmt.Fprintf(w, "  %s %s|%q| %s\n", ids[a.From], arrow, a.Label, ids[a.To])
	}
}

// accessDrawing returns the access graph's nodes and arrows: NetworkPolicy solid, Kafka
// dashed.
func accessDrawing(g analysis.Graph) ([]string, []Arrow) {
	nodes := make([]string, len(g.Nodes))
	for i, n := range g.Nodes {
		nodes[i] = n.String()
	}
	arrows := make([]Arrow, len(g.Edges))
	for i, e := range g.Edges {
		arrows[i] = Arrow{From: e.From.String(), To: e.To.String(), Label: e.Label}
		if e.Point == analysis.Kafka {
			arrows[i].Line = Dashed
		}
	}
	return nodes, arrows
}

// DOT writes the access graph in graphviz's language: NetworkPolicy edges solid, Kafka dashed.
func DOT(w io.Writer, g analysis.Graph) {
	nodes, arrows := accessDrawing(g)
	WriteDOT(w, "access", nodes, arrows)
}

// Mermaid writes the access graph as a Mermaid flowchart: NetworkPolicy edges solid, Kafka dotted.
func Mermaid(w io.Writer, g analysis.Graph) {
	nodes, arrows := accessDrawing(g)
	WriteMermaid(w, nodes, arrows)
}
