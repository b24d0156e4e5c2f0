package agent

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// Kind says what a captured packet turned out to be.
type Kind int

const (
	// KindNone is a packet that carries nothing the map needs.
	KindNone Kind = iota
	// KindSYN is the first packet of a TCP connection.
	KindSYN
	// KindDNS is a DNS response with at least one address.
	KindDNS
)

const (
	protoTCP = 6
	protoUDP = 17
	dnsPort  = 53
	// maxCNAMEs bounds a chain so a looping answer cannot hold the parser.
	maxCNAMEs = 16
)

// Parser turns captured IP packets (starting at the IP header, as AF_PACKET SOCK_DGRAM
// delivers them) into observations. It keeps its DNS parser between calls so the SYN path
// does not allocate; it is not safe for concurrent use.
type Parser struct {
	// Node is written into every observation.
	Node string
	dns  dnsmessage.Parser
	tcp  dnsStreams
	// pending are the DNS-over-TCP messages the last segment completed and NextAnswer
	// has not read yet, sent to pendingClient.
	pending       [][]byte
	pendingClient netip.Addr
}

// Parse reads one packet. For KindSYN it fills conn, for KindDNS it fills answer (and
// NextAnswer gives the packet's further answers); other packets (including malformed
// ones, which a capture must expect) give KindNone. DNS responses over TCP are
// reassembled from their segments.
func (p *Parser) Parse(pkt []byte, now time.Time, conn *observation.Connection, answer *observation.DNSAnswer) Kind {
	src, dst, proto, payload, ok := ipHeader(pkt)
	if !ok {
		return KindNone
	}
	switch proto {
	case protoTCP:
		if len(payload) < 20 {
			return KindNone
		}
		sport := binary.BigEndian.Uint16(payload[0:2])
		dport := binary.BigEndian.Uint16(payload[2:4])
		flags := payload[13]
		if flags&0x12 == 0x02 { // SYN without ACK: a client opening a connection
			*conn = observation.Connection{
				Time: now, Node: p.Node,
				SrcIP: src, SrcPort: sport, DstIP: dst, DstPort: dport,
				Protocol: observation.ProtocolTCP, Source: observation.SourceSYN,
			}
			return KindSYN
		}
		if sport != dnsPort {
			return KindNone
		}
		off := int(payload[12]>>4) * 4
		if off < 20 || off > len(payload) {
			return KindNone
		}
		// DNS over TCP prefixes each message with its length; a response may span
		// segments, and a segment may end more than one.
		flow := tcpFlow{server: netip.AddrPortFrom(src, sport), client: netip.AddrPortFrom(dst, dport)}
		p.pending = p.tcp.add(flow, binary.BigEndian.Uint32(payload[4:8]), payload[off:], flags&0x05 != 0, now)
		p.pendingClient = dst
		if p.NextAnswer(now, answer) {
			return KindDNS
		}
		return KindNone
	case protoUDP:
		if len(payload) < 8 || binary.BigEndian.Uint16(payload[0:2]) != dnsPort {
			return KindNone
		}
		return p.parseDNS(payload[8:], dst, now, answer)
	}
	return KindNone
}

// NextAnswer fills answer with the next DNS answer the last packet completed, if there is
// one more: a TCP segment can end several pipelined responses. Call it after Parse
// returns KindDNS, until it returns false.
func (p *Parser) NextAnswer(now time.Time, answer *observation.DNSAnswer) bool {
	for len(p.pending) > 0 {
		msg := p.pending[0]
		p.pending = p.pending[1:]
		if p.parseDNS(msg, p.pendingClient, now, answer) == KindDNS {
			return true
		}
	}
	return false
}

// ipHeader splits an IPv4 or IPv6 packet into addresses, transport protocol and payload.
// IPv6 extension headers and IPv4 fragments after the first are not followed.
func ipHeader(pkt []byte) (src, dst netip.Addr, proto byte, payload []byte, ok bool) {
	if len(pkt) < 1 {
		return
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl || binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return
		}
		end := int(binary.BigEndian.Uint16(pkt[2:4]))
		if end < ihl || end > len(pkt) {
			end = len(pkt)
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), pkt[9], pkt[ihl:end], true
	case 6:
		if len(pkt) < 40 {
			return
		}
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if end > len(pkt) {
			end = len(pkt)
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), pkt[6], pkt[40:end], true
	}
	return
}

// parseDNS reads a response: the question's name, the CNAME chain from it and the A and
// AAAA records at the chain's end.
func (p *Parser) parseDNS(msg []byte, client netip.Addr, now time.Time, answer *observation.DNSAnswer) Kind {
	hdr, err := p.dns.Start(msg)
	if err != nil || !hdr.Response || hdr.RCode != dnsmessage.RCodeSuccess {
		return KindNone
	}
	q, err := p.dns.Question()
	if err != nil {
		return KindNone
	}
	if err := p.dns.SkipAllQuestions(); err != nil {
		return KindNone
	}
	name := normalize(q.Name)
	type record struct {
		owner string
		cname string
		ip    netip.Addr
		ttl   uint32
	}
	var records []record
	for {
		h, err := p.dns.AnswerHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return KindNone
		}
		r := record{owner: normalize(h.Name), ttl: h.TTL}
		switch h.Type {
		case dnsmessage.TypeA:
			a, err := p.dns.AResource()
			if err != nil {
				return KindNone
			}
			r.ip = netip.AddrFrom4(a.A)
		case dnsmessage.TypeAAAA:
			a, err := p.dns.AAAAResource()
			if err != nil {
				return KindNone
			}
			r.ip = netip.AddrFrom16(a.AAAA)
		case dnsmessage.TypeCNAME:
			c, err := p.dns.CNAMEResource()
			if err != nil {
				return KindNone
			}
			r.cname = normalize(c.CNAME)
		default:
			if err := p.dns.SkipAnswer(); err != nil {
				return KindNone
			}
			continue
		}
		records = append(records, r)
	}
	// Follow the chain from the question's name; records that are off the chain (which a
	// resolver should not send) are not attributed to the name.
	var cnames []string
	ttl := ^uint32(0)
	current := name
	for range maxCNAMEs {
		next := ""
		for _, r := range records {
			if r.owner == current && r.cname != "" {
				next = r.cname
				ttl = min(ttl, r.ttl)
				break
			}
		}
		if next == "" {
			break
		}
		cnames = append(cnames, next)
		current = next
	}
	var ips []netip.Addr
	for _, r := range records {
		if r.owner == current && r.ip.IsValid() {
			ips = append(ips, r.ip)
			ttl = min(ttl, r.ttl)
		}
	}
	if len(ips) == 0 {
		return KindNone
	}
	*answer = observation.DNSAnswer{
		Time: now, Node: p.Node, ClientIP: client,
		Name: name, CNAMEs: cnames, IPs: ips, TTL: time.Duration(ttl) * time.Second,
	}
	return KindDNS
}

// normalize gives a DNS name in the form the map keeps: lower case, no trailing dot.
func normalize(n dnsmessage.Name) string {
	return strings.ToLower(strings.TrimSuffix(n.String(), "."))
}
