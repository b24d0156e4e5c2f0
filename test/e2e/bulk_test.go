package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/operator"
)

// slowPolicyWrites delays every NetworkPolicy write, as a loaded API server does in a
// bulk: servers then wait their turn in the reconciler's queue.
type slowPolicyWrites struct {
	rt    http.RoundTripper
	delay time.Duration
}

func (s slowPolicyWrites) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/networkpolicies") {
		time.Sleep(s.delay)
	}
	return s.rt.RoundTrip(req)
}

// A bulk of ClientIntents writes the policy of the server they all call once. The server
// is queued by the first of its clients, before the stream turns out to be a burst, and
// waits its turn behind other servers (NetworkPolicy writes take 100 ms, 4 reconciles in
// parallel as shipped: about 300 ms) while the rest of its clients arrive over 600 ms:
// its reconcile waits for the burst's release instead of writing the policy for the
// clients seen so far and again for the others.
func TestBulkWritesEachServerPolicyOnce(t *testing.T) {
	ns := env.Namespace(t, "bulk-once")
	const fillers, fast, streamed = 12, 16, 20
	env.Deployment(t, ns, "server", 1, nil, nil)
	for i := range fillers {
		env.Deployment(t, ns, fmt.Sprint("filler-", i), 1, nil, nil)
	}
	oc := operator.Config{MetricsAddr: "0", ProbeAddr: "0", InProcess: true, MaxConcurrentReconciles: 4}
	counter := runCounted(t, local.Config, "operator", func(ctx context.Context, cfg *rest.Config) (ctrl.Manager, error) {
		cfg = rest.CopyConfig(cfg)
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return slowPolicyWrites{rt: rt, delay: 100 * time.Millisecond}
		})
		return operator.New(ctx, cfg, oc)
	})
	waitReady(t, env.ApplyIntents(t, ns, `
metadata: {name: warm-up}
spec:
  workload: {name: warm-up}
  targets:
  - kubernetes: {name: filler-0}
`))
	time.Sleep(1500 * time.Millisecond) // no event of the warm-up counts towards the burst

	// First a client of every filler: the servers that keep the queue busy.
	var fill v2beta1.ClientIntents
	fill.Namespace, fill.Name = ns, "fill"
	fill.Spec.Workload.Name = "fill"
	for i := range fillers {
		fill.Spec.Targets = append(fill.Spec.Targets, v2beta1.Target{Kubernetes: &v2beta1.KubernetesTarget{Name: fmt.Sprint("filler-", i)}})
	}
	env.Create(t, &fill)
	clientOf := func(i int) *v2beta1.ClientIntents {
		ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprint("client-", i)}}
		ci.Spec.Workload.Name = ci.Name
		ci.Spec.Targets = []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "server"}}}
		return ci
	}
	var all []*v2beta1.ClientIntents
	for i := range fast + streamed {
		all = append(all, clientOf(i))
	}
	// The first clients of the server at once, which makes the stream a burst (more than
	// 16 events in a second); the others over the next 600 ms, after the server's turn in
	// the queue came and before the burst pauses.
	var wg sync.WaitGroup
	for _, ci := range all[:fast] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := kube.Create(context.Background(), ci); err != nil {
				t.Errorf("creating %s: %v", ci.Name, err)
			}
		}()
	}
	wg.Wait()
	for _, ci := range all[fast:] {
		time.Sleep(30 * time.Millisecond)
		env.Create(t, ci)
	}
	for _, ci := range all {
		waitReady(t, ci)
	}
	time.Sleep(time.Second) // a rewrite would have landed by now

	var policy networkingv1.NetworkPolicy
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "access-to.any.server"}, &policy); err != nil {
		t.Fatal(err)
	}
	var rewrites []string
	for _, r := range counter.Requests() {
		if strings.HasSuffix(r, "/namespaces/"+ns+"/networkpolicies/access-to.any.server") {
			rewrites = append(rewrites, r)
		}
	}
	if policy.Generation != 1 || len(rewrites) != 0 {
		t.Fatalf("the server's policy was written again after its create: generation %d, writes %v; want one create", policy.Generation, rewrites)
	}
	if got := len(policy.Spec.Ingress); got == 0 {
		t.Fatalf("the server's policy admits no client")
	}
}
