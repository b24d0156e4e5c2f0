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
