// Package observation holds what a node's mapper agent reports to the aggregator: the
// TCP connections and DNS answers it saw, in batches that name the agent and carry a
// sequence number. The types are plain data with JSON tags, so the wire format is the
// Go shape and both ends share one definition.
package observation

import (
	"net/netip"
	"time"
)

// Source says how the agent learned of a connection.
type Source string

const (
	// SourceSYN is a connection seen by its first packet (TCP SYN without ACK).
	SourceSYN Source = "syn"
	// SourceSocketScan is a connection found established in a network namespace's socket
	// table, typically one opened before the agent started.
	SourceSocketScan Source = "socket-scan"
)

// Protocol is the transport protocol of a connection.
type Protocol string

// ProtocolTCP is the only transport the agent reports connections for today.
const ProtocolTCP Protocol = "TCP"

// Connection is one client-to-server connection seen on a node. Src is the side that
// opened it (the SYN's sender, or for a socket scan the side whose port is not listening).
type Connection struct {
	// Time is when the agent saw the connection (first packet or scan time).
	Time time.Time `json:"time"`
	// Node is the name of the node the agent runs on.
	Node string `json:"node"`
	// NetNS is the inode of the network namespace the socket scan read it from; 0 for SYNs,
	// which are seen on the node's interfaces rather than in a namespace.
	NetNS uint64 `json:"netns,omitempty"`
	// SrcIP is the client's address.
	SrcIP netip.Addr `json:"srcIP"`
	// SrcPort is the client's (ephemeral) port.
	SrcPort uint16 `json:"srcPort"`
	// DstIP is the server's address.
	DstIP netip.Addr `json:"dstIP"`
	// DstPort is the server's port.
	DstPort uint16 `json:"dstPort"`
	// Protocol is the transport protocol.
	Protocol Protocol `json:"protocol"`
	// Source says how the agent learned of the connection.
	Source Source `json:"source"`
}

// DNSAnswer is one DNS response seen on its way to a client: the name the client asked
// for, the CNAME chain the server followed and the addresses it ended at.
type DNSAnswer struct {
	// Time is when the agent saw the response.
	Time time.Time `json:"time"`
	// Node is the name of the node the agent runs on.
	Node string `json:"node"`
	// NetNS is the inode of the network namespace that held ClientIP at the agent's last
	// socket scan; 0 when none or several did.
	NetNS uint64 `json:"netns,omitempty"`
	// ClientIP is the address the response was sent to.
	ClientIP netip.Addr `json:"clientIP"`
	// Name is the queried name, fully qualified without the trailing dot.
	Name string `json:"name"`
	// CNAMEs is the chain of canonical names from Name to the addresses, in order.
	CNAMEs []string `json:"cnames,omitempty"`
	// IPs are the A and AAAA records at the end of the chain.
	IPs []netip.Addr `json:"ips"`
	// TTL is the smallest TTL of the records used, which bounds how long IPs mean Name.
	TTL time.Duration `json:"ttl"`
}

// Batch is what an agent sends in one request. Seq grows by one per batch from an agent
// process (Boot tells restarts apart), so the receiver can tell a gap from a repeat.
type Batch struct {
	// Agent names the sender, normally its node.
	Agent string `json:"agent"`
	// Boot is when the sending agent process started.
	Boot time.Time `json:"boot"`
	// Seq is the batch's number since Boot, starting at 1.
	Seq uint64 `json:"seq"`
	// Connections are the connections seen since the previous batch.
	Connections []Connection `json:"connections,omitempty"`
	// DNSAnswers are the DNS answers seen since the previous batch.
	DNSAnswers []DNSAnswer `json:"dnsAnswers,omitempty"`
}
