// Command kafkabench measures what the Kafka enforcement point costs a broker: bulk
// creation of every client's ACLs, one edited ClientIntents, an idle resync, and an
// operator restart. Requests are counted at the broker (an in-process kfake broker with
// SASL and ACLs on), not in the operator.
//
//	go run ./test/kafkabench                  # 100 clients, 500 ACLs
//	go run ./test/kafkabench -clients 1000    # 1,000 clients, 5,000 ACLs (make bench-kafka)
//	go run ./test/kafkabench -clients 10000   # 10,000 clients, 50,000 ACLs (make bench-kafka-scale)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/kafka"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/kafkatest"
	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// aclsPerClient is what each client's intents compile to: Read and Write on its input
// topic, Read on its consumer group, Write and Describe on its output topic.
const aclsPerClient = 5

const ns = "kafkabench"

type phase struct {
	Name    string           `json:"name"`
	Seconds float64          `json:"seconds"`
	Counts  kafkatest.Counts `json:"requests"`
	// APIWrites are the Kafka point's writes to the API server: KafkaServerConfig status
	// and finalizer, and the owned-ACL record. The NetworkPolicy and status controllers of
	// the same operator (settling 1,000 new ClientIntents) are not counted.
	APIWrites int64 `json:"apiWrites"`
	// CPUSeconds is the user and system CPU time of the whole bench process during the
	// phase: the operator runs in it, beside the kfake broker and the harness's polling.
	CPUSeconds float64 `json:"processCPUSeconds"`
}

// cpuTime returns the CPU time, user and system, this process has used so far.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("reading the CPU time: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// meter times a phase's CPU from its start.
type meter struct{ start time.Duration }

func startMeter() meter {
	t, _ := cpuTime() // Getrusage on RUSAGE_SELF fails only with a bad argument
	return meter{start: t}
}

// seconds is the CPU time used since the meter started.
func (m meter) seconds() float64 {
	t, _ := cpuTime()
	return (t - m.start).Seconds()
}

// writes counts the Kafka point's successful mutating API requests.
type writes struct {
	rt http.RoundTripper
	n  atomic.Int64
}

// RoundTrip counts the request when it mutates and succeeds.
func (w *writes) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.rt.RoundTrip(req)
	kafkaPoint := strings.Contains(req.URL.Path, "/kafkaserverconfigs/") || strings.Contains(req.URL.Path, "/configmaps")
	if kafkaPoint && req.Method != http.MethodGet && err == nil && resp.StatusCode < 400 {
		w.n.Add(1)
	}
	return resp, err
}

type result struct {
	Clients int     `json:"clients"`
	ACLs    int     `json:"acls"`
	Phases  []phase `json:"phases"`
	// RecordBytes is the size of the ConfigMap data recording the owned ACLs.
	RecordBytes int `json:"ownedRecordBytes"`
	// LiveWriteSeconds is how long writing the ClientIntents of the live phase took: the
	// floor of that phase.
	LiveWriteSeconds float64 `json:"liveWriteSeconds"`
	// PeakRSSBytes is the bench process's peak RSS (operator, broker and harness), and
	// HeapInuseBytes its Go heap in use once the first bulk is in sync.
	PeakRSSBytes   int64  `json:"processPeakRSSBytes"`
	HeapInuseBytes uint64 `json:"heapInuseBytes"`
}

