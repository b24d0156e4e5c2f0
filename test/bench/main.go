// Command bench measures the intents operator on the local control plane: how long bulk
// convergence takes against the API server's own floor, what one change costs, whether an
// idle resync writes anything, and how much memory the operator holds.
//
//	go run ./test/bench                 # small default size, about a minute on 2 cores
//	go run ./test/bench -workloads 1000 -edges 3000 -pods 10 -namespaces 10 -o json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/istio"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// result is one benchmark run, as printed.
type result struct {
	Workloads  int    `json:"workloads"`
	Namespaces int    `json:"namespaces"`
	Edges      int    `json:"edges"`
	Pods       int    `json:"pods"`
	Policies   int    `json:"policies"`
	Seed       uint64 `json:"seed"`
	QPS        int    `json:"qps"`

	FloorSeconds     float64   `json:"floorSeconds"`
	BulkSeconds      float64   `json:"bulkSeconds"`
	BulkRatio        float64   `json:"bulkRatioToFloor"`
	BulkWrites       float64   `json:"bulkWrites"`
	BulkAPIWrites    apiWrites `json:"bulkAPIWritesByKind"`
	EvaluatorChecked int       `json:"evaluatorPairsChecked"`
	EvaluatorWrong   int       `json:"evaluatorPairsWrong"`
	Changes          []change  `json:"changes"`
	IdleResyncWrites float64   `json:"idleResyncWrites"`
	PeakRSSBytes     int64     `json:"peakRSSBytes"`
	// IdleAPIWrites are the idle resync's writes by kind, all writers.
	IdleAPIWrites apiWrites `json:"idleAPIWritesByKind,omitempty"`
	// IstioPolicies are the AuthorizationPolicies the bulk phase waited for (-istio).
	IstioPolicies  int     `json:"istioPolicies,omitempty"`
	HeapInuseBytes float64 `json:"heapInuseBytes"`
}

// change is the cost of one kind of change in the converged cluster.
type change struct {
	Kind          string  `json:"kind"`
	Runs          int     `json:"runs"`
	MedianWrites  float64 `json:"medianWrites"`
	MaxWrites     float64 `json:"maxWrites"`
	MedianLatency float64 `json:"medianLatencyMs"`
	MaxLatency    float64 `json:"maxLatencyMs"`
	// LastAPIWrites is what the last run cost the API server, by kind, all writers.
	LastAPIWrites apiWrites `json:"lastRunAPIWritesByKind"`
}

func main() {
	// A flag set of its own: the libraries linked in register flags the harness does not take.
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var (
		workloads  = fs.Int("workloads", 100, "Deployments to generate")
		namespaces = fs.Int("namespaces", 5, "namespaces to spread them over")
		edges      = fs.Int("edges", 300, "declared calls (client -> server) to generate")
		pods       = fs.Int("pods", 1, "pods per workload")
		seed       = fs.Uint64("seed", 1, "generator seed")
		qps        = fs.Int("qps", 200, "client QPS for the operator and the floor writer")
		runs       = fs.Int("runs", 5, "repetitions of each one-change measurement")
		output     = fs.String("o", "table", "output: table or json")
		logFile    = fs.String("operator-log", "", "file for the operator's log (default: discard)")
		cpuProfile = fs.String("cpuprofile", "", "write the operator's CPU profile during bulk convergence to this file (and its heap after it to FILE.heap)")
		mesh       = fs.Bool("istio", false, "also run the Istio point, every namespace in ambient mode: bulk convergence waits for the AuthorizationPolicies too")
	)
	_ = fs.Parse(os.Args[1:])
	res, err := run(*workloads, *namespaces, *edges, *pods, *seed, *qps, *runs, *logFile, *cpuProfile, *mesh)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if *output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printTable(res)
	}
	if res.EvaluatorWrong > 0 || res.IdleResyncWrites > 0 {
		os.Exit(2)
	}
}

