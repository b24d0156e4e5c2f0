// Package netnode builds, for tests and the mapper demo, a small node out of Linux network namespaces: a
// node namespace with a bridge, and pod namespaces attached to it by veth pairs, each
// with an IPv4 and an IPv6 address and a long-running process (like a pod's pause
// container) so the pod's namespace is visible under /proc. Everything it creates is
// removed when the test ends, whether it passed or not.
package netnode

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/intentguard/intentguard/internal/netns"
)

// T is what building a node needs of its caller: a test's testing.TB, or a program's
// stand-in that runs the cleanups when it ends (the mapper demo's).
type T interface {
	Helper()
	Cleanup(func())
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
}

// nodes numbers the nodes of one test process, so names never collide.
var nodes atomic.Int64

// Namespace is a named network namespace the test created.
type Namespace struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// Path is the namespace's file, for netns.Do.
	Path string
}

// Node is a network namespace that bridges its pods' traffic, as a node's host namespace
// does for pods on a bridge CNI.
type Node struct {
	Namespace
	// Subnet4 and Subnet6 hold every pod address; a pod gets host number 1, 2, ...
	Subnet4, Subnet6 netip.Prefix
	// IPv4 is the node's own address on the bridge, host number 254 of Subnet4, for
	// servers the node runs (as hostNetwork pods do).
	IPv4 netip.Addr
	pods int
}

// Pod is a network namespace with one interface, eth0, on the node's bridge.
type Pod struct {
	Namespace
	// IPv4 and IPv6 are the pod's addresses.
	IPv4, IPv6 netip.Addr
	// PID is the pod's long-running process.
	PID int
}

// Require fails the test (under CI=true) or skips it when network namespaces cannot be
// created here: that needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
func Require(t T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "not root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		reason = "iproute2's ip command is missing"
	} else {
		name := fmt.Sprintf("ig-probe-%d", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			reason = fmt.Sprintf("ip netns add: %v: %s", err, out)
		} else if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Fatalf("removing probe namespace %s: %v: %s", name, err, out)
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("network namespaces are required under CI=true: %s", reason)
	}
	t.Skipf("network namespaces unavailable: %s", reason)
}

// New creates a node namespace with a bridge. subnet4 and subnet6 are the pods' networks
// (for example 10.77.0.0/24 and fd77::/64); they exist only inside the namespaces.
func New(t T, subnet4, subnet6 string) *Node {
	t.Helper()
	Require(t)
	removeStale(t)
	n := &Node{
		Namespace: newNamespace(t, fmt.Sprintf("ig-%d-%d", os.Getpid(), nodes.Add(1))),
		Subnet4:   netip.MustParsePrefix(subnet4),
		Subnet6:   netip.MustParsePrefix(subnet6),
	}
	if n.Subnet4.Bits() > 24 {
		t.Fatalf("subnet %s: the node needs a /24 or larger", subnet4)
	}
	n.IPv4 = nth(n.Subnet4, 254)
	run(t, "ip", "-n", n.Name, "link", "set", "lo", "up")
	run(t, "ip", "-n", n.Name, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", n.Name, "addr", "add", fmt.Sprintf("%s/%d", n.IPv4, n.Subnet4.Bits()), "dev", "br0")
	run(t, "ip", "-n", n.Name, "link", "set", "br0", "up")
	return n
}

// AddPod creates a pod namespace with the next addresses of the node's subnets, attached
// to the bridge, and starts its long-running process.
func (n *Node) AddPod(t T) *Pod {
	t.Helper()
	n.pods++
	p := &Pod{
		Namespace: newNamespace(t, fmt.Sprintf("%s-p%d", n.Name, n.pods)),
		IPv4:      nth(n.Subnet4, n.pods),
		IPv6:      nth(n.Subnet6, n.pods),
	}
	host := fmt.Sprintf("veth%d", n.pods)
	// Created inside the node namespace, the veth's names cannot collide with the host's.
	run(t, "ip", "-n", n.Name, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", p.Name)
	run(t, "ip", "-n", n.Name, "link", "set", host, "master", "br0", "up")
	run(t, "ip", "-n", p.Name, "link", "set", "lo", "up")
	run(t, "ip", "-n", p.Name, "addr", "add", fmt.Sprintf("%s/%d", p.IPv4, n.Subnet4.Bits()), "dev", "eth0")
	// nodad: the address is usable at once instead of after duplicate address detection.
	run(t, "ip", "-n", p.Name, "addr", "add", fmt.Sprintf("%s/%d", p.IPv6, n.Subnet6.Bits()), "dev", "eth0", "nodad")
	run(t, "ip", "-n", p.Name, "link", "set", "eth0", "up")
	pause := exec.Command("ip", "netns", "exec", p.Name, "sleep", "3600")
	if err := pause.Start(); err != nil {
		t.Fatalf("starting the process of pod %s: %v", p.Name, err)
	}
	p.PID = pause.Process.Pid
	t.Cleanup(func() {
		_ = pause.Process.Kill()
		_ = pause.Wait()
	})
	// ip netns exec becomes sleep by exec; wait until it is in the pod's namespace.
	want := netNSIno(t, p.Path)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ino, err := inode(fmt.Sprintf("/proc/%d/ns/net", p.PID)); err == nil && ino == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process of pod %s did not enter its namespace", p.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// NetNSInode is the inode that identifies the pod's network namespace.
func (p *Pod) NetNSInode(t T) uint64 {
	t.Helper()
	return netNSIno(t, p.Path)
}

// Listen opens a listener inside the namespace.
func (ns *Namespace) Listen(t T, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns.Path, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// ListenPacket opens a packet listener inside the namespace.
func (ns *Namespace) ListenPacket(t T, network, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := netns.Do(ns.Path, func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// Dial connects from inside the namespace.
func (ns *Namespace) Dial(t T, network, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := netns.Do(ns.Path, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dialling %s %s from %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// removeStale deletes the namespaces of test processes that were killed before their
// cleanup ran (a timeout, a signal): names carry the creating process's id.
func removeStale(t T) {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return // no namespace was ever named here
	}
	for _, e := range entries {
		fields := strings.SplitN(e.Name(), "-", 3)
		if len(fields) < 3 || fields[0] != "ig" {
			continue
		}
		pid, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			t.Logf("removing stale network namespace %s: %v: %s", e.Name(), err, out)
		}
	}
}

// newNamespace creates a named namespace and removes it (with the interfaces in it) when
// the test ends.
func newNamespace(t T, name string) Namespace {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("removing network namespace %s: %v: %s", name, err, out)
		}
	})
	return Namespace{Name: name, Path: filepath.Join("/run/netns", name)}
}

func run(t T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func netNSIno(t T, path string) uint64 {
	t.Helper()
	ino, err := inode(path)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// nth is the address with host number i in prefix.
func nth(prefix netip.Prefix, i int) netip.Addr {
	a := prefix.Masked().Addr()
	for range i {
		a = a.Next()
	}
	return a
}

// ServeEcho accepts connections on ln, and sends back what each sends, until ln is
// closed: a server the pods' calls reach.
func ServeEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// Ping sends a byte on c and reads it back: one round trip of a call.
func Ping(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte{1}); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}
