package suite

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/testsupport/tutorial"
)

// PodsTimeout is how long Deployment waits for kube-controller-manager to create pods.
const PodsTimeout = 30 * time.Second

// Deployment creates a Deployment of the tutorial's shape (pods labelled app=<name> plus
// extraLabels, with podAnnotations, container port 8080) and waits until its pods exist:
// nothing runs them, but the operators under test act on pods.
func (e *Env) Deployment(t testing.TB, ns, name string, replicas int32, podAnnotations, extraLabels map[string]string) *appsv1.Deployment {
	t.Helper()
	d := tutorial.Deployment(ns, name, 8080)
	d.Spec.Replicas = &replicas
	d.Spec.Template.Annotations = podAnnotations
	for k, v := range extraLabels {
		d.Spec.Template.Labels[k] = v
	}
	e.Create(t, d)
	WaitFor(t, fmt.Sprintf("%d pods of %s/%s", replicas, ns, name), PodsTimeout, func() (bool, error) {
		var pods corev1.PodList
		if err := e.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": name}); err != nil {
			return false, err
		}
		return len(pods.Items) >= int(replicas), nil
	})
	return d
}

// ApplyIntents creates ClientIntents in ns from YAML, as users write them; fields the
// type does not know fail the test.
func (e *Env) ApplyIntents(t testing.TB, ns, doc string) *v2beta1.ClientIntents {
	t.Helper()
	ci := &v2beta1.ClientIntents{}
	if err := yaml.UnmarshalStrict([]byte(doc), ci); err != nil {
		t.Fatalf("decoding ClientIntents: %v", err)
	}
	ci.Namespace = ns
	e.Create(t, ci)
	return ci
}