func main() {
	clients := flag.Int("clients", 100, "client identities, each with 5 ACLs")
	resync := flag.Duration("resync", 2*time.Second, "the operator's resync period (idle phase lasts three of them)")
	out := flag.String("o", "text", "output: text or json")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if err := run(*clients, *resync, *out); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(n int, resync time.Duration, format string) error {
	ctx := context.Background()
	lc, err := controlplane.Start(ctx, controlplane.Options{WithoutControllerManager: true})
	if err != nil {
		return err
	}
	defer func() { _ = lc.Stop() }()
	cfg := rest.CopyConfig(lc.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	kube, err := client.New(cfg, client.Options{Scheme: informer.Scheme()})
	if err != nil {
		return err
	}
	b, err := kafkatest.Start(kafkatest.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	reqs := b.CountRequests()

	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := createIntents(ctx, kube, ns, n); err != nil {
		return err
	}
	opWrites := &writes{}
	opCfg := rest.CopyConfig(cfg)
	opCfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { opWrites.rt = rt; return opWrites }
	stop, err := startOperator(ctx, opCfg, resync)
	if err != nil {
		return err
	}
	res := result{Clients: n, ACLs: n * aclsPerClient}

	// Bulk: the KafkaServerConfig appears after every ClientIntents.
	t0, cpu := time.Now(), startMeter()
	ksc, err := createConfig(ctx, kube, ns, b.Addr)
	if err != nil {
		return err
	}
	if err := waitOwned(ctx, kube, ksc, res.ACLs); err != nil {
		return err
	}
	res.Phases = append(res.Phases, phase{Name: "bulk creation", Seconds: time.Since(t0).Seconds(), Counts: reqs.Take(), APIWrites: opWrites.n.Swap(0), CPUSeconds: cpu.seconds()})
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	res.HeapInuseBytes = mem.HeapInuse
	var record corev1.ConfigMap
	if err := kube.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceSystem, Name: kafka.OwnedConfigMapName(ksc.UID)}, &record); err != nil {
		return fmt.Errorf("reading the owned-ACL record: %w", err)
	}
	for _, v := range record.BinaryData {
		res.RecordBytes += len(v)
	}

	// Idle: three resync periods with nothing to do (after the bulk's last status write).
	time.Sleep(resync / 2)
	reqs.Take()
	opWrites.n.Store(0)
	t0, cpu = time.Now(), startMeter()
	time.Sleep(3 * resync)
	res.Phases = append(res.Phases, phase{Name: "idle, 3 resync periods", Seconds: time.Since(t0).Seconds(), Counts: reqs.Take(), APIWrites: opWrites.n.Swap(0), CPUSeconds: cpu.seconds()})

	// One edit: one client's output topic renamed.
	t0, cpu = time.Now(), startMeter()
	var ci v2beta1.ClientIntents
	if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c7"}, &ci); err != nil {
		return err
	}
	ci.Spec.Targets[0].Kafka.Topics[1].Name = "renamed-7"
	if err := kube.Update(ctx, &ci); err != nil {
		return err
	}
	if err := waitFor(ctx, func() (bool, error) {
		c := reqs.Peek()
		return c.Create >= 1 && c.Delete >= 1, nil
	}); err != nil {
		return fmt.Errorf("waiting for the edit: %w", err)
	}
	el := time.Since(t0).Seconds()
	time.Sleep(resync / 2) // anything else the edit caused lands here
	res.Phases = append(res.Phases, phase{Name: "one edited ClientIntents", Seconds: el, Counts: reqs.Take(), APIWrites: opWrites.n.Swap(0), CPUSeconds: cpu.seconds()})

	// Restart: a new operator, nothing changed.
	stop()
	reqs.Take()
	opWrites.n.Store(0)
	t0, cpu = time.Now(), startMeter()
	stop, err = startOperator(ctx, opCfg, resync)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, func() (bool, error) { return reqs.Peek().Describe >= 1, nil }); err != nil {
		return fmt.Errorf("waiting for the restarted operator's first list: %w", err)
	}
	el = time.Since(t0).Seconds()
	time.Sleep(resync + resync/2)
	res.Phases = append(res.Phases, phase{Name: "operator restart, no change", Seconds: el, Counts: reqs.Take(), APIWrites: opWrites.n.Swap(0), CPUSeconds: cpu.seconds()})

	// Bulk again, on a second broker whose config exists first: the ClientIntents arrive
	// while the operator runs, and each reconcile creates what has arrived since the last.
	b2, err := kafkatest.Start(kafkatest.Options{ClusterID: "second"})
	if err != nil {
		return err
	}
	defer b2.Close()
	reqs2 := b2.CountRequests()
	const live = "kafkabench-live"
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: live}}); err != nil {
		return err
	}
	ksc2, err := createConfig(ctx, kube, live, b2.Addr)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, func() (bool, error) { return reqs2.Peek().Describe >= 1, nil }); err != nil {
		return fmt.Errorf("waiting for the first list on the second broker: %w", err)
	}
	opWrites.n.Store(0)
	t0, cpu = time.Now(), startMeter()
	if err := createIntents(ctx, kube, live, n); err != nil {
		return err
	}
	res.LiveWriteSeconds = time.Since(t0).Seconds()
	if err := waitOwned(ctx, kube, ksc2, res.ACLs); err != nil {
		return err
	}
	res.Phases = append(res.Phases, phase{Name: "bulk, intents arriving live", Seconds: time.Since(t0).Seconds(), Counts: reqs2.Take(), APIWrites: opWrites.n.Swap(0), CPUSeconds: cpu.seconds()})
	stop()
	if res.PeakRSSBytes, err = process.SelfPeakRSS(); err != nil {
		return err
	}

	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Printf("%d client identities, %d ACLs on one broker; owned-ACL record %d bytes\n\n", res.Clients, res.ACLs, res.RecordBytes)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tseconds\tlist\tcreate req\tACLs created\tdelete req\tACLs deleted\tKafka API writes\tprocess CPU s")
	for _, p := range res.Phases {
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\n", p.Name, p.Seconds, p.Counts.Describe, p.Counts.Create, p.Counts.CreatedCarried, p.Counts.Delete, p.Counts.DeletedCarried, p.APIWrites, p.CPUSeconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("\n(the live phase's ClientIntents took %.2f s to write)\n", res.LiveWriteSeconds)
	fmt.Printf("process (operator, kfake broker, harness): peak RSS %.1f MiB, heap in use after the first bulk %.1f MiB\n", float64(res.PeakRSSBytes)/(1<<20), float64(res.HeapInuseBytes)/(1<<20))
	return nil
}

func createIntents(ctx context.Context, kube client.Client, ns string, n int) error {
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("c%d", i)
				ci := &v2beta1.ClientIntents{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
					Spec: v2beta1.ClientIntentsSpec{Workload: v2beta1.Workload{Name: name}, Targets: []v2beta1.Target{{Kafka: &v2beta1.KafkaTarget{
						Name: "kafka",
						Topics: []v2beta1.KafkaTopic{
							{Name: fmt.Sprintf("in-%d", i), Operations: []v2beta1.KafkaOperation{"consume", "produce"}},
							{Name: fmt.Sprintf("out-%d", i), Operations: []v2beta1.KafkaOperation{"produce", "describe"}},
						},
					}}}},
				}
				if err := kube.Create(ctx, ci); err != nil {
					errs <- fmt.Errorf("creating ClientIntents %s: %w", name, err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

func createConfig(ctx context.Context, kube client.Client, ns, addr string) (*v2beta1.KafkaServerConfig, error) {
	secret := &corev1.Secret{
		// The operator reads only Secrets their owner opted in for reaching a broker.
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-admin", Labels: map[string]string{kafka.CredentialsLabel: "true"}},
		StringData: map[string]string{"username": kafkatest.AdminUser, "password": kafkatest.AdminPassword},
	}
	if err := kube.Create(ctx, secret); err != nil {
		return nil, err
	}
	ksc := &v2beta1.KafkaServerConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka"},
		Spec: v2beta1.KafkaServerConfigSpec{
			Workload: v2beta1.Workload{Name: "kafka"},
			Addr:     addr,
			SASL:     &v2beta1.KafkaSASL{Mechanism: kafkatest.Mechanism, SecretName: "kafka-admin"},
		},
	}
	return ksc, kube.Create(ctx, ksc)
}

func startOperator(ctx context.Context, cfg *rest.Config, resync time.Duration) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	mgr, err := operator.New(ctx, cfg, operator.Config{
		MetricsAddr: "0", ProbeAddr: "0", InProcess: true, MaxConcurrentReconciles: 4,
		KafkaACLs: true, Kafka: kafka.Options{ResyncPeriod: resync, RecordNamespace: metav1.NamespaceSystem},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() { cancel(); <-done }, nil
}

func waitOwned(ctx context.Context, kube client.Client, ksc *v2beta1.KafkaServerConfig, n int) error {
	var got v2beta1.KafkaServerConfig
	err := waitFor(ctx, func() (bool, error) {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(ksc), &got); err != nil {
			return false, err
		}
		return int(got.Status.OwnedACLs) == n && apimeta.IsStatusConditionTrue(got.Status.Conditions, kafka.ConditionACLsInSync), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s/%s to own %d ACLs in sync (it owns %d; conditions %+v): %w", ksc.Namespace, ksc.Name, n, got.Status.OwnedACLs, got.Status.Conditions, err)
	}
	return nil
}

func waitFor(ctx context.Context, cond func() (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Minute, true, func(context.Context) (bool, error) { return cond() })
}
