// Package mapview is what the CLI shows of the network map: the edges a filter keeps, as
// a table with ages a person reads ("2 min ago"), and the map as a graph that tells the
// observed calls the intents declare from those they do not, and declared calls never
// observed.
package mapview

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intentguard/intentguard/internal/analysis/render"
	"github.com/intentguard/intentguard/internal/mapper/aggregator/edges"
	"github.com/intentguard/intentguard/internal/mapper/export"
)

// Filter keeps the edges with an end in a namespace, from a client, to a server; an
// empty field keeps every edge.
type Filter struct {
	Namespace, Client, Server string
}

// Keep reports whether the filter keeps the edge.
func (f Filter) Keep(k edges.Key) bool {
	if f.Namespace != "" && k.Client.Namespace != f.Namespace && k.Server.Namespace != f.Namespace {
		return false
	}
	return (f.Client == "" || Names(k.Client, f.Client)) && (f.Server == "" || Names(k.Server, f.Server))
}

// Apply returns the edges the filter keeps, in their order.
func (f Filter) Apply(es []edges.Edge) []edges.Edge {
	var out []edges.Edge
	for _, e := range es {
		if f.Keep(e.Key) {
			out = append(out, e)
		}
	}
	return out
}

// Names reports whether s names the peer in one of the ways the CLI writes peers: its
// name alone, name.namespace, namespace/name, Node renders it (ns/name[Kind]) or the
// map's own form (Deployment/ns/name, service/ns/name, node/name, external/name).
func Names(p edges.Peer, s string) bool {
	if s == p.Name || s == p.String() || s == render.Peer(p) {
		return true
	}
	if p.Namespace == "" {
		return false
	}
	return s == p.Name+"."+p.Namespace || s == p.Namespace+"/"+p.Name
}

// Table writes the edges as a table, ages relative to now.
func Table(w io.Writer, es []edges.Edge, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tSERVER\tPORT\tDNS NAMES\tCOUNT\tFIRST SEEN\tLAST SEEN\tAGENTS")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", render.Peer(e.Client), render.Peer(e.Server), export.PortName(e.Key),
			orDash(strings.Join(e.DNSNames, ",")), strconv.FormatUint(e.Count, 10),
			render.Age(now, e.FirstSeen), render.Age(now, e.LastSeen), orDash(strings.Join(e.Agents, ",")))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
