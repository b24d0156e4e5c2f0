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
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/cluster"
	"github.com/intentguard/intentguard/internal/credentials"
	"github.com/intentguard/intentguard/internal/credentials/spire"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
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
	kube, err := client.New(lc.Config, client.Options{Scheme: cluster.Scheme()})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "credbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "credentials-operator")
	build := exec.Command("go", "build", "-o", bin, "./cmd/credentials-operator")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the credentials operator: %w", err)
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
		op.stop()
		return r, fmt.Errorf("waiting for %d Secrets: %w", workloads, err)
	}
	r.IssueSeconds = time.Since(t0).Seconds()
	if srv != nil {
		parent, _ := url.Parse("spiffe://example.org/intentguard/credentials-operator")
		// The operator runs without --cluster-name: its entries carry the default prefix.
		reader, err := spire.Dial(spire.Config{SocketPath: srv.Socket, ParentID: parent, EntryIDPrefix: "intentguard"})
		if err != nil {
			op.stop()
			return r, err
		}
		defer reader.Close()
		if err := poll(ctx, 5*time.Minute, func() (bool, error) {
			entries, err := reader.ListOwned(ctx)
			r.Entries = len(entries)
			return len(entries) >= workloads, err
		}); err != nil {
			op.stop()
			return r, fmt.Errorf("waiting for %d SPIRE entries: %w", workloads, err)
		}
	}
	s, err := op.quiesce(ctx)
	if err != nil {
		op.stop()
		return r, err
	}
	r.Writes, r.HeapInuseBytes = s.writes, s.heap
	if len(s.spire) > 0 {
		r.SPIRECalls = s.spire
	}
	r.PeakRSSBytes, _ = op.peakRSS()
	op.stop()

	fmt.Fprintf(os.Stderr, "[%s] restarting the operator with nothing due ...\n", backend)
	op, err = startOperator(ctx, bin, args)
	if err != nil {
		return r, err
	}
	defer op.stop()
	s, err = op.quiesce(ctx)
	if err != nil {
		return r, err
	}
	r.RestartWrites = s.writes
	for _, m := range []string{"BatchCreateEntry", "BatchUpdateEntry", "BatchDeleteEntry", "MintX509SVID"} {
		r.RestartSPIREWrites += s.spire[m]
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
		if err := kube.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{credentials.ManagedByLabel: credentials.ManagedByValue}); err != nil {
			return 0, err
		}
		n += len(list.Items)
	}
	return n, nil
}

// operator is the credentials-operator binary, observed through its metrics and /proc.
type operator struct {
	cmd     *exec.Cmd
	metrics string
	done    chan error
}

func startOperator(ctx context.Context, bin string, args []string) (*operator, error) {
	mport, err := controlplane.FreePort()
	if err != nil {
		return nil, err
	}
	pport, err := controlplane.FreePort()
	if err != nil {
		return nil, err
	}
	args = append(args, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", mport), fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", pport))
	cmd := exec.Command(bin, args...)
	if os.Getenv("CREDBENCH_VERBOSE") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the operator: %w", err)
	}
	op := &operator{cmd: cmd, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), done: make(chan error, 1)}
	go func() { op.done <- cmd.Wait() }()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", pport)
	err = poll(ctx, time.Minute, func() (bool, error) {
		select {
		case err := <-op.done:
			return false, fmt.Errorf("operator exited during start-up: %v", err)
		default:
		}
		resp, err := http.Get(ready)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		op.stop()
		return nil, err
	}
	return op, nil
}

func (o *operator) stop() {
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.done:
	case <-time.After(15 * time.Second):
		_ = o.cmd.Process.Kill()
		<-o.done
	}
}

type sample struct {
	writes, reconciles, depth, heap float64
	spire                           map[string]int
}

func (o *operator) sample() (sample, error) {
	resp, err := http.Get(o.metrics)
	if err != nil {
		return sample{}, fmt.Errorf("scraping operator metrics: %w", err)
	}
	defer resp.Body.Close()
	s := sample{spire: map[string]int{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		head := line[:sp]
		name, labels := head, ""
		if i := strings.IndexByte(head, '{'); i >= 0 {
			name, labels = head[:i], head[i:]
		}
		switch name {
		case "rest_client_requests_total":
			if !strings.Contains(labels, `method="GET"`) {
				s.writes += v
			}
		case "controller_runtime_reconcile_total":
			s.reconciles += v
		case "workqueue_depth":
			s.depth += v
		case "go_memstats_heap_inuse_bytes":
			s.heap = v
		case "intentguard_spire_calls_total":
			if i := strings.Index(labels, `method="`); i >= 0 {
				m := labels[i+len(`method="`):]
				s.spire[m[:strings.IndexByte(m, '"')]] += int(v)
			}
		}
	}
	return s, sc.Err()
}

// quiesce waits until the operator has reconciled something, its queues are empty and
// nothing changed for three seconds, and returns the last sample.
func (o *operator) quiesce(ctx context.Context) (sample, error) {
	last, err := o.sample()
	if err != nil {
		return last, err
	}
	since := time.Now()
	err = poll(ctx, 10*time.Minute, func() (bool, error) {
		s, err := o.sample()
		if err != nil {
			return false, err
		}
		if s.writes != last.writes || s.reconciles != last.reconciles || s.depth > 0 || s.reconciles == 0 {
			since = time.Now()
		}
		last = s
		return time.Since(since) > 3*time.Second, nil
	})
	return last, err
}

// peakRSS is the process's peak resident set size (VmHWM).
func (o *operator) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", o.cmd.Process.Pid))
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
	return 0, fmt.Errorf("no VmHWM for pid %d", o.cmd.Process.Pid)
}
