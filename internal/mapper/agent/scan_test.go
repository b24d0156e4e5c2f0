package agent

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// tcpTable is a /proc/net/tcp excerpt: a listener on 10.0.0.2:8080, a client in this
// namespace connected to it (both ends), an outgoing connection from 10.0.0.2:41000 to
// 192.0.2.10:443, an incoming one on 8080 from a client elsewhere, and a TIME_WAIT.
const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0200000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100000A:9C40 0200000A:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0200000A:1F90 0100000A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0200000A:A028 0A0200C0:01BB 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0200000A:1F90 090000C6:D431 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
   5: 0200000A:A029 0A0200C0:01BB 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
`

// tcp6Table has a listener on [fd00::2]:80 and a connection to it from [fd00::1]:50000,
// plus an IPv4-mapped client, which is reported as IPv4.
const tcp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 000000FD000000000000000002000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 000000FD000000000000000002000000:0050 000000FD000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 000000FD000000000000000002000000:0050 0000000000000000FFFF00000300000A:C351 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`

func TestConnectionsFromSocketTables(t *testing.T) {
	conn := func(src, dst string) observation.Connection {
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		return observation.Connection{SrcIP: s.Addr(), SrcPort: s.Port(), DstIP: d.Addr(), DstPort: d.Port(),
			Protocol: observation.ProtocolTCP, Source: observation.SourceSocketScan}
	}
	for _, tc := range []struct {
		name  string
		table string
		want  []observation.Connection
	}{
		{name: "tcp", table: tcpTable, want: []observation.Connection{
			conn("10.0.0.1:40000", "10.0.0.2:8080"),
			conn("10.0.0.2:41000", "192.0.2.10:443"),
			conn("198.0.0.9:54321", "10.0.0.2:8080"),
		}},
		{name: "tcp6", table: tcp6Table, want: []observation.Connection{
			conn("[fd00::1]:50000", "[fd00::2]:80"),
			conn("10.0.0.3:50001", "[fd00::2]:80"),
		}},
		{name: "header only", table: "  sl  local_address rem_address   st\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sockets, err := ParseSockets(strings.NewReader(tc.table))
			if err != nil {
				t.Fatal(err)
			}
			if got := Connections(sockets); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("connections:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseSocketsRejectsMalformedLines(t *testing.T) {
	for _, line := range []string{
		"0: 0200000A 00000000:0000 0A",
		"0: 0200000X:1F90 00000000:0000 0A",
		"0: 02000A:1F90 00000000:0000 0A",
		"0: 0200000A:1F90 00000000:0000 ZZ",
		"0: 0200000A:1F9000 00000000:0000 0A",
	} {
		if _, err := ParseSockets(strings.NewReader("header\n" + line + "\n")); err == nil {
			t.Errorf("%q parsed without error", line)
		}
	}
}

// fibTrie is a /proc/net/fib_trie excerpt of a pod's namespace: its own 10.77.0.3 and
// loopback addresses in the Local table, the subnet's network and broadcast addresses,
// and the Main table repeating the local address.
const fibTrie = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.77.0.0/24 2 0 2
        |-- 10.77.0.0
           /24 link UNICAST
        |-- 10.77.0.3
           /32 host LOCAL
Local:
  +-- 10.77.0.0/24 2 0 2
     |-- 10.77.0.3
        /32 host LOCAL
     |-- 10.77.0.255
        /32 link BROADCAST
  +-- 127.0.0.0/8 2 0 2
     |-- 127.0.0.1
        /32 host LOCAL
`

// ifInet6 is a /proc/net/if_inet6: loopback, a global and a link-local address.
const ifInet6 = `00000000000000000000000000000001 01 80 10 80       lo
fd770000000000000000000000000003 04 40 00 80     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
`

func TestNamespaceAddresses(t *testing.T) {
	v4, err := ParseLocalIPv4(strings.NewReader(fibTrie))
	if err != nil || !reflect.DeepEqual(v4, []netip.Addr{netip.MustParseAddr("10.77.0.3")}) {
		t.Errorf("IPv4 addresses %v (%v), want 10.77.0.3 only", v4, err)
	}
	v6, err := ParseLocalIPv6(strings.NewReader(ifInet6))
	if err != nil || !reflect.DeepEqual(v6, []netip.Addr{netip.MustParseAddr("fd77::3")}) {
		t.Errorf("IPv6 addresses %v (%v), want fd77::3 only", v6, err)
	}
	if _, err := ParseLocalIPv6(strings.NewReader("fd77 04 40 00 80 eth0\n")); err == nil {
		t.Error("a short address parsed")
	}
	m := netnsByAddr{}
	a, b, shared := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("169.254.1.1")
	m.add(100, []netip.Addr{a, shared})
	m.add(200, []netip.Addr{b, shared})
	m.add(200, []netip.Addr{b})
	if m[a] != 100 || m[b] != 200 || m[shared] != 0 {
		t.Errorf("namespaces by address %v: want 10.0.0.1 in 100, 10.0.0.2 in 200, the shared one in neither", m)
	}
}
