package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/apitest"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/facts/informer"
	"github.com/intentguard/intentguard/internal/localcluster"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
	"github.com/intentguard/intentguard/internal/tutorial"
)

var (
	local *localcluster.Cluster
	kube  client.Client
	// operatorMu serialises tests: one operator runs at a time, with its own settings.
	operatorMu sync.Mutex
)

func TestMain(m *testing.M) {
	if os.Getenv("E2E_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.Level(zap.Options{}.Level), zap.WriteTo(apitest.Discard{})))
	}
	ctx := context.Background()
	var err error
	local, err = localcluster.Start(ctx, localcluster.Options{Webhooks: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane:", err)
		os.Exit(1)
	}
	scheme := informer.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := eventsv1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kube, err = client.New(local.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := local.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the local control plane:", err)
	}
	os.Exit(code)
}

// startOperator runs the operator with the given settings until the test ends, and
// returns a counter of the API writes it makes.
func startOperator(t *testing.T, opts enforcement.Options) *apitest.WriteCounter {
	t.Helper()
	return startOperatorOn(t, local.Config, opts)
}

// startOperatorOn is startOperator against another control plane.
func startOperatorOn(t *testing.T, target *rest.Config, opts enforcement.Options) *apitest.WriteCounter {
	t.Helper()
	return startOperatorConfig(t, target, operator.Config{Enforcement: opts})
}

// startOperatorConfig is startOperatorOn with every operator setting; the metrics and
// probe addresses are turned off.
func startOperatorConfig(t *testing.T, target *rest.Config, oc operator.Config) *apitest.WriteCounter {
	t.Helper()
	oc.MetricsAddr, oc.ProbeAddr, oc.InProcess = "0", "0", true
	return runManager(t, target, "operator", func(ctx context.Context, cfg *rest.Config) (ctrl.Manager, error) {
		return operator.New(ctx, cfg, oc)
	})
}

// runManager builds a manager against target, through a write counter, and runs it until
// the test ends; managers run one at a time.
func runManager(t *testing.T, target *rest.Config, what string, build func(context.Context, *rest.Config) (ctrl.Manager, error)) *apitest.WriteCounter {
	t.Helper()
	operatorMu.Lock()
	counter := &apitest.WriteCounter{}
	cfg := rest.CopyConfig(target)
	cfg.QPS, cfg.Burst = 200, 400
	cfg.WrapTransport = counter.Wrap
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := build(ctx, cfg)
	if err != nil {
		cancel()
		operatorMu.Unlock()
		t.Fatalf("building the %s: %v", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
		}
		operatorMu.Unlock()
	})
	return counter
}

// namespace creates a namespace that is deleted when the test ends.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	create(t, ns)
	t.Cleanup(func() { _ = kube.Delete(context.Background(), ns) })
	return name
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := kube.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
		}
	}
}

// deployment creates a Deployment (pods labelled app=<name> plus extra) and waits for its pods.
func deployment(t *testing.T, ns, name string, replicas int32, podAnnotations map[string]string, extraLabels map[string]string) *appsv1.Deployment {
	t.Helper()
	d := tutorial.Deployment(ns, name, 8080)
	d.Spec.Replicas = &replicas
	d.Spec.Template.Annotations = podAnnotations
	for k, v := range extraLabels {
		d.Spec.Template.Labels[k] = v
	}
	create(t, d)
	waitFor(t, fmt.Sprintf("%d pods of %s/%s", replicas, ns, name), func() (bool, error) {
		var pods corev1.PodList
		if err := kube.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": name}); err != nil {
			return false, err
		}
		return len(pods.Items) >= int(replicas), nil
	})
	return d
}

// barePod creates a pod with no owner.
func barePod(t *testing.T, ns, name string, labels, annotations map[string]string) {
	t.Helper()
	create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	})
}

func service(t *testing.T, ns, name string, selector map[string]string, port int32, target intstr.IntOrString) {
	t.Helper()
	create(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "web", Port: port, TargetPort: target}},
		},
	})
}

// applyIntents creates ClientIntents from YAML, the way users write them.
func applyIntents(t *testing.T, ns, doc string) *v2beta1.ClientIntents {
	t.Helper()
	ci := &v2beta1.ClientIntents{}
	if err := yaml.UnmarshalStrict([]byte(doc), ci); err != nil {
		t.Fatalf("decoding intents: %v", err)
	}
	ci.Namespace = ns
	create(t, ci)
	return ci
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		ok, err := cond()
		if err != nil {
			lastErr = err
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
	}
}

