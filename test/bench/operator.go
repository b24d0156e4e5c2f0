package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"

	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// clientLimit is the operator's client-side rate limit towards the API server.
type clientLimit struct {
	QPS   float64 `json:"qps"`
	Burst int     `json:"burst"`
	// Override is set when the limit was given on the bench's command line rather than
	// read from the binary's defaults.
	Override bool `json:"override,omitempty"`
}

// flagDefault matches one flag's line pair in Go's flag usage output, capturing its default.
func flagDefault(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + ` \w+\n\s+.*?(?:\(default ([^)]*)\))?$`)
}

// shippedLimit asks the operator binary for the defaults of its client-limit flags, so
// that the bench measures the limit a user gets without passing any flag, whatever the
// binary ships. A flag without a printed default has the zero value.
func shippedLimit(bin string) (clientLimit, error) {
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero by design
	return parseLimit(out)
}

// parseLimit reads the client-limit flag defaults from the binary's usage output.
func parseLimit(usage []byte) (clientLimit, error) {
	var l clientLimit
	for _, f := range []struct {
		name string
		set  func(string) error
	}{
		{"kube-api-qps", func(s string) (err error) { l.QPS, err = strconv.ParseFloat(s, 64); return err }},
		{"kube-api-burst", func(s string) (err error) { l.Burst, err = strconv.Atoi(s); return err }},
	} {
		m := flagDefault(f.name).FindSubmatch(usage)
		if m == nil {
			return l, fmt.Errorf("the operator's usage has no -%s flag", f.name)
		}
		if len(bytes.TrimSpace(m[1])) == 0 {
			continue
		}
		if err := f.set(string(m[1])); err != nil {
			return l, fmt.Errorf("reading the default of -%s: %w", f.name, err)
		}
	}
	return l, nil
}

// startOperator runs the intents-operator binary against the local control plane as a
// user runs it: its client limit is passed only when the bench overrides it.
func startOperator(ctx context.Context, bin, kubeconfig string, limit clientLimit, pprofAddr string, logTo *os.File, mesh bool) (*process.Operator, error) {
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--pprof-bind-address=" + pprofAddr,
	}
	if limit.Override {
		args = append(args, fmt.Sprintf("--kube-api-qps=%g", limit.QPS), fmt.Sprintf("--kube-api-burst=%d", limit.Burst))
	}
	if mesh {
		// No istiod runs: the trust domain is given.
		args = append(args, "--istio-authorization-policies", "--istio-trust-domain=bench.example")
	}
	cmd := exec.Command(bin, args...)
	// As the chart does through the downward API: the operator's own namespace, where it
	// keeps the records of the Kafka ACLs it creates.
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=kube-system")
	cmd.Stdout, cmd.Stderr = logTo, logTo
	return process.StartOperator(ctx, cmd)
}

// requests counts the operator's API requests so far by method and response code.
func requests(s process.Sample) map[string]float64 {
	out := map[string]float64{}
	for _, m := range s.Metrics {
		if m.Name == "rest_client_requests_total" {
			out[m.Labels] += m.Value
		}
	}
	return out
}
