// Command credbench measures the credentials operator on the local control plane:
// annotated pods across workloads (default 1,000 pods across 200 Deployments), how long
// the operator takes to issue every Secret, how many API writes and SPIRE calls that
// costs, its peak memory, and what a restart with nothing due for renewal writes.
//
//	go run ./test/credbench                          # both backends, 200 x 5 pods
//	go run ./test/credbench -backend ca -workloads 20 -replicas 2
//
// It exits non-zero when a workload has no Secret or a restart with nothing due writes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/credentials/spire"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/process"
	"github.com/intentguard/intentguard/internal/testsupport/spiretest"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// result is one backend's run, as printed.
type result struct {
	Backend            string         `json:"backend"`
	Workloads          int            `json:"workloads"`
	Pods               int            `json:"pods"`
	Secrets            int            `json:"secrets"`
	IssueSeconds       float64        `json:"issueSeconds"`
	Writes             float64        `json:"apiWrites"`
	SPIRECalls         map[string]int `json:"spireCalls,omitempty"`
	Entries            int            `json:"spireEntries,omitempty"`
	RestartWrites      float64        `json:"restartAPIWrites"`
	RestartSPIREWrites int            `json:"restartSPIREWrites"`
	PeakRSSBytes       int64          `json:"peakRSSBytes"`
	HeapInuseBytes     float64        `json:"heapInuseBytes"`
}

func main() {
	workloads := flag.Int("workloads", 200, "annotated Deployments")
	replicas := flag.Int("replicas", 5, "pods per Deployment")
	namespaces := flag.Int("namespaces", 4, "namespaces the Deployments are spread over")
	backends := flag.String("backend", "both", "ca, spire or both")
	output := flag.String("o", "text", "text or json")
	flag.Parse()
	if err := run(*workloads, *replicas, *namespaces, *backends, *output); err != nil {
		fmt.Fprintln(os.Stderr, "credbench:", err)
		os.Exit(1)
	}
}

func run(workloads, replicas, namespaces int, backends, output string) error {
	ctx := context.Background()
	fmt.Fprintln(os.Stderr, "starting the local control plane ...")
	lc, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		return err
	}
	defer lc.Stop()
	kube, err := client.New(lc.Config, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "credbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "credentials-operator")
	if err := process.Build("./cmd/credentials-operator", bin); err != nil {
		return err
	}
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "credbench-system"}}); err != nil {
		return err
	}
	var results []result
	for _, b := range []string{credentials.BackendCA, credentials.BackendSPIRE} {
		if backends != "both" && backends != b {
			continue
		}
		r, err := runBackend(ctx, kube, lc, bin, b, workloads, replicas, namespaces)
		if err != nil {
			return fmt.Errorf("backend %s: %w", b, err)
		}
		results = append(results, r)
	}
	var failures []string
	for _, r := range results {
		if r.Secrets != r.Workloads {
			failures = append(failures, fmt.Sprintf("%s: %d Secrets for %d workloads", r.Backend, r.Secrets, r.Workloads))
		}
		if r.RestartWrites != 0 || r.RestartSPIREWrites != 0 {
			failures = append(failures, fmt.Sprintf("%s: a restart with nothing due wrote %.0f API and %d SPIRE writes", r.Backend, r.RestartWrites, r.RestartSPIREWrites))
		}
	}
	if output == "json" {
		if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
			return err
		}
		return failed(failures)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "backend\tworkloads\tpods\tSecrets\tissue all\tAPI writes\tSPIRE calls\trestart: API writes\trestart: SPIRE writes\tpeak RSS\theap in use")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1fs\t%.0f\t%s\t%.0f\t%d\t%.0f MiB\t%.0f MiB\n", r.Backend, r.Workloads, r.Pods, r.Secrets, r.IssueSeconds,
			r.Writes, callsString(r.SPIRECalls), r.RestartWrites, r.RestartSPIREWrites, float64(r.PeakRSSBytes)/(1<<20), r.HeapInuseBytes/(1<<20))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return failed(failures)
}

// failed turns broken expectations into the command's error (and a non-zero exit).
func failed(failures []string) error {
	if len(failures) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(failures, "; "))
}

