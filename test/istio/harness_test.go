// Package istio_test runs the Istio enforcement point on a real kube-apiserver with
// Istio's AuthorizationPolicy CRD installed (no Istio running): the policies it stores
// are judged by the evaluator of Istio's documented semantics (authztest).
package istio_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/operator"
	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/istio"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
	"github.com/intentguard/intentguard/internal/testsupport/controlplane"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// trustDomain is the mesh's, as istiod's mesh configuration states it.
const trustDomain = "corp.example"

var (
	env  *suite.Env
	kube client.Client
)

func TestMain(m *testing.M) {
	env = suite.Start(suite.Options{
		ControlPlane: controlplane.Options{Istio: true},
		AddToScheme:  []func(*runtime.Scheme) error{istio.AddToScheme},
		Setup: func(e *suite.Env) error {
			ctx := context.Background()
			if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: istio.DefaultMeshConfig.Namespace}}); err != nil {
				return err
			}
			return e.Client.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: istio.DefaultMeshConfig.Namespace, Name: istio.DefaultMeshConfig.Name},
				Data:       map[string]string{"mesh": "trustDomain: " + trustDomain + "\n"},
			})
		},
	})
	kube = env.Client
	os.Exit(env.Run(m))
}

// startOperator runs the intents operator with the Istio point until the test ends, and
// returns the counter of its writes.
func startOperator(t *testing.T, enf enforcement.Options) *suite.WriteCounter {
	t.Helper()
	cfg, counter := suite.Counted(env.Cluster.Config)
	env.RunOperator(t, "operator", func(ctx context.Context) (ctrl.Manager, error) {
		return operator.New(ctx, cfg, operator.Config{
			Enforcement: enf, MetricsAddr: "0", ProbeAddr: "0", InProcess: true, KeepKafkaFinalizers: true,
			IstioAuthorizationPolicies: true,
		})
	})
	return counter
}

// policyWrites counts the operator's writes of AuthorizationPolicies in ns so far (an
// operator also clears what earlier tests left in their namespaces).
func policyWrites(c *suite.WriteCounter, ns string) int {
	n := 0
	for _, r := range c.Requests() {
		if strings.Contains(r, "/namespaces/"+ns+"/authorizationpolicies") {
			n++
		}
	}
	return n
}

// Mesh modes of a workload's pods.
const (
	sidecar = "sidecar" // an istio-proxy container
	native  = "native"  // an istio-proxy init container that keeps running
	none    = ""        // no proxy: ambient when the namespace says so, else outside
)

// workload creates a ServiceAccount and a one-pod Deployment of that name (pods labelled
// app=<name>, port 80) in the mesh mode, and waits for its pod.
func workload(t *testing.T, ns, name, mode string) {
	t.Helper()
	env.Create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	d := tutorial.Deployment(ns, name, 80)
	spec := &d.Spec.Template.Spec
	spec.ServiceAccountName = name
	always := corev1.ContainerRestartPolicyAlways
	switch mode {
	case sidecar:
		spec.Containers = append(spec.Containers, corev1.Container{Name: authz.ProxyContainer, Image: "istio/proxyv2"})
	case native:
		spec.InitContainers = []corev1.Container{{Name: authz.ProxyContainer, Image: "istio/proxyv2", RestartPolicy: &always}}
	}
	env.Create(t, d)
	suite.WaitFor(t, fmt.Sprintf("a pod of %s/%s", ns, name), suite.PodsTimeout, func() (bool, error) {
		var pods corev1.PodList
		err := kube.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": name})
		return len(pods.Items) > 0, err
	})
}

// service creates the Service name selecting app=name, port 80 to 80, with labels.
func service(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	env.Create(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}},
		},
	})
}

// policies returns the operator's AuthorizationPolicies in ns.
func policies(t *testing.T, ns string) []*securityv1.AuthorizationPolicy {
	t.Helper()
	var list securityv1.AuthorizationPolicyList
	if err := kube.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{ownership.Label: ownership.IntentsOperator}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitTarget waits until the ClientIntents' status reports the Istio point's state for
// its target at the current generation, with a message holding every part of want, and
// returns the message.
func waitTarget(t *testing.T, ci *v2beta1.ClientIntents, state enforcement.State, want ...string) string {
	t.Helper()
	var msg string
	suite.WaitFor(t, fmt.Sprintf("%s/%s: Istio point %s %q", ci.Namespace, ci.Name, state, want), 30*time.Second, func() (bool, error) {
		var got v2beta1.ClientIntents
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(ci), &got); err != nil {
			return false, err
		}
		if got.Status.ObservedGeneration != got.Generation {
			return false, fmt.Errorf("status of generation %d, object at %d", got.Status.ObservedGeneration, got.Generation)
		}
		for _, st := range got.Status.Targets {
			if st.Point != istio.PointName {
				continue
			}
			msg = st.Message
			if st.State != string(state) {
				return false, fmt.Errorf("%s is %s: %s", st.Target, st.State, st.Message)
			}
			for _, w := range want {
				if !strings.Contains(st.Message, w) {
					return false, fmt.Errorf("%s: message %q lacks %q", st.Target, st.Message, w)
				}
			}
			return true, nil
		}
		return false, fmt.Errorf("no target reported by %s: %+v", istio.PointName, got.Status.Targets)
	})
	return msg
}

func principal(ns, sa string) string { return authz.Principal(trustDomain, ns, sa) }
