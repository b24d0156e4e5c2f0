package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/status"
	"github.com/intentguard/intentguard/internal/testsupport/suite"
)

// laggingReads answers every read of a ClientIntents with the version it first read, as
// an informer cache does until the watch event of a write reaches it.
type laggingReads struct {
	client.Client
	first map[client.ObjectKey]*v2beta1.ClientIntents
}

func (l *laggingReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	ci, ok := obj.(*v2beta1.ClientIntents)
	if !ok {
		return l.Client.Get(ctx, key, obj, opts...)
	}
	if seen, ok := l.first[key]; ok {
		seen.DeepCopyInto(ci)
		return nil
	}
	if err := l.Client.Get(ctx, key, ci, opts...); err != nil {
		return err
	}
	l.first[key] = ci.DeepCopy()
	return nil
}

// enforcedEverywhere is an enforcement point that enforces every target.
type enforcedEverywhere struct{}

func (enforcedEverywhere) Name() string { return "NetworkPolicy" }

func (enforcedEverywhere) Outcomes(_ context.Context, ci *v2beta1.ClientIntents) ([]enforcement.TargetState, error) {
	var out []enforcement.TargetState
	for _, t := range ci.Spec.Targets {
		out = append(out, enforcement.TargetState{Target: intent.TargetName(t), State: enforcement.Enforced, Message: "enforced"})
	}
	return out, nil
}

func (enforcedEverywhere) Protection(context.Context, *v2beta1.ProtectedService) ([]enforcement.TargetState, error) {
	return nil, nil
}

func (enforcedEverywhere) Subscribe() <-chan event.TypedGenericEvent[client.Object] { return nil }

// A status reconcile that reads the ClientIntents before the cache caught up with the
// status just written (several servers' records notify it within the cache's lag, as a
// burst's release does) does not write the same status again.
func TestStatusNotWrittenTwiceOverALaggingCache(t *testing.T) {
	ns := env.Namespace(t, "status-lag")
	env.Exclusive(t)
	ci := &v2beta1.ClientIntents{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "client"}}
	ci.Spec.Workload.Name = "client"
	ci.Spec.Targets = []v2beta1.Target{{Kubernetes: &v2beta1.KubernetesTarget{Name: "server"}}}
	env.Create(t, ci)
	cfg, counter := suite.Counted(local.Config)
	writer, err := client.New(cfg, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	r := &status.ClientIntentsReconciler{Client: &laggingReads{Client: writer, first: map[client.ObjectKey]*v2beta1.ClientIntents{}}, Points: []enforcement.Point{enforcedEverywhere{}}}
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ci)}
	for range 2 {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var patches []string
	for _, w := range counter.Requests() {
		if strings.Contains(w, "/clientintents/client/status") {
			patches = append(patches, w)
		}
	}
	if len(patches) != 1 {
		t.Fatalf("two reconciles over a cache that has not seen the first write wrote %v, want one status write", patches)
	}
}
