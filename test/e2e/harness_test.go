package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/connectivity"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

var (
	env   *suite.Env
	local *controlplane.Cluster
	kube  client.Client
)

func TestMain(m *testing.M) {
	env = suite.Start(suite.Options{
		ControlPlane: controlplane.Options{Webhooks: true},
		AddToScheme:  []func(*runtime.Scheme) error{apiextensionsv1.AddToScheme, eventsv1.AddToScheme},
	})
	local, kube = env.Cluster, env.Client
	os.Exit(env.Run(m))
}

// startOperator runs the operator with the given settings until the test ends, and
// returns a counter of the API writes it makes.
func startOperator(t *testing.T, opts enforcement.Options) *suite.WriteCounter {
	t.Helper()
	return startOperatorOn(t, local.Config, opts)
}

// startOperatorOn is startOperator against another control plane.
func startOperatorOn(t *testing.T, target *rest.Config, opts enforcement.Options) *suite.WriteCounter {
	t.Helper()
	return startOperatorConfig(t, target, operator.Config{Enforcement: opts})
}

// startOperatorConfig is startOperatorOn with every operator setting; the metrics and
// probe addresses are turned off.
func startOperatorConfig(t *testing.T, target *rest.Config, oc operator.Config) *suite.WriteCounter {
	t.Helper()
	oc.MetricsAddr, oc.ProbeAddr, oc.InProcess = "0", "0", true
	return runCounted(t, target, "operator", func(ctx context.Context, cfg *rest.Config) (ctrl.Manager, error) {
		return operator.New(ctx, cfg, oc)
	})
}

// runCounted runs an operator built against target, through a write counter, until the
// test ends; operators run one at a time.
func runCounted(t *testing.T, target *rest.Config, what string, build func(context.Context, *rest.Config) (ctrl.Manager, error)) *suite.WriteCounter {
	t.Helper()
	cfg, counter := suite.Counted(target)
	env.RunOperator(t, what, func(ctx context.Context) (ctrl.Manager, error) { return build(ctx, cfg) })
	return counter
}

// barePod creates a pod with no owner.
func barePod(t *testing.T, ns, name string, labels, annotations map[string]string) {
	t.Helper()
	env.Create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	})
}

func service(t *testing.T, ns, name string, selector map[string]string, port int32, target intstr.IntOrString) {
	t.Helper()
	env.Create(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "web", Port: port, TargetPort: target}},
		},
	})
}

// waitReady waits until the ClientIntents report Ready for their current generation.
func waitReady(t *testing.T, ci *v2beta1.ClientIntents) *v2beta1.ClientIntents {
	t.Helper()
	var got v2beta1.ClientIntents
	suite.WaitFor(t, "ClientIntents "+ci.Name+" Ready", 30*time.Second, func() (bool, error) {
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
	if err := kube.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{ownership.Label: ownership.IntentsOperator}); err != nil {
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
	got, err := eventsOn(ns, name)
	return slices.ContainsFunc(got, func(e string) bool { return strings.HasSuffix(e, " "+reason) }), err
}

// eventsOn lists the type and reason of each Event on a ClientIntents.
func eventsOn(ns, name string) ([]string, error) {
	var events eventsv1.EventList
	if err := kube.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range events.Items {
		if e.Regarding.Kind == "ClientIntents" && e.Regarding.Name == name {
			out = append(out, e.Type+" "+e.Reason)
		}
	}
	return out, nil
}
