package agent

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Bounds on DNS-over-TCP reassembly, so that a node's agent holds at most
// maxTCPDNSFlows partial responses of at most 64 KiB each (16 MiB).
const (
	// maxTCPDNSFlows is how many connections from port 53 may have a partial response.
	maxTCPDNSFlows = 256
	// tcpDNSIdle is how long a connection's partial response waits for its next segment;
	// a response's segments follow each other within a round trip.
	tcpDNSIdle = 5 * time.Second
)

// tcpFlow names one direction of a TCP connection: from the DNS server to its client.
type tcpFlow struct {
	server, client netip.AddrPort
}

// tcpStream is what is known of a flow: the sequence number after the last byte taken,
// and the bytes of a response not complete yet.
type tcpStream struct {
	next uint32
	buf  []byte
	// start is where the unread part of buf begins; buf is compacted before it grows.
	start int
	last  time.Time
}

// dnsStreams reassembles DNS messages from TCP segments sent by DNS servers. A segment seen
// again (the node's agent sees each one on every interface it crosses) or retransmitted
// is taken once; a flow that loses a segment to the capture drops its partial response.
// A flow is followed from a segment that does not end at a message's end; a segment of
// a flow not followed is read from a message's start, as a response's first segment is.
type dnsStreams struct {
	flows     map[tcpFlow]*tcpStream
	lastSweep time.Time
	// msgs are the messages completed by the last segment; they are valid until the next.
	msgs [][]byte
}

// add takes a segment's payload and returns the DNS messages (without their length
// prefix) it completes. end is true for a segment with FIN or RST: the flow is over.
func (r *dnsStreams) add(flow tcpFlow, seq uint32, data []byte, end bool, now time.Time) [][]byte {
	r.msgs = r.msgs[:0]
	s := r.flows[flow]
	if s == nil {
		if len(data) == 0 {
			return nil
		}
		rest := r.split(data)
		if len(rest) > 0 && !end {
			r.follow(flow, seq+uint32(len(data)), rest, now)
		}
		return r.msgs
	}
	ahead := int32(seq - s.next)
	if ahead > 0 || now.Sub(s.last) > tcpDNSIdle {
		// The capture missed a segment, or the flow was silent for long: the partial
		// response cannot be completed, and this segment is read as a new one's start.
		delete(r.flows, flow)
		return r.add(flow, seq, data, end, now)
	}
	s.last = now
	if ahead < 0 {
		// Seen before, wholly or in part.
		data = data[min(int(-ahead), len(data)):]
	}
	if len(data) > 0 {
		if s.start > 0 {
			s.buf = s.buf[:copy(s.buf, s.buf[s.start:])]
			s.start = 0
		}
		s.buf = append(s.buf, data...)
		s.next += uint32(len(data))
		s.start = len(s.buf) - len(r.split(s.buf))
	}
	if end {
		delete(r.flows, flow)
	}
	return r.msgs
}

// split appends the whole length-prefixed messages at the start of b to r.msgs and
// returns what follows them.
func (r *dnsStreams) split(b []byte) []byte {
	for len(b) >= 2 {
		n := 2 + int(binary.BigEndian.Uint16(b))
		if len(b) < n {
			break
		}
		r.msgs = append(r.msgs, b[2:n])
		b = b[n:]
	}
	return b
}

// follow starts following a flow whose segments so far left rest unread, if the bound on
// followed flows allows it once idle ones are dropped.
func (r *dnsStreams) follow(flow tcpFlow, next uint32, rest []byte, now time.Time) {
	if r.flows == nil {
		r.flows = map[tcpFlow]*tcpStream{}
	}
	if now.Sub(r.lastSweep) >= time.Second || len(r.flows) >= maxTCPDNSFlows {
		r.lastSweep = now
		for f, s := range r.flows {
			if now.Sub(s.last) > tcpDNSIdle {
				delete(r.flows, f)
			}
		}
	}
	if len(r.flows) >= maxTCPDNSFlows {
		return
	}
	r.flows[flow] = &tcpStream{next: next, buf: append([]byte(nil), rest...), last: now}
}
