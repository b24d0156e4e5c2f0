package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intentguard/intentguard/internal/cli/output"
)

const (
	tutorialCluster = "testdata/tutorial/cluster.yaml"
	tutorialIntents = "testdata/tutorial/intents"
	tutorialChange  = "testdata/tutorial/change"
	kafkaDir        = "testdata/kafka"
	namedCluster    = "testdata/namedport/cluster.yaml"
	namedIntents    = "testdata/namedport/intents"
)

// TestAnalysisCommandsGolden runs plan, explain and graph in every output format on the
// tutorial and the Kafka example, and compares what they print with the golden files
// (go test ./cmd/intentguard -update rewrites them).
func TestAnalysisCommandsGolden(t *testing.T) {
	tutorial := []string{"--snapshot", tutorialCluster, "--dir", tutorialIntents}
	changed := []string{"--snapshot", tutorialCluster, "--dir", tutorialChange}
	planArgs := []string{"plan", "--snapshot", tutorialCluster, "--base", tutorialIntents, "--dir", tutorialChange}
	kafka := []string{"--dir", kafkaDir}
	mesh := []string{"--istio", "--dir", "testdata/istio/cluster.yaml", "--dir", "testdata/istio/intents.yaml"}
	named := []string{"--snapshot", namedCluster, "--dir", namedIntents}
	// The cluster runs the change; the pull request goes back to the tutorial's files,
	// deleting client-other's ClientIntents.
	revert := []string{"plan", "--snapshot", tutorialCluster, "--snapshot", tutorialChange, "--dir", tutorialIntents}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"plan.txt", planArgs, 0},
		{"plan.json", append(planArgs, "-o", "json"), 0},
		{"plan.md", append(planArgs, "-o", "markdown"), 0},
		{"plan-unchanged.txt", []string{"plan", "--snapshot", tutorialCluster, "--base", tutorialIntents, "--dir", tutorialIntents}, 0},
		{"plan-from-nothing.txt", []string{"plan", "--snapshot", tutorialCluster, "--dir", tutorialIntents}, 0},
		{"plan-fail-on-removed.txt", append(planArgs, "--fail-on", "removed"), output.ExitRefused},
		{"plan-fail-on-added.txt", []string{"plan", "--snapshot", tutorialCluster, "--base", tutorialIntents, "--dir", tutorialIntents, "--fail-on", "added"}, 0},
		{"plan-expect-holds.txt", []string{"plan", "--snapshot", tutorialCluster, "--dir", tutorialIntents, "--expect", "testdata/tutorial/expect.yaml"}, 0},
		{"plan-expect-fails.txt", append(planArgs, "--expect", "testdata/tutorial/expect.yaml"), output.ExitFindings},
		{"plan-expect-fails.md", append(planArgs, "--expect", "testdata/tutorial/expect.yaml", "-o", "markdown"), output.ExitFindings},
		{"validate-expect-holds.txt", []string{"validate", "--expect", "testdata/tutorial/expect.yaml", "--snapshot", tutorialCluster, tutorialIntents}, 0},
		{"validate-expect-fails.txt", []string{"validate", "--expect", "testdata/tutorial/expect.yaml", "--snapshot", tutorialCluster, tutorialChange}, output.ExitFindings},
		{"plan-kafka.txt", []string{"plan", "--dir", kafkaDir}, 0},
		{"plan-without-prune.txt", revert, 0},
		{"plan-prune.txt", append(revert, "--prune"), 0},
		{"plan-prune.json", append(revert, "--prune", "-o", "json"), 0},
		{"plan-prune.md", append(revert, "--prune", "-o", "markdown"), 0},
		{"plan-prune-base.txt", append(revert, "--prune", "--base", tutorialChange), 0},
		{"plan-prune-unmentioned-namespace.txt", []string{"plan", "--snapshot", kafkaDir, "--dir", tutorialIntents, "--prune"}, 0},
		{"plan-prune-namespace.txt", []string{"plan", "--snapshot", kafkaDir, "--dir", tutorialIntents, "--prune-namespace", "kafka"}, 0},
		{"explain-allowed.txt", append([]string{"explain", "client.otterize-tutorial-npol", "server.otterize-tutorial-npol"}, tutorial...), 0},
		{"explain-allowed.json", append([]string{"explain", "client.otterize-tutorial-npol", "server.otterize-tutorial-npol", "-o", "json"}, tutorial...), 0},
		{"explain-undeclared.txt", append([]string{"explain", "client-other.otterize-tutorial-npol", "otterize-tutorial-npol/server[Service]"}, tutorial...), 0},
		{"explain-wrong-port.txt", append([]string{"explain", "otterize-tutorial-npol/client[Deployment]", "server.otterize-tutorial-npol", "--port", "9090"}, tutorial...), 0},
		{"explain-default.txt", append([]string{"explain", "server.otterize-tutorial-npol", "client.otterize-tutorial-npol", "--port", "80"}, tutorial...), 0},
		{"explain-shadow.txt", append([]string{"explain", "client-other.otterize-tutorial-npol", "server.otterize-tutorial-npol", "--shadow-mode"}, tutorial...), 0},
		{"explain-port-name.txt", append([]string{"explain", "client.otterize-tutorial-npol", "server.otterize-tutorial-npol", "--port", "http"}, tutorial...), 0},
		{"explain-named-port-number.txt", append([]string{"explain", "client.shop", "web.shop", "--port", "8080"}, named...), 0},
		{"explain-named-port-name.txt", append([]string{"explain", "client.shop", "web.shop", "--port", "TCP/web"}, named...), 0},
		{"explain-named-port-other.txt", append([]string{"explain", "client.shop", "web.shop", "--port", "9090"}, named...), 0},
		{"explain-named-port-udp.txt", append([]string{"explain", "client.shop", "web.shop", "--port", "UDP/8080"}, named...), 0},
		{"plan-named-port.txt", []string{"plan", "--snapshot", namedCluster, "--dir", namedIntents}, 0},
		{"plan-named-port.json", []string{"plan", "--snapshot", namedCluster, "--dir", namedIntents, "-o", "json"}, 0},
		{"validate-expect-named-port.txt", []string{"validate", "--expect", "testdata/namedport/expect.yaml", "--snapshot", namedCluster, namedIntents}, 0},
		{"explain-changed.txt", append([]string{"explain", "client.otterize-tutorial-npol", "server.otterize-tutorial-npol", "--port", "9090"}, changed...), 0},
		{"explain-kafka-allowed.txt", append([]string{"explain", "client.otterize-tutorial-kafka-mtls", "kafka.kafka", "--topic", "mytopic", "--op", "consume"}, kafka...), 0},
		{"explain-kafka-allowed.json", append([]string{"explain", "client.otterize-tutorial-kafka-mtls", "kafka.kafka", "--topic", "mytopic", "--op", "produce", "-o", "json"}, kafka...), 0},
		{"explain-kafka-undeclared.txt", append([]string{"explain", "client-other.otterize-tutorial-kafka-mtls", "kafka.kafka", "--topic", "mytopic", "--op", "produce"}, kafka...), 0},
		{"explain-kafka-other-topic.txt", append([]string{"explain", "client.otterize-tutorial-kafka-mtls", "kafka.kafka", "--topic", "payments", "--op", "consume"}, kafka...), 0},
		{"explain-kafka-kind.txt", append([]string{"explain", "otterize-tutorial-kafka-mtls/client", "kafka/kafka[StatefulSet]", "--topic", "transactions", "--op", "describe"}, kafka...), 0},
		{"plan-istio.txt", []string{"plan", "--istio", "--base", "testdata/istio/cluster.yaml", "--dir", "testdata/istio/cluster.yaml", "--dir", "testdata/istio/intents.yaml"}, 0},
		{"explain-istio-allowed.txt", append([]string{"explain", "client.shop", "nginx.shop"}, mesh...), 0},
		{"explain-istio-undeclared.txt", append([]string{"explain", "other-client.shop", "nginx.shop"}, mesh...), 0},
		{"explain-istio-trust-domain.json", append([]string{"explain", "client.shop", "nginx.shop", "--istio-trust-domain", "td.example", "-o", "json"}, mesh...), 0},
		{"graph.dot", append([]string{"graph"}, changed...), 0},
		{"graph.mmd", append([]string{"graph", "-o", "mermaid"}, changed...), 0},
		{"graph.json", append([]string{"graph", "-o", "json"}, changed...), 0},
		{"graph-kafka.dot", append([]string{"graph"}, kafka...), 0},
		{"graph-kafka.mmd", append([]string{"graph", "-o", "mermaid"}, kafka...), 0},
		{"graph-workload.dot", append([]string{"graph", "--workload", "client-other.otterize-tutorial-npol"}, changed...), 0},
		{"graph-namespace.mmd", append([]string{"graph", "-o", "mermaid", "--namespace", "kafka", "--dir", tutorialIntents, "--snapshot", tutorialCluster}, kafka...), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := intentguard(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			golden(t, filepath.Join("golden", tc.name), out)
		})
	}
}

