// Package edges holds the network map: who called whom on which port, by which name,
// since when, how often, seen by which agents. Edges live in memory and in an embedded
// bbolt database on the aggregator's volume, written in group commits, so that an
// acknowledged observation survives a restart.
package edges

import (
	"slices"
	"strings"
	"time"
)

// PeerKind says what an edge's end is.
type PeerKind string

const (
	// PeerWorkload is a pod's workload identity (the name ClientIntents use).
	PeerWorkload PeerKind = "workload"
	// PeerService is a Service reached through its ClusterIP.
	PeerService PeerKind = "service"
	// PeerNode is a node's host network, when the pod behind it cannot be told.
	PeerNode PeerKind = "node"
	// PeerExternal is an address outside the cluster, named by DNS when a lookup was seen.
	PeerExternal PeerKind = "external"
)

// Peer is one end of an edge.
type Peer struct {
	Kind PeerKind `json:"kind"`
	// Namespace is the workload's or Service's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Name is the identity's, Service's or node's name, or an external host's DNS name or address.
	Name string `json:"name"`
	// WorkloadKind is the identity's kind ("Deployment", ...), empty when an annotation names it.
	WorkloadKind string `json:"workloadKind,omitempty"`
}

// String renders the peer for logs and listings.
func (p Peer) String() string {
	switch p.Kind {
	case PeerWorkload:
		if p.WorkloadKind != "" {
			return p.WorkloadKind + "/" + p.Namespace + "/" + p.Name
		}
		return p.Namespace + "/" + p.Name
	case PeerService:
		return "service/" + p.Namespace + "/" + p.Name
	default:
		return string(p.Kind) + "/" + p.Name
	}
}

// Key identifies an edge: a client calling a server on a port.
type Key struct {
	Client   Peer   `json:"client"`
	Server   Peer   `json:"server"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
}

// Bounds on the per-edge lists, so that an edge's size does not grow with its traffic.
const (
	// MaxSamples is how many client and server pods an edge remembers (the latest).
	MaxSamples = 3
	// MaxAgents is how many reporting agents an edge remembers (the latest).
	MaxAgents = 8
	// MaxDNSNames is how many names an edge remembers its server by (the latest).
	MaxDNSNames = 4
)

// Edge is an observed call and what is known of it.
type Edge struct {
	Key
	// DNSNames are names the client looked up to reach the server.
	DNSNames  []string  `json:"dnsNames,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	// Count is the number of connections observed.
	Count uint64 `json:"count"`
	// ClientPods and ServerPods are sample pods ("namespace/name") at either end.
	ClientPods []string `json:"clientPods,omitempty"`
	ServerPods []string `json:"serverPods,omitempty"`
	// Agents are the agents (nodes) that reported the call.
	Agents []string `json:"agents,omitempty"`
}

// Sighting is one observed connection, resolved to its edge.
type Sighting struct {
	Key
	Time time.Time
	// DNSName is the name the client looked up, if seen.
	DNSName string
	// ClientPod and ServerPod are the pods ("namespace/name") at either end, if any.
	ClientPod, ServerPod string
	Agent                string
	// Again is true when another agent reported the same connection: the agent is
	// recorded, the connection is not counted twice.
	Again bool
}

// add folds a sighting into the edge.
func (e *Edge) add(s Sighting) {
	e.Agents = remember(e.Agents, s.Agent, MaxAgents)
	if s.Again && e.Count > 0 {
		return
	}
	if e.Count == 0 || s.Time.Before(e.FirstSeen) {
		e.FirstSeen = s.Time
	}
	if s.Time.After(e.LastSeen) {
		e.LastSeen = s.Time
	}
	e.Count++
	e.DNSNames = remember(e.DNSNames, s.DNSName, MaxDNSNames)
	e.ClientPods = remember(e.ClientPods, s.ClientPod, MaxSamples)
	e.ServerPods = remember(e.ServerPods, s.ServerPod, MaxSamples)
}

// remember adds v to a bounded list of the latest distinct values.
func remember(list []string, v string, limit int) []string {
	if v == "" {
		return list
	}
	if i := slices.Index(list, v); i >= 0 {
		return list
	}
	if len(list) >= limit {
		list = slices.Delete(list, 0, len(list)-limit+1)
	}
	return append(list, v)
}

// clone returns a copy that shares nothing mutable with e.
func (e *Edge) clone() Edge {
	c := *e
	c.DNSNames = slices.Clone(e.DNSNames)
	c.ClientPods = slices.Clone(e.ClientPods)
	c.ServerPods = slices.Clone(e.ServerPods)
	c.Agents = slices.Clone(e.Agents)
	return c
}

// compareKeys orders edges by client, then server, then port and protocol.
func compareKeys(a, b Key) int {
	if c := strings.Compare(a.Client.String(), b.Client.String()); c != 0 {
		return c
	}
	if c := strings.Compare(a.Server.String(), b.Server.String()); c != 0 {
		return c
	}
	if a.Port != b.Port {
		return int(a.Port) - int(b.Port)
	}
	return strings.Compare(a.Protocol, b.Protocol)
}
