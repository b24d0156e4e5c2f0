package enforcement

import (
	"testing"

	"github.com/intentguard/intentguard/api/v2beta1"
)

// Every subscriber gets every notice sent after it subscribed, and a full subscriber
// never blocks the sender.
func TestNoticesReachEverySubscriberWithoutBlocking(t *testing.T) {
	var n Notices
	n.Send(&v2beta1.ClientIntents{}) // nobody listens yet: dropped
	a, b := n.Subscribe(), n.Subscribe()
	ci := &v2beta1.ClientIntents{}
	ci.Name = "client"
	for range noticeBuffer + 10 {
		n.Send(ci)
	}
	if len(a) != noticeBuffer || len(b) != noticeBuffer {
		t.Fatalf("buffered %d and %d notices, want %d each", len(a), len(b), noticeBuffer)
	}
	if e := <-a; e.Object.GetName() != "client" {
		t.Fatalf("notice about %q", e.Object.GetName())
	}
}
