// Package dnsnames remembers which name each client looked up to reach an address, from
// the DNS answers agents see, so that a connection is recorded with the name its client
// used (a Service's name, or an external host's), and an external edge is named offline.
package dnsnames

import (
	"net/netip"
	"sync"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// Grace is how long after its TTL an answer still names its addresses: clients and
// resolvers keep using addresses somewhat past the TTL, and connections are often opened
// right at its end.
const Grace = 5 * time.Minute

// Names holds the DNS answers seen, by client and address. Safe for concurrent use.
type Names struct {
	mu sync.RWMutex
	// byClient maps a client address, then a server address, to the name it was reached by.
	byClient map[netip.Addr]map[netip.Addr]entry
	// byAddr maps a server address to the last name any client reached it by, for
	// connections whose own client's lookup was not seen.
	byAddr map[netip.Addr]entry
}

type entry struct {
	name string
	// seen is when the answer was seen, until is when it stops naming the address.
	seen, until time.Time
}

// New returns an empty set of names.
func New() *Names {
	return &Names{byClient: map[netip.Addr]map[netip.Addr]entry{}, byAddr: map[netip.Addr]entry{}}
}

// Add records an answer. The name kept is the one the client asked for, which is what it
// would write in its intents; the CNAME chain is the resolver's business.
func (n *Names) Add(a observation.DNSAnswer) {
	if a.Name == "" || !a.ClientIP.IsValid() {
		return
	}
	e := entry{name: a.Name, seen: a.Time, until: a.Time.Add(a.TTL + Grace)}
	client := a.ClientIP.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.byClient[client]
	if m == nil {
		m = map[netip.Addr]entry{}
		n.byClient[client] = m
	}
	for _, ip := range a.IPs {
		ip = ip.Unmap()
		if old, ok := m[ip]; !ok || !old.seen.After(e.seen) {
			m[ip] = e
		}
		if old, ok := n.byAddr[ip]; !ok || !old.seen.After(e.seen) {
			n.byAddr[ip] = e
		}
	}
}

// Name returns the name client reached server by for a connection seen at t: the latest
// answer to that client seen before t and still valid, else the latest such answer to any
// client (a lookup made through a node-local cache, or before the agent started).
func (n *Names) Name(client, server netip.Addr, t time.Time) (string, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if e, ok := n.byClient[client.Unmap()][server.Unmap()]; ok && e.valid(t) {
		return e.name, true
	}
	if e, ok := n.byAddr[server.Unmap()]; ok && e.valid(t) {
		return e.name, true
	}
	return "", false
}

// valid reports whether the entry names its address at t. Agents' clocks and batching
// put the answer at most a little after the connection it led to, so a small lead is allowed.
func (e entry) valid(t time.Time) bool {
	return !t.Before(e.seen.Add(-clockLead)) && t.Before(e.until)
}

// clockLead is how far after a connection its DNS answer may be timestamped: both come
// from the same agent's clock, but the answer is parsed on another path.
const clockLead = 2 * time.Second

// Prune forgets the answers no longer valid at now, so that memory follows the answers in
// use rather than every name ever resolved.
func (n *Names) Prune(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c, m := range n.byClient {
		for ip, e := range m {
			if !now.Before(e.until) {
				delete(m, ip)
			}
		}
		if len(m) == 0 {
			delete(n.byClient, c)
		}
	}
	for ip, e := range n.byAddr {
		if !now.Before(e.until) {
			delete(n.byAddr, ip)
		}
	}
}