func run(workloads, namespaces, edges, pods int, seed uint64, qps, runs int, logFile, cpuProfile string, mesh bool) (*result, error) {
	ctx := context.Background()
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	res := &result{Workloads: workloads, Namespaces: namespaces, Pods: workloads * pods, Seed: seed, QPS: qps}

	tmp, err := os.MkdirTemp("", "intentguard-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "intents-operator")
	if err := process.Build("./cmd/intents-operator", bin); err != nil {
		return nil, err
	}
	opLog, err := os.Create(os.DevNull)
	if logFile != "" {
		opLog, err = os.Create(logFile)
	}
	if err != nil {
		return nil, err
	}
	defer opLog.Close()

	log("starting the local control plane")
	// Workloads are written as Deployment -> ReplicaSet -> Pods by the generator itself;
	// the controller manager only deletes namespaces.
	lc, err := controlplane.Start(ctx, controlplane.Options{Controllers: []string{"namespace", "garbagecollector"}, Istio: mesh})
	if err != nil {
		return nil, err
	}
	defer lc.Stop()
	cfg := rest.CopyConfig(lc.Config)
	cfg.QPS, cfg.Burst = float32(qps), qps*2
	scheme := informer.Scheme()
	if err := istio.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	// The generator stands for users and other controllers: its writes are not throttled
	// on the client, so the ClientIntents of the bulk phase arrive as fast as the API
	// server takes them, and the measured time is the operator's.
	ucfg := rest.CopyConfig(lc.Config)
	ucfg.QPS = -1
	gen, err := client.New(ucfg, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		return nil, err
	}

	syn := generate(seed, namespaces, workloads, edges, pods)
	res.Edges = 0
	for _, s := range syn.calls {
		res.Edges += len(s)
	}
	log("creating %d workloads with %d pods in %d namespaces", workloads, res.Pods, namespaces)
	if err := syn.create(ctx, gen, 16); err != nil {
		return nil, err
	}
	if mesh {
		if err := ambient(ctx, gen, syn.namespaces); err != nil {
			return nil, err
		}
	}
	want := syn.expected()
	res.Policies = len(want)

	log("floor: writing the %d final policies with a plain client", len(want))
	floor, err := writeFloor(ctx, c, want, syn.labelled())
	if err != nil {
		return nil, err
	}
	res.FloorSeconds = floor.Seconds()

	log("starting the operator")
	pprofAddr := ""
	if cpuProfile != "" {
		port, err := process.FreePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	op, err := startOperator(ctx, bin, lc.Kubeconfig, qps, qps*2, pprofAddr, opLog, mesh)
	if err != nil {
		return nil, err
	}
	base, err := op.Quiesce(ctx, time.Second, false)
	if err != nil {
		return nil, err
	}

	log("bulk: applying %d ClientIntents with %d calls", len(syn.calls), res.Edges)
	profDone := make(chan error, 1)
	if cpuProfile != "" {
		go func() { profDone <- fetchProfile("http://"+pprofAddr+"/debug/pprof/profile?seconds=20", cpuProfile) }()
	} else {
		profDone <- nil
	}
	apiBase, err := scrapeAPIWrites(ctx, lc.Config)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := parallel(len(syn.clients()), 16, func(i int) error {
		return gen.Create(ctx, syn.intents(syn.clients()[i]))
	}); err != nil {
		return nil, err
	}
	if err := waitPolicies(ctx, c, want); err != nil {
		return nil, err
	}
	if mesh {
		// One AuthorizationPolicy per server, as one NetworkPolicy.
		if res.IstioPolicies, err = waitAuthorizationPolicies(ctx, c, len(want)); err != nil {
			return nil, err
		}
	}
	res.BulkSeconds = time.Since(t0).Seconds()
	if err := <-profDone; err != nil {
		return nil, err
	}
	res.BulkRatio = res.BulkSeconds / res.FloorSeconds
	after, err := op.Quiesce(ctx, time.Second, false)
	if err != nil {
		return nil, err
	}
	res.BulkWrites = after.Writes - base.Writes
	if cpuProfile != "" {
		// The heap once the bulk is carried out, beside the CPU profile.
		if err := fetchProfile("http://"+pprofAddr+"/debug/pprof/heap", cpuProfile+".heap"); err != nil {
			return nil, err
		}
	}
	apiAfter, err := scrapeAPIWrites(ctx, lc.Config)
	if err != nil {
		return nil, err
	}
	res.BulkAPIWrites = apiAfter.minus(apiBase)

	log("checking connectivity with the evaluator")
	res.EvaluatorChecked, res.EvaluatorWrong, err = checkConnectivity(ctx, c, syn, seed)
	if err != nil {
		return nil, err
	}

	r := rand.New(rand.NewPCG(seed, 7))
	for _, sc := range scenarios(syn, r) {
		log("one change: %s", sc.name)
		ch := change{Kind: sc.name}
		var writes, lat []float64
		for i := 0; i < runs; i++ {
			apiBase, err := scrapeAPIWrites(ctx, lc.Config)
			if err != nil {
				return nil, err
			}
			w, l, err := measure(ctx, c, op, sc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc.name, err)
			}
			writes, lat = append(writes, w), append(lat, l)
			apiAfter, err := scrapeAPIWrites(ctx, lc.Config)
			if err != nil {
				return nil, err
			}
			ch.LastAPIWrites = apiAfter.minus(apiBase)
		}
		ch.Runs = runs
		ch.MedianWrites, ch.MaxWrites = median(writes), maxOf(writes)
		ch.MedianLatency, ch.MaxLatency = median(lat), maxOf(lat)
		res.Changes = append(res.Changes, ch)
	}

	if res.PeakRSSBytes, err = op.PeakRSS(); err != nil {
		return nil, err
	}
	last, err := op.Sample()
	if err != nil {
		return nil, err
	}
	res.HeapInuseBytes = last.HeapBytes

	log("idle: restarting the operator over the unchanged cluster")
	idleBase, err := scrapeAPIWrites(ctx, lc.Config)
	if err != nil {
		return nil, err
	}
	op.Stop(process.StopGrace)
	op, err = startOperator(ctx, bin, lc.Kubeconfig, qps, qps*2, "", opLog, mesh)
	if err != nil {
		return nil, err
	}
	defer op.Stop(process.StopGrace)
	idle, err := op.Quiesce(ctx, 2*time.Second, false)
	if err != nil {
		return nil, err
	}
	res.IdleResyncWrites = idle.Writes
	idleAfter, err := scrapeAPIWrites(ctx, lc.Config)
	if err != nil {
		return nil, err
	}
	res.IdleAPIWrites = idleAfter.minus(idleBase)
	if os.Getenv("BENCH_DEBUG") != "" {
		for k, v := range requests(idle) {
			fmt.Fprintf(os.Stderr, "bench: idle: operator requests %s: %.0f\n", k, v)
		}
	}
	if rss, err := op.PeakRSS(); err == nil && rss > res.PeakRSSBytes {
		res.PeakRSSBytes = rss
	}
	return res, nil
}

// writeFloor creates the final policies and labels the pods they select by the operator's
// labels, with a plain client and as many writers as the operator has reconcile
// workers, then undoes both; it returns the time taken: the API server's own limit for
// the writes enforcement needs.
func writeFloor(ctx context.Context, c client.Client, want map[client.ObjectKey]*networkingv1.NetworkPolicy, labels []podLabel) (time.Duration, error) {
	policies := make([]*networkingv1.NetworkPolicy, 0, len(want))
	for _, p := range want {
		policies = append(policies, p.DeepCopy())
	}
	patch := func(l podLabel, remove bool) error {
		m := map[string]any{}
		for k, v := range l.labels {
			m[k] = v
			if remove {
				m[k] = nil
			}
		}
		body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": m}})
		if err != nil {
			return err
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: l.ns, Name: l.name}}
		return c.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body))
	}
	t0 := time.Now()
	err := parallel(len(policies)+len(labels), 4, func(i int) error {
		if i < len(labels) {
			return patch(labels[i], false)
		}
		return c.Create(ctx, policies[i-len(labels)])
	})
	took := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("floor writes: %w", err)
	}
	if err := parallel(len(policies), 16, func(i int) error { return c.Delete(ctx, policies[i]) }); err != nil {
		return 0, fmt.Errorf("removing floor policies: %w", err)
	}
	if err := parallel(len(labels), 16, func(i int) error { return patch(labels[i], true) }); err != nil {
		return 0, fmt.Errorf("removing floor labels: %w", err)
	}
	return took, nil
}

