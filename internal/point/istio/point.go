package istio

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/enforcement"
	"github.com/intentguard/intentguard/internal/intent"
	"github.com/intentguard/intentguard/internal/point/burst"
	"github.com/intentguard/intentguard/internal/point/networkpolicy/compile"
)

// PointName is the Istio enforcement point's name in status.
const PointName = "IstioAuthorizationPolicy"

// Point holds what the reconciler recorded for each server at its last reconcile, and
// answers status from those records alone.
type Point struct {
	notices enforcement.Notices
	// activity tells a server waiting its turn in a burst from one that is late.
	activity burst.Activity

	mu      sync.Mutex
	records map[intent.Server]*record
	// pending are the servers with a change seen and not yet recorded, since when.
	pending map[intent.Server]time.Time
	// foreign are the servers whose policy name is held by a policy that is not theirs:
	// their next reconcile reads the API server before writing.
	foreign map[intent.Server]bool
}

var _ enforcement.Point = (*Point)(nil)

// record is what one reconcile of a server ended with.
type record struct {
	// intents are the generations of the ClientIntents the reconcile planned for.
	intents map[types.NamespacedName]int64
	// clients is the state of each of those ClientIntents' targets naming the server.
	clients map[types.NamespacedName]enforcement.TargetState
	// protectors are the generations of the ProtectedServices covering the server.
	protectors map[types.NamespacedName]int64
	// forProtected is the state of the server as its ProtectedServices see it.
	forProtected enforcement.TargetState
}

func newPoint() *Point {
	return &Point{records: map[intent.Server]*record{}, pending: map[intent.Server]time.Time{}, foreign: map[intent.Server]bool{}}
}

// Name implements enforcement.Point.
func (p *Point) Name() string { return PointName }

// Subscribe implements enforcement.Point.
func (p *Point) Subscribe() <-chan event.TypedGenericEvent[client.Object] {
	return p.notices.Subscribe()
}

// Outcomes implements enforcement.Point: the kubernetes and service targets of ci.
func (p *Point) Outcomes(_ context.Context, ci *v2beta1.ClientIntents) ([]enforcement.TargetState, error) {
	key := client.ObjectKeyFromObject(ci)
	var out []enforcement.TargetState
	seen := map[intent.Server]bool{}
	for _, t := range ci.Spec.Targets {
		if t.Kubernetes == nil && t.Service == nil {
			continue
		}
		server, ok := intent.ServerOf(ci, t)
		if !ok || seen[server] {
			continue
		}
		seen[server] = true
		p.mu.Lock()
		r := p.records[server]
		p.mu.Unlock()
		var st enforcement.TargetState
		if gen, ok := r.generation(key); ok && gen == ci.Generation {
			st = r.clients[key]
		} else {
			st = p.inHand(server)
		}
		st.Target = intent.TargetName(t)
		out = append(out, st)
	}
	return out, nil
}

// Protection implements enforcement.Point: the state of the server ps names.
func (p *Point) Protection(_ context.Context, ps *v2beta1.ProtectedService) ([]enforcement.TargetState, error) {
	server := intent.Protected(ps)
	key := client.ObjectKeyFromObject(ps)
	p.mu.Lock()
	r := p.records[server]
	p.mu.Unlock()
	st := p.inHand(server)
	if r != nil {
		if gen, ok := r.protectors[key]; ok && gen == ps.Generation {
			st = r.forProtected
		}
	}
	st.Target = server.String()
	return []enforcement.TargetState{st}, nil
}

func (r *record) generation(key types.NamespacedName) (int64, bool) {
	if r == nil {
		return 0, false
	}
	gen, ok := r.intents[key]
	return gen, ok
}

// inHand is the state of a server whose record does not reflect what status sees yet.
// While the reconciler works through its queue (a burst of intents: the server waits its
// turn), the wait counts from now, so a bulk writes no Pending status that its Ready
// replaces a moment later; once the queue stops moving, the wait counts from when the
// change was taken in hand.
func (p *Point) inHand(server intent.Server) enforcement.TargetState {
	since := p.mark(server)
	if p.activity.Moving() {
		since = time.Now()
	}
	return enforcement.TargetState{
		State:   enforcement.Waiting,
		Message: fmt.Sprintf("waiting for AuthorizationPolicy %s/%s to be written", server.Namespace, compile.PolicyName(server)),
		InHand:  true,
		Since:   since,
	}
}

// mark notes that a change of server is in hand, and returns since when it is.
func (p *Point) mark(server intent.Server) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	since, ok := p.pending[server]
	if !ok {
		since = time.Now()
		p.pending[server] = since
	}
	return since
}

// record stores what a reconcile of server ended with (nil: nothing refers to it any
// more), and notifies the objects whose outcome it changes.
func (p *Point) record(server intent.Server, next *record, foreign bool) {
	p.mu.Lock()
	prev := p.records[server]
	if next == nil {
		delete(p.records, server)
	} else {
		p.records[server] = next
	}
	delete(p.pending, server)
	if foreign {
		p.foreign[server] = true
	} else {
		delete(p.foreign, server)
	}
	p.mu.Unlock()
	for _, obj := range changed(prev, next) {
		p.notices.Send(obj)
	}
}

// lookFirst reports whether the server's last reconcile found its name taken.
func (p *Point) lookFirst(server intent.Server) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.foreign[server]
}

// changed returns the ClientIntents and ProtectedServices whose outcome differs between
// two records of a server.
func changed(prev, next *record) []client.Object {
	if prev == nil {
		prev = &record{}
	}
	if next == nil {
		next = &record{}
	}
	return append(
		enforcement.Changed(prev.intents, next.intents, func(k types.NamespacedName) bool { return prev.clients[k] == next.clients[k] }, enforcement.IntentsNotice),
		enforcement.Changed(prev.protectors, next.protectors, func(types.NamespacedName) bool { return prev.forProtected == next.forProtected }, enforcement.ProtectedNotice)...)
}
