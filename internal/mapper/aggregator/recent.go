package aggregator

import (
	"net/netip"
	"sync"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// SameConnection is how close in time two reports of one client address and port calling
// one server address and port must be to count as one connection. Two agents report a
// connection between nodes (the client's node and the server's both see its SYN); a
// client cannot reuse the same four-tuple that soon (TIME_WAIT lasts a minute).
const SameConnection = 2 * time.Minute

type fourTuple struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

// recent remembers the connections reported lately, by four-tuple, so that a connection
// reported by both ends' agents is counted once. It is memory only: after a restart a
// connection reported by the second agent then is counted again, at most once.
type recent struct {
	mu   sync.Mutex
	seen map[fourTuple]seenBy
}

type seenBy struct {
	at    time.Time
	agent string
}

func newRecent() *recent { return &recent{seen: map[fourTuple]seenBy{}} }

// again reports whether another agent reported the connection within SameConnection, and
// remembers this report otherwise.
func (r *recent) again(agent string, c observation.Connection) bool {
	k := fourTuple{src: c.SrcIP.Unmap(), dst: c.DstIP.Unmap(), srcPort: c.SrcPort, dstPort: c.DstPort}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.seen[k]; ok && s.agent != agent && c.Time.Sub(s.at).Abs() < SameConnection {
		return true
	}
	r.seen[k] = seenBy{at: c.Time, agent: agent}
	return false
}

// prune forgets the connections reported before cutoff.
func (r *recent) prune(cutoff time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.seen {
		if s.at.Before(cutoff) {
			delete(r.seen, k)
		}
	}
}
