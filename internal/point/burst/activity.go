package burst

import (
	"sync"
	"time"
)

// MovingWithin is how recently a reconcile must have ended for a reconciler to count as
// working through its queue. One reconcile can label every pod of its clients, which on
// a loaded API server takes seconds for workloads of many pods.
const MovingWithin = 5 * time.Second

// StartingWithin is how long a reconciler that has not begun its first reconcile counts
// as working through its queue: at start its informers list the whole cluster first,
// which at 10,000 workloads outlasts enforcement.PendingAfter, and a restart must not turn
// enforced intents Pending meanwhile. It is controller-runtime's default cache sync
// timeout, after which a controller that could not start fails the operator.
const StartingWithin = 2 * time.Minute

// Activity tells whether a reconciler is working through its queue. While it is, a
// server waiting its turn in a burst is not late: its wait counts from now, so a bulk
// writes no Pending status that a Ready replaces a moment later.
type Activity struct {
	// Within, when set, replaces MovingWithin.
	Within time.Duration

	mu sync.Mutex
	// finished is when a reconcile last ended; active counts those running; holding is
	// true while a burst's servers are held back (Coalescer); begun is set by the first
	// reconcile, and asked is when Moving was first asked before it.
	finished time.Time
	active   int
	holding  bool
	begun    bool
	asked    time.Time
}

// Begin records that a reconcile started.
func (a *Activity) Begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active++
	a.begun = true
}

// End records that a reconcile ended.
func (a *Activity) End() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active--
	a.finished = time.Now()
}

// Hold records whether a burst's servers are being held back; it is a Coalescer's Holding.
func (a *Activity) Hold(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.holding = on
}

// Moving reports whether the reconciler is working through its queue: a reconcile runs,
// one ended within MovingWithin, a burst's servers are held to be queued together, or it
// has not begun its first reconcile and was first asked within StartingWithin.
func (a *Activity) Moving() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.begun {
		if a.asked.IsZero() {
			a.asked = time.Now()
		}
		return time.Since(a.asked) < StartingWithin
	}
	within := a.Within
	if within == 0 {
		within = MovingWithin
	}
	return a.active > 0 || a.holding || time.Since(a.finished) < within
}
