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
	"strings"
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
	PodLabels  int    `json:"podLabels"`
	Seed       uint64 `json:"seed"`
	// Limit is the operator's client-side limit: the binary's defaults unless overridden.
	Limit clientLimit `json:"operatorClientLimit"`

	// Floor is the final policies and pod labels written by 4 clients without a client
	// limit; ThrottledFloor the same with the operator's limit, for reference.
	Floor floor `json:"unthrottledFloor"`
	// IntentsCreatedSeconds is how long the generator took to create the bulk's
	// ClientIntents (16 writers, no client limit), within the bulk convergence time.
	IntentsCreatedSeconds float64 `json:"intentsCreatedSeconds"`
	ThrottledFloor        floor   `json:"throttledFloor"`
	// FullFloor adds to the unthrottled floor's writes the bulk's ClientIntents creates
	// and one status write per ClientIntents: the bulk's whole work, done the least way.
	FullFloor   fullFloor `json:"fullFloor"`
	BulkSeconds float64   `json:"bulkSeconds"`
	// BulkRatio is against the unthrottled floor.
	BulkRatio float64 `json:"bulkRatioToFloor"`
	// BulkFullRatio is against the full floor.
	BulkFullRatio float64 `json:"bulkRatioToFullFloor"`
	// BulkCPUSeconds is the operator's user and system CPU time from the first create
	// until it was quiet.
	BulkCPUSeconds float64 `json:"bulkOperatorCPUSeconds"`
	// BulkWrites are the operator's own non-GET requests (rest_client_requests_total).
	BulkWrites float64 `json:"bulkWrites"`
	// BulkSplit sorts the API server's writes in the bulk phase by what they are.
	BulkSplit     writeSplit `json:"bulkWritesSplit"`
	BulkAPIWrites apiWrites  `json:"bulkAPIWritesByKind"`
	// LastWriteAfterStart and LastWriteAfterConvergence time the operator's last write of
	// the bulk phase from its first create and from convergence.
	LastWriteAfterStart       float64    `json:"lastWriteAfterStartSeconds"`
	LastWriteAfterConvergence float64    `json:"lastWriteAfterConvergenceSeconds"`
	ReadyLag                  lagSummary `json:"readyLag"`
	BulkPeakHeapBytes         float64    `json:"bulkPeakHeapInuseBytes"`
	EvaluatorChecked          int        `json:"evaluatorPairsChecked"`
	EvaluatorWrong            int        `json:"evaluatorPairsWrong"`
	Changes                   []change   `json:"changes"`
	IdleResyncWrites          float64    `json:"idleResyncWrites"`
	PeakRSSBytes              int64      `json:"peakRSSBytes"`
	// IdleAPIWrites are the idle resync's writes by kind, all writers.
	IdleAPIWrites apiWrites `json:"idleAPIWritesByKind,omitempty"`
	// IstioPolicies are the AuthorizationPolicies the bulk phase waited for (-istio).
	IstioPolicies  int     `json:"istioPolicies,omitempty"`
	HeapInuseBytes float64 `json:"heapInuseBytes"`
	// BenchPeakRSSBytes is the bench process's own peak RSS: the generator, the watches and
	// the evaluator.
	BenchPeakRSSBytes int64 `json:"benchPeakRSSBytes"`
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

// options are the bench's command-line settings.
type options struct {
	workloads, namespaces, edges, pods int
	seed                               uint64
	// qps overrides the operator's client limit (burst twice as much); 0 keeps the binary's.
	qps  float64
	runs int
	// throttledRuns is how often the throttled floor is measured: at the scale-out size
	// one run takes minutes.
	throttledRuns int
	// fullRuns is how often the full floor is measured.
	fullRuns   int
	quiet      time.Duration
	logFile    string
	cpuProfile string
	mesh       bool
}

