package burst

import (
	"context"
	"fmt"
	"sync"
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
	// The 10 servers, and the last window's servers that were queued before it turned
	// out to be a burst (held with it in case their reconcile had not started).
	if len(got) != 10+burstEvents {
		t.Fatalf("after the pause %d servers queued, want the 10 held and the %d queued just before", len(got), burstEvents)
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

// countingReconciler counts the reconciles of each request.
type countingReconciler struct {
	mu   sync.Mutex
	runs map[reconcile.Request]int
}

func (c *countingReconciler) Reconcile(_ context.Context, r reconcile.Request) (reconcile.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[r]++
	return reconcile.Result{}, nil
}

// deferring returns a coalescer with the given pause and no bound, a queue, the
// reconciles counted behind the coalescer's Defer, and a function that runs a reconcile
// for each request queued.
func deferring(t *testing.T, quiet time.Duration) (*Coalescer, workqueue.TypedRateLimitingInterface[reconcile.Request], *countingReconciler, func()) {
	c := NewCoalescer()
	c.quiet, c.maxHold = quiet, time.Minute
	q := newQueue(t)
	rec := &countingReconciler{runs: map[reconcile.Request]int{}}
	r := c.Defer(rec)
	return c, q, rec, func() {
		for req := range queued(q) {
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The servers of the events before a window turned out to be a burst were queued at once;
// once the burst is known they are held with it, and a reconcile of them waits for its
// release, so a server is reconciled once with every client of the burst.
func TestCoalescerHoldsServersQueuedBeforeTheBurstWasKnown(t *testing.T) {
	c, q, rec, reconcileQueued := deferring(t, 50*time.Millisecond)
	early := req("early")
	c.Add(q, []reconcile.Request{early})
	for i := 1; i < burstEvents; i++ {
		c.Add(q, []reconcile.Request{req(fmt.Sprint("passed-", i))})
	}
	if q.Len() != burstEvents {
		t.Fatalf("%d queued before the burst, want the %d servers at once", q.Len(), burstEvents)
	}
	c.Add(q, []reconcile.Request{early, req("late")}) // the burst is known: early is called again
	if !c.Holds(early) || !c.Holds(req("passed-1")) {
		t.Fatalf("servers queued before the burst was known are not held with it")
	}
	reconcileQueued() // the queue reaches the servers queued before the burst
	if len(rec.runs) != 0 {
		t.Fatalf("reconciled %v while the burst held them, want none", rec.runs)
	}
	time.Sleep(200 * time.Millisecond)
	reconcileQueued()
	for _, name := range []string{"early", "late", "passed-1", fmt.Sprint("passed-", burstEvents-1)} {
		if got := rec.runs[req(name)]; got != 1 {
			t.Errorf("%s reconciled %d times after the release, want once", name, got)
		}
	}
	if c.Holds(early) {
		t.Errorf("early still held after the release")
	}
}

// A server a release handed over is reconciled once even when the next burst holds it
// before its turn comes: a stream of events that keeps bringing a server back cannot keep
// it from being written.
func TestCoalescerReconcilesAReleasedServerOnceBeforeHoldingItAgain(t *testing.T) {
	c, q, rec, reconcileQueued := deferring(t, 30*time.Millisecond)
	busy := req("busy")
	for i := range burstEvents + 1 {
		c.Add(q, []reconcile.Request{busy, req(fmt.Sprint("first-", i))})
	}
	queued(q) // reconciles that the burst defers
	time.Sleep(150 * time.Millisecond)
	if q.Len() == 0 {
		t.Fatal("nothing released after the pause")
	}
	// The next burst brings busy back before the queue reaches it.
	for i := range burstEvents + 1 {
		c.Add(q, []reconcile.Request{busy, req(fmt.Sprint("second-", i))})
	}
	if c.Holds(busy) {
		t.Fatal("a released server held again is deferred before its reconcile ran")
	}
	reconcileQueued()
	if rec.runs[busy] != 1 {
		t.Fatalf("a released server held again before its turn was reconciled %d times, want once", rec.runs[busy])
	}
	if !c.Holds(busy) {
		t.Fatalf("once reconciled, busy is not held by the burst that brought it back")
	}
}

// In a burst that does not pause, each server is handed over maxHold after it was held,
// not with the servers held before it: one held late in a step is not cut off from its
// clients still to come.
func TestCoalescerBoundsEachServersHoldOnItsOwn(t *testing.T) {
	c := NewCoalescer()
	c.quiet, c.maxHold = 200*time.Millisecond, 400*time.Millisecond
	q := newQueue(t)
	for i := range burstEvents {
		c.Add(q, []reconcile.Request{req(fmt.Sprint("passed-", i))})
	}
	queued(q)
	start := time.Now()
	got := map[reconcile.Request]time.Duration{}
	for i := 0; time.Since(start) < 700*time.Millisecond; i++ {
		switch {
		case i == 0:
			c.Add(q, []reconcile.Request{req("early")})
		case time.Since(start) > 300*time.Millisecond && got[req("late")] == 0 && !c.Holds(req("late")):
			c.Add(q, []reconcile.Request{req("late")})
		default:
			c.Add(q, []reconcile.Request{req("other")})
		}
		for q.Len() > 0 {
			r, _ := q.Get()
			if _, seen := got[r]; !seen {
				got[r] = time.Since(start)
			}
			q.Done(r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e := got[req("early")]; e < 350*time.Millisecond || e > 550*time.Millisecond {
		t.Errorf("early handed over after %v, want about maxHold (400ms)", e)
	}
	if l, ok := got[req("late")]; ok {
		t.Errorf("late, held at about 300ms, handed over after %v, want it still held at 700ms", l)
	}
}