// waitPolicies waits until every expected policy exists and equals the compiled one. It
// lists once and then follows a watch, so that waiting does not load the API server.
func waitPolicies(ctx context.Context, c client.WithWatch, want map[client.ObjectKey]*networkingv1.NetworkPolicy) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	managed := client.MatchingLabels{ownership.Label: ownership.IntentsOperator}
	for {
		var list networkingv1.NetworkPolicyList
		if err := c.List(ctx, &list, managed); err != nil {
			return err
		}
		good := map[client.ObjectKey]bool{}
		note := func(p *networkingv1.NetworkPolicy, deleted bool) {
			k := client.ObjectKeyFromObject(p)
			if w, found := want[k]; found {
				good[k] = !deleted && compile.UpToDate(w, p)
			}
		}
		done := func() bool {
			n := 0
			for _, ok := range good {
				if ok {
					n++
				}
			}
			return n == len(want)
		}
		for i := range list.Items {
			note(&list.Items[i], false)
		}
		if done() {
			return nil
		}
		w, err := c.Watch(ctx, &networkingv1.NetworkPolicyList{}, managed, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return err
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*networkingv1.NetworkPolicy)
			if !ok {
				break // an error event: the watch expired; list again
			}
			note(p, ev.Type == watch.Deleted)
			if done() {
				w.Stop()
				return nil
			}
		}
		w.Stop()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for the expected policies: %w", err)
		}
	}
}

