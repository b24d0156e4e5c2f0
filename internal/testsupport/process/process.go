// Package process runs the binaries behind the tests, benchmarks and demo as child
// processes: kube-controller-manager, spire-server and the operators themselves. It
// starts them, notices when one exits early, stops them politely before killing them,
// and finds or builds them through the checkout's hack scripts.
package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a started child process.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// Start starts cmd and watches for its exit.
func Start(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", filepath.Base(cmd.Path), err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit status, once Exited is closed.
func (p *Process) Err() error {
	<-p.exited
	return p.err
}

// Stop sends SIGTERM, as the kubelet does, and kills the process if it has not exited
// after grace; it returns once the process is gone.
func (p *Process) Stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM), which stays
// readable until the process is stopped.
func (p *Process) PeakRSS() (int64, error) {
	return peakRSS(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
}

// SelfPeakRSS returns the calling process's own peak resident set size in bytes, so that
// a harness can show it stays small beside what it measures.
func SelfPeakRSS() (int64, error) { return peakRSS("/proc/self/status") }

// peakRSS reads VmHWM from a /proc/<pid>/status file.
func peakRSS(status string) (int64, error) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, fmt.Errorf("reading the peak memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in %s", status)
}

// clockTicks is the kernel's USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// CPUTime returns the CPU time the process has used so far, user and system (utime and
// stime from /proc/<pid>/stat), readable until the process is stopped.
func (p *Process) CPUTime() (time.Duration, error) {
	return CPUTimeOf(p.cmd.Process.Pid)
}

// CPUTimeOf returns the CPU time, user and system, that the process pid has used so far.
func CPUTimeOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	return parseCPUTime(string(b))
}

// parseCPUTime reads utime and stime from the contents of a /proc/<pid>/stat file. The
// command name in parentheses may hold spaces and parentheses itself, so the fields are
// counted from the last closing parenthesis.
func parseCPUTime(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	// After the name: state (field 3) ... utime (14), stime (15).
	f := strings.Fields(stat[end+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("too few fields in %q", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading CPU ticks %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// FreePort returns a TCP port on the loopback interface that nothing listens on.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// BinDir returns the directory that the environment variable env names; when it is not
// set, it runs the checkout's script (found by walking up from the working directory),
// which builds the binaries once, caches them and prints their directory, and remembers
// that directory in env for the rest of the process.
func BinDir(ctx context.Context, env, script string) (string, error) {
	if dir := os.Getenv(env); dir != "" {
		return dir, nil
	}
	path, err := findUp(script)
	if err != nil {
		return "", fmt.Errorf("%s is not set and %w", env, err)
	}
	cmd := exec.CommandContext(ctx, "bash", path)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building binaries with %s: %w", path, err)
	}
	dir := strings.TrimSpace(string(out))
	_ = os.Setenv(env, dir)
	return dir, nil
}

// findUp walks up from the working directory to the file at rel.
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New(rel + " was not found above the working directory")
		}
		dir = parent
	}
}