// waitReady waits until the ClientIntents report Ready for their current generation.
func waitReady(t *testing.T, ci *v2beta1.ClientIntents) *v2beta1.ClientIntents {
	t.Helper()
	var got v2beta1.ClientIntents
	waitFor(t, "ClientIntents "+ci.Name+" Ready", func() (bool, error) {
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
			return false, err
		}
		return got.Status.ObservedGeneration == got.Generation && apimeta.IsStatusConditionTrue(got.Status.Conditions, enforcement.ConditionReady), nil
	})
	return &got
}

// managedPolicies lists the operator's policies in a namespace.
func managedPolicies(t *testing.T, ns string) []networkingv1.NetworkPolicy {
	t.Helper()
	var list networkingv1.NetworkPolicyList
	if err := kube.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{compile.ManagedByLabel: compile.ManagedByValue}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// calls is the expected connectivity: protected server workload -> the client workloads
// allowed to reach it, each as "name.namespace". Servers not listed must accept everyone.
type calls map[string][]string

// connectivityErrors evaluates, with an evaluator independent of the compiler, every
// ordered pair of pods in the namespaces, and lists the pairs whose verdict differs from
// the declared calls, with the rendered matrix.
func connectivityErrors(port connectivity.Port, want calls, namespaces ...string) ([]string, string, error) {
	m, err := connectivity.Evaluate(context.Background(), kube, namespaces, port)
	if err != nil {
		return nil, "", err
	}
	var wrong []string
	for _, src := range m.Pods {
		for _, dst := range m.Pods {
			if src.Name == dst.Name && src.Namespace == dst.Namespace {
				continue
			}
			allowedClients, protected := want[dst.Workload]
			expect := !protected || slices.Contains(allowedClients, src.Workload)
			if got := m.Allowed(src, dst); got != expect {
				wrong = append(wrong, fmt.Sprintf("%s/%s (%s) -> %s/%s (%s): allowed=%v, want %v", src.Namespace, src.Name, src.Workload, dst.Namespace, dst.Name, dst.Workload, got, expect))
			}
		}
	}
	var sb strings.Builder
	m.Render(&sb)
	return wrong, sb.String(), nil
}

// assertConnectivity fails unless every pair of pods is allowed exactly as declared.
func assertConnectivity(t *testing.T, port connectivity.Port, want calls, namespaces ...string) {
	t.Helper()
	wrong, matrix, err := connectivityErrors(port, want, namespaces...)
	if err != nil {
		t.Fatal(err)
	}
	if len(wrong) > 0 {
		t.Fatalf("connectivity differs from the declared calls:\n%s\n%s", strings.Join(wrong, "\n"), matrix)
	}
}

// eventuallyConnectivity waits until connectivity is as declared (the operator works
// asynchronously), and fails with the differences if it never is.
func eventuallyConnectivity(t *testing.T, port connectivity.Port, want calls, namespaces ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if wrong, _, err := connectivityErrors(port, want, namespaces...); err == nil && len(wrong) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertConnectivity(t, port, want, namespaces...)
}

func deleteObj(t *testing.T, o client.Object) {
	t.Helper()
	if err := kube.Delete(context.Background(), o); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting %T %s: %v", o, o.GetName(), err)
	}
}

func yamlStrict(doc string, into any) error { return yaml.UnmarshalStrict([]byte(doc), into) }

// hasEvent reports whether an Event with the reason was recorded for the named ClientIntents.
// assertReadiness checks that the ClientIntents' Ready is False beside the kstatus
// condition that says why (Reconciling or Stalled), True with the same reason, and that
// the other one is absent.
func assertReadiness(t *testing.T, ci *v2beta1.ClientIntents, holds string) {
	t.Helper()
	var got v2beta1.ClientIntents
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
		t.Fatal(err)
	}
	ready := apimeta.FindStatusCondition(got.Status.Conditions, enforcement.ConditionReady)
	c := apimeta.FindStatusCondition(got.Status.Conditions, holds)
	if ready == nil || ready.Status != metav1.ConditionFalse || c == nil || c.Status != metav1.ConditionTrue || c.Reason != ready.Reason || c.Message != ready.Message {
		t.Fatalf("Ready %+v with %s %+v", ready, holds, c)
	}
	other := enforcement.ConditionStalled
	if holds == other {
		other = enforcement.ConditionReconciling
	}
	if o := apimeta.FindStatusCondition(got.Status.Conditions, other); o != nil {
		t.Fatalf("%s present beside %s: %+v", other, holds, o)
	}
}

func hasEvent(ns, name, reason string) (bool, error) {
	var events eventsv1.EventList
	if err := kube.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		return false, err
	}
	for _, e := range events.Items {
		if e.Regarding.Kind == "ClientIntents" && e.Regarding.Name == name && e.Reason == reason {
			return true, nil
		}
	}
	return false, nil
}
