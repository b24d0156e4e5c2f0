package process

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// A process that ends on SIGTERM is stopped without waiting out the grace period.
func TestStopTerminates(t *testing.T) {
	p, err := Start(exec.Command("sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	rss, err := p.PeakRSS()
	if err != nil || rss <= 0 {
		t.Fatalf("peak RSS of a running process: %d, %v", rss, err)
	}
	start := time.Now()
	p.Stop(time.Minute)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("stopping took %s", took)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	if p.Err() == nil {
		t.Fatal("a process ended by SIGTERM reports no error")
	}
}

// A process that ignores SIGTERM is killed once the grace period is over.
func TestStopKillsAfterGrace(t *testing.T) {
	cmd := exec.Command("sh", "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The shell says ready once its trap is set.
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("reading the shell's output: %q, %v", line, err)
	}
	start := time.Now()
	p.Stop(500 * time.Millisecond)
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("a process ignoring SIGTERM stopped after %s, before the grace period", took)
	}
	<-p.Exited()
}

// An early exit is seen, with its status.
func TestExited(t *testing.T) {
	p, err := Start(exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the exit was not seen")
	}
	if ee, ok := p.Err().(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit status %v, want 3", p.Err())
	}
}

func TestFreePortIsFree(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("listening on the free port %d: %v", port, err)
	}
	l.Close()
}
