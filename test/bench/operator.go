package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// startOperator runs the intents-operator binary against the local control plane.
func startOperator(ctx context.Context, bin, kubeconfig string, qps, burst int, pprofAddr string, logTo *os.File, mesh bool) (*process.Operator, error) {
	args := []string{
		"--kubeconfig=" + kubeconfig,
		fmt.Sprintf("--kube-api-qps=%d", qps),
		fmt.Sprintf("--kube-api-burst=%d", burst),
		"--pprof-bind-address=" + pprofAddr,
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
