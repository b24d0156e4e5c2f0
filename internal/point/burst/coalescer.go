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

	"github.com/go-logr/logr"
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
	// enforced as it goes: each server at most this long after the burst took it in.
	burstMaxHold = 5 * time.Second
)

// Coalescer holds back the servers that ClientIntents and pod events map to while the
// events come in a burst, and hands them to the queue together when the burst pauses (or
// each maxHold after it was held, if the burst goes on that long). A server that several
// clients of the burst call is then written once, instead of once more for every client
// that arrived after its first write (15-19% of the policy writes of a bulk). The servers of the events that came before the burst was known were queued
// at once; those whose reconcile has not started are held with the rest (see Defer).
type Coalescer struct {
	quiet, maxHold time.Duration
	// Holding, when set, is told when servers start and stop being held.
	Holding func(bool)
	// Log receives, at debug level, when a burst starts being held and when it is released.
	Log logr.Logger

	mu sync.Mutex
	// windowStart and events count the events of the current burstWindow.
	windowStart time.Time
	events      int
	// held are the servers waiting for the burst to pause, with when each was held; order
	// has them in that order, so those held for maxHold are at its start. first and last
	// are when the burst began to be held and when its last event came.
	held        map[reconcile.Request]time.Time
	order       []reconcile.Request
	first, last time.Time
	// passed are the servers of the current burstWindow that were enqueued at once, before
	// the window turned out to be a burst: they are held with the burst's, so that those
	// whose reconcile has not started yet wait for the clients of them still arriving.
	passed map[reconcile.Request]bool
	// released are the servers a release handed to the queue whose reconcile has not ended
	// yet: held again by a later event, they still run once, so that a server the events
	// keep bringing back is written at least once per release.
	released map[reconcile.Request]bool
	queue    workqueue.TypedRateLimitingInterface[reconcile.Request]
	timer    *time.Timer
}

// NewCoalescer returns a coalescer with the shipped burst settings.
func NewCoalescer() *Coalescer {
	return &Coalescer{quiet: burstQuiet, maxHold: burstMaxHold, held: map[reconcile.Request]time.Time{}, passed: map[reconcile.Request]bool{}, released: map[reconcile.Request]bool{}}
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
		clear(c.passed)
	}
	c.events++
	if c.events <= burstEvents && len(c.held) == 0 {
		for _, r := range reqs {
			c.passed[r] = true
		}
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
		for r := range c.passed {
			c.hold(r, now)
		}
		c.Log.V(1).Info("holding a burst's servers", "alreadyQueued", len(c.passed))
		clear(c.passed)
	}
	c.last, c.queue = now, q
	for _, r := range reqs {
		c.hold(r, now)
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(c.quiet, c.release)
	}
}

// hold holds r from now on, unless it is held already.
func (c *Coalescer) hold(r reconcile.Request, now time.Time) {
	if _, ok := c.held[r]; !ok {
		c.held[r] = now
		c.order = append(c.order, r)
	}
}

// release hands every held server to the queue once the burst paused for c.quiet, and
// before that the servers held for c.maxHold, each on its own: a server is written again
// only when its own clients come more than c.maxHold apart, not whenever a long burst
// crosses a step. It looks again when the next of those can be true.
func (c *Coalescer) release() {
	c.mu.Lock()
	now := time.Now()
	quiet := now.Sub(c.last) >= c.quiet
	due := len(c.order)
	if !quiet {
		due = 0
		for due < len(c.order) && now.Sub(c.held[c.order[due]]) >= c.maxHold {
			due++
		}
	}
	out, q := c.order[:due:due], c.queue
	c.order = c.order[due:]
	for _, r := range out {
		delete(c.held, r)
		c.released[r] = true
	}
	if len(c.order) == 0 {
		c.Log.V(1).Info("releasing a burst's servers", "servers", len(out), "heldFor", now.Sub(c.first), "quietFor", now.Sub(c.last))
		c.order, c.timer = nil, nil
		if c.Holding != nil {
			c.Holding(false)
		}
	} else {
		if len(out) > 0 {
			c.Log.V(1).Info("releasing the servers a burst held for its bound", "servers", len(out), "stillHeld", len(c.order))
		}
		c.timer.Reset(min(c.quiet-now.Sub(c.last), c.maxHold-now.Sub(c.held[c.order[0]])))
	}
	c.mu.Unlock()
	for _, r := range out {
		q.Add(r)
	}
}

// Holds reports whether a reconcile of r is to wait for the current burst's release:
// r is held, and no earlier release handed it to the queue without a reconcile of it
// having ended since. A reconcile already running asks it again before it writes.
func (c *Coalescer) Holds(r reconcile.Request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, held := c.held[r]
	return held && !c.released[r]
}

// ran records that a reconcile of r ended.
func (c *Coalescer) ran(r reconcile.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.released, r)
}

// Defer wraps a point's reconciler so that a server the coalescer holds is not reconciled
// yet: clients of it are still arriving in the burst, and the release queues it again. A
// server queued just before its window turned out to be a burst is so written once, with
// the burst's clients, instead of once before them and once after.
func (c *Coalescer) Defer(r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		if c.Holds(req) {
			return reconcile.Result{}, nil
		}
		defer c.ran(req)
		return r.Reconcile(ctx, req)
	})
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
