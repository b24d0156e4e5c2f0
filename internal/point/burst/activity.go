package burst

import (
	"sync"
	"time"
)

// MovingWithin is how recently a reconcile must have ended for a reconciler to count as
// working through its queue. One reconcile can label every pod of its clients, which on
// a loaded API server takes seconds for workloads of many pods.
const MovingWithin = 5 * time.Second

// Activity tells whether a reconciler is working through its queue. While it is, a
// server waiting its turn in a burst is not late: its wait counts from now, so a bulk
// writes no Pending status that a Ready replaces a moment later.
type Activity struct {
	// Within, when set, replaces MovingWithin.
	Within time.Duration

	mu sync.Mutex
	// finished is when a reconcile last ended; active counts those running; holding is
	// true while a burst's servers are held back (Coalescer).
	finished time.Time
	active   int
	holding  bool
}

// Begin records that a reconcile started.
func (a *Activity) Begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active++
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
// one ended within MovingWithin, or a burst's servers are held to be queued together.
func (a *Activity) Moving() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	within := a.Within
	if within == 0 {
		within = MovingWithin
	}
	return a.active > 0 || a.holding || time.Since(a.finished) < within
}
