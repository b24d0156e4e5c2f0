package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intentguard/intentguard/internal/mapper/agent"
	"github.com/intentguard/intentguard/internal/mapper/observation"
	"github.com/intentguard/intentguard/internal/testsupport/netnode"
)

// batchLog records the batches an agent posts.
type batchLog struct {
	mu    sync.Mutex
	conns []observation.Connection
}

func (l *batchLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b observation.Batch
	if r.URL.Path != agent.BatchPath || json.NewDecoder(r.Body).Decode(&b) != nil {
		http.Error(w, "not a batch", http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns = append(l.conns, b.Connections...)
}

// has says whether a connection from client to server was reported by source.
func (l *batchLog) has(client, server netip.AddrPort, source observation.Source) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		if c.SrcIP == client.Addr() && c.SrcPort == client.Port() && c.DstIP == server.Addr() &&
			c.DstPort == server.Port() && c.Source == source {
			return true
		}
	}
	return false
}

// syncBuffer is the agent's output, read by the test while the process writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func addrPort(a net.Addr) netip.AddrPort { return netip.MustParseAddrPort(a.String()) }

// TestAgentRunsWithTheDocumentedCapabilitiesOnly runs the mapper-agent binary in a test
// node's namespace as an unprivileged user with only NET_RAW and SYS_PTRACE, as the
// chart will: it must see a new connection's SYN and find an older one by the socket
// scan. Without SYS_PTRACE the scan must find nothing and say why; without NET_RAW the
// agent must not start.
func TestAgentRunsWithTheDocumentedCapabilitiesOnly(t *testing.T) {
	node := netnode.New(t, "10.78.0.0/24", "fd78::/64")
	if _, err := exec.LookPath("setpriv"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setpriv (util-linux) is required under CI=true")
		}
		t.Skip("setpriv (util-linux) is missing")
	}
	client, server := node.AddPod(t), node.AddPod(t)
	for _, port := range []uint16{7000, 7001} {
		ln := server.Listen(t, "tcp", netip.AddrPortFrom(server.IPv4, port).String())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c) }()
			}
		}()
	}
	old := client.Dial(t, "tcp", netip.AddrPortFrom(server.IPv4, 7000).String())

	// The binary must be reachable by the unprivileged user.
	dir, err := os.MkdirTemp("", "mapper-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mapper-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building mapper-agent: %v: %s", err, out)
	}

	run := func(t *testing.T, caps string) (*batchLog, *syncBuffer, func() (bool, error)) {
		log := &batchLog{}
		ln := node.Listen(t, "tcp", netip.AddrPortFrom(node.IPv4, 0).String())
		srv := &http.Server{Handler: log, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		capList := "-all"
		if caps != "" {
			capList += "," + caps
		}
		cmd := exec.Command("ip", "netns", "exec", node.Name,
			"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps="+capList, "--ambient-caps="+capList, "--bounding-set="+capList,
			bin, "--node=node-1", "--aggregator-url=http://"+ln.Addr().String(),
			"--flush-interval=200ms", "--scan-interval=500ms")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting mapper-agent: %v", err)
		}
		// exited is closed once the process is gone; exitErr is its result then.
		exited := make(chan struct{})
		var exitErr error
		go func() { exitErr = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		return log, &out, func() (bool, error) {
			select {
			case <-exited:
				return true, exitErr
			case <-time.After(15 * time.Second):
				return false, nil
			}
		}
	}
	waitFor := func(cond func() bool) bool {
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if cond() {
				return true
			}
		}
		return false
	}

	t.Run("NET_RAW and SYS_PTRACE", func(t *testing.T) {
		log, out, _ := run(t, "+net_raw,+sys_ptrace")
		// The capture is open once the startup scan has reported the old connection.
		if !waitFor(func() bool {
			return log.has(addrPort(old.LocalAddr()), addrPort(old.RemoteAddr()), observation.SourceSocketScan)
		}) {
			t.Fatalf("the connection opened before the agent was not reported by the socket scan; agent output:\n%s", out)
		}
		fresh := client.Dial(t, "tcp", netip.AddrPortFrom(server.IPv4, 7001).String())
		if !waitFor(func() bool {
			return log.has(addrPort(fresh.LocalAddr()), addrPort(fresh.RemoteAddr()), observation.SourceSYN)
		}) {
			t.Fatalf("the new connection's SYN was not reported; agent output:\n%s", out)
		}
	})
	t.Run("without SYS_PTRACE the scan says what it lacks", func(t *testing.T) {
		log, out, _ := run(t, "+net_raw")
		if !waitFor(func() bool { return strings.Contains(out.String(), "CAP_SYS_PTRACE") }) {
			t.Fatalf("the agent did not report the missing capability; output:\n%s", out)
		}
		if log.has(addrPort(old.LocalAddr()), addrPort(old.RemoteAddr()), observation.SourceSocketScan) {
			t.Error("the pods' socket tables were read without SYS_PTRACE: the documented capability is not needed")
		}
	})
	t.Run("without NET_RAW the agent does not start", func(t *testing.T) {
		_, out, wait := run(t, "+sys_ptrace")
		exited, err := wait()
		if !exited {
			t.Fatalf("the agent kept running without NET_RAW; output:\n%s", out)
		}
		if err == nil || !strings.Contains(out.String(), "operation not permitted") {
			t.Errorf("exit %v, output:\n%s", err, out)
		}
	})
}
