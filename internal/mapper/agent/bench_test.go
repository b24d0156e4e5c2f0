package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// discardSender encodes a batch as the HTTP sender would and throws it away, so the
// benchmark counts encoding but not the network.
type discardSender struct{}

func (discardSender) Send(_ context.Context, b observation.Batch) error {
	return json.NewEncoder(io.Discard).Encode(b)
}

// secondOfTraffic is what a node at 1,000 new connections per second hands the agent in
// one second: each connection's SYN, seen twice (the client's veth and the server's, as on
// a bridge), and a DNS answer before it, also seen twice.
func secondOfTraffic(b *testing.B) [][]byte {
	const perSecond = 1000
	answer := dnsResponse(b, "svc.ns.svc.cluster.local.", 0,
		dnsRecord{owner: "svc.ns.svc.cluster.local.", ip: v4b, ttl: 30})
	pkts := make([][]byte, 0, 4*perSecond)
	for i := range perSecond {
		client := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		dns := ipPacket(netip.MustParseAddr("10.96.0.10"), client, protoUDP, udpDatagram(53, 33000, answer))
		syn := ipPacket(client, v4b, protoTCP, tcpSegment(uint16(30000+i), 8080, 0x02, nil))
		binary.BigEndian.PutUint16(dns[20+8:], uint16(i)) // DNS ID
		pkts = append(pkts, dns, dns, syn, syn)
	}
	return pkts
}

// BenchmarkOneSecondAt1000ConnectionsPerSecond is the agent's work per second of
// capture at 1,000 new connections per second: parse, deduplicate, batch and encode.
// cpu-% is the share of one core it takes; allocs/op and B/op are per second of traffic.
func BenchmarkOneSecondAt1000ConnectionsPerSecond(b *testing.B) {
	pkts := secondOfTraffic(b)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p := Parser{Node: "node-1"}
		batcher := NewBatcher("node-1", 1, discardSender{})
		var conn observation.Connection
		var answer observation.DNSAnswer
		for _, pkt := range pkts {
			switch p.Parse(pkt, now, &conn, &answer) {
			case KindSYN:
				batcher.AddConnection(conn)
			case KindDNS:
				batcher.AddDNSAnswer(answer)
			}
		}
		if err := batcher.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(time.Second)*100, "cpu-%")
}

// BenchmarkParse is the cost of one packet of each kind the filter passes.
func BenchmarkParse(b *testing.B) {
	answer := dnsResponse(b, "web.example.com.", 0,
		dnsRecord{owner: "web.example.com.", cname: "edge.cdn.test.", ttl: 60},
		dnsRecord{owner: "edge.cdn.test.", ip: netip.MustParseAddr("192.0.2.10"), ttl: 30})
	for name, pkt := range map[string][]byte{
		"syn4":    ipPacket(v4a, v4b, protoTCP, tcpSegment(40000, 8080, 0x02, nil)),
		"syn6":    ipPacket(v6a, v6b, protoTCP, tcpSegment(40000, 8080, 0x02, nil)),
		"dns-udp": ipPacket(v4b, v4a, protoUDP, udpDatagram(53, 33000, answer)),
		"dns-tcp": ipPacket(v6b, v6a, protoTCP, tcpSegment(53, 33000, 0x18, tcpDNS(answer))),
	} {
		b.Run(name, func(b *testing.B) {
			p := Parser{Node: "node-1"}
			var conn observation.Connection
			var ans observation.DNSAnswer
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if p.Parse(pkt, now, &conn, &ans) == KindNone {
					b.Fatalf("%s not parsed", name)
				}
			}
		})
	}
}
