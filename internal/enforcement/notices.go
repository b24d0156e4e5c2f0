package enforcement

import (
	"sync"

	"github.com/intentguard/intentguard/api/v2beta1"
	"k8s.io/apimachinery/pkg/types"
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

// Changed returns the objects whose outcome differs between two records of one server,
// given the generations each record covered: those in only one record, those of another
// generation, and those whose state same reports changed. object names the notice.
func Changed(prev, next map[types.NamespacedName]int64, same func(types.NamespacedName) bool, object func(types.NamespacedName) client.Object) []client.Object {
	var out []client.Object
	for k, gen := range next {
		if g, ok := prev[k]; !ok || g != gen || !same(k) {
			out = append(out, object(k))
		}
	}
	for k := range prev {
		if _, ok := next[k]; !ok {
			out = append(out, object(k))
		}
	}
	return out
}

// IntentsNotice is the object a notice about the ClientIntents k names.
func IntentsNotice(k types.NamespacedName) client.Object {
	ci := &v2beta1.ClientIntents{}
	ci.Namespace, ci.Name = k.Namespace, k.Name
	return ci
}

// ProtectedNotice is the object a notice about the ProtectedService k names.
func ProtectedNotice(k types.NamespacedName) client.Object {
	ps := &v2beta1.ProtectedService{}
	ps.Namespace, ps.Name = k.Namespace, k.Name
	return ps
}
