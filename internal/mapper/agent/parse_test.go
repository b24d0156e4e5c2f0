package agent

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

var (
	v4a = netip.MustParseAddr("10.0.0.1")
	v4b = netip.MustParseAddr("10.0.0.2")
	v6a = netip.MustParseAddr("fd00::1")
	v6b = netip.MustParseAddr("fd00::2")
	at  = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

type parseCase struct {
	name   string
	pkt    []byte
	kind   Kind
	conn   observation.Connection
	answer observation.DNSAnswer
}

func parseCases(t testing.TB) []parseCase {
	syn := func(src, dst netip.Addr) observation.Connection {
		return observation.Connection{Time: at, Node: "n1", SrcIP: src, SrcPort: 40000, DstIP: dst, DstPort: 8080,
			Protocol: observation.ProtocolTCP, Source: observation.SourceSYN}
	}
	chain := dnsResponse(t, "Web.Example.com.", dnsmessage.RCodeSuccess,
		dnsRecord{owner: "web.example.com.", cname: "lb.example.net.", ttl: 300},
		dnsRecord{owner: "lb.example.net.", cname: "edge.cdn.test.", ttl: 60},
		dnsRecord{owner: "edge.cdn.test.", ip: netip.MustParseAddr("192.0.2.10"), ttl: 30},
		dnsRecord{owner: "edge.cdn.test.", ip: netip.MustParseAddr("2001:db8::10"), ttl: 120},
		dnsRecord{owner: "unrelated.test.", ip: netip.MustParseAddr("192.0.2.99"), ttl: 5},
	)
	chainAnswer := func(client netip.Addr) observation.DNSAnswer {
		return observation.DNSAnswer{Time: at, Node: "n1", ClientIP: client, Name: "web.example.com",
			CNAMEs: []string{"lb.example.net", "edge.cdn.test"},
			IPs:    []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
			TTL:    30 * time.Second}
	}
	plain := dnsResponse(t, "svc.ns.svc.cluster.local.", dnsmessage.RCodeSuccess,
		dnsRecord{owner: "svc.ns.svc.cluster.local.", ip: v4b, ttl: 5})
	plainAnswer := observation.DNSAnswer{Time: at, Node: "n1", ClientIP: v6a, Name: "svc.ns.svc.cluster.local",
		IPs: []netip.Addr{v4b}, TTL: 5 * time.Second}
	nx := dnsResponse(t, "nope.test.", dnsmessage.RCodeNameError)
	onlyCNAME := dnsResponse(t, "a.test.", dnsmessage.RCodeSuccess, dnsRecord{owner: "a.test.", cname: "b.test.", ttl: 1})
	return []parseCase{
		{name: "IPv4 SYN", pkt: ipPacket(v4a, v4b, protoTCP, tcpSegment(40000, 8080, 0x02, nil)), kind: KindSYN, conn: syn(v4a, v4b)},
		{name: "IPv6 SYN", pkt: ipPacket(v6a, v6b, protoTCP, tcpSegment(40000, 8080, 0x02, nil)), kind: KindSYN, conn: syn(v6a, v6b)},
		{name: "SYN-ACK is the server's answer", pkt: ipPacket(v4b, v4a, protoTCP, tcpSegment(8080, 40000, 0x12, nil))},
		{name: "plain ACK", pkt: ipPacket(v4a, v4b, protoTCP, tcpSegment(40000, 8080, 0x10, nil))},
		{name: "DNS over UDP/IPv4 with a CNAME chain", pkt: ipPacket(v4b, v4a, protoUDP, udpDatagram(53, 33000, chain)), kind: KindDNS, answer: chainAnswer(v4a)},
		{name: "DNS over UDP/IPv6", pkt: ipPacket(v6b, v6a, protoUDP, udpDatagram(53, 33000, plain)), kind: KindDNS, answer: plainAnswer},
		{name: "DNS over TCP/IPv4", pkt: ipPacket(v4b, v4a, protoTCP, tcpSegment(53, 33000, 0x18, tcpDNS(chain))), kind: KindDNS, answer: chainAnswer(v4a)},
		{name: "DNS over TCP/IPv6", pkt: ipPacket(v6b, v6a, protoTCP, tcpSegment(53, 33000, 0x18, tcpDNS(chain))), kind: KindDNS, answer: chainAnswer(v6a)},
		{name: "DNS over TCP split across segments", pkt: ipPacket(v4b, v4a, protoTCP, tcpSegment(53, 33000, 0x18, tcpDNS(chain)[:40]))},
		{name: "DNS query, not a response", pkt: ipPacket(v4a, v4b, protoUDP, udpDatagram(33000, 53, plain))},
		{name: "NXDOMAIN", pkt: ipPacket(v4b, v4a, protoUDP, udpDatagram(53, 33000, nx))},
		{name: "CNAME without addresses", pkt: ipPacket(v4b, v4a, protoUDP, udpDatagram(53, 33000, onlyCNAME))},
		{name: "garbage from port 53", pkt: ipPacket(v4b, v4a, protoUDP, udpDatagram(53, 33000, []byte{1, 2, 3}))},
		{name: "other UDP", pkt: ipPacket(v4b, v4a, protoUDP, udpDatagram(123, 123, plain))},
		{name: "truncated IPv4", pkt: ipPacket(v4a, v4b, protoTCP, tcpSegment(40000, 8080, 0x02, nil))[:30]},
		{name: "truncated IPv6", pkt: ipPacket(v6a, v6b, protoTCP, nil)[:39]},
		{name: "empty", pkt: nil},
		{name: "not IP", pkt: []byte{0x20, 1, 2, 3}},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			p := Parser{Node: "n1"}
			var conn observation.Connection
			var answer observation.DNSAnswer
			kind := p.Parse(tc.pkt, at, &conn, &answer)
			if kind != tc.kind {
				t.Fatalf("kind = %d, want %d", kind, tc.kind)
			}
			if !reflect.DeepEqual(conn, tc.conn) {
				t.Errorf("connection = %+v, want %+v", conn, tc.conn)
			}
			if !reflect.DeepEqual(answer, tc.answer) {
				t.Errorf("answer = %+v, want %+v", answer, tc.answer)
			}
		})
	}
}

