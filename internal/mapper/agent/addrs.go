package agent

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// ParseLocalIPv4 reads a /proc/net/fib_trie: the addresses its Local table marks as the
// namespace's own ("/32 host LOCAL" under the address's "|--" line), loopback ones left
// out. An address appears there once per table that holds it; it is returned once.
func ParseLocalIPv4(r io.Reader) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	var last netip.Addr
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "|-- "); ok {
			last, _ = netip.ParseAddr(a)
			continue
		}
		if strings.HasPrefix(line, "/32 host LOCAL") && last.IsValid() && !last.IsLoopback() && !seen[last] {
			seen[last] = true
			out = append(out, last)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading fib_trie: %w", err)
	}
	return out, nil
}

// ParseLocalIPv6 reads a /proc/net/if_inet6: the namespace's global IPv6 addresses, one
// per line as 32 hex digits in network order followed by the interface index, prefix
// length, scope and flags. Loopback and link-local addresses, which every namespace may
// hold alike, are left out.
func ParseLocalIPv6(r io.Reader) ([]netip.Addr, error) {
	var out []netip.Addr
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		raw, err := hex.DecodeString(fields[0])
		if err != nil || len(raw) != 16 {
			return nil, fmt.Errorf("reading if_inet6 address %q: not 32 hex digits", fields[0])
		}
		a := netip.AddrFrom16([16]byte(raw))
		if a.IsLoopback() || a.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading if_inet6: %w", err)
	}
	return out, nil
}

// netnsByAddr maps addresses to the network namespace holding them, leaving out an
// address more than one namespace holds: which one a DNS answer went to is unknown.
type netnsByAddr map[netip.Addr]uint64

// add records that the namespace ino holds addrs.
func (m netnsByAddr) add(ino uint64, addrs []netip.Addr) {
	for _, a := range addrs {
		if held, ok := m[a]; ok && held != ino {
			m[a] = 0
			continue
		}
		m[a] = ino
	}
}
