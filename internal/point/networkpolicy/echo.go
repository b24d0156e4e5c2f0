package networkpolicy

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

// echoes remembers the resourceVersion of each policy the reconciler wrote, so that the
// watch event of its own write does not bring the server back: in a bulk that was one
// reconcile more per policy written, planning the server again to find nothing to do.
// Any other version of the policy, someone's edit or a deletion, is a change to look at.
type echoes struct {
	mu      sync.Mutex
	written map[types.NamespacedName]string
}

func newEchoes() *echoes {
	return &echoes{written: map[types.NamespacedName]string{}}
}

// wrote records the version a write of the reconciler left the policy at.
func (e *echoes) wrote(p client.Object) {
	if p.GetResourceVersion() == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.written[client.ObjectKeyFromObject(p)] = p.GetResourceVersion()
}

// echo reports whether p is the policy as the reconciler's last write left it, and
// forgets that write: a version is echoed once.
func (e *echoes) echo(p client.Object) bool {
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

// forget drops what is remembered of a policy that is gone.
func (e *echoes) forget(p client.Object) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.written, client.ObjectKeyFromObject(p))
}

// enqueuePolicyServers is the policy watch's event handler: it enqueues, and marks in
// hand, the server a policy records, except for the echo of the reconciler's own write.
// Deletions always count.
func (p *progress) enqueuePolicyServers(e *echoes) handler.EventHandler {
	add := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		reqs := serverOfPolicy(ctx, o)
		p.mark(reqs...)
		for _, r := range reqs {
			q.Add(r)
		}
	}
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, ev event.CreateEvent, q queue) {
			if !e.echo(ev.Object) {
				add(ctx, ev.Object, q)
			}
		},
		UpdateFunc: func(ctx context.Context, ev event.UpdateEvent, q queue) {
			if !e.echo(ev.ObjectNew) {
				add(ctx, ev.ObjectNew, q)
			}
		},
		DeleteFunc: func(ctx context.Context, ev event.DeleteEvent, q queue) {
			e.forget(ev.Object)
			add(ctx, ev.Object, q)
		},
		GenericFunc: func(ctx context.Context, ev event.GenericEvent, q queue) { add(ctx, ev.Object, q) },
	}
}