// TestFilterAgreesWithParser runs the kernel filter in x/net/bpf's VM: it must pass every
// packet the parser reads and, of the rest, drop all but DNS-port traffic the parser
// rejects on content.
func TestFilterAgreesWithParser(t *testing.T) {
	raw, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter rejected by the BPF VM: %v", err)
	}
	// Packets the parser rejects only after reading the DNS message (or segment) pass.
	passes := map[string]bool{
		"DNS over TCP split across segments": true, "NXDOMAIN": true,
		"CNAME without addresses": true, "garbage from port 53": true,
	}
	for _, tc := range parseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			n, err := vm.Run(tc.pkt)
			if err != nil {
				t.Fatalf("running filter: %v", err)
			}
			want := tc.kind != KindNone || passes[tc.name]
			if got := n > 0; got != want {
				t.Errorf("filter passes = %v (returned %d), want %v", got, n, want)
			}
			if n > 0 && n < len(tc.pkt) {
				t.Errorf("filter cut the packet to %d of %d bytes", n, len(tc.pkt))
			}
		})
	}
	frag := ipPacket(v4b, v4a, protoUDP, udpDatagram(53, 33000, nil))
	frag[7] = 10 // fragment offset: not the first fragment
	if n, _ := vm.Run(frag); n != 0 {
		t.Errorf("non-first IPv4 fragment passes the filter")
	}
}

// FuzzParse checks the parser never panics on what a network can send it.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases(f) {
		f.Add(tc.pkt)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		p := Parser{Node: "n1"}
		var conn observation.Connection
		var answer observation.DNSAnswer
		p.Parse(pkt, at, &conn, &answer)
	})
}