// TestGraphSVG renders SVG with graphviz when it is installed, and otherwise checks
// that the command says what is missing.
func TestGraphSVG(t *testing.T) {
	code, out, errOut := intentguard(t, "", "graph", "-o", "svg", "--snapshot", tutorialCluster, "--dir", tutorialIntents)
	if _, err := exec.LookPath("dot"); err != nil {
		if code != output.ExitUsage || !strings.Contains(errOut, "apt-get install graphviz") {
			t.Fatalf("without dot: exit %d, stderr %q", code, errOut)
		}
		return
	}
	if code != 0 || !strings.Contains(out, "<svg") || !strings.Contains(out, "otterize-tutorial-npol/client[Deployment]") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestAnalysisUsageErrors checks that bad arguments exit 2 with a message.
func TestAnalysisUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"plan"},
		{"plan", "--dir", tutorialIntents, "--fail-on", "changed"},
		{"plan", "--dir", tutorialIntents, "--base", tutorialIntents, "--context", "prod"},
		{"explain", "client", "server.ns", "--dir", tutorialIntents},
		{"explain", "client.ns", "server.ns", "--port", "80", "--topic", "t", "--op", "produce", "--dir", tutorialIntents},
		{"explain", "client.otterize-tutorial-npol", "nowhere.otterize-tutorial-npol", "--snapshot", tutorialCluster, "--dir", tutorialIntents},
		{"graph", "-o", "png", "--dir", tutorialIntents},
		{"plan", "--dir", tutorialIntents, "--expect", "testdata/nothing.yaml"},
	} {
		code, _, errOut := intentguard(t, "", args...)
		if code != output.ExitUsage || !strings.Contains(errOut, "error:") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with an error", args, code, errOut)
		}
	}
}

// TestPolicyWithoutTypesInFiles reads a NetworkPolicy written without policyTypes as the
// API server stores it (an ingress policy), instead of failing on it.
func TestPolicyWithoutTypesInFiles(t *testing.T) {
	dir := t.TempDir()
	np := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: otterize-tutorial-npol}
spec:
  podSelector: {}
`
	if err := os.WriteFile(filepath.Join(dir, "np.yaml"), []byte(np), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := intentguard(t, "", "explain", "client-other.otterize-tutorial-npol", "server.otterize-tutorial-npol",
		"--snapshot", tutorialCluster, "--snapshot", dir)
	if code != 0 || !strings.Contains(out, "DENIED") || !strings.Contains(out, "deny-all") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
