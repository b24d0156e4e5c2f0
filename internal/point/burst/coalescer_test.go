package burst

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func newQueue(t *testing.T) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	t.Cleanup(q.ShutDown)
	return q
}

// queued takes every request in q.
func queued(q workqueue.TypedRateLimitingInterface[reconcile.Request]) map[reconcile.Request]bool {
	out := map[reconcile.Request]bool{}
	for q.Len() > 0 {
		r, _ := q.Get()
		out[r] = true
		q.Done(r)
	}
	return out
}

// A few events are enqueued at once; in a burst, the servers are held until it pauses
// and then enqueued together, each once.
func TestCoalescerHoldsServersOnlyDuringABurst(t *testing.T) {
	c := NewCoalescer()
	c.quiet, c.maxHold = 50*time.Millisecond, time.Minute
	q := newQueue(t)
	for range 10 * burstEvents {
		c.Add(q, nil) // pods that bear on no server
	}
	for i := range burstEvents {
		c.Add(q, []reconcile.Request{req(fmt.Sprint("early-", i))})
		if q.Len() != 1 {
			t.Fatalf("event %d outside a burst: %d queued, want it at once", i, q.Len())
		}
		queued(q)
	}
	// The burst: 100 more clients calling 10 servers between them.
	for i := range 100 {
		c.Add(q, []reconcile.Request{req(fmt.Sprint("server-", i%10))})
	}
	if q.Len() != 0 {
		t.Fatalf("%d servers queued during the burst, want them held", q.Len())
	}
	time.Sleep(200 * time.Millisecond)
	got := queued(q)
	if len(got) != 10 {
		t.Fatalf("after the pause %d servers queued, want the 10 held", len(got))
	}
	// The burst is over once its window is: one edit goes at once again.
	time.Sleep(burstWindow)
	c.Add(q, []reconcile.Request{req("edited")})
	if q.Len() != 1 {
		t.Fatalf("one edit after the burst: %d queued, want it at once", q.Len())
	}
}

// A burst that does not pause hands its servers over every maxHold.
func TestCoalescerReleasesALongBurstInSteps(t *testing.T) {
	c := NewCoalescer()
	c.quiet, c.maxHold = 100*time.Millisecond, 300*time.Millisecond
	q := newQueue(t)
	start := time.Now()
	var first time.Duration
	for i := 0; time.Since(start) < time.Second; i++ {
		c.Add(q, []reconcile.Request{req(fmt.Sprint("server-", i))})
		if first == 0 && i > burstEvents && q.Len() > burstEvents {
			first = time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if first == 0 || first > 700*time.Millisecond {
		t.Fatalf("servers of a continuous burst first released after %v, want about maxHold", first)
	}
}

func req(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
}
