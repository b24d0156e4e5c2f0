package networkpolicy

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/intentguard/intentguard/internal/ownership"
	"github.com/intentguard/intentguard/internal/point/burst"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// The watch event of the reconciler's own write is ignored once; every other version,
// and every deletion, brings the server back and marks it in hand.
func TestOwnWritesDoNotBringTheServerBack(t *testing.T) {
	policy := func(rv string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: "access-to.any.api", ResourceVersion: rv,
			Labels:      map[string]string{ownership.Label: ownership.IntentsOperator},
			Annotations: map[string]string{compile.ServerAnnotation: "workload//api"},
		}}
	}
	server := reconcile.Request{}
	server.Namespace, server.Name = "ns", "workload//api"
	prog, e := newProgress(), burst.NewEchoes()
	h := burst.EnqueueUnlessEcho(e, prog.mark, serverOfPolicy)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	ctx := context.Background()
	// drained reports whether the last events enqueued the server, and empties the queue.
	drained := func() bool {
		n := q.Len()
		for q.Len() > 0 {
			r, _ := q.Get()
			if r != server {
				t.Fatalf("enqueued %v, want %v", r, server)
			}
			q.Done(r)
			prog.finish(r, prog.begin(), nil)
		}
		return n > 0
	}

	e.Wrote(policy("5"))
	h.Create(ctx, event.CreateEvent{Object: policy("5")}, q)
	if drained() || prog.outstanding(server) {
		t.Fatal("the echo of a create brought the server back")
	}
	h.Update(ctx, event.UpdateEvent{ObjectOld: policy("5"), ObjectNew: policy("5")}, q)
	if !drained() {
		t.Fatal("a version is echoed only once")
	}
	e.Wrote(policy("7"))
	h.Update(ctx, event.UpdateEvent{ObjectOld: policy("7"), ObjectNew: policy("8")}, q)
	if !drained() {
		t.Fatal("an edit after the operator's write was ignored")
	}
	e.Wrote(policy("9"))
	h.Delete(ctx, event.DeleteEvent{Object: policy("9")}, q)
	if !drained() {
		t.Fatal("the deletion of the policy as the operator wrote it was ignored")
	}
	h.Create(ctx, event.CreateEvent{Object: policy("")}, q)
	if !drained() {
		t.Fatal("a policy never written by this operator was ignored")
	}
	e.Wrote(policy(""))
	h.Create(ctx, event.CreateEvent{Object: policy("")}, q)
	if !drained() {
		t.Fatal("a write without a version was taken for an echo")
	}
}
