package dnsnames

import (
	"net/netip"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestNameOfAConnection(t *testing.T) {
	n := New()
	n.Add(observation.DNSAnswer{Time: t0, ClientIP: addr("10.0.0.1"), Name: "api.example.com",
		CNAMEs: []string{"edge.cdn.example.net"}, IPs: []netip.Addr{addr("203.0.113.5"), addr("2001:db8::5")}, TTL: time.Minute})
	n.Add(observation.DNSAnswer{Time: t0.Add(time.Second), ClientIP: addr("10.0.0.2"), Name: "other.example.com",
		IPs: []netip.Addr{addr("203.0.113.5")}, TTL: time.Minute})
	cases := []struct {
		name           string
		client, server string
		at             time.Duration
		want           string
	}{
		{"own lookup", "10.0.0.1", "203.0.113.5", 10 * time.Second, "api.example.com"},
		{"own lookup, IPv6", "10.0.0.1", "2001:db8::5", 10 * time.Second, "api.example.com"},
		{"other client's lookup of the same address", "10.0.0.2", "203.0.113.5", 10 * time.Second, "other.example.com"},
		{"client without a lookup gets the latest", "10.0.0.9", "203.0.113.5", 10 * time.Second, "other.example.com"},
		{"within the grace after the TTL", "10.0.0.1", "203.0.113.5", time.Minute + Grace - time.Second, "api.example.com"},
		{"after TTL and grace", "10.0.0.1", "203.0.113.5", time.Minute + Grace + 2*time.Second, ""},
		{"long before the answer", "10.0.0.1", "203.0.113.5", -time.Minute, ""},
		{"unknown address", "10.0.0.1", "203.0.113.6", 10 * time.Second, ""},
		{"mapped client address", "::ffff:10.0.0.1", "203.0.113.5", 10 * time.Second, "api.example.com"},
	}
	for _, c := range cases {
		got, ok := n.Name(addr(c.client), addr(c.server), t0.Add(c.at))
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: got %q %v, want %q", c.name, got, ok, c.want)
		}
	}
}

func TestPruneForgetsExpiredAnswers(t *testing.T) {
	n := New()
	n.Add(observation.DNSAnswer{Time: t0, ClientIP: addr("10.0.0.1"), Name: "a.example.com", IPs: []netip.Addr{addr("203.0.113.5")}, TTL: time.Second})
	n.Add(observation.DNSAnswer{Time: t0, ClientIP: addr("10.0.0.1"), Name: "b.example.com", IPs: []netip.Addr{addr("203.0.113.6")}, TTL: time.Hour})
	n.Prune(t0.Add(time.Second + Grace))
	if len(n.byClient[addr("10.0.0.1")]) != 1 || len(n.byAddr) != 1 {
		t.Fatalf("after prune: %v %v", n.byClient, n.byAddr)
	}
	if got, _ := n.Name(addr("10.0.0.1"), addr("203.0.113.6"), t0.Add(Grace)); got != "b.example.com" {
		t.Errorf("live answer lost: %q", got)
	}
}
