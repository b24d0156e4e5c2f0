package agent

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/intentguard/intentguard/internal/mapper/observation"
	"github.com/intentguard/intentguard/internal/netns"
	"github.com/intentguard/intentguard/internal/testsupport/netnode"
)

// ping makes one round trip on c.
func ping(t testing.TB, c net.Conn) {
	t.Helper()
	if err := netnode.Ping(c); err != nil {
		t.Fatalf("calling %s: %v", c.RemoteAddr(), err)
	}
}

// TestAgentOnRealTraffic runs the agent on a node of network namespaces: a client pod, a
// server pod and a DNS server pod on a bridge. A connection opened before the agent
// starts must come from the socket scan; new IPv4 and IPv6 connections, from pods and
// from the node itself, from their SYNs;
// DNS answers over UDP and TCP, IPv4 and IPv6, with their CNAME chains, also responses
// sent over TCP in two segments, each naming the client's network namespace, known from
// its addresses at the last scan. Each connection is
// reported once although its SYN crosses two interfaces of the node and the sockets are
// scanned again and again while it stays open.
func TestAgentOnRealTraffic(t *testing.T) {
	node := netnode.New(t, "10.77.0.0/24", "fd77::/64")
	client, server, dns := node.AddPod(t), node.AddPod(t), node.AddPod(t)

	for _, addr := range []string{
		netip.AddrPortFrom(server.IPv4, 7000).String(),
		netip.AddrPortFrom(server.IPv4, 7001).String(),
		netip.AddrPortFrom(server.IPv6, 7001).String(),
	} {
		go netnode.ServeEcho(server.Listen(t, "tcp", addr))
	}
	resolver := testDNS{target: "pod-b.test.", targetIPs: []netip.Addr{server.IPv4, server.IPv6}, ttlSeconds: 30}
	for _, ip := range []netip.Addr{dns.IPv4, dns.IPv6} {
		addr := netip.AddrPortFrom(ip, 53).String()
		go resolver.serveUDP(t, dns.ListenPacket(t, "udp", addr))
		go resolver.serveTCP(t, dns.Listen(t, "tcp", addr))
	}

	// Opened before the agent: only the socket scan can find it.
	old := client.Dial(t, "tcp", netip.AddrPortFrom(server.IPv4, 7000).String())
	ping(t, old)

	agg := &recordingAggregator{}
	srv := httptest.NewServer(agg)
	defer srv.Close()
	var capture *Capture
	if err := netns.Do(node.Path, func() error {
		var err error
		capture, err = OpenCapture()
		return err
	}); err != nil {
		t.Fatalf("opening the capture in the node namespace: %v", err)
	}
	a := &Agent{
		Node:          "node-1",
		Capture:       capture,
		Scanner:       Scanner{Proc: "/proc", Node: "node-1"},
		ScanInterval:  200 * time.Millisecond,
		Batcher:       NewBatcher("node-1", 10, HTTPSender{URL: srv.URL}),
		FlushInterval: 500 * time.Millisecond,
		Log:           testr.New(t),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()

	conn4 := client.Dial(t, "tcp", netip.AddrPortFrom(server.IPv4, 7001).String())
	conn6 := client.Dial(t, "tcp", netip.AddrPortFrom(server.IPv6, 7001).String())
	// From the node itself, as a hostNetwork pod calls: its SYN leaves by the bridge.
	fromNode := node.Dial(t, "tcp", netip.AddrPortFrom(server.IPv4, 7001).String())
	ping(t, conn4)
	ping(t, conn6)
	ping(t, fromNode)
	// A DNS answer names its client's namespace once a scan has read the namespaces.
	for deadline := time.Now().Add(10 * time.Second); a.netnsOf(client.IPv4) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	queries := map[string]string{} // name -> DNS server address and transport
	for _, transport := range []string{"udp", "tcp"} {
		for _, ip := range []netip.Addr{dns.IPv4, dns.IPv6} {
			family := "4"
			if ip.Is6() {
				family = "6"
			}
			name := fmt.Sprintf("%s%s.test.", transport, family)
			queries[name] = transport
			exchange(t, client.Dial(t, transport, netip.AddrPortFrom(ip, 53).String()), name)
		}
	}
	// Responses the server sends in two segments.
	for _, ip := range []netip.Addr{dns.IPv4, dns.IPv6} {
		name := "tcp4split.test."
		if ip.Is6() {
			name = "tcp6split.test."
		}
		queries[name] = "tcp"
		exchange(t, client.Dial(t, "tcp", netip.AddrPortFrom(ip, 53).String()), name)
	}

	addrPort := func(c net.Conn, local bool) netip.AddrPort {
		a := c.RemoteAddr()
		if local {
			a = c.LocalAddr()
		}
		return netip.MustParseAddrPort(a.String())
	}
	wantConns := map[[2]netip.AddrPort]observation.Source{
		{addrPort(old, true), addrPort(old, false)}:           observation.SourceSocketScan,
		{addrPort(conn4, true), addrPort(conn4, false)}:       observation.SourceSYN,
		{addrPort(conn6, true), addrPort(conn6, false)}:       observation.SourceSYN,
		{addrPort(fromNode, true), addrPort(fromNode, false)}: observation.SourceSYN,
	}
	clientNetNS, serverNetNS := client.NetNSInode(t), server.NetNSInode(t)

	collect := func() (conns []observation.Connection, answers map[string]observation.DNSAnswer) {
		answers = map[string]observation.DNSAnswer{}
		agg.mu.Lock()
		defer agg.mu.Unlock()
		for _, b := range agg.batches {
			for _, c := range b.Connections {
				// The socket scan reads every namespace of this machine; only the test
				// node's addresses are the test's.
				if node.Subnet4.Contains(c.SrcIP) || node.Subnet6.Contains(c.SrcIP) {
					conns = append(conns, c)
				}
			}
			for _, d := range b.DNSAnswers {
				answers[d.Name] = d
			}
		}
		return conns, answers
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		conns, answers := collect()
		seen := 0
		for _, c := range conns {
			if _, ok := wantConns[[2]netip.AddrPort{netip.AddrPortFrom(c.SrcIP, c.SrcPort), netip.AddrPortFrom(c.DstIP, c.DstPort)}]; ok {
				seen++
			}
		}
		if seen >= len(wantConns) && len(answers) >= len(queries) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Later scans and flushes must not report the same connections again.
	time.Sleep(3*a.ScanInterval + 2*a.FlushInterval)
	conns, answers := collect()

	// Every connection of the test, once, from the source that could see it; DNS
	// connections are the test's too (their SYNs), so they are allowed but not required.
	got := map[[2]netip.AddrPort]int{}
	for _, c := range conns {
		key := [2]netip.AddrPort{netip.AddrPortFrom(c.SrcIP, c.SrcPort), netip.AddrPortFrom(c.DstIP, c.DstPort)}
		got[key]++
		if c.Node != "node-1" || c.Protocol != observation.ProtocolTCP {
			t.Errorf("connection %+v: wrong node or protocol", c)
		}
		if c.SrcIP == server.IPv4 || c.SrcIP == server.IPv6 || c.SrcIP == dns.IPv4 || c.SrcIP == dns.IPv6 {
			t.Errorf("connection %+v runs from a server to its client", c)
		}
		want, ok := wantConns[key]
		if !ok {
			if c.DstPort != 53 {
				t.Errorf("unexpected connection %+v", c)
			}
			continue
		}
		if c.Source != want {
			t.Errorf("connection %v came from %s, want %s", key, c.Source, want)
		}
		if c.Source == observation.SourceSocketScan && c.NetNS != clientNetNS && c.NetNS != serverNetNS {
			t.Errorf("scanned connection %v names network namespace %d, want the client's %d or the server's %d", key, c.NetNS, clientNetNS, serverNetNS)
		}
	}
	for key := range wantConns {
		if got[key] != 1 {
			t.Errorf("connection %v reported %d times, want once", key, got[key])
		}
	}

	for name, transport := range queries {
		want := netip.MustParseAddr("0.0.0.0")
		switch name[len(transport)] {
		case '4':
			want = client.IPv4
		case '6':
			want = client.IPv6
		}
		d, ok := answers[name[:len(name)-1]]
		if !ok {
			t.Errorf("no DNS answer for %s over %s", name, transport)
			continue
		}
		if d.ClientIP != want || !slices.Equal(d.CNAMEs, []string{"pod-b.test"}) ||
			!slices.Equal(d.IPs, []netip.Addr{server.IPv4, server.IPv6}) || d.TTL != 30*time.Second || d.NetNS != clientNetNS {
			t.Errorf("DNS answer for %s over %s = %+v, want client %s in network namespace %d, CNAME pod-b.test, the server's addresses, TTL 30s",
				name, transport, d, want, clientNetNS)
		}
	}
}
