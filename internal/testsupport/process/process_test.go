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

func TestParseCPUTime(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		fail       bool
	}{
		{name: "plain", stat: "4242 (intents-operat) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 12 0 100 0 0", want: 2870 * time.Millisecond},
		{name: "spaces and parentheses in the name", stat: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0", want: 30 * time.Millisecond},
		{name: "no name", stat: "7 a R 1", fail: true},
		{name: "truncated", stat: "7 (a) R 1 7 7", fail: true},
		{name: "not a number", stat: "7 (a) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUTime(tc.stat)
			if (err != nil) != tc.fail {
				t.Fatalf("error %v, want failure %v", err, tc.fail)
			}
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// A busy process's CPU time grows, and is read from its /proc entry.
func TestCPUTimeGrows(t *testing.T) {
	p, err := Start(exec.Command("sh", "-c", "while :; do :; done"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		cpu, err := p.CPUTime()
		if err != nil {
			t.Fatal(err)
		}
		if cpu >= 100*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a busy loop used %s of CPU in 20 s", cpu)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The harness's own peak RSS is read, and grows with what it holds.
func TestSelfPeakRSS(t *testing.T) {
	before, err := SelfPeakRSS()
	if err != nil || before <= 0 {
		t.Fatalf("own peak RSS: %d, %v", before, err)
	}
	held := make([]byte, 64<<20)
	for i := range held {
		held[i] = 1
	}
	after, err := SelfPeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if after < before+32<<20 {
		t.Fatalf("peak RSS %d after touching 64 MiB, %d before", after, before)
	}
	_ = held[len(held)-1]
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