// ambient puts the namespaces in Istio's ambient mode, so that their pods are in the mesh.
func ambient(ctx context.Context, c client.Client, namespaces []string) error {
	for _, ns := range namespaces {
		patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, authz.DataplaneModeLabel, authz.DataplaneAmbient))
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("labelling namespace %s ambient: %w", ns, err)
		}
	}
	return nil
}

// waitAuthorizationPolicies waits until the operator has written want AuthorizationPolicies.
func waitAuthorizationPolicies(ctx context.Context, c client.Client, want int) (int, error) {
	n := 0
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		var list securityv1.AuthorizationPolicyList
		if err := c.List(ctx, &list, client.MatchingLabels{ownership.Label: ownership.IntentsOperator}); err != nil {
			return false, err
		}
		n = len(list.Items)
		return n == want, nil
	})
	if err != nil {
		return n, fmt.Errorf("waiting for %d AuthorizationPolicies (%d written): %w", want, n, err)
	}
	return n, nil
}

// checkConnectivity checks every declared call is allowed and as many undeclared pairs
// (sampled) are denied, with the independent evaluator over the live objects.
func checkConnectivity(ctx context.Context, c client.Client, syn *synthetic, seed uint64) (checked, wrong int, err error) {
	m, err := connectivity.Evaluate(ctx, c, syn.namespaces, connectivity.Port{Number: 8080, Name: "http"})
	if err != nil {
		return 0, 0, err
	}
	first := map[string]connectivity.Pod{}
	for _, p := range m.Pods {
		if _, ok := first[p.Workload]; !ok {
			first[p.Workload] = p
		}
	}
	name := func(i int) string { return syn.workloads[i].name + "." + syn.workloads[i].ns }
	declared := map[[2]int]bool{}
	protected := map[int]bool{}
	for cl, servers := range syn.calls {
		for _, s := range servers {
			declared[[2]int{cl, s}] = true
			protected[s] = true
		}
	}
	check := func(cl, s int) {
		want := declared[[2]int{cl, s}] || !protected[s]
		checked++
		if m.Allowed(first[name(cl)], first[name(s)]) != want {
			wrong++
		}
	}
	for pair := range declared {
		check(pair[0], pair[1])
	}
	r := rand.New(rand.NewPCG(seed, 99))
	for i := 0; i < 4*len(declared); i++ {
		cl, s := r.IntN(len(syn.workloads)), r.IntN(len(syn.workloads))
		if cl != s {
			check(cl, s)
		}
	}
	return checked, wrong, nil
}

