package burst

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Echoes remembers the resourceVersion of each policy a reconciler wrote, so that the
// watch event of its own write does not bring the server back: in a bulk that was one
// reconcile more per policy written, planning the server again to find nothing to do.
// Any other version of the policy, someone's edit or a deletion, is a change to look at.
type Echoes struct {
	mu      sync.Mutex
	written map[types.NamespacedName]string
}

// NewEchoes returns an empty memory of writes.
func NewEchoes() *Echoes {
	return &Echoes{written: map[types.NamespacedName]string{}}
}

// Wrote records the version a write of the reconciler left the policy at.
func (e *Echoes) Wrote(p client.Object) {
	if p.GetResourceVersion() == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.written[client.ObjectKeyFromObject(p)] = p.GetResourceVersion()
}

// Echo reports whether p is the policy as the reconciler's last write left it, and
// forgets that write: a version is echoed once.
func (e *Echoes) Echo(p client.Object) bool {
	key := client.ObjectKeyFromObject(p)
	e.mu.Lock()
	defer e.mu.Unlock()
	rv, ok := e.written[key]
	if !ok || rv != p.GetResourceVersion() {
		return false
	}
	delete(e.written, key)
	return true
}

// Forget drops what is remembered of a policy that is gone.
func (e *Echoes) Forget(p client.Object) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.written, client.ObjectKeyFromObject(p))
}

// EnqueueUnlessEcho is a policy watch's event handler: it enqueues, and marks in hand,
// the servers f finds on a policy, except for the echo of the reconciler's own write.
// Deletions always count.
func EnqueueUnlessEcho(e *Echoes, mark func(...reconcile.Request), f func(context.Context, client.Object) []reconcile.Request) handler.EventHandler {
	add := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		reqs := f(ctx, o)
		mark(reqs...)
		for _, r := range reqs {
			q.Add(r)
		}
	}
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, ev event.CreateEvent, q queue) {
			if !e.Echo(ev.Object) {
				add(ctx, ev.Object, q)
			}
		},
		UpdateFunc: func(ctx context.Context, ev event.UpdateEvent, q queue) {
			if !e.Echo(ev.ObjectNew) {
				add(ctx, ev.ObjectNew, q)
			}
		},
		DeleteFunc: func(ctx context.Context, ev event.DeleteEvent, q queue) {
			e.Forget(ev.Object)
			add(ctx, ev.Object, q)
		},
		GenericFunc: func(ctx context.Context, ev event.GenericEvent, q queue) { add(ctx, ev.Object, q) },
	}
}
