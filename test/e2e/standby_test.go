package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/testsupport/process"
)

// standbyPods is more pods than any buffer between the identity index and the
// controllers ever held (1,024 changes per controller).
const standbyPods = 1024 + 276

// replica is one operator replica with leader election, probes on a port of its own.
type replica struct {
	mgr   ctrl.Manager
	probe int
	stop  func()
}

func startReplica(t *testing.T, leaseNamespace string) *replica {
	t.Helper()
	port, err := process.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(local.Config)
	cfg.QPS, cfg.Burst = 200, 400
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := operator.New(ctx, cfg, operator.Config{
		MetricsAddr: "0", ProbeAddr: fmt.Sprintf("127.0.0.1:%d", port), InProcess: true,
		LeaderElection: true, LeaderElectionNamespace: leaseNamespace, LeaderElectionID: "standby-test",
	})
	if err != nil {
		cancel()
		t.Fatalf("building a replica: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	r := &replica{mgr: mgr, probe: port}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("replica: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// ready returns the status and body of the replica's /readyz.
func (r *replica) ready() (int, string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz?verbose", r.probe))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (r *replica) leading() bool {
	select {
	case <-r.mgr.Elected():
		return true
	default:
		return false
	}
}

// Two replicas with leader election, as the chart runs them, in a cluster with more pods
// than any buffer: both become Ready (the standby's controllers never run, and nothing
// waits for them), and when the leader goes, the standby takes over and enforces a
// change made while no replica led.
func TestStandbyReadyAndTakesOver(t *testing.T) {
	env.Exclusive(t)
	ctx := context.Background()
	lease := env.Namespace(t, "standby-lease")
	bulk := env.Namespace(t, "standby-bulk")
	ns := env.Namespace(t, "standby")

	fast := rest.CopyConfig(local.Config)
	fast.QPS, fast.Burst = 1000, 1000
	c, err := client.New(fast, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, standbyPods)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < standbyPods; i += 16 {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: bulk, Name: fmt.Sprintf("bulk-%d", i), Labels: map[string]string{"app": fmt.Sprintf("bulk-%d", i%50)}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				}
				if err := c.Create(ctx, pod); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating pods: %v", err)
	}
	env.Deployment(t, ns, "api", 1, nil, nil)
	env.Deployment(t, ns, "client", 1, nil, nil)
	env.Deployment(t, ns, "other", 1, nil, nil)

	first := startReplica(t, lease)
	if !waitLong(first.leading) {
		t.Fatal("no replica leads")
	}
	second := startReplica(t, lease)
	for name, r := range map[string]*replica{"leader": first, "standby": second} {
		var code int
		var body string
		if !waitLong(func() bool { code, body = r.ready(); return code == http.StatusOK }) {
			t.Fatalf("the %s's /readyz stays %d:\n%s", name, code, body)
		}
	}
	if second.leading() {
		t.Fatal("two replicas lead at once")
	}
	ci := env.ApplyIntents(t, ns, `
metadata: {name: client}
spec: {workload: {name: client}, targets: [{kubernetes: {name: api}}]}
`)
	waitReady(t, ci)
	eventuallyConnectivity(t, http8080, calls{"api.standby": {"client.standby"}}, ns)

	// The leader goes; while no replica leads, another client declares its call.
	first.stop()
	env.ApplyIntents(t, ns, `
metadata: {name: other}
spec: {workload: {name: other}, targets: [{kubernetes: {name: api}}]}
`)
	if !waitLong(second.leading) {
		t.Fatal("the standby never took over")
	}
	if code, body := second.ready(); code != http.StatusOK {
		t.Fatalf("the new leader's /readyz: %d %s", code, body)
	}
	eventuallyConnectivity(t, http8080, calls{"api.standby": {"client.standby", "other.standby"}}, ns)
}

// waitLong reports whether cond became true within two minutes (leader election and a
// cache of this size take longer than the suite's usual 30 s).
func waitLong(cond func() bool) bool {
	return wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return cond(), nil
	}) == nil
}
