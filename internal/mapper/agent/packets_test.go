package agent

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// ipPacket builds an IPv4 or IPv6 packet (by the addresses' family) around a transport
// payload, as AF_PACKET SOCK_DGRAM delivers it.
func ipPacket(src, dst netip.Addr, proto byte, payload []byte) []byte {
	if src.Is4() {
		h := make([]byte, 20, 20+len(payload))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
		h[8] = 64
		h[9] = proto
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		return append(h, payload...)
	}
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = proto
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// tcpSegment builds a TCP header with the given flags (0x02 SYN, 0x10 ACK) and payload.
func tcpSegment(sport, dport uint16, flags byte, payload []byte) []byte {
	return tcpSegmentAt(sport, dport, flags, 0, payload)
}

// tcpSegmentAt builds a TCP segment whose payload starts at sequence number seq.
func tcpSegmentAt(sport, dport uint16, flags byte, seq uint32, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	h[12] = 5 << 4
	h[13] = flags
	return append(h, payload...)
}

// udpDatagram builds a UDP header and payload.
func udpDatagram(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// tcpDNS frames a DNS message for TCP: a two-byte length first.
func tcpDNS(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// dnsRecord is one answer record of a test response: a CNAME when cname is set,
// otherwise an A or AAAA record by ip's family.
type dnsRecord struct {
	owner string
	cname string
	ip    netip.Addr
	ttl   uint32
}

// dnsResponse builds a response to a question for name with the given answers.
func dnsResponse(t testing.TB, name string, rcode dnsmessage.RCode, answers ...dnsRecord) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, Response: true, RCode: rcode})
	b.EnableCompression()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("building DNS response: %v", err)
		}
	}
	must(b.StartQuestions())
	must(b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
	must(b.StartAnswers())
	for _, r := range answers {
		h := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(r.owner), Class: dnsmessage.ClassINET, TTL: r.ttl}
		switch {
		case r.cname != "":
			must(b.CNAMEResource(h, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(r.cname)}))
		case r.ip.Is4():
			must(b.AResource(h, dnsmessage.AResource{A: r.ip.As4()}))
		default:
			must(b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: r.ip.As16()}))
		}
	}
	msg, err := b.Finish()
	must(err)
	return msg
}
