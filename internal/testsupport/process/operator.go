package process

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// StopGrace is how long an operator has to shut down before it is killed.
const StopGrace = 15 * time.Second

// Build compiles the main package pkg (as "./cmd/intents-operator", relative to the
// working directory) into the binary out.
func Build(pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	return nil
}

// Operator is an operator binary running as a process, observed through its Prometheus
// metrics and /proc.
type Operator struct {
	*Process
	metrics string
}

// StartOperator adds metrics and health-probe addresses on free loopback ports to cmd's
// flags, starts it, and waits up to a minute until the operator reports ready.
func StartOperator(ctx context.Context, cmd *exec.Cmd) (*Operator, error) {
	mport, err := FreePort()
	if err != nil {
		return nil, err
	}
	pport, err := FreePort()
	if err != nil {
		return nil, err
	}
	cmd.Args = append(cmd.Args, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", mport), fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", pport))
	p, err := Start(cmd)
	if err != nil {
		return nil, err
	}
	op := &Operator{Process: p, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)}
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", pport)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return op, nil
			}
		}
		select {
		case <-p.Exited():
			return nil, fmt.Errorf("operator exited during start-up: %v", p.Err())
		case <-ctx.Done():
			op.Stop(StopGrace)
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	op.Stop(StopGrace)
	return nil, fmt.Errorf("operator not ready after a minute")
}

// Sample is what the operator's metrics say at one moment.
type Sample struct {
	// Writes counts the API requests other than GET (create, update, patch, delete).
	Writes     float64
	Reconciles float64
	QueueDepth float64
	HeapBytes  float64
	// Metrics holds every sample line, for the figures one benchmark reads alone.
	Metrics []Metric
}

// Sample scrapes the operator's metrics.
func (o *Operator) Sample() (Sample, error) {
	resp, err := http.Get(o.metrics)
	if err != nil {
		return Sample{}, fmt.Errorf("scraping operator metrics: %w", err)
	}
	defer resp.Body.Close()
	metrics, err := ParseMetrics(resp.Body)
	if err != nil {
		return Sample{}, fmt.Errorf("reading operator metrics: %w", err)
	}
	s := Sample{Metrics: metrics}
	for _, m := range metrics {
		switch m.Name {
		case "rest_client_requests_total":
			if !strings.Contains(m.Labels, `method="GET"`) {
				s.Writes += m.Value
			}
		case "workqueue_depth":
			s.QueueDepth += m.Value
		case "controller_runtime_reconcile_total":
			s.Reconciles += m.Value
		case "go_memstats_heap_inuse_bytes":
			s.HeapBytes = m.Value
		}
	}
	return s, nil
}

// Quiesce samples the operator every 100 ms until, for the quiet period, it made no
// write, reconciled nothing and had nothing queued, and returns the last sample. With
// started set, a sample from before the operator's first reconcile never counts as
// quiet: an operator that has not begun is not done.
func (o *Operator) Quiesce(ctx context.Context, quiet time.Duration, started bool) (Sample, error) {
	last, err := o.Sample()
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
		s, err := o.Sample()
		if err != nil {
			return last, err
		}
		if s.Writes != last.Writes || s.QueueDepth > 0 || s.Reconciles != last.Reconciles || (started && s.Reconciles == 0) {
			stableSince = time.Now()
		}
		last = s
		if time.Since(stableSince) >= quiet {
			return last, nil
		}
	}
}
