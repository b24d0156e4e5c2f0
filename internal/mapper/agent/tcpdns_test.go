package agent

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// segment is one captured TCP segment from a DNS server at 10.0.0.2:53 (or fd00::2) to
// its client: its payload is stream[from:to] of the response bytes, at sequence number
// isn+from.
type segment struct {
	from, to int
	flags    byte
	after    time.Duration
}

// TestDNSOverTCPReassembly feeds the parser DNS-over-TCP responses cut into segments, in
// the orders a node's capture sees them, and checks which answers come out, each once,
// and how many flows are still followed (a segment read as a response's start that is
// not one is followed until its flow ends or idles).
func TestDNSOverTCPReassembly(t *testing.T) {
	msg := func(name string) []byte {
		return tcpDNS(dnsResponse(t, name, dnsmessage.RCodeSuccess, dnsRecord{owner: name, ip: netip.MustParseAddr("192.0.2.1"), ttl: 30}))
	}
	one := msg("one.test.")
	two := msg("two.test.")
	stream := append(slices.Clone(one), two...)
	n1, n := len(one), len(stream)
	const psh, fin, rst = 0x18, 0x19, 0x14
	for _, tc := range []struct {
		name     string
		ipv6     bool
		segments []segment
		want     []string
		followed int
	}{
		{name: "a response in two segments", segments: []segment{{0, 20, psh, 0}, {20, n1, fin, 0}}, want: []string{"one.test"}},
		{name: "over IPv6", ipv6: true, segments: []segment{{0, 20, psh, 0}, {20, n1, fin, 0}}, want: []string{"one.test"}},
		{name: "the length prefix split", segments: []segment{{0, 1, psh, 0}, {1, n1, psh, 0}}, want: []string{"one.test"}, followed: 1},
		{name: "each segment seen on two interfaces", segments: []segment{{0, 20, psh, 0}, {0, 20, psh, 0}, {20, n1, psh, 0}, {20, n1, psh, 0}},
			want: []string{"one.test"}, followed: 1},
		{name: "a retransmission overlapping what was taken", segments: []segment{{0, 20, psh, 0}, {10, 30, psh, 0}, {30, n1, psh, 0}},
			want: []string{"one.test"}, followed: 1},
		{name: "pipelined responses, the second split", segments: []segment{{0, n1 + 10, psh, 0}, {n1 + 10, n, fin, 0}}, want: []string{"one.test", "two.test"}},
		{name: "pipelined responses in one segment", segments: []segment{{0, n, psh, 0}}, want: []string{"one.test", "two.test"}},
		{name: "a segment the capture missed", segments: []segment{{0, 20, psh, 0}, {40, n1, psh, 0}}, want: nil, followed: 1},
		{name: "after a lost segment, the next response", segments: []segment{{0, 20, psh, 0}, {n1, n, psh, 0}}, want: []string{"two.test"}},
		{name: "a reset drops the partial response", segments: []segment{{0, 20, rst, 0}, {20, n1, psh, 0}}, want: nil, followed: 1},
		{name: "a flow silent for longer than the idle time", segments: []segment{{0, 20, psh, 0}, {20, n1, psh, tcpDNSIdle + time.Second}}, want: nil, followed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := v4b, v4a
			if tc.ipv6 {
				server, client = v6b, v6a
			}
			const isn = 0xfffffff0 // the sequence numbers wrap around within the response
			p := Parser{Node: "n1"}
			var got []string
			now := at
			for _, sg := range tc.segments {
				now = now.Add(sg.after)
				pkt := ipPacket(server, client, protoTCP, tcpSegmentAt(53, 40000, sg.flags, isn+uint32(sg.from), stream[sg.from:sg.to]))
				var conn observation.Connection
				var answer observation.DNSAnswer
				if p.Parse(pkt, now, &conn, &answer) != KindDNS {
					continue
				}
				for ok := true; ok; ok = p.NextAnswer(now, &answer) {
					if answer.ClientIP != client {
						t.Errorf("answer for %s sent to %s, want %s", answer.Name, answer.ClientIP, client)
					}
					got = append(got, answer.Name)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("answers %v, want %v", got, tc.want)
			}
			if len(p.tcp.flows) != tc.followed {
				t.Errorf("%d flows still followed, want %d", len(p.tcp.flows), tc.followed)
			}
		})
	}
}

// At most maxTCPDNSFlows partial responses are held; idle ones make room for new ones.
func TestDNSOverTCPReassemblyIsBounded(t *testing.T) {
	resp := tcpDNS(dnsResponse(t, "one.test.", dnsmessage.RCodeSuccess, dnsRecord{owner: "one.test.", ip: v4b, ttl: 30}))
	p := Parser{Node: "n1"}
	var conn observation.Connection
	var answer observation.DNSAnswer
	first := func(port uint16, now time.Time) {
		p.Parse(ipPacket(v4b, v4a, protoTCP, tcpSegmentAt(53, port, 0x18, 1, resp[:20])), now, &conn, &answer)
	}
	rest := func(port uint16, now time.Time) Kind {
		return p.Parse(ipPacket(v4b, v4a, protoTCP, tcpSegmentAt(53, port, 0x18, 21, resp[20:])), now, &conn, &answer)
	}
	for i := range maxTCPDNSFlows + 10 {
		first(uint16(10000+i), at)
	}
	if len(p.tcp.flows) != maxTCPDNSFlows {
		t.Fatalf("%d flows followed, want the bound %d", len(p.tcp.flows), maxTCPDNSFlows)
	}
	if k := rest(10000, at); k != KindDNS {
		t.Errorf("a followed flow's response: kind %d", k)
	}
	if k := rest(uint16(10000+maxTCPDNSFlows+5), at); k != KindNone {
		t.Errorf("a flow beyond the bound was followed: kind %d", k)
	}
	later := at.Add(tcpDNSIdle + time.Second)
	first(20000, later)
	if k := rest(20000, later); k != KindDNS {
		t.Errorf("idle flows did not make room for a new one: kind %d", k)
	}
	if len(p.tcp.flows) > 1 {
		t.Errorf("%d flows followed after the idle ones expired, want at most 1", len(p.tcp.flows))
	}
}