type scenario struct {
	name string
	// prepare, if set, runs and settles before the change is timed.
	prepare func(ctx context.Context, c client.Client) error
	do      func(ctx context.Context, c client.Client) error
	// settled, if set, tells when the cluster has carried the change out (a namespace
	// takes the namespace controller a while to empty), before the operator's quiet time.
	settled func(ctx context.Context, c client.Client) (bool, error)
}

// scenarios are the single changes measured in the converged cluster.
func scenarios(syn *synthetic, r *rand.Rand) []scenario {
	podN, psN, nsN := 0, 0, 0
	extraNS := func() string { return fmt.Sprintf("bench-extra-%d", nsN) }
	return []scenario{
		{name: "edit one ClientIntents (add a call)", do: func(ctx context.Context, c client.Client) error {
			clients := syn.clients()
			cl := clients[r.IntN(len(clients))]
			w := syn.workloads[cl]
			var ci v2beta1.ClientIntents
			if err := c.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: w.name}, &ci); err != nil {
				return err
			}
			for {
				s := r.IntN(len(syn.workloads))
				name := syn.workloads[s].name + "." + syn.workloads[s].ns
				dup := s == cl
				for _, tg := range ci.Spec.Targets {
					dup = dup || (tg.Kubernetes != nil && tg.Kubernetes.Name == name) || (tg.Service != nil && tg.Service.Name == "svc-"+name)
				}
				if !dup {
					ci.Spec.Targets = append(ci.Spec.Targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: name}})
					syn.calls[cl] = append(syn.calls[cl], s)
					return c.Update(ctx, &ci)
				}
			}
		}},
		{name: "add a pod to a Deployment", do: func(ctx context.Context, c client.Client) error {
			podN++
			w := syn.workloads[r.IntN(len(syn.workloads))]
			for w.kind != "Deployment" {
				w = syn.workloads[r.IntN(len(syn.workloads))]
			}
			var rs appsv1.ReplicaSet
			if err := c.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: w.name + "-" + templateHash}, &rs); err != nil {
				return err
			}
			yes := true
			ref := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}
			return createPod(ctx, c, rs.Namespace, rs.Name, ref, rs.Spec.Template.Labels, rs.Spec.Template.Spec, 1000+podN)
		}},
		{name: "add a ProtectedService", do: func(ctx context.Context, c client.Client) error {
			psN++
			// A workload nobody calls: protecting it means a new deny-all policy.
			servers := map[int]bool{}
			for _, ss := range syn.calls {
				for _, s := range ss {
					servers[s] = true
				}
			}
			i := r.IntN(len(syn.workloads))
			for servers[i] {
				i = (i + 1) % len(syn.workloads)
			}
			w := syn.workloads[i]
			return c.Create(ctx, &v2beta1.ProtectedService{
				ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: fmt.Sprintf("protect-%d", psN)},
				Spec:       v2beta1.ProtectedServiceSpec{Name: w.name},
			})
		}},
		{name: "delete a namespace with a client", prepare: func(ctx context.Context, c client.Client) error {
			nsN++
			ns := extraNS()
			if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return err
			}
			w := workload{ns: ns, name: "visitor", kind: "Deployment"}
			if err := createWorkload(ctx, c, w, 1); err != nil {
				return err
			}
			t := syn.workloads[r.IntN(len(syn.workloads))]
			return c.Create(ctx, &v2beta1.ClientIntents{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: w.name},
				Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: w.name},
					Targets: []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: t.name + "." + t.ns}}}},
			})
		}, do: func(ctx context.Context, c client.Client) error {
			return c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: extraNS()}})
		}, settled: func(ctx context.Context, c client.Client) (bool, error) {
			err := c.Get(ctx, client.ObjectKey{Name: extraNS()}, &corev1.Namespace{})
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		}},
	}
}

