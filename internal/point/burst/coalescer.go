// Package burst holds what the enforcement points share to carry out a burst of changes
// (a directory of intents applied at once, a GitOps sync) with one write per server: the
// coalescer that holds a burst's servers until it pauses, the filter that keeps the watch
// event of a point's own write from bringing its server back, and the activity that tells
// a queue being worked through from a wait.
package burst

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Burst settings of the ClientIntents and pod watches. More than burstEvents events within
// burstWindow is a burst (a directory of intents applied at once, a GitOps sync); one
// edit, or a few, is not, and is carried out at once.
const (
	burstEvents = 16
	burstWindow = time.Second
	// burstQuiet is the pause that ends a burst: the servers held are handed over then.
	burstQuiet = 500 * time.Millisecond
	// burstMaxHold bounds how long a server is held, so a long stream of intents is
	// enforced as it goes, in steps.
	burstMaxHold = 5 * time.Second
)

// Coalescer holds back the servers that ClientIntents and pod events map to while the
// events come in a burst, and hands them to the queue together when the burst pauses. A server that
// several clients of the burst call is then written once, instead of once more for every
// client that arrived after its first write (15-19% of the policy writes of a bulk).
type Coalescer struct {
	quiet, maxHold time.Duration
	// Holding, when set, is told when servers start and stop being held.
	Holding func(bool)

	mu sync.Mutex
	// windowStart and events count the events of the current burstWindow.
	windowStart time.Time
	events      int
	// held are the servers waiting for the burst to pause; first and last are when the
	// first of them was held and when the last event came.
	held        map[reconcile.Request]bool
	first, last time.Time
	queue       workqueue.TypedRateLimitingInterface[reconcile.Request]
	timer       *time.Timer
}

// NewCoalescer returns a coalescer with the shipped burst settings.
func NewCoalescer() *Coalescer {
	return &Coalescer{quiet: burstQuiet, maxHold: burstMaxHold, held: map[reconcile.Request]bool{}}
}

// Add enqueues reqs at once outside a burst, or holds them until it pauses. Events that
// bring no server (pods nothing calls) do not count towards a burst.
func (c *Coalescer) Add(q workqueue.TypedRateLimitingInterface[reconcile.Request], reqs []reconcile.Request) {
	if len(reqs) == 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	if now.Sub(c.windowStart) > burstWindow {
		c.windowStart, c.events = now, 0
	}
	c.events++
	if c.events <= burstEvents && len(c.held) == 0 {
		c.mu.Unlock()
		for _, r := range reqs {
			q.Add(r)
		}
		return
	}
	defer c.mu.Unlock()
	if len(c.held) == 0 {
		c.first = now
		if c.Holding != nil {
			c.Holding(true)
		}
	}
	c.last, c.queue = now, q
	for _, r := range reqs {
		c.held[r] = true
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(c.quiet, c.release)
	}
}

// release hands the held servers to the queue once the burst paused for c.quiet or they
// were held for c.maxHold, and otherwise looks again when one of those can be true.
func (c *Coalescer) release() {
	c.mu.Lock()
	now := time.Now()
	wait := min(c.quiet-now.Sub(c.last), c.maxHold-now.Sub(c.first))
	if wait > 0 {
		c.timer.Reset(wait)
		c.mu.Unlock()
		return
	}
	held, q := c.held, c.queue
	c.held, c.timer = map[reconcile.Request]bool{}, nil
	if c.Holding != nil {
		c.Holding(false)
	}
	c.mu.Unlock()
	for r := range held {
		q.Add(r)
	}
}

// Enqueue is the event handler of the watches that bring servers in bursts (ClientIntents,
// and pod changes, which a bulk causes in numbers): it marks the servers an event maps to
// as in hand at once, and enqueues them through the coalescer, which a point's watches
// share so that a burst on any of them holds them all.
func Enqueue[T any](mark func(...reconcile.Request), c *Coalescer, f func(context.Context, T) []reconcile.Request) handler.TypedEventHandler[T, reconcile.Request] {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	add := func(ctx context.Context, q queue, objs ...T) {
		var reqs []reconcile.Request
		for _, o := range objs {
			reqs = append(reqs, f(ctx, o)...)
		}
		mark(reqs...)
		c.Add(q, reqs)
	}
	return handler.TypedFuncs[T, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[T], q queue) { add(ctx, q, e.Object) },
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[T], q queue) {
			add(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc:  func(ctx context.Context, e event.TypedDeleteEvent[T], q queue) { add(ctx, q, e.Object) },
		GenericFunc: func(ctx context.Context, e event.TypedGenericEvent[T], q queue) { add(ctx, q, e.Object) },
	}
}
