package enforcement

import (
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// noticeBuffer bounds the notices a subscriber has not taken yet; beyond it they are
// dropped: a subscriber that far behind reads the latest records when it catches up,
// and its periodic resync covers the rest.
const noticeBuffer = 4096

// Notices sends the objects whose recorded outcome changed to every subscriber. The zero
// value is ready to use; nothing is sent before the first subscription.
type Notices struct {
	mu   sync.Mutex
	subs []chan event.TypedGenericEvent[client.Object]
}

// Subscribe returns a new channel receiving every notice sent from now on.
func (n *Notices) Subscribe() <-chan event.TypedGenericEvent[client.Object] {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := make(chan event.TypedGenericEvent[client.Object], noticeBuffer)
	n.subs = append(n.subs, ch)
	return ch
}

// Send notifies every subscriber that obj's outcome changed, without ever blocking.
func (n *Notices) Send(obj client.Object) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs {
		select {
		case ch <- event.TypedGenericEvent[client.Object]{Object: obj}:
		default:
		}
	}
}