// measure runs one change and returns the operator writes it caused and the time from
// the change to the last NetworkPolicy event it caused (0 when it caused none).
func measure(ctx context.Context, c client.WithWatch, op *process.Operator, sc scenario) (float64, float64, error) {
	if sc.prepare != nil {
		if err := sc.prepare(ctx, c); err != nil {
			return 0, 0, err
		}
	}
	before, err := op.Quiesce(ctx, 500*time.Millisecond, false)
	if err != nil {
		return 0, 0, err
	}
	// Watching from the current resource version delivers only events after it.
	managed := client.MatchingLabels{ownership.Label: ownership.IntentsOperator}
	var current networkingv1.NetworkPolicyList
	if err := c.List(ctx, &current, managed); err != nil {
		return 0, 0, err
	}
	w, err := c.Watch(ctx, &networkingv1.NetworkPolicyList{}, managed, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: current.ResourceVersion}})
	if err != nil {
		return 0, 0, err
	}
	defer w.Stop()
	var mu sync.Mutex
	var last time.Time
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added || ev.Type == watch.Modified || ev.Type == watch.Deleted {
				mu.Lock()
				last = time.Now()
				mu.Unlock()
			}
		}
	}()
	t0 := time.Now()
	if err := sc.do(ctx, c); err != nil {
		return 0, 0, err
	}
	if sc.settled != nil {
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) { return sc.settled(ctx, c) }); err != nil {
			return 0, 0, fmt.Errorf("waiting for the change to take effect: %w", err)
		}
	}
	after, err := op.Quiesce(ctx, time.Second, false)
	if err != nil {
		return 0, 0, err
	}
	if os.Getenv("BENCH_DEBUG") != "" {
		prev := requests(before)
		for k, v := range requests(after) {
			if d := v - prev[k]; d > 0 {
				fmt.Fprintf(os.Stderr, "bench: %s: operator requests %s: %.0f\n", sc.name, k, d)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	lat := 0.0
	if !last.IsZero() {
		lat = float64(last.Sub(t0).Microseconds()) / 1000
	}
	return after.Writes - before.Writes, lat, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		if x > m {
			m = x
		}
	}
	return m
}

func printTable(r *result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster\t%d workloads, %d pods, %d namespaces, %d calls, %d policies (seed %d, %d qps)\n", r.Workloads, r.Pods, r.Namespaces, r.Edges, r.Policies, r.Seed, r.QPS)
	if r.IstioPolicies > 0 {
		fmt.Fprintf(tw, "istio\t%d AuthorizationPolicies, namespaces in ambient mode\n", r.IstioPolicies)
	}
	fmt.Fprintf(tw, "floor (plain client writes the final policies and pod labels)\t%.2fs\n", r.FloorSeconds)
	fmt.Fprintf(tw, "bulk convergence\t%.2fs (%.2fx floor), %.0f operator writes\n", r.BulkSeconds, r.BulkRatio, r.BulkWrites)
	fmt.Fprintf(tw, "bulk API writes by kind (all writers)\t%s\n", r.BulkAPIWrites)
	fmt.Fprintf(tw, "evaluator\t%d pairs checked, %d wrong\n", r.EvaluatorChecked, r.EvaluatorWrong)
	for _, ch := range r.Changes {
		fmt.Fprintf(tw, "%s\twrites median %.0f max %.0f; last policy write after median %.1fms max %.1fms (%d runs)\n", ch.Kind, ch.MedianWrites, ch.MaxWrites, ch.MedianLatency, ch.MaxLatency, ch.Runs)
		fmt.Fprintf(tw, "  last run, API writes by kind (all writers)\t%s\n", ch.LastAPIWrites.top(6))
	}
	fmt.Fprintf(tw, "idle resync (operator restart)\t%.0f writes\n", r.IdleResyncWrites)
	if len(r.IdleAPIWrites) > 0 {
		fmt.Fprintf(tw, "  API writes by kind (all writers)\t%s\n", r.IdleAPIWrites.top(6))
	}
	fmt.Fprintf(tw, "operator memory\tpeak RSS %.1f MiB, heap in use %.1f MiB\n", float64(r.PeakRSSBytes)/(1<<20), r.HeapInuseBytes/(1<<20))
	_ = tw.Flush()
}

func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("fetching CPU profile: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
