package agent

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/observation"
)

// Socket states in /proc/net/tcp, from the kernel's include/net/tcp_states.h.
const (
	tcpEstablished = 0x01
	tcpListen      = 0x0a
)

// Socket is one line of /proc/<pid>/net/tcp or tcp6.
type Socket struct {
	// Local is the socket's own address and port.
	Local netip.AddrPort
	// Remote is the peer's address and port (unspecified for a listener).
	Remote netip.AddrPort
	// State is the kernel's TCP state number.
	State uint8
}

// ParseSockets reads the socket table format of /proc/net/tcp and /proc/net/tcp6: a
// header line, then one socket per line with hex addresses in the kernel's byte order.
func ParseSockets(r io.Reader) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		local, err := parseHexAddrPort(fields[1])
		if err != nil {
			return nil, fmt.Errorf("reading local address %q: %w", fields[1], err)
		}
		remote, err := parseHexAddrPort(fields[2])
		if err != nil {
			return nil, fmt.Errorf("reading remote address %q: %w", fields[2], err)
		}
		state, err := strconv.ParseUint(fields[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("reading socket state %q: %w", fields[3], err)
		}
		out = append(out, Socket{Local: local, Remote: remote, State: uint8(state)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading socket table: %w", err)
	}
	return out, nil
}

// parseHexAddrPort reads "0100007F:0050": the address as 32-bit words each in host
// (little-endian on every platform the agent ships for) order, the port big-endian hex.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	addrHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, errors.New("no port separator")
	}
	raw, err := hex.DecodeString(addrHex)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("decoding address: %w", err)
	}
	if len(raw) != 4 && len(raw) != 16 {
		return netip.AddrPort{}, fmt.Errorf("address of %d bytes", len(raw))
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("decoding port: %w", err)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// Connections gives the established connections of one namespace's socket table, each
// once and in client-to-server direction: a socket whose local port has a listener is the
// server's end. Both ends in the same namespace give the same connection, once.
func Connections(sockets []Socket) []observation.Connection {
	listening := map[uint16]bool{}
	for _, s := range sockets {
		if s.State == tcpListen {
			listening[s.Local.Port()] = true
		}
	}
	seen := map[[2]netip.AddrPort]bool{}
	var out []observation.Connection
	for _, s := range sockets {
		if s.State != tcpEstablished {
			continue
		}
		client, server := s.Local, s.Remote
		if listening[s.Local.Port()] && !listening[s.Remote.Port()] {
			client, server = s.Remote, s.Local
		}
		key := [2]netip.AddrPort{client, server}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, observation.Connection{
			SrcIP: client.Addr(), SrcPort: client.Port(), DstIP: server.Addr(), DstPort: server.Port(),
			Protocol: observation.ProtocolTCP, Source: observation.SourceSocketScan,
		})
	}
	return out
}

// Scanner finds established TCP connections in every network namespace that has a
// process on the node, reading each namespace's table once per scan however many
// processes share it.
type Scanner struct {
	// Proc is the procfs mount, /proc unless a test says otherwise; the agent needs the
	// host's (hostPID) to see pods' namespaces.
	Proc string
	// Node is written into every observation.
	Node string
}

// ScanResult is what a scan found.
type ScanResult struct {
	// Connections are the established connections of every namespace read.
	Connections []observation.Connection
	// NetNS maps each address a namespace read holds to its inode; 0 for an address
	// several namespaces hold.
	NetNS map[netip.Addr]uint64
}

// Scan reads the socket tables and addresses now. A process that exits during the scan
// is not an error: its namespace is read through another process or on the next scan.
// Processes the agent may not inspect are skipped and reported in the error, which then
// comes with what the namespaces it could read hold.
func (s Scanner) Scan(now time.Time) (ScanResult, error) {
	res := ScanResult{NetNS: netnsByAddr{}}
	entries, err := os.ReadDir(s.Proc)
	if err != nil {
		return res, fmt.Errorf("listing processes in %s: %w", s.Proc, err)
	}
	done := map[uint64]bool{}
	denied := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(s.Proc, e.Name())
		fi, err := os.Stat(filepath.Join(dir, "ns", "net"))
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				denied++
			}
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || done[st.Ino] {
			continue
		}
		var sockets []Socket
		var addrs []netip.Addr
		complete := true
		for _, table := range []string{"tcp", "tcp6", "fib_trie", "if_inet6"} {
			var err error
			switch path := filepath.Join(dir, "net", table); table {
			case "tcp", "tcp6":
				var got []Socket
				got, err = readTable(path, ParseSockets)
				sockets = append(sockets, got...)
			case "fib_trie":
				var got []netip.Addr
				got, err = readTable(path, ParseLocalIPv4)
				addrs = append(addrs, got...)
			case "if_inet6":
				var got []netip.Addr
				got, err = readTable(path, ParseLocalIPv6)
				addrs = append(addrs, got...)
			}
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
					complete = false
					break
				}
				return res, err
			}
		}
		if !complete {
			continue
		}
		done[st.Ino] = true
		for _, c := range Connections(sockets) {
			c.Time, c.Node, c.NetNS = now, s.Node, st.Ino
			res.Connections = append(res.Connections, c)
		}
		netnsByAddr(res.NetNS).add(st.Ino, addrs)
	}
	if denied > 0 {
		// Without ptrace read access the kernel hides which namespace a process is in.
		return res, fmt.Errorf("%d processes' network namespaces were unreadable (the agent needs CAP_SYS_PTRACE): %w", denied, fs.ErrPermission)
	}
	return res, nil
}

// readTable reads one table of a namespace's /proc/<pid>/net. A namespace without IPv6
// has no tcp6 or if_inet6 file.
func readTable[T any](path string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		if base := filepath.Base(path); errors.Is(err, fs.ErrNotExist) && (base == "tcp6" || base == "if_inet6") {
			return nil, nil
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	rows, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return rows, nil
}
