package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
)

// operatorProcess is the intents-operator binary running against the local control plane,
// observed through its own Prometheus metrics and /proc.
type operatorProcess struct {
	cmd     *exec.Cmd
	metrics string
	done    chan error
}

func buildOperator(dir string) (string, error) {
	bin := filepath.Join(dir, "intents-operator")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/intents-operator")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the operator: %w", err)
	}
	return bin, nil
}

func startOperator(ctx context.Context, bin, kubeconfig string, qps, burst int, pprofAddr string, logTo *os.File) (*operatorProcess, error) {
	mport, err := controlplane.FreePort()
	if err != nil {
		return nil, err
	}
	pport, err := controlplane.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+kubeconfig,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", mport),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", pport),
		fmt.Sprintf("--kube-api-qps=%d", qps),
		fmt.Sprintf("--kube-api-burst=%d", burst),
		"--pprof-bind-address="+pprofAddr,
	)
	// As the chart does through the downward API: the operator's own namespace, where it
	// keeps the records of the Kafka ACLs it creates.
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=kube-system")
	cmd.Stdout, cmd.Stderr = logTo, logTo
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the operator: %w", err)
	}
	p := &operatorProcess{cmd: cmd, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", pport)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("operator exited during start-up: %v", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.stop()
	return nil, fmt.Errorf("operator not ready after a minute")
}

func (p *operatorProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// sample is what the operator's metrics say at one moment.
type sample struct {
	writes     float64 // API requests other than GET (create, update, patch, delete)
	queueDepth float64
	reconciles float64
	heapBytes  float64
	// requests counts the operator's API requests by method and response code.
	requests map[string]float64
}

func (p *operatorProcess) sample() (sample, error) {
	resp, err := http.Get(p.metrics)
	if err != nil {
		return sample{}, fmt.Errorf("scraping operator metrics: %w", err)
	}
	defer resp.Body.Close()
	s := sample{requests: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, value, ok := parseMetric(line)
		if !ok {
			continue
		}
		switch name {
		case "rest_client_requests_total":
			if !strings.Contains(labels, `method="GET"`) {
				s.writes += value
			}
			s.requests[labels] += value
		case "workqueue_depth":
			s.queueDepth += value
		case "controller_runtime_reconcile_total":
			s.reconciles += value
		case "go_memstats_heap_inuse_bytes":
			s.heapBytes = value
		}
	}
	return s, sc.Err()
}

func parseMetric(line string) (name, labels string, value float64, ok bool) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", "", 0, false
	}
	head := line[:sp]
	if i := strings.IndexByte(head, '{'); i >= 0 {
		return head[:i], head[i:], v, true
	}
	return head, "", v, true
}

// quiesce waits until the operator's queues are empty and it has made no write for the
// given quiet period, and returns the last sample.
func (p *operatorProcess) quiesce(ctx context.Context, quiet time.Duration) (sample, error) {
	last, err := p.sample()
	if err != nil {
		return last, err
	}
	stableSince := time.Now()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		s, err := p.sample()
		if err != nil {
			return last, err
		}
		if s.writes != last.writes || s.queueDepth > 0 || s.reconciles != last.reconciles {
			stableSince = time.Now()
		}
		last = s
		if time.Since(stableSince) >= quiet {
			return last, nil
		}
	}
}

// peakRSS returns the process's peak resident set size in bytes (VmHWM).
func (p *operatorProcess) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
}