func callsString(m map[string]int) string {
	if m == nil {
		return "-"
	}
	var parts []string
	for _, k := range []string{"ListEntries", "BatchCreateEntry", "BatchUpdateEntry", "BatchDeleteEntry", "MintX509SVID", "GetBundle"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

func runBackend(ctx context.Context, kube client.Client, lc *controlplane.Cluster, bin, backend string, workloads, replicas, namespaces int) (result, error) {
	r := result{Backend: backend, Workloads: workloads, Pods: workloads * replicas}
	args := []string{"--kubeconfig=" + lc.Kubeconfig, "--namespace=credbench-system", "--ca-secret=credbench-ca-" + backend, "--kube-api-qps=200", "--kube-api-burst=400"}
	var srv *spiretest.Server
	if backend == credentials.BackendSPIRE {
		sbin, err := spiretest.Binary(ctx)
		if err != nil {
			return r, err
		}
		if srv, err = spiretest.Start(ctx, sbin, "example.org"); err != nil {
			return r, err
		}
		defer srv.Stop()
		args = append(args, "--backend=spire", "--spire-socket="+srv.Socket, "--trust-domain=example.org")
	}
	var nsNames []string
	// Each backend's workloads go when its run ends: an operator with the other backend
	// would rightly reissue every Secret under its own trust bundle.
	defer func() {
		for _, ns := range nsNames {
			_ = kube.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}
		_ = poll(ctx, 5*time.Minute, func() (bool, error) {
			n, err := countPods(ctx, kube, nsNames)
			return n == 0, err
		})
	}()
	for i := 0; i < namespaces; i++ {
		ns := fmt.Sprintf("credbench-%s-%d", backend, i)
		nsNames = append(nsNames, ns)
		if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return r, err
		}
	}
	fmt.Fprintf(os.Stderr, "[%s] creating %d Deployments x %d pods ...\n", backend, workloads, replicas)
	n := int32(replicas)
	for i := 0; i < workloads; i++ {
		name := fmt.Sprintf("w%03d", i)
		d := tutorial.Deployment(nsNames[i%namespaces], name, 8080)
		d.Spec.Replicas = &n
		d.Spec.Template.Annotations = map[string]string{credentials.Prefix + credentials.AnnSecretName: name + "-tls"}
		if err := kube.Create(ctx, d); err != nil {
			return r, err
		}
	}
	if err := poll(ctx, 10*time.Minute, func() (bool, error) {
		got, err := countPods(ctx, kube, nsNames)
		return got >= r.Pods, err
	}); err != nil {
		return r, fmt.Errorf("waiting for %d pods: %w", r.Pods, err)
	}

	fmt.Fprintf(os.Stderr, "[%s] %d pods exist; starting the credentials operator ...\n", backend, r.Pods)
	t0 := time.Now()
	op, err := startOperator(ctx, bin, args)
	if err != nil {
		return r, err
	}
	if err := poll(ctx, 10*time.Minute, func() (bool, error) {
		got, err := countSecrets(ctx, kube, nsNames)
		r.Secrets = got
		return got >= workloads, err
	}); err != nil {
		op.Stop(process.StopGrace)
		return r, fmt.Errorf("waiting for %d Secrets: %w", workloads, err)
	}
	r.IssueSeconds = time.Since(t0).Seconds()
	if srv != nil {
		parent, _ := url.Parse("spiffe://example.org/intentguard/credentials-operator")
		// The operator runs without --cluster-name: its entries carry the default prefix.
		reader, err := spire.Dial(spire.Config{SocketPath: srv.Socket, ParentID: parent, EntryIDPrefix: "intentguard"})
		if err != nil {
			op.Stop(process.StopGrace)
			return r, err
		}
		defer reader.Close()
		if err := poll(ctx, 5*time.Minute, func() (bool, error) {
			entries, err := reader.ListOwned(ctx)
			r.Entries = len(entries)
			return len(entries) >= workloads, err
		}); err != nil {
			op.Stop(process.StopGrace)
			return r, fmt.Errorf("waiting for %d SPIRE entries: %w", workloads, err)
		}
	}
	s, err := quiesce(ctx, op)
	if err != nil {
		op.Stop(process.StopGrace)
		return r, err
	}
	r.Writes, r.HeapInuseBytes = s.Writes, s.HeapBytes
	if calls := spireCalls(s); len(calls) > 0 {
		r.SPIRECalls = calls
	}
	r.PeakRSSBytes, _ = op.PeakRSS()
	op.Stop(process.StopGrace)

	fmt.Fprintf(os.Stderr, "[%s] restarting the operator with nothing due ...\n", backend)
	op, err = startOperator(ctx, bin, args)
	if err != nil {
		return r, err
	}
	defer op.Stop(process.StopGrace)
	s, err = quiesce(ctx, op)
	if err != nil {
		return r, err
	}
	r.RestartWrites = s.Writes
	calls := spireCalls(s)
	for _, m := range []string{"BatchCreateEntry", "BatchUpdateEntry", "BatchDeleteEntry", "MintX509SVID"} {
		r.RestartSPIREWrites += calls[m]
	}
	return r, nil
}

func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond() })
}

func countPods(ctx context.Context, kube client.Client, namespaces []string) (int, error) {
	n := 0
	for _, ns := range namespaces {
		var pods corev1.PodList
		if err := kube.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		n += len(pods.Items)
	}
	return n, nil
}

func countSecrets(ctx context.Context, kube client.Client, namespaces []string) (int, error) {
	n := 0
	for _, ns := range namespaces {
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		if err := kube.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{ownership.Label: ownership.CredentialsOperator}); err != nil {
			return 0, err
		}
		n += len(list.Items)
	}
	return n, nil
}

// startOperator runs the credentials-operator binary with args.
func startOperator(ctx context.Context, bin string, args []string) (*process.Operator, error) {
	cmd := exec.Command(bin, args...)
	if os.Getenv("CREDBENCH_VERBOSE") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	return process.StartOperator(ctx, cmd)
}

// quiesce waits (up to ten minutes) until the operator has reconciled something, its
// queues are empty and nothing changed for three seconds, and returns the last sample.
func quiesce(ctx context.Context, op *process.Operator) (process.Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	return op.Quiesce(ctx, 3*time.Second, true)
}

// spireCalls counts the operator's calls to the SPIRE server so far, by method.
func spireCalls(s process.Sample) map[string]int {
	out := map[string]int{}
	for _, m := range s.Metrics {
		if m.Name != "intentguard_spire_calls_total" {
			continue
		}
		if i := strings.Index(m.Labels, `method="`); i >= 0 {
			method := m.Labels[i+len(`method="`):]
			out[method[:strings.IndexByte(method, '"')]] += int(m.Value)
		}
	}
	return out
}