func main() {
	// A flag set of its own: the libraries linked in register flags the harness does not take.
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var o options
	fs.IntVar(&o.workloads, "workloads", 100, "workloads to generate")
	fs.IntVar(&o.namespaces, "namespaces", 5, "namespaces to spread them over")
	fs.IntVar(&o.edges, "edges", 300, "declared calls (client -> server) to generate")
	fs.IntVar(&o.pods, "pods", 1, "pods per workload")
	fs.Uint64Var(&o.seed, "seed", 1, "generator seed")
	fs.Float64Var(&o.qps, "qps", 0, "override the operator's client QPS (burst twice as much); 0 runs it with its shipped defaults")
	fs.IntVar(&o.runs, "runs", 5, "repetitions of each one-change measurement")
	fs.IntVar(&o.throttledRuns, "throttled-floor-runs", 3, "runs of the floor at the operator's client limit (the median is reported)")
	fs.IntVar(&o.fullRuns, "full-floor-runs", 3, "runs of the full floor: the bulk's ClientIntents, policies, pod labels and statuses written without an operator (the median is reported)")
	fs.DurationVar(&o.quiet, "quiet", 5*time.Second, "how long the operator must be idle after bulk convergence for its last write to count as the last")
	output := fs.String("o", "table", "output: table or json")
	fs.StringVar(&o.logFile, "operator-log", "", "file for the operator's log (default: discard)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the operator's CPU profile during bulk convergence to this file (and its heap after it to FILE.heap)")
	fs.BoolVar(&o.mesh, "istio", false, "also run the Istio point, every namespace in ambient mode: bulk convergence waits for the AuthorizationPolicies too")
	_ = fs.Parse(os.Args[1:])
	res, err := run(o)
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

func run(o options) (*result, error) {
	ctx := context.Background()
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	res := &result{Workloads: o.workloads, Namespaces: o.namespaces, Pods: o.workloads * o.pods, Seed: o.seed}

	tmp, err := os.MkdirTemp("", "intentguard-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "intents-operator")
	if err := process.Build("./cmd/intents-operator", bin); err != nil {
		return nil, err
	}
	if res.Limit, err = shippedLimit(bin); err != nil {
		return nil, err
	}
	if o.qps != 0 {
		res.Limit = clientLimit{QPS: o.qps, Burst: int(2 * o.qps), Override: true}
	}
	opLog, err := os.Create(os.DevNull)
	if o.logFile != "" {
		opLog, err = os.Create(o.logFile)
	}
	if err != nil {
		return nil, err
	}
	defer opLog.Close()

	log("starting the local control plane")
	// Workloads are written as Deployment -> ReplicaSet -> Pods by the generator itself;
	// the controller manager only deletes namespaces.
	// A third of the Deployments and StatefulSets have a Service: 2,300 at 10,000
	// workloads, more than envtest's default range of cluster IPs holds.
	lc, err := controlplane.Start(ctx, controlplane.Options{Controllers: []string{"namespace", "garbagecollector"}, Istio: o.mesh, ServiceCIDR: "10.96.0.0/16"})
	if err != nil {
		return nil, err
	}
	defer lc.Stop()
	scheme := informer.Scheme()
	if err := istio.AddToScheme(scheme); err != nil {
		return nil, err
	}
	// The generator stands for users and other controllers, and the bench's own reads and
	// watches must not wait on a client limit: no client-side limit (QPS -1).
	ucfg := rest.CopyConfig(lc.Config)
	ucfg.QPS = -1
	c, err := client.NewWithWatch(ucfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	// The throttled floor's writer has the operator's client limit, as the operator's
	// binary sets it on its rest.Config.
	tcfg := rest.CopyConfig(lc.Config)
	tcfg.QPS, tcfg.Burst = float32(res.Limit.QPS), res.Limit.Burst
	if res.Limit.QPS <= 0 {
		tcfg.QPS = -1
	}
	throttled, err := client.New(tcfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}

	syn := generate(o.seed, o.namespaces, o.workloads, o.edges, o.pods)
	clients := syn.clients()
	res.Edges = 0
	for _, s := range syn.calls {
		res.Edges += len(s)
	}
	log("creating %d workloads with %d pods in %d namespaces", o.workloads, res.Pods, o.namespaces)
	if err := syn.create(ctx, c, 16); err != nil {
		return nil, err
	}
	if o.mesh {
		if err := ambient(ctx, c, syn.namespaces); err != nil {
			return nil, err
		}
	}
	want, needs := syn.expected()
	labels := syn.labelled()
	res.Policies, res.PodLabels = len(want), len(labels)

	log("floor: writing the %d final policies and %d pod labels without a client limit (%d runs)", len(want), len(labels), floorRuns)
	if res.Floor, err = measureFloor(ctx, c, c, want, labels, floorRuns); err != nil {
		return nil, err
	}
	if res.Limit.QPS <= 0 {
		// The operator sets no client-side limit (its flag reads 0 or less as none): the
		// throttled floor is the unthrottled one.
		log("floor: the operator ships no client limit, so the throttled floor is the unthrottled one")
		res.ThrottledFloor = res.Floor
	} else {
		log("floor: the same at the operator's client limit, %g QPS, burst %d (%d runs)", res.Limit.QPS, res.Limit.Burst, o.throttledRuns)
		if res.ThrottledFloor, err = measureFloor(ctx, throttled, c, want, labels, o.throttledRuns); err != nil {
			return nil, err
		}
	}

	log("starting the operator")
	pprofAddr := ""
	if o.cpuProfile != "" {
		port, err := process.FreePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	op, err := startOperator(ctx, bin, lc.Kubeconfig, res.Limit, pprofAddr, opLog, o.mesh)
	if err != nil {
		return nil, err
	}
	if _, err := op.Quiesce(ctx, time.Second, false); err != nil {
		return nil, err
	}

	log("bulk: applying %d ClientIntents with %d calls", len(clients), res.Edges)
	watchCtx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	bw := newBulkWatch(want, labels)
	if err := bw.start(watchCtx, c); err != nil {
		return nil, err
	}
	profDone := make(chan error, 1)
	if o.cpuProfile != "" {
		go func() {
			profDone <- fetchProfile("http://"+pprofAddr+"/debug/pprof/profile?seconds=20", o.cpuProfile)
		}()
	} else {
		profDone <- nil
	}
	apiBase, err := scrapeAPIWrites(ctx, lc.Config)
	if err != nil {
		return nil, err
	}
	converged := make(chan struct{})
	followed := make(chan error, 1)
	var act activity
	go func() {
		var err error
		act, err = followOperator(ctx, op, converged, o.quiet)
		followed <- err
	}()
	bulkIntents := make([]*v2beta1.ClientIntents, len(clients))
	for i, cl := range clients {
		bulkIntents[i] = syn.intents(cl)
	}
	t0 := time.Now()
	if err := parallel(len(clients), 16, func(i int) error {
		return c.Create(ctx, bulkIntents[i].DeepCopy())
	}); err != nil {
		return nil, err
	}
	res.IntentsCreatedSeconds = time.Since(t0).Seconds()
	select {
	case <-bw.converged:
	case <-time.After(30 * time.Minute):
		return nil, fmt.Errorf("the %d expected policies and %d pod labels were not all written within 30 minutes", len(want), len(labels))
	}
	if o.mesh {
		// One AuthorizationPolicy per server, as one NetworkPolicy.
		if res.IstioPolicies, err = waitAuthorizationPolicies(ctx, c, len(want)); err != nil {
			return nil, err
		}
	}
	convergedAt := time.Now()
	close(converged)
	res.BulkSeconds = convergedAt.Sub(t0).Seconds()
	if err := <-followed; err != nil {
		return nil, err
	}
	stopWatches()
	if err := <-profDone; err != nil {
		return nil, err
	}
	res.BulkRatio = res.BulkSeconds / res.Floor.Seconds
	// The operator is quiet: every ClientIntents carries the last status it wrote, which
	// the full floor writes.
	var quiet v2beta1.ClientIntentsList
	if err := c.List(ctx, &quiet); err != nil {
		return nil, fmt.Errorf("reading the converged ClientIntents: %w", err)
	}
	full, err := newFullFloorPlan(bulkIntents, quiet.Items, want, needs, labels)
	if err != nil {
		return nil, err
	}
	res.BulkWrites = act.end.Writes - act.start.Writes
	res.BulkCPUSeconds = act.cpu.Seconds()
	res.BulkPeakHeapBytes = act.peakHeap
	res.LastWriteAfterStart = act.lastWrite.Sub(t0).Seconds()
	res.LastWriteAfterConvergence = act.lastWrite.Sub(convergedAt).Seconds()
	res.ReadyLag = summarize(bw.readyLags(needs))
	if o.cpuProfile != "" {
		// The heap once the bulk is carried out, beside the CPU profile.
		if err := fetchProfile("http://"+pprofAddr+"/debug/pprof/heap", o.cpuProfile+".heap"); err != nil {
			return nil, err
		}
	}
	apiAfter, err := scrapeAPIWrites(ctx, lc.Config)
	if err != nil {
		return nil, err
	}
	res.BulkAPIWrites = apiAfter.minus(apiBase)
	res.BulkSplit = res.BulkAPIWrites.split()

	log("checking connectivity with the evaluator")
	res.EvaluatorChecked, res.EvaluatorWrong, err = checkConnectivity(ctx, c, syn, o.seed)
	if err != nil {
		return nil, err
	}

	r := rand.New(rand.NewPCG(o.seed, 7))
	for _, sc := range scenarios(syn, r) {
		log("one change: %s", sc.name)
		ch := change{Kind: sc.name}
		var writes, lat []float64
		for i := 0; i < o.runs; i++ {
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
		ch.Runs = o.runs
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
	op, err = startOperator(ctx, bin, lc.Kubeconfig, res.Limit, "", opLog, o.mesh)
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

	op.Stop(process.StopGrace)
	log("full floor: the operator stopped; removing what the bulk and the changes wrote")
	if err := clearBulk(ctx, c, syn.namespaces, labels); err != nil {
		return nil, err
	}
	log("full floor: creating the %d ClientIntents (16 writers) while 4 writers write the %d policies and %d pod labels, and 8 each status once its ClientIntents and policies exist (%d runs)", len(full.intents), len(full.policies), len(full.labels), o.fullRuns)
	scrape := func() (apiWrites, error) { return scrapeAPIWrites(ctx, lc.Config) }
	if res.FullFloor, err = measureFullFloor(ctx, c, scrape, full, o.fullRuns); err != nil {
		return nil, err
	}
	res.BulkFullRatio = res.BulkSeconds / res.FullFloor.Seconds
	if res.BenchPeakRSSBytes, err = process.SelfPeakRSS(); err != nil {
		return nil, err
	}
	return res, nil
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

// printTable prints the table row for the run, then the details behind it.
func printTable(r *result) {
	mib := func(b float64) float64 { return b / (1 << 20) }
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "size (ns / workloads / calls)\tbulk convergence\tunthrottled floor\tratio\tfull floor (input)\tratio\toperator CPU\twrites in bulk (policies / pod labels / status / events; operator total)\tlast write after start / convergence\tReady lag max / p99\tpeak RSS / heap")
	fmt.Fprintf(tw, "%d / %d / %d\t%.2f s\t%.2f s\t%.1fx\t%.2f s (%.2f s)\t%.1fx\t%.2f s\t%.0f / %.0f / %.0f / %.0f; %.0f\t%.2f s / %+.2f s\t%.0f ms / %.0f ms\t%.1f / %.1f MiB\n",
		r.Namespaces, r.Workloads, r.Edges, r.BulkSeconds, r.Floor.Seconds, r.BulkRatio, r.FullFloor.Seconds, r.FullFloor.InputSeconds, r.BulkFullRatio, r.BulkCPUSeconds,
		r.BulkSplit.Policies, r.BulkSplit.PodLabels, r.BulkSplit.Status, r.BulkSplit.Events, r.BulkWrites,
		r.LastWriteAfterStart, r.LastWriteAfterConvergence, r.ReadyLag.MaxMs, r.ReadyLag.P99Ms,
		mib(float64(r.PeakRSSBytes)), mib(r.BulkPeakHeapBytes))
	fmt.Fprintln(tw)
	_ = tw.Flush()

	limit := "the binary's defaults"
	if r.Limit.Override {
		limit = "overridden by -qps"
	}
	fmt.Fprintf(tw, "cluster\t%d workloads, %d pods, %d namespaces, %d calls, %d policies, %d pod labels (seed %d)\n", r.Workloads, r.Pods, r.Namespaces, r.Edges, r.Policies, r.PodLabels, r.Seed)
	if r.Limit.QPS <= 0 {
		fmt.Fprintf(tw, "operator client limit\tnone (%s): the API server's Priority and Fairness paces it\n", limit)
	} else {
		fmt.Fprintf(tw, "operator client limit\t%g QPS, burst %d (%s)\n", r.Limit.QPS, r.Limit.Burst, limit)
	}
	if r.IstioPolicies > 0 {
		fmt.Fprintf(tw, "istio\t%d AuthorizationPolicies, namespaces in ambient mode; the floors write NetworkPolicies only\n", r.IstioPolicies)
	}
	fmt.Fprintf(tw, "floor, no client limit (4 writers)\tmedian %.2fs of %s\n", r.Floor.Seconds, seconds(r.Floor.Runs))
	fmt.Fprintf(tw, "floor at the operator's client limit\tmedian %.2fs of %s (bulk %.2fx this)\n", r.ThrottledFloor.Seconds, seconds(r.ThrottledFloor.Runs), r.BulkSeconds/r.ThrottledFloor.Seconds)
	fmt.Fprintf(tw, "full floor: ClientIntents, policies, pod labels, status\tmedian %.2fs of %s (bulk %.2fx this); statuses equal to the bulk's: %d\n", r.FullFloor.Seconds, seconds(r.FullFloor.Runs), r.BulkFullRatio, r.FullFloor.StatusesEqual)
	fmt.Fprintf(tw, "  its input: ClientIntents created (16 writers)\tmedian %.2fs of %s\n", r.FullFloor.InputSeconds, seconds(r.FullFloor.InputRuns))
	fmt.Fprintf(tw, "  last run, API writes by kind\t%s\n", r.FullFloor.Writes.top(6))
	fmt.Fprintf(tw, "ClientIntents created in the bulk (generator, 16 writers)\t%.2fs after the first create\n", r.IntentsCreatedSeconds)
	fmt.Fprintf(tw, "bulk writes, API server\t%.0f policies, %.0f pod labels, %.0f status, %.0f events, %.0f other (and %.0f ClientIntents by the generator)\n", r.BulkSplit.Policies, r.BulkSplit.PodLabels, r.BulkSplit.Status, r.BulkSplit.Events, r.BulkSplit.Other, r.BulkSplit.Intents)
	fmt.Fprintf(tw, "bulk API writes by kind (all writers)\t%s\n", r.BulkAPIWrites)
	fmt.Fprintf(tw, "Ready lag (last policy write -> Ready)\tmax %.0f ms, p99 %.0f ms; %d Ready before their last policy write, %d not Ready\n", r.ReadyLag.MaxMs, r.ReadyLag.P99Ms, r.ReadyLag.Early, r.ReadyLag.NotReady)
	fmt.Fprintf(tw, "evaluator\t%d pairs checked, %d wrong\n", r.EvaluatorChecked, r.EvaluatorWrong)
	for _, ch := range r.Changes {
		fmt.Fprintf(tw, "%s\twrites median %.0f max %.0f; last policy write after median %.1fms max %.1fms (%d runs)\n", ch.Kind, ch.MedianWrites, ch.MaxWrites, ch.MedianLatency, ch.MaxLatency, ch.Runs)
		fmt.Fprintf(tw, "  last run, API writes by kind (all writers)\t%s\n", ch.LastAPIWrites.top(6))
	}
	fmt.Fprintf(tw, "idle resync (operator restart)\t%.0f writes\n", r.IdleResyncWrites)
	if len(r.IdleAPIWrites) > 0 {
		fmt.Fprintf(tw, "  API writes by kind (all writers)\t%s\n", r.IdleAPIWrites.top(6))
	}
	fmt.Fprintf(tw, "operator memory\tpeak RSS %.1f MiB, heap in use %.1f MiB (peak in bulk %.1f MiB)\n", mib(float64(r.PeakRSSBytes)), mib(r.HeapInuseBytes), mib(r.BulkPeakHeapBytes))
	fmt.Fprintf(tw, "bench process\tpeak RSS %.1f MiB\n", mib(float64(r.BenchPeakRSSBytes)))
	_ = tw.Flush()
}

// seconds lists durations in seconds, as "0.41s, 0.39s, 0.44s".
func seconds(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2fs", x)
	}
	return strings.Join(parts, ", ")
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
