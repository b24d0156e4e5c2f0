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
	if s == p.Name || s == p.String() || s == Node(p) {
		return true
	}
	if p.Namespace == "" {
		return false
	}
	return s == p.Name+"."+p.Namespace || s == p.Namespace+"/"+p.Name
}

// Node renders a peer as a graph node and in tables: ns/name[Kind] for a workload (as
// intentguard graph draws them), ns/name[Service], node:name and external:name.
func Node(p edges.Peer) string {
	switch p.Kind {
	case edges.PeerWorkload:
		if p.WorkloadKind == "" {
			return p.Namespace + "/" + p.Name
		}
		return p.Namespace + "/" + p.Name + "[" + p.WorkloadKind + "]"
	case edges.PeerService:
		return p.Namespace + "/" + p.Name + "[Service]"
	default:
		return string(p.Kind) + ":" + p.Name
	}
}

// Age renders how long before now t was: "just now", "45 s ago", "2 min ago", "3 h ago",
// "5 d ago"; "in 10 s" for a time ahead of now (clocks disagree).
func Age(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + short(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return short(d) + " ago"
}

func short(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
}

// Table writes the edges as a table, ages relative to now.
func Table(w io.Writer, es []edges.Edge, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tSERVER\tPORT\tDNS NAMES\tCOUNT\tFIRST SEEN\tLAST SEEN\tAGENTS")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Node(e.Client), Node(e.Server), export.PortName(e.Key),
			orDash(strings.Join(e.DNSNames, ",")), strconv.FormatUint(e.Count, 10),
			Age(now, e.FirstSeen), Age(now, e.LastSeen), orDash(strings.Join(e.Agents, ",")))
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
